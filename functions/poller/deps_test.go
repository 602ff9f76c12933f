package poller_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The poller core links nothing outward: no adapter (the KV store, the bus, a cloud), no
// configuration loader or composition root, no runtime and no dev-only package. Its tests add
// only the in-memory KV store and the cores' test helpers, so no test here can start a NATS
// server.
func TestNoNATSAndNoAdapters(t *testing.T) {
	const module = "github.com/imagerelay/imagerelay/"
	outward := []string{
		module + "shared/adapters/", module + "shared/config", module + "shared/compose",
		module + "shared/runtime/", module + "shared/dev/",
		"github.com/nats-io/",
	}
	// What the tests may add to the core's dependencies: the KV store's logic over its
	// in-memory bucket, and the clock and event checks the cores' tests share.
	testOnly := []string{
		module + "shared/adapters/state", module + "shared/adapters/state/memkv", module + "shared/dev/coretest",
	}
	check := func(t *testing.T, allowed []string, args ...string) {
		t.Helper()
		out, err := exec.Command("go", append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		seen := 0
		for dep := range strings.FieldsSeq(string(out)) {
			seen++
			if slices.Contains(allowed, dep) {
				continue
			}
			for _, f := range outward {
				if dep == strings.TrimSuffix(f, "/") || strings.HasPrefix(dep, f) {
					t.Errorf("%s depends on %s", strings.Join(args, " "), dep)
				}
			}
		}
		if seen == 0 {
			t.Fatal("go list returned no packages")
		}
	}
	t.Run("core", func(t *testing.T) { check(t, nil, ".") })
	t.Run("tests", func(t *testing.T) { check(t, testOnly, "-test", ".") })
}

package rebuild_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The rebuild core and its tests link nothing outward: no adapter (the KV store, the bus, a
// cloud), no configuration loader or composition root, no runtime, and no dev-only package,
// so no test here can start a NATS server; the core's unit tests run on in-memory ports.
func TestNoNATSAndNoAdapters(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-test", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const module = "github.com/imagerelay/imagerelay/"
	forbidden := []string{
		module + "shared/adapters/", module + "shared/config", module + "shared/compose",
		module + "shared/runtime/", module + "shared/dev/",
		"github.com/nats-io/",
	}
	seen := 0
	for dep := range strings.FieldsSeq(string(out)) {
		seen++
		for _, f := range forbidden {
			if dep == strings.TrimSuffix(f, "/") || strings.HasPrefix(dep, f) {
				t.Errorf("functions/rebuild or its tests depend on %s", dep)
			}
		}
	}
	if seen == 0 {
		t.Fatal("go list returned no packages")
	}
}

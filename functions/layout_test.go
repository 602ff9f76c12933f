package functions_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/imagerelay/imagerelay/"

// pkg is what `go list -json` says of one package.
type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// list runs go list -json on the whole module (with -deps and -test when deps is set).
func list(t *testing.T, args ...string) []pkg {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json"}, append(args, module+"...")...)...)
	cmd.Dir = ".."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	return pkgs
}

func rel(path string) string { return strings.TrimPrefix(path, module) }

func under(path string, dirs ...string) bool {
	for _, d := range dirs {
		if path == d || strings.HasPrefix(path, d+"/") {
			return true
		}
	}
	return false
}

// isMain reports whether path is a function binary's main package (functions/<name>/cmd).
func isMain(path string) bool {
	parts := strings.Split(path, "/")
	return len(parts) == 3 && parts[0] == "functions" && parts[2] == "cmd"
}

// layer names the layer of one of the module's packages, following the README's Architecture
// section.
func layer(path string) string {
	switch {
	case under(path, "shared/dev"), strings.HasSuffix(path, "test"):
		return "dev" // dev-only parts, and test support such as statetest and rttest
	case path == "events":
		return "contract"
	case under(path, "shared/domain"):
		return "domain"
	case isMain(path):
		return "main"
	case under(path, "functions", "shared/core"):
		return "core"
	case under(path, "shared/adapters/alibaba", "shared/adapters/huawei", "shared/adapters/tencent"):
		return "cloud"
	case under(path, "shared/adapters"):
		return "adapter"
	case under(path, "shared/runtime"):
		return "runtime"
	case under(path, "shared/compose", "shared/config"):
		return "compose"
	}
	return "edge" // cmd/imagerelay, e2e, scripts, samples: they may use anything
}

// allowed lists, for each layer, the layers of the module it may import. Arrows point from the
// edges inward: nothing imports outward, and only the CLI and tests use the dev-only parts.
var allowed = map[string][]string{
	"contract": {"contract"},
	"domain":   {"domain"},
	"core":     {"contract", "domain", "core"},
	"cloud":    {"domain", "core", "adapter", "cloud"},
	"adapter":  {"contract", "domain", "core", "adapter"},
	"runtime":  {"contract", "domain", "core", "adapter", "runtime"},
	"compose":  {"contract", "domain", "core", "adapter", "cloud", "runtime", "compose"},
	"main":     {"contract", "domain", "core", "adapter", "cloud", "runtime", "compose"},
	"dev":      {"contract", "domain", "core", "adapter", "cloud", "runtime", "compose", "dev"},
	"edge":     {"contract", "domain", "core", "adapter", "cloud", "runtime", "compose", "dev", "edge"},
}

// outside lists, for the inner layers, the only modules outside the standard library they may
// import: a core knows CloudEvents and nothing of NATS or a cloud SDK; the domain knows nothing.
var outside = map[string][]string{
	"contract": {"github.com/cloudevents/sdk-go/v2", "github.com/santhosh-tekuri/jsonschema/v6", "golang.org/x/text"},
	"domain":   {},
	"core":     {"github.com/cloudevents/sdk-go/v2"},
}

func TestImportsPointInward(t *testing.T) {
	for _, p := range list(t) {
		from := rel(p.ImportPath)
		lay := layer(from)
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module) {
				to := rel(imp)
				if !slices.Contains(allowed[lay], layer(to)) {
					t.Errorf("%s (%s) imports %s (%s): arrows must point inward (see README, Architecture)", from, lay, to, layer(to))
				}
				continue
			}
			mods, limited := outside[lay]
			if !limited || !strings.Contains(strings.Split(imp, "/")[0], ".") {
				continue // an unrestricted layer, or the standard library
			}
			if !slices.ContainsFunc(mods, func(m string) bool { return under(imp, m) }) {
				t.Errorf("%s (%s) imports %s: the %s layer may use only %v outside the standard library", from, lay, imp, lay, mods)
			}
		}
	}
}

// The cloud adapters never see an event type: a new version of the contract must not ripple
// into them.
func TestCloudAdaptersDoNotImportEvents(t *testing.T) {
	for _, p := range list(t, "-deps") {
		if layer(rel(p.ImportPath)) == "cloud" && slices.Contains(p.Deps, module+"events") {
			t.Errorf("%s depends on the events package", rel(p.ImportPath))
		}
	}
}

// The cores' unit tests run on the in-memory store: no NATS server, no JetStream client.
func TestCoreTestsNeedNoNATS(t *testing.T) {
	forbidden := []string{"github.com/nats-io/nats-server/v2", "github.com/nats-io/nats.go", module + "shared/dev/testenv"}
	for _, p := range list(t, "-deps", "-test") {
		// "pkg", "pkg_test [pkg.test]" and "pkg.test": the package, its external tests and
		// the test binary.
		path := rel(strings.Fields(p.ImportPath)[0])
		path = strings.TrimSuffix(strings.TrimSuffix(path, "_test"), ".test")
		if layer(path) != "core" {
			continue
		}
		for _, d := range p.Deps {
			if slices.ContainsFunc(forbidden, func(f string) bool { return under(d, f) }) {
				t.Errorf("%s (with its tests) depends on %s", p.ImportPath, d)
				break
			}
		}
	}
}

// A function binary contains neither the embedded NATS server nor any dev-only part.
func TestFunctionBinariesLinkNoDevParts(t *testing.T) {
	for _, p := range list(t, "-deps") {
		if !isMain(rel(p.ImportPath)) {
			continue
		}
		for _, d := range p.Deps {
			if under(d, "github.com/nats-io/nats-server/v2") || under(rel(d), "shared/dev") && strings.HasPrefix(d, module) {
				t.Errorf("%s links %s", rel(p.ImportPath), d)
			}
		}
	}
}

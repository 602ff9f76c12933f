package runtime_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imagerelay/imagerelay/shared/compose/catalog"
)

// moduleRoot returns the directory of go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// TestFunctionMains checks that every function has a main that hands its own wiring to
// runtime.Main.
func TestFunctionMains(t *testing.T) {
	root := moduleRoot(t)
	for _, name := range catalog.FunctionNames {
		src, err := os.ReadFile(filepath.Join(root, "functions", name, "cmd", "main.go"))
		if err != nil {
			t.Errorf("function %s has no main: %v", name, err)
			continue
		}
		if !strings.Contains(string(src), "runtime.Main("+name+"wire.Function())") {
			t.Errorf("functions/%s/cmd/main.go does not call runtime.Main(%swire.Function())", name, name)
		}
	}
}

// deps lists the packages pkg links (go list -deps) for a target.
func deps(t *testing.T, root, pkg string, env []string, tags string) []string {
	t.Helper()
	args := []string{"list", "-deps", "-f", "{{.ImportPath}}"}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	d := strings.Fields(string(out))
	if len(d) < 10 {
		t.Fatalf("%s: only %d dependencies listed", pkg, len(d))
	}
	return d
}

// linked returns the dependencies of ds that start with one of prefixes.
func linked(ds []string, prefixes ...string) []string {
	var out []string
	for _, d := range ds {
		for _, p := range prefixes {
			if strings.HasPrefix(d, p) {
				out = append(out, d)
				break
			}
		}
	}
	return out
}

const module = "github.com/imagerelay/imagerelay/"

// TestFunctionBinariesLinkOnlyTheirFunction fails if a function binary links another
// function's core or wiring, or the catalog that gathers them all: each main wires only its
// own function. (A core's rules package, such as functions/rebuild/rules, which configuration
// validation uses, is not the core.)
func TestFunctionBinariesLinkOnlyTheirFunction(t *testing.T) {
	root := moduleRoot(t)
	for _, name := range catalog.FunctionNames {
		ds := deps(t, root, "./functions/"+name+"/cmd", nil, "lambda.norpc")
		forbidden := []string{module + "shared/compose/catalog"}
		for _, other := range catalog.FunctionNames {
			if other != name {
				forbidden = append(forbidden, module+"functions/"+other, module+"shared/compose/"+other+"wire")
			}
		}
		for _, d := range ds {
			if slices.Contains(forbidden, d) {
				t.Errorf("the %s binary links %s", name, d)
			}
		}
	}
}

// TestRebuildLinksOnlyAlibaba fails if the rebuild binary links the Tencent or Huawei SDK or
// adapter: it rebuilds Alibaba cloud desktops and calls no other cloud.
func TestRebuildLinksOnlyAlibaba(t *testing.T) {
	root := moduleRoot(t)
	ds := deps(t, root, "./functions/rebuild/cmd", []string{"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0"}, "lambda.norpc")
	if bad := linked(ds, "github.com/tencentcloud/", "github.com/huaweicloud/", module+"shared/adapters/tencent", module+"shared/adapters/huawei"); len(bad) > 0 {
		t.Errorf("the rebuild binary links %v", bad)
	}
	if len(linked(ds, module+"shared/adapters/alibaba")) == 0 {
		t.Error("the rebuild binary does not link the Alibaba adapter: is this test still looking at the right package?")
	}
}

// TestRuntimeDoesNotBuildTheApplication fails if a package under shared/runtime imports the
// composition root, the configuration loader or a cloud adapter: the function's main wires
// the application and hands it to the runtime.
func TestRuntimeDoesNotBuildTheApplication(t *testing.T) {
	root := moduleRoot(t)
	ds := deps(t, root, "./shared/runtime/...", nil, "")
	if bad := linked(ds, module+"shared/compose", module+"shared/config", module+"shared/adapters/alibaba",
		module+"shared/adapters/tencent", module+"shared/adapters/huawei", module+"functions/"); len(bad) > 0 {
		t.Errorf("shared/runtime depends on %v", bad)
	}
}

// TestFunctionBinariesDoNotEmbedNATS fails if a function binary links the nats-server (or
// the packages that embed it): they connect to an external NATS and must stay small.
func TestFunctionBinariesDoNotEmbedNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	root := moduleRoot(t)
	mains, err := filepath.Glob(filepath.Join(root, "functions", "*", "cmd", "main.go"))
	if err != nil || len(mains) < len(catalog.FunctionNames) {
		t.Fatalf("function mains: %v (%v)", mains, err)
	}
	forbidden := []string{"github.com/nats-io/nats-server", "github.com/imagerelay/imagerelay/shared/dev/natsembed", "github.com/imagerelay/imagerelay/shared/dev/testenv"}
	targets := []struct {
		name string
		env  []string
		tags string
	}{
		{name: "host"},
		{name: "lambda linux/arm64", env: []string{"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0"}, tags: "lambda.norpc"},
		{name: "fc linux/amd64", env: []string{"GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0"}},
	}
	for _, tg := range targets {
		for _, m := range mains {
			pkg := "./" + filepath.ToSlash(mustRel(t, root, filepath.Dir(m)))
			for _, d := range linked(deps(t, root, pkg, tg.env, tg.tags), forbidden...) {
				t.Errorf("%s (%s) depends on %s", pkg, tg.name, d)
			}
		}
	}
}

func mustRel(t *testing.T, base, target string) string {
	t.Helper()
	rel, err := filepath.Rel(base, target)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

package runtime_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagerelay/imagerelay/shared/compose"
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

// TestFunctionMains checks that every function the composition root knows has a one-line
// main that hands its name to runtime.Main.
func TestFunctionMains(t *testing.T) {
	root := moduleRoot(t)
	for _, name := range compose.FunctionNames {
		src, err := os.ReadFile(filepath.Join(root, "functions", name, "cmd", "main.go"))
		if err != nil {
			t.Errorf("function %s has no main: %v", name, err)
			continue
		}
		if !strings.Contains(string(src), `runtime.Main("`+name+`")`) {
			t.Errorf("functions/%s/cmd/main.go does not call runtime.Main(%q)", name, name)
		}
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
	if err != nil || len(mains) < len(compose.FunctionNames) {
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
			args := []string{"list", "-deps", "-f", "{{.ImportPath}}"}
			if tg.tags != "" {
				args = append(args, "-tags", tg.tags)
			}
			cmd := exec.Command("go", append(args, pkg)...)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), tg.env...)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", pkg, err)
			}
			deps := strings.Fields(string(out))
			if len(deps) < 10 {
				t.Fatalf("%s: only %d dependencies listed", pkg, len(deps))
			}
			for _, d := range deps {
				for _, f := range forbidden {
					if strings.HasPrefix(d, f) {
						t.Errorf("%s (%s) depends on %s", pkg, tg.name, d)
					}
				}
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

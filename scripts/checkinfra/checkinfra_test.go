package checkinfra

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/imagerelay/imagerelay/shared/compose/catalog"
)

const root = "../.."

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestServerlessYAMLDeploysEveryFunction(t *testing.T) {
	var sls struct {
		FrameworkVersion string `yaml:"frameworkVersion"`
		Provider         struct {
			Runtime      string `yaml:"runtime"`
			Architecture string `yaml:"architecture"`
		} `yaml:"provider"`
		Functions map[string]struct {
			Handler string `yaml:"handler"`
			Role    string `yaml:"role"`
			Package struct {
				Artifact string `yaml:"artifact"`
			} `yaml:"package"`
			Events []map[string]any `yaml:"events"`
		} `yaml:"functions"`
	}
	readYAML(t, "serverless.yml", &sls)
	if sls.FrameworkVersion != "3" || sls.Provider.Runtime != "provided.al2023" || sls.Provider.Architecture != "arm64" {
		t.Errorf("framework %q runtime %q architecture %q", sls.FrameworkVersion, sls.Provider.Runtime, sls.Provider.Architecture)
	}
	for _, name := range catalog.FunctionNames {
		f, ok := sls.Functions[name]
		if !ok {
			t.Errorf("serverless.yml does not deploy %s", name)
			continue
		}
		if f.Handler != "bootstrap" || f.Package.Artifact != "dist/lambda/"+name+".zip" || f.Role == "" {
			t.Errorf("%s: handler %q artifact %q role %q", name, f.Handler, f.Package.Artifact, f.Role)
		}
		scheduled := slices.ContainsFunc(f.Events, func(e map[string]any) bool {
			eb, _ := e["eventBridge"].(map[string]any)
			return eb != nil && eb["schedule"] != nil && eb["deadLetterQueueArn"] != nil && eb["retryPolicy"] != nil
		})
		if !scheduled {
			t.Errorf("%s: no drain schedule with a retry policy and a dead-letter queue", name)
		}
	}
	if len(sls.Functions) != len(catalog.FunctionNames) {
		t.Errorf("serverless.yml has %d functions, the code %d", len(sls.Functions), len(catalog.FunctionNames))
	}
}

func TestSYAMLDeploysEveryFunction(t *testing.T) {
	var s struct {
		Edition   string `yaml:"edition"`
		Resources map[string]struct {
			Component string `yaml:"component"`
			Props     struct {
				Runtime  string           `yaml:"runtime"`
				Handler  string           `yaml:"handler"`
				Code     string           `yaml:"code"`
				Role     string           `yaml:"role"`
				Triggers []map[string]any `yaml:"triggers"`
			} `yaml:"props"`
		} `yaml:"resources"`
		Vars map[string]any `yaml:"vars"`
	}
	readYAML(t, "infra/s.yaml", &s)
	if s.Edition != "3.0.0" {
		t.Errorf("edition %q", s.Edition)
	}
	drain, _ := s.Vars["drainTrigger"].(map[string]any)
	if drain["triggerType"] != "timer" {
		t.Fatalf("vars.drainTrigger is not a timer: %v", drain)
	}
	for _, name := range catalog.FunctionNames {
		r, ok := s.Resources[name]
		if !ok {
			t.Errorf("s.yaml does not deploy %s", name)
			continue
		}
		p := r.Props
		if r.Component != "fc3" || p.Runtime != "go1" || p.Handler != "main" || p.Code != "../dist/fc/"+name+".zip" || p.Role == "" {
			t.Errorf("%s: component %q runtime %q handler %q code %q role %q", name, r.Component, p.Runtime, p.Handler, p.Code, p.Role)
		}
		types := map[string]bool{}
		for _, tr := range p.Triggers {
			if tr["triggerType"] != nil {
				types[tr["triggerType"].(string)] = true
			}
		}
		if !types["timer"] {
			t.Errorf("%s: no timer trigger", name)
		}
		if name == "fanout" && !types["eventbridge"] {
			t.Errorf("fanout: no EventBridge trigger")
		}
	}
}

func actions(t *testing.T, path string, stmtKey, actionKey string) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	for _, st := range doc[stmtKey].([]any) {
		for _, a := range st.(map[string]any)[actionKey].([]any) {
			out = append(out, a.(string))
		}
	}
	slices.Sort(out)
	return out
}

// TestPoliciesAllowOnlyWhatTheProvidersCall keeps the policies to the API actions the
// providers call (shared/providers/*): nothing more, no wildcards.
func TestPoliciesAllowOnlyWhatTheProvidersCall(t *testing.T) {
	tests := []struct {
		path, stmt, action string
		want               []string
	}{
		{path: "infra/alibaba/ram-policy.json", stmt: "Statement", action: "Action",
			want: []string{"appstreaming:ListImage", "appstreaming:StartTaskForDistributeImage", "ecd:DescribeDesktops", "ecd:RebuildDesktops"}},
		{path: "infra/tencent/cam-policy.json", stmt: "statement", action: "action", want: []string{"cvm:DescribeImages", "cvm:SyncImages"}},
		{path: "infra/huawei/iam-policy.json", stmt: "Statement", action: "Action", want: []string{"ims:images:copy", "ims:images:get", "ims:images:list"}},
	}
	for _, tt := range tests {
		if got := actions(t, tt.path, tt.stmt, tt.action); !slices.Equal(got, tt.want) {
			t.Errorf("%s allows %v, want %v", tt.path, got, tt.want)
		}
	}
}

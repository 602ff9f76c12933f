package domain_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The domain and the providers' constraint checkers are what fanout and every core may link:
// they must import neither the event contract (a schema change stops at the cores) nor a
// cloud SDK (a binary that only plans copies carries none).
func TestDomainAndConstraintsImportNoWireAndNoSDK(t *testing.T) {
	const module = "github.com/imagerelay/imagerelay/"
	pkgs := []string{
		module + "shared/domain",
		module + "shared/adapters/tencent/constraints",
		module + "shared/adapters/alibaba/constraints",
		module + "shared/adapters/huawei/constraints",
	}
	for _, pkg := range pkgs {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			switch {
			case dep == module+"events",
				strings.Contains(dep, "tencentcloud-sdk-go"),
				strings.Contains(dep, "huaweicloud-sdk-go"),
				strings.HasPrefix(dep, "github.com/alibabacloud-go/"),
				strings.HasPrefix(dep, module) && !strings.HasPrefix(dep, module+"shared/domain") && !strings.HasSuffix(dep, "/constraints"):
				t.Errorf("%s imports %s", pkg, dep)
			}
		}
	}
}

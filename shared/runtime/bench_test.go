package runtime_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/shared/compose/catalog"
	"github.com/imagerelay/imagerelay/shared/dev/natsembed"
	"github.com/imagerelay/imagerelay/shared/runtime/internal/rtapi"
)

// BenchmarkColdStart measures each function binary's cold start: from exec to its first
// request for an invocation on the local Runtime API (Lambda) or runtime API (Function
// Compute), that is, ready for its first invoke. The binaries are built as `make package`
// builds them (-trimpath, -ldflags "-s -w -buildid=", -tags lambda.norpc, CGO_ENABLED=0), for
// this machine's architecture; binary-bytes is their size.
func BenchmarkColdStart(b *testing.B) {
	root := moduleRootB(b)
	srv, err := natsembed.Start(natsembed.Options{StoreDir: b.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	dir := b.TempDir()
	for _, fn := range catalog.FunctionNames {
		bin := filepath.Join(dir, fn)
		build := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-tags", "lambda.norpc", "-o", bin, "./functions/"+fn+"/cmd")
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v\n%s", fn, err, out)
		}
		st, err := os.Stat(bin)
		if err != nil {
			b.Fatal(err)
		}
		for _, platform := range []string{"lambda", "fc"} {
			b.Run(fmt.Sprintf("%s/%s", platform, fn), func(b *testing.B) {
				for b.Loop() {
					coldStart(b, platform, bin, srv.ClientURL())
				}
				b.ReportMetric(float64(st.Size()), "binary-bytes")
			})
		}
	}
}

// coldStart starts bin once under a fresh runtime API and waits until it asks for work.
func coldStart(b *testing.B, platform, bin, natsURL string) {
	b.StopTimer()
	var api interface {
		Addr() string
		Ready() <-chan struct{}
		Close()
	}
	env := append(os.Environ(), "IMAGERELAY_NATS_URL="+natsURL, "IMAGERELAY_CONFIG="+filepath.Join(b.TempDir(), "none.yaml"))
	switch platform {
	case "lambda":
		l, err := rtapi.NewLambda()
		if err != nil {
			b.Fatal(err)
		}
		api, env = l, append(env, "AWS_LAMBDA_RUNTIME_API="+l.Addr())
	default:
		f, err := rtapi.NewFC()
		if err != nil {
			b.Fatal(err)
		}
		api, env = f, append(env, "FC_RUNTIME_API="+f.Addr())
	}
	defer api.Close()
	cmd := exec.Command(bin)
	cmd.Env = env
	b.StartTimer()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	select {
	case <-api.Ready():
	case <-time.After(10 * time.Second):
		b.Fatalf("%s: %v", bin, rtapi.ErrNotReady)
	}
	b.StopTimer()
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	b.StartTimer()
}

func moduleRootB(b *testing.B) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		b.Fatal(err)
	}
	return filepath.Dir(string(out[:len(out)-1]))
}

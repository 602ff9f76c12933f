package emulators_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/shared/emulators"
	"github.com/imagerelay/imagerelay/shared/emulators/huaweiemu"
)

// TestLoadSeedDurations checks that every duration of a seed file reads the same from YAML
// and JSON, and that what the file leaves out keeps the demo defaults.
func TestLoadSeedDurations(t *testing.T) {
	const yamlSeed = `
tencent:
  copyDuration: 1500ms
alibaba:
  appStream:
    copyDuration: 2s
  ecd:
    rebuildDuration: 2500ms
  throttleRetryAfter: 100ms
faults:
  rates:
    latency: 20ms
`
	const jsonSeed = `{"tencent":{"copyDuration":"1500ms"},
"alibaba":{"appStream":{"copyDuration":"2s"},"ecd":{"rebuildDuration":"2500ms"},"throttleRetryAfter":"100ms"},
"faults":{"rates":{"latency":"20ms"}}}`
	tests := []struct{ name, file, content string }{
		{"yaml", "seed.yaml", yamlSeed},
		{"json", "seed.json", jsonSeed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tt.file)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := emulators.LoadSeed(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				field     string
				got, want time.Duration
			}{
				{"tencent.copyDuration", s.Tencent.CopyDuration.Std(), 1500 * time.Millisecond},
				{"alibaba.appStream.copyDuration", s.Alibaba.AppStream.CopyDuration.Std(), 2 * time.Second},
				{"alibaba.ecd.rebuildDuration", s.Alibaba.Ecd.RebuildDuration.Std(), 2500 * time.Millisecond},
				{"alibaba.throttleRetryAfter", s.Alibaba.ThrottleRetryAfter.Std(), 100 * time.Millisecond},
				{"faults.rates.latency", s.Faults.Rates.Latency.Std(), 20 * time.Millisecond},
				{"huawei.copyDuration (left out)", s.Huawei.CopyDuration.Std(), huaweiemu.DefaultSeed().CopyDuration.Std()},
			} {
				if c.got != c.want {
					t.Errorf("%s = %v; want %v", c.field, c.got, c.want)
				}
			}
			if len(s.Tencent.Credentials) == 0 {
				t.Error("tencent section lost the demo credentials")
			}
		})
	}
}

func TestLoadSeedBadDuration(t *testing.T) {
	tests := []struct{ name, content string }{
		{"no unit", "huawei:\n  copyDuration: 3\n"},
		{"not a duration", "tencent:\n  copyDuration: soon\n"},
		{"bad latency", "faults:\n  rates:\n    latency: fast\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "seed.yaml")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := emulators.LoadSeed(path)
			if err == nil || !strings.Contains(err.Error(), `such as "3s"`) {
				t.Fatalf("err = %v; want one that says a duration such as \"3s\" is expected", err)
			}
		})
	}
}

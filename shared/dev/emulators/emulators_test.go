package emulators_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/shared/dev/emulators"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/huaweiemu"
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

// TestAdminEndpointOnEveryPort checks that each emulator's port serves the shared admin
// endpoint: a fault rule posted to one port shows on the others, and calls can be listed and
// forgotten.
func TestAdminEndpointOnEveryPort(t *testing.T) {
	set, err := emulators.Start(emulators.DefaultSeed(), emulators.Addrs{Tencent: "127.0.0.1:0", Alibaba: "127.0.0.1:0", Huawei: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(set.Close)
	// do sends one admin request and returns the status code and the body.
	do := func(method, addr, path, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, out
	}
	for _, addr := range []string{set.Addrs.Tencent, set.Addrs.Alibaba, set.Addrs.Huawei} {
		if code, _ := do(http.MethodPost, addr, "/_admin/faults", `[{"provider":"tencent","action":"SyncImages","kind":"throttle","count":1}]`); code != http.StatusNoContent {
			t.Errorf("%s: POST /_admin/faults = %d", addr, code)
		}
		if code, body := do(http.MethodPost, addr, "/_admin/faults", `{"not":"an array"}`); code != http.StatusBadRequest || !strings.Contains(string(body), "JSON array") {
			t.Errorf("%s: a malformed fault list answered %d %s, want 400 saying what is expected", addr, code, body)
		}
		if code, body := do(http.MethodPost, addr, "/_admin/faults", `[{"kind":"lose-anwser"}]`); code != http.StatusBadRequest || !strings.Contains(string(body), "lose-answer") {
			t.Errorf("%s: a misspelt fault kind answered %d %s, want 400 listing the kinds", addr, code, body)
		}
		set.Calls.Record(emucore.Call{Provider: "huawei", Action: "ShowJob"})
		var body struct{ Calls []emucore.Call }
		_, raw := do(http.MethodGet, addr, "/_admin/calls?provider=huawei", "")
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatal(err)
		}
		if len(body.Calls) != 1 || body.Calls[0].Action != "ShowJob" {
			t.Errorf("%s: GET /_admin/calls = %+v, want the one ShowJob call", addr, body.Calls)
		}
		if code, _ := do(http.MethodDelete, addr, "/_admin/calls", ""); code != http.StatusNoContent || len(set.Calls.Calls("", "")) != 0 {
			t.Errorf("%s: DELETE /_admin/calls = %d, %d calls left", addr, code, len(set.Calls.Calls("", "")))
		}
	}
	for i := range 4 {
		want := emucore.FaultThrottle
		if i == 3 {
			want = emucore.FaultNone
		}
		if got := set.Faults.Decide("tencent", "SyncImages"); got != want {
			t.Errorf("SyncImages call %d after one rule was posted to each port: fault %q, want %q", i+1, got, want)
		}
	}
	do(http.MethodPost, set.Addrs.Alibaba, "/_admin/faults", `[{"kind":"server-error"}]`)
	if code, _ := do(http.MethodDelete, set.Addrs.Huawei, "/_admin/faults", ""); code != http.StatusNoContent {
		t.Errorf("DELETE /_admin/faults = %d", code)
	}
	if got := set.Faults.Decide("alibaba", "ListImage"); got != emucore.FaultNone {
		t.Errorf("fault %q after DELETE /_admin/faults", got)
	}
}

// TestLoseAnswerFromSeedAndAdmin checks that lose-answer can be set both ways the other kinds
// can: as a random rate in the seed file and as a rule on the admin endpoint.
func TestLoseAnswerFromSeedAndAdmin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seed.yaml")
	content := "faults:\n  randomSeed: 7\n  rates:\n    loseAnswer: 1\n  rules:\n    - {provider: huawei, action: ShowJob, kind: lose-answer, count: 1}\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	seed, err := emulators.LoadSeed(path)
	if err != nil {
		t.Fatal(err)
	}
	if seed.Faults.Rates.LoseAnswer != 1 || len(seed.Faults.Rules) != 1 || seed.Faults.Rules[0].Kind != emucore.FaultLoseAnswer {
		t.Fatalf("seed faults %+v; want loseAnswer rate 1 and one lose-answer rule", seed.Faults)
	}
	set, err := emulators.Start(seed, emulators.Addrs{Tencent: "127.0.0.1:0", Alibaba: "127.0.0.1:0", Huawei: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(set.Close)
	if got := set.Faults.Decide("tencent", "SyncImages"); got != emucore.FaultLoseAnswer {
		t.Errorf("with rate loseAnswer 1: fault %q, want lose-answer", got)
	}
	set.Faults.Clear() // drop the rate, so only the posted rule can answer
	resp, err := http.Post("http://"+set.Addrs.Huawei+"/_admin/faults", "application/json",
		strings.NewReader(`[{"provider":"alibaba","action":"ListImage","kind":"lose-answer","count":1}]`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST a lose-answer rule = %d", resp.StatusCode)
	}
	if got := set.Faults.Decide("alibaba", "ListImage"); got != emucore.FaultLoseAnswer {
		t.Errorf("after posting a lose-answer rule: fault %q, want lose-answer", got)
	}
	if got := set.Faults.Decide("alibaba", "ListImage"); got != emucore.FaultNone {
		t.Errorf("the posted rule outlived its count: %q", got)
	}
}

func TestLoadSeedUnknownFaultKind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seed.yaml")
	if err := os.WriteFile(path, []byte("faults:\n  rules:\n    - {kind: loose-answer}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := emulators.LoadSeed(path); err == nil || !strings.Contains(err.Error(), "faults.rules[0]") || !strings.Contains(err.Error(), "lose-answer") {
		t.Fatalf("err = %v; want one naming faults.rules[0] and the valid kinds", err)
	}
}

package config

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/imagerelay/imagerelay/shared/core/policy"
)

func noEnv(string) string { return "" }

func TestParseFull(t *testing.T) {
	cfg, err := LoadWithEnv("testdata/full.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	wantNATS := NATS{
		URL: "nats://a:4222, tls://b:4222", CredsFile: "testdata/tls/ca.pem",
		TLS:    TLS{CAFile: "testdata/tls/ca.pem", CertFile: "testdata/tls/ca.pem", KeyFile: "testdata/tls/ca.pem"},
		Listen: "none", StoreDir: "/var/lib/imagerelay", Stream: "EVENTS", Replicas: 3,
		DuplicateWindow: Duration(2 * time.Minute), MaxAge: Duration(24 * time.Hour), MaxDeliver: 5,
		AckWait: Duration(time.Minute), Backoff: []Duration{Duration(2 * time.Second), Duration(10 * time.Second)},
		KVBucket: "records",
	}
	if !reflect.DeepEqual(cfg.NATS, wantNATS) {
		t.Errorf("NATS =\n%+v\nwant\n%+v", cfg.NATS, wantNATS)
	}
	if _, ok := cfg.NATS.ListenAddr(); ok || cfg.NATS.Embedded() {
		t.Errorf("listen none / url set not honoured")
	}
	wantProviders := Providers{
		Tencent: Tencent{Endpoint: "cvm.tencentcloudapi.com", Account: "main", SyncRate: 5, DescribeRate: 20.5},
		Alibaba: Alibaba{Endpoint: "appstream-center.aliyuncs.com", EcdEndpoint: "ecd.cn-shanghai.aliyuncs.com", Account: "ali-main", ProductType: "CloudApp", Rate: 3},
		Huawei: Huawei{Endpoint: "https://ims.cn-north-4.myhuaweicloud.com", Account: "hw", Agency: "copy_agency",
			Projects: map[string]string{"cn-north-4": "0123456789abcdef0123456789abcdef"}, Rate: 2},
	}
	if !reflect.DeepEqual(cfg.Providers, wantProviders) {
		t.Errorf("Providers =\n%+v\nwant\n%+v", cfg.Providers, wantProviders)
	}
	win := policy.Match{Provider: "alibaba", ProductType: "CloudDesktop", Tags: map[string]string{"os": "windows", "env": "prod"}, NamePattern: "win-*"}
	wantRepl := Replication{
		PollInterval: Duration(15 * time.Second), Timeout: Duration(3 * time.Hour),
		Policies: []ReplicationPolicy{
			{Name: "windows", Match: win, Regions: []string{"cn-hangzhou", "cn-beijing"}, Timeout: Duration(time.Hour), PollInterval: Duration(15 * time.Second)},
			{Name: "inherit", Match: policy.Match{Provider: "alibaba", ProductType: "CloudDesktop", Tags: win.Tags, NamePattern: "linux-*"},
				Regions: []string{"cn-shenzhen"}, Timeout: Duration(3 * time.Hour), PollInterval: Duration(5 * time.Second)},
		},
	}
	if !reflect.DeepEqual(cfg.Replication, wantRepl) {
		t.Errorf("Replication =\n%+v\nwant\n%+v", cfg.Replication, wantRepl)
	}
	wantRebuild := []RebuildPolicy{
		{
			Name: "night", Match: win, Regions: []string{"cn-beijing"},
			Desktops: DesktopSelector{IDs: []string{"ecd-1", "ecd-2"}, Tags: map[string]string{"team": "design"}, GroupID: "dg-1", OlderVersionOfImage: true},
			Canary:   0, BatchSize: 5, FailureBudget: 2,
			Window:      &MaintenanceWindow{Start: "22:00", End: "06:00", TimeZone: "Asia/Shanghai", Days: []string{"Fri", "sat"}},
			OperateType: "replace", Language: "ja-JP", AllowDataDiskWipe: true, DryRun: true,
			CheckInterval: Duration(30 * time.Second),
			Timeout:       Duration(3 * time.Hour),
		},
		func() RebuildPolicy {
			p := DefaultRebuildPolicy()
			p.Name = "defaults"
			p.Desktops.OlderVersionOfImage = true
			return p
		}(),
	}
	if !reflect.DeepEqual(cfg.Rebuild.Policies, wantRebuild) {
		t.Errorf("Rebuild =\n%+v\nwant\n%+v", cfg.Rebuild.Policies, wantRebuild)
	}
	if d := cfg.Rebuild.Policies[1]; d.Canary != 1 || d.BatchSize != 20 || d.FailureBudget != 0 || d.CheckInterval.Std() != 10*time.Second || d.Timeout.Std() != time.Hour {
		t.Errorf("rebuild defaults not applied: %+v", d)
	}
	if cfg.Log.Level != "debug" {
		t.Errorf("log level %q", cfg.Log.Level)
	}
	if cfg.File() != "testdata/full.yaml" {
		t.Errorf("File() = %q", cfg.File())
	}
}

func TestEmptyAndCommentOnlyFilesAreDefaults(t *testing.T) {
	for _, src := range []string{"", "\n\n", "# nothing here\n", "---\n", "nats:\n"} {
		cfg, err := Parse("t.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		cfg.src = nil
		if !reflect.DeepEqual(cfg, Defaults()) {
			t.Errorf("%q: got %+v, want defaults", src, cfg)
		}
	}
}

func TestDefaultsValidate(t *testing.T) {
	if err := Defaults().Validate(); err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.Rebuild.Policies = []RebuildPolicy{{Name: "x", Desktops: DesktopSelector{GroupID: "dg"}}}
	err := cfg.Validate()
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 3 {
		t.Fatalf("hand-built policy without defaults: %v", err)
	}
	// Without a source the location is just the path.
	if got := errs[0].Error(); !strings.HasPrefix(got, "config: rebuild.policies[0].batchSize: ") {
		t.Errorf("unlocated error = %q", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	if _, err := Load(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
	cfg, err := loadOrDefault(missing, envMap{"IMAGERELAY_LOG_LEVEL": "warn"}.get)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Level != "warn" || cfg.NATS.Stream != "IMAGERELAY" {
		t.Errorf("LoadOrDefault(missing) = %+v", cfg)
	}
	// A file that exists is read, and its errors are not hidden.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("log:\n  level: loud\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrDefault(bad); !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), bad+":2:10: log.level: ") {
		t.Errorf("LoadOrDefault(bad) = %v", err)
	}
}

func TestFileTooLarge(t *testing.T) {
	big := "# " + strings.Repeat("x", maxFileSize) + "\n"
	if _, err := Parse("big.yaml", []byte(big)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("large file: %v", err)
	}
}

func TestCheckRegionsAndErrorAt(t *testing.T) {
	src := `
replication:
  policies:
    - name: t
      match: {provider: tencent}
      regions: [ap-shanghai, ap-gz]
    - name: any
      regions: [whatever]
rebuild:
  policies:
    - name: r
      regions: [cn-nowhere]
      desktops: {groupId: dg-1}
`
	cfg, err := Parse("imagerelay.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.CheckRegions(map[string][]string{
		"tencent": {"ap-guangzhou", "ap-shanghai"},
		"alibaba": {"cn-hangzhou", "cn-shanghai"},
	})
	checkErrors(t, err, []want{
		{"imagerelay.yaml:6:30", "replication.policies[0].regions[1]", ErrInvalid, `"ap-gz" is not a region id of tencent; fix: use one of ap-guangzhou, ap-shanghai`},
		{"imagerelay.yaml:12:17", "rebuild.policies[0].regions[0]", ErrInvalid, `"cn-nowhere" is not a region id of alibaba`},
	})
	if err := cfg.CheckRegions(map[string][]string{"huawei": {"cn-north-4"}}); err != nil {
		t.Errorf("unchecked providers reported: %v", err)
	}

	e := cfg.ErrorAt("replication.policies[1].regions[0]", `"whatever" is too far`, "pick a closer region")
	if got, want := e.Error(), `imagerelay.yaml:8:17: replication.policies[1].regions[0]: "whatever" is too far; fix: pick a closer region`; got != want {
		t.Errorf("ErrorAt = %q, want %q", got, want)
	}
	if !errors.Is(e, ErrInvalid) {
		t.Error("ErrorAt does not wrap ErrInvalid")
	}
	// A path not in the file falls back to the nearest key that is.
	if e := cfg.ErrorAt("replication.policies[1].timeout", "x", "y"); e.Line != 7 || e.Column != 7 {
		t.Errorf("ErrorAt(missing) at %d:%d, want 7:7", e.Line, e.Column)
	}
	if e := cfg.ErrorAt("nats.ackWait", "x", "y"); e.Line != 0 || e.File != "imagerelay.yaml" {
		t.Errorf("ErrorAt(absent section) = %+v", e)
	}
}

func TestPathRoundTrip(t *testing.T) {
	for _, s := range []string{
		"replication.policies[0].regions[1]",
		"rebuild.policies[12].desktops.tags.team",
		"providers.huawei.projects.cn-north-4",
		"a.'b.c'.d",
		"x[0][1]",
	} {
		p, err := parsePath(s)
		if err != nil {
			t.Fatalf("parsePath(%q): %v", s, err)
		}
		if got := p.String(); got != s {
			t.Errorf("parsePath(%q).String() = %q", s, got)
		}
	}
	for _, s := range []string{"a[", "a[x]", "a.'b"} {
		if _, err := parsePath(s); err == nil {
			t.Errorf("parsePath(%q) accepted", s)
		}
	}
}

func TestDurationEncoding(t *testing.T) {
	type doc struct {
		D  Duration   `yaml:"d" json:"d"`
		DS []Duration `yaml:"ds" json:"ds"`
	}
	in := doc{D: Duration(90 * time.Second), DS: []Duration{Duration(time.Hour)}}
	j, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(j) != `{"d":"1m30s","ds":["1h0m0s"]}` {
		t.Errorf("JSON = %s", j)
	}
	var back doc
	if err := json.Unmarshal(j, &back); err != nil || !reflect.DeepEqual(back, in) {
		t.Errorf("JSON round trip = %+v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"d":30}`), &back); err == nil {
		t.Error("JSON number accepted as a duration")
	}
	y, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), "d: 1m30s") {
		t.Errorf("YAML = %s", y)
	}
	back = doc{}
	if err := yaml.Unmarshal(y, &back); err != nil || !reflect.DeepEqual(back, in) {
		t.Errorf("YAML round trip = %+v, %v", back, err)
	}
	if got := Std([]Duration{Duration(time.Second)}); len(got) != 1 || got[0] != time.Second {
		t.Errorf("Std = %v", got)
	}
}

// TestConfigMarshalRoundTrip checks that a configuration written back out (for `imagerelay
// config show`, say) loads again to the same values.
func TestConfigMarshalRoundTrip(t *testing.T) {
	cfg, err := LoadWithEnv("testdata/full.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("out.yaml", out)
	if err != nil {
		t.Fatalf("re-parse:\n%v\n%s", err, out)
	}
	cfg.src, again.src = nil, nil
	if !reflect.DeepEqual(cfg, again) {
		t.Errorf("round trip differs:\n%+v\n%+v", cfg, again)
	}
}

func TestMergeKeys(t *testing.T) {
	ok := `
replication:
  policies:
    - name: base
      match: &base
        provider: alibaba
        namePattern: "win-*"
      regions: [cn-beijing]
    - name: a
      match:
        <<: *base
        namePattern: "linux-*"
      regions: [cn-hangzhou]
`
	cfg, err := Parse("t.yaml", []byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if m := cfg.Replication.Policies[1].Match; m.Provider != "alibaba" || m.NamePattern != "linux-*" {
		t.Errorf("merged match = %+v, want provider from the anchor and the pattern written here", m)
	}

	late := `
replication:
  policies:
    - name: base
      match: &base {provider: alibaba, namePattern: "win-*"}
      regions: [cn-beijing]
    - name: a
      match:
        namePattern: "linux-*"
        <<: *base
      regions: [cn-hangzhou]
`
	_, err = Parse("t.yaml", []byte(late))
	checkErrors(t, err, []want{{"t.yaml:10:9", "replication.policies[1].match", ErrInvalid, `move the "<<" line above`}})
}

// TestLeadingEmptyDocument checks that a document after empty ones is read (goccy/go-yaml
// v1.19's parser drops it) and is the one checked and decoded, with its own line numbers.
func TestLeadingEmptyDocument(t *testing.T) {
	_, err := Parse("t.yaml", []byte("---\n# nothing\n---\nlog:\n  level: loud\n"))
	checkErrors(t, err, []want{{"t.yaml:5:10", "log.level", ErrInvalid, "not a log level"}})
	cfg, err := Parse("t.yaml", []byte("---\n---\nlog:\n  level: warn\n"))
	if err != nil || cfg.Log.Level != "warn" {
		t.Fatalf("second document not decoded: %v %+v", err, cfg)
	}
}

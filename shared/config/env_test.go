package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// envMap is a fake environment.
type envMap map[string]string

func (m envMap) get(k string) string { return m[k] }

func TestEnvOverrides(t *testing.T) {
	file := "replication:\n  timeout: 1h\n  policies:\n    - name: p\n      regions: [ap-beijing]\n"
	env := envMap{
		"IMAGERELAY_NATS_URL":                       "nats://bus:4222",
		"IMAGERELAY_NATS_STORE_DIR":                 "/data/nats",
		"IMAGERELAY_NATS_MAX_DELIVER":               " 7 ",
		"IMAGERELAY_NATS_TLS_CA_FILE":               "testdata/tls/ca.pem",
		"IMAGERELAY_NATS_LISTEN":                    "none",
		"IMAGERELAY_REPLICATION_POLL_INTERVAL":      "2s",
		"IMAGERELAY_REPLICATION_TIMEOUT":            "90m",
		"IMAGERELAY_PROVIDERS_TENCENT_ENDPOINT":     "127.0.0.1:1",
		"IMAGERELAY_PROVIDERS_TENCENT_SYNC_RATE":    "2.5",
		"IMAGERELAY_PROVIDERS_ALIBABA_ECD_ENDPOINT": "127.0.0.1:2",
		"IMAGERELAY_PROVIDERS_HUAWEI_AGENCY":        "other_agency",
		"IMAGERELAY_LOG_LEVEL":                      "debug",
		"IMAGERELAY_NATS_BACKOFF":                   "9s", // Lists are not overridable: ignored.
	}
	cfg, err := parse("imagerelay.yaml", []byte(file), env.get)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"url", cfg.NATS.URL, "nats://bus:4222"},
		{"storeDir", cfg.NATS.StoreDir, "/data/nats"},
		{"maxDeliver", cfg.NATS.MaxDeliver, 7},
		{"caFile", cfg.NATS.TLS.CAFile, "testdata/tls/ca.pem"},
		{"listen", cfg.NATS.Listen, "none"},
		{"pollInterval", cfg.Replication.PollInterval.Std(), 2 * time.Second},
		{"timeout (env beats file)", cfg.Replication.Timeout.Std(), 90 * time.Minute},
		{"policy inherits the overridden timeout", cfg.Replication.Policies[0].Timeout.Std(), 90 * time.Minute},
		{"tencent endpoint", cfg.Providers.Tencent.Endpoint, "127.0.0.1:1"},
		{"syncRate", cfg.Providers.Tencent.SyncRate, 2.5},
		{"ecdEndpoint", cfg.Providers.Alibaba.EcdEndpoint, "127.0.0.1:2"},
		{"agency", cfg.Providers.Huawei.Agency, "other_agency"},
		{"log", cfg.Log.Level, "debug"},
		{"backoff untouched", len(cfg.NATS.Backoff), 3},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestEnvBadValues(t *testing.T) {
	env := envMap{
		"IMAGERELAY_NATS_MAX_DELIVER":            "ten",
		"IMAGERELAY_NATS_ACK_WAIT":               "30",
		"IMAGERELAY_PROVIDERS_TENCENT_SYNC_RATE": "NaN",
		"IMAGERELAY_LOG_LEVEL":                   "info",
	}
	_, err := parse("imagerelay.yaml", nil, env.get)
	checkErrors(t, err, []want{
		{"environment variable IMAGERELAY_NATS_ACK_WAIT", "nats.ackWait", ErrType, `"30" is not a duration`},
		{"environment variable IMAGERELAY_NATS_MAX_DELIVER", "nats.maxDeliver", ErrType, `"ten" is not a whole number; fix: set IMAGERELAY_NATS_MAX_DELIVER to a whole number`},
		{"environment variable IMAGERELAY_PROVIDERS_TENCENT_SYNC_RATE", "providers.tencent.syncRate", ErrType, "not a number"},
	})
}

// TestEnvValidationNamesVariable checks that a well-formed but invalid override is blamed on
// the variable, not on the file line it replaced.
func TestEnvValidationNamesVariable(t *testing.T) {
	env := envMap{"IMAGERELAY_LOG_LEVEL": "loud", "IMAGERELAY_NATS_REPLICAS": "9"}
	_, err := parse("imagerelay.yaml", []byte("log:\n  level: info\n"), env.get)
	checkErrors(t, err, []want{
		{"environment variable IMAGERELAY_LOG_LEVEL", "log.level", ErrInvalid, `"loud" is not a log level`},
		{"environment variable IMAGERELAY_NATS_REPLICAS", "nats.replicas", ErrInvalid, "1 to 5"},
	})
}

func TestEnvVars(t *testing.T) {
	vars := EnvVars()
	byName := map[string]EnvVar{}
	for _, v := range vars {
		if _, dup := byName[v.Name]; dup {
			t.Errorf("duplicate variable %s", v.Name)
		}
		byName[v.Name] = v
	}
	for name, path := range map[string]string{
		"IMAGERELAY_NATS_URL":                        "nats.url",
		"IMAGERELAY_NATS_CREDS_FILE":                 "nats.credsFile",
		"IMAGERELAY_NATS_TLS_KEY_FILE":               "nats.tls.keyFile",
		"IMAGERELAY_NATS_STORE_DIR":                  "nats.storeDir",
		"IMAGERELAY_NATS_SYNC_ALWAYS":                "nats.syncAlways",
		"IMAGERELAY_NATS_KV_BUCKET":                  "nats.kvBucket",
		"IMAGERELAY_NATS_DUPLICATE_WINDOW":           "nats.duplicateWindow",
		"IMAGERELAY_REPLICATION_POLL_INTERVAL":       "replication.pollInterval",
		"IMAGERELAY_PROVIDERS_TENCENT_ENDPOINT":      "providers.tencent.endpoint",
		"IMAGERELAY_PROVIDERS_TENCENT_DESCRIBE_RATE": "providers.tencent.describeRate",
		"IMAGERELAY_PROVIDERS_ALIBABA_ECD_ENDPOINT":  "providers.alibaba.ecdEndpoint",
		"IMAGERELAY_PROVIDERS_HUAWEI_AGENCY":         "providers.huawei.agency",
		"IMAGERELAY_LOG_LEVEL":                       "log.level",
	} {
		if v, ok := byName[name]; !ok || v.Path != path {
			t.Errorf("%s = %+v, want path %s", name, v, path)
		}
	}
	if got := byName["IMAGERELAY_NATS_ACK_WAIT"].Type; got != "duration" {
		t.Errorf("ackWait type %q", got)
	}
	if got := byName["IMAGERELAY_NATS_REPLICAS"].Type; got != "whole number" {
		t.Errorf("replicas type %q", got)
	}
	for _, v := range vars {
		if strings.Contains(v.Path, "policies") || strings.Contains(v.Path, "backoff") || strings.Contains(v.Path, "projects") {
			t.Errorf("%s overrides a list or map", v.Name)
		}
	}
	if !slices.ContainsFunc(vars, func(v EnvVar) bool { return v.Name == "IMAGERELAY_PROVIDERS_HUAWEI_RATE" }) {
		t.Error("huawei rate has no variable")
	}
}

func TestUpperSnake(t *testing.T) {
	for in, want := range map[string]string{"url": "URL", "credsFile": "CREDS_FILE", "kvBucket": "KV_BUCKET", "caFile": "CA_FILE", "tls": "TLS", "ecdEndpoint": "ECD_ENDPOINT"} {
		if got := upperSnake(in); got != want {
			t.Errorf("upperSnake(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEnvErrorIsTyped(t *testing.T) {
	_, err := parse("x.yaml", nil, envMap{"IMAGERELAY_REBUILD_POLICIES": "x", "IMAGERELAY_NATS_REPLICAS": "x"}.get)
	var e *Error
	if !errors.As(err, &e) || e.Env != "IMAGERELAY_NATS_REPLICAS" {
		t.Fatalf("errors.As(*Error) = %+v (%v)", e, err)
	}
}

// TestSyncAlways checks that nats.syncAlways is off by default, set by the file or by
// IMAGERELAY_NATS_SYNC_ALWAYS, and refused next to an external server's url, where it would
// silently do nothing.
func TestSyncAlways(t *testing.T) {
	cfg, err := parse("imagerelay.yaml", nil, envMap{}.get)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.SyncAlways {
		t.Error("syncAlways is on by default")
	}
	cfg, err = parse("imagerelay.yaml", []byte("nats:\n  syncAlways: true\n"), envMap{}.get)
	if err != nil || !cfg.NATS.SyncAlways {
		t.Errorf("from the file: syncAlways %v, err %v", cfg != nil && cfg.NATS.SyncAlways, err)
	}
	cfg, err = parse("imagerelay.yaml", nil, envMap{"IMAGERELAY_NATS_SYNC_ALWAYS": "true"}.get)
	if err != nil || !cfg.NATS.SyncAlways {
		t.Errorf("from the environment: syncAlways %v, err %v", cfg != nil && cfg.NATS.SyncAlways, err)
	}
	_, err = parse("imagerelay.yaml", []byte("nats:\n  url: nats://bus:4222\n  syncAlways: true\n"), envMap{}.get)
	checkErrors(t, err, []want{{"imagerelay.yaml:3:15", "nats.syncAlways", ErrInvalid, "sync_interval: always"}})
}

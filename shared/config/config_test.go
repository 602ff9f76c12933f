package config

import (
	"errors"
	"strings"
	"testing"
)

// want is one expected problem: its "file:line:col" (or "ENV" name), path, kind, and a
// piece of its problem or fix text.
type want struct {
	at       string
	path     string
	kind     error
	contains string
}

func checkErrors(t *testing.T, err error, wants []want) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %d", len(wants))
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %T is not Errors: %v", err, err)
	}
	if len(errs) != len(wants) {
		t.Fatalf("got %d problems, want %d:\n%v", len(errs), len(wants), err)
	}
	for i, w := range wants {
		e := errs[i]
		prefix := w.at + ": " + w.path + ": "
		if w.path == "" {
			prefix = w.at + ": "
		}
		if !strings.HasPrefix(e.Error(), prefix) {
			t.Errorf("problem %d = %q, want prefix %q", i, e.Error(), prefix)
		}
		if !errors.Is(e, w.kind) {
			t.Errorf("problem %d kind = %v, want %v", i, e.Err, w.kind)
		}
		if !strings.Contains(e.Error(), w.contains) {
			t.Errorf("problem %d = %q, want it to contain %q", i, e.Error(), w.contains)
		}
		if !errors.Is(err, w.kind) {
			t.Errorf("errors.Is(Errors, %v) = false", w.kind)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []want
	}{
		{
			name: "syntax",
			yaml: "nats:\n  url: a: b\n",
			want: []want{{"t.yaml:2:8", "", ErrSyntax, "mapping value is not allowed"}},
		},
		{
			name: "unknown key with suggestion",
			yaml: "nats:\n  url: \"\"\n  lisen: 127.0.0.1:4222\n",
			want: []want{{"t.yaml:3:3", "nats.lisen", ErrUnknownKey, `did you mean "listen"?`}},
		},
		{
			name: "unknown top-level key lists keys",
			yaml: "log:\n  level: info\nfoo: 1\n",
			want: []want{{"t.yaml:3:1", "foo", ErrUnknownKey, "nats, providers, replication, rebuild, log"}},
		},
		{
			name: "unknown key in a policy",
			yaml: `
replication:
  policies:
    - name: a
      regions: [ap-shanghai]
      regoins: [ap-beijing]
`,
			want: []want{{"t.yaml:6:7", "replication.policies[0].regoins", ErrUnknownKey, `did you mean "regions"?`}},
		},
		{
			name: "credential keys anywhere, value never shown",
			yaml: `
providers:
  tencent:
    secretKey: TOPSECRET1
  alibaba:
    access_key_secret: TOPSECRET2
  huawei:
    sk: TOPSECRET3
misc:
  nested:
    password: TOPSECRET4
`,
			want: []want{
				{"t.yaml:4:5", "providers.tencent.secretKey", ErrCredentials, "TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY"},
				{"t.yaml:6:5", "providers.alibaba.access_key_secret", ErrCredentials, "ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET"},
				{"t.yaml:8:5", "providers.huawei.sk", ErrCredentials, "HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK"},
				{"t.yaml:9:1", "misc", ErrUnknownKey, "unknown key"},
				{"t.yaml:11:5", "misc.nested.password", ErrCredentials, "HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK"},
			},
		},
		{
			name: "wrong types all reported",
			yaml: `
nats:
  ackWait: 30
  maxDeliver: ten
  backoff: 1s
  tls: yes
rebuild:
  policies:
    - name: p
      dryRun: "true"
      desktops: {ids: [d1]}
`,
			want: []want{
				{"t.yaml:3:12", "nats.ackWait", ErrType, `add a unit: "30s"`},
				{"t.yaml:4:15", "nats.maxDeliver", ErrType, "whole number"},
				{"t.yaml:5:12", "nats.backoff", ErrType, "expected a list"},
				{"t.yaml:6:8", "nats.tls", ErrType, "expected a mapping"},
				{"t.yaml:10:15", "rebuild.policies[0].dryRun", ErrType, "true or false"},
			},
		},
		{
			name: "provider region list",
			yaml: `
providers:
  alibaba:
    regions: [cn-hangzhou, "Bad Region"]
`,
			want: []want{
				{"t.yaml:4:28", "providers.alibaba.regions[1]", ErrInvalid, `"Bad Region" is not a region id`},
			},
		},
		{
			name: "semantic problems reported with unknown keys",
			yaml: `
nats:
  lisen: x
replication:
  policies:
    - name: a
      match: {provider: aws, namePattern: "win-["}
      regions: [ap-shanghai, AP, ap-shanghai]
    - name: a
      regions: []
`,
			want: []want{
				{"t.yaml:3:3", "nats.lisen", ErrUnknownKey, "listen"},
				{"t.yaml:7:25", "replication.policies[0].match.provider", ErrInvalid, `"aws" is not a provider`},
				{"t.yaml:7:43", "replication.policies[0].match.namePattern", ErrInvalid, "close every ["},
				{"t.yaml:8:30", "replication.policies[0].regions[1]", ErrInvalid, `"AP" is not a region id`},
				{"t.yaml:8:34", "replication.policies[0].regions[2]", ErrInvalid, "listed twice"},
				{"t.yaml:9:13", "replication.policies[1].name", ErrInvalid, "already used by policy 0"},
				{"t.yaml:10:16", "replication.policies[1].regions", ErrInvalid, "no destination region"},
			},
		},
		{
			name: "missing regions points at the policy",
			yaml: `
replication:
  policies:
    - name: lonely
`,
			want: []want{{"t.yaml:4:7", "replication.policies[0].regions", ErrInvalid, "names no destination region"}},
		},
		{
			name: "policy without a name",
			yaml: `
replication:
  policies:
    - regions: [ap-beijing]
`,
			want: []want{{"t.yaml:4:7", "replication.policies[0].name", ErrInvalid, "has no name"}},
		},
		{
			name: "nats ranges",
			yaml: `
nats:
  listen: localhost
  stream: "my.stream"
  replicas: 7
  maxDeliver: 2
  backoff: [1s, 0s, 3s]
  duplicateWindow: 0s
  url: "http://x:4222"
`,
			want: []want{
				{"t.yaml:3:11", "nats.listen", ErrInvalid, "host:port"},
				{"t.yaml:4:11", "nats.stream", ErrInvalid, "not a valid stream name"},
				{"t.yaml:5:13", "nats.replicas", ErrInvalid, "1 to 5"},
				{"t.yaml:7:12", "nats.backoff", ErrInvalid, "raise maxDeliver to 3"},
				{"t.yaml:7:17", "nats.backoff[1]", ErrInvalid, "longer than zero"},
				{"t.yaml:8:20", "nats.duplicateWindow", ErrInvalid, "longer than zero"},
				{"t.yaml:9:8", "nats.url", ErrInvalid, `scheme "http"`},
			},
		},
		{
			name: "nats url password is redacted",
			yaml: "nats:\n  url: \"ftp://user:hunter2@x:4222\"\n",
			want: []want{{"t.yaml:2:8", "nats.url", ErrInvalid, "user:xxxxx@x:4222"}},
		},
		{
			name: "tls files must exist and pair",
			yaml: `
nats:
  url: nats://127.0.0.1:4222
  credsFile: testdata/missing.creds
  tls:
    caFile: testdata/tls/ca.pem
    certFile: testdata/tls
`,
			want: []want{
				{"t.yaml:4:14", "nats.credsFile", ErrInvalid, "cannot be read"},
				{"t.yaml:5:3", "nats.tls.keyFile", ErrInvalid, "both certFile and keyFile"},
				{"t.yaml:7:15", "nats.tls.certFile", ErrInvalid, "is a directory"},
			},
		},
		{
			name: "rebuild policy rules",
			yaml: `
rebuild:
  policies:
    - name: r1
      match: {provider: tencent, productType: CloudDesk}
      regions: [cn_shanghai]
      canary: -1
      batchSize: 21
      failureBudget: -2
      operateType: wipe
      language: fr-FR
      checkInterval: 0s
      desktops: {ids: [d1, d1]}
      window:
        start: "25:00"
        end: 6am
        timeZone: Mars/Olympus
        days: [Mon, Funday]
    - name: r2
      operateType: replace
      batchSize: 0
`,
			want: []want{
				{"t.yaml:5:25", "rebuild.policies[0].match.provider", ErrInvalid, "rebuild applies to Alibaba cloud desktops"},
				{"t.yaml:5:47", "rebuild.policies[0].match.productType", ErrInvalid, "not an Alibaba product type"},
				{"t.yaml:6:17", "rebuild.policies[0].regions[0]", ErrInvalid, "not a region id"},
				{"t.yaml:7:15", "rebuild.policies[0].canary", ErrInvalid, "0 for no canary"},
				{"t.yaml:8:18", "rebuild.policies[0].batchSize", ErrInvalid, "1 to 20"},
				{"t.yaml:9:22", "rebuild.policies[0].failureBudget", ErrInvalid, "first failed desktop"},
				{"t.yaml:10:20", "rebuild.policies[0].operateType", ErrInvalid, `"wipe" is not an operate type`},
				{"t.yaml:11:17", "rebuild.policies[0].language", ErrInvalid, "en-US, zh-HK, zh-CN, ja-JP"},
				{"t.yaml:12:22", "rebuild.policies[0].checkInterval", ErrInvalid, "longer than zero"},
				{"t.yaml:13:28", "rebuild.policies[0].desktops.ids[1]", ErrInvalid, "listed twice"},
				{"t.yaml:15:16", "rebuild.policies[0].window.start", ErrInvalid, "00:00 to 23:59"},
				{"t.yaml:16:14", "rebuild.policies[0].window.end", ErrInvalid, "HH:MM"},
				{"t.yaml:17:19", "rebuild.policies[0].window.timeZone", ErrInvalid, "IANA"},
				{"t.yaml:18:21", "rebuild.policies[0].window.days[1]", ErrInvalid, "Mon, Tue"},
				{"t.yaml:19:7", "rebuild.policies[1].desktops", ErrInvalid, "selects no desktops"},
				{"t.yaml:20:20", "rebuild.policies[1].operateType", ErrInvalid, "allowDataDiskWipe: true"},
				{"t.yaml:21:18", "rebuild.policies[1].batchSize", ErrInvalid, "1 to 20"},
			},
		},
		{
			name: "providers",
			yaml: `
providers:
  tencent:
    account: "my/account"
    syncRate: -1
  alibaba:
    productType: Desktop
  huawei:
    rate: .nan
    projects:
      cn-north-4: not-a-project
`,
			want: []want{
				{"t.yaml:4:14", "providers.tencent.account", ErrInvalid, "not a valid account label"},
				{"t.yaml:5:15", "providers.tencent.syncRate", ErrInvalid, "requests per second"},
				{"t.yaml:7:18", "providers.alibaba.productType", ErrInvalid, "CloudDesktop, CloudApp, WuyingServer"},
				{"t.yaml:9:11", "providers.huawei.rate", ErrInvalid, "requests per second"},
				{"t.yaml:11:19", "providers.huawei.projects.cn-north-4", ErrInvalid, "32-character project id"},
			},
		},
		{
			name: "replication section",
			yaml: "replication:\n  pollInterval: 1h\n  timeout: 30m\nlog:\n  level: loud\n",
			want: []want{
				{"t.yaml:2:17", "replication.pollInterval", ErrInvalid, "not shorter than timeout"},
				{"t.yaml:5:10", "log.level", ErrInvalid, "debug, info, warn, error"},
			},
		},
		{
			name: "duplicate key",
			yaml: "log:\n  level: info\n  level: debug\n",
			want: []want{{"t.yaml:3:3", "", ErrSyntax, `mapping key "level" already defined at [2:3]`}},
		},
		{
			name: "two documents",
			yaml: "log: {level: info}\n---\nlog: {level: debug}\n",
			want: []want{{"t.yaml:3:1", "", ErrSyntax, "more than one YAML document"}},
		},
		{
			name: "top level is not a mapping",
			yaml: "- a\n- b\n",
			want: []want{{"t.yaml:1:1", "", ErrType, "expected a mapping"}},
		},
		{
			name: "recursive alias",
			yaml: "x: &a [*a]\n",
			want: []want{{"t.yaml:1:1", "", ErrInvalid, "aliases expand"}},
		},
		{
			name: "billion laughs",
			yaml: `a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
`,
			want: []want{{"t.yaml:1:1", "", ErrInvalid, "aliases expand"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Cases starting with a newline count it as line 1, as the line numbers show.
			cfg, err := Parse("t.yaml", []byte(tt.yaml))
			if cfg != nil {
				t.Errorf("Parse returned a config with an error")
			}
			checkErrors(t, err, tt.want)
			for _, s := range []string{"TOPSECRET", "hunter2"} {
				if err != nil && strings.Contains(err.Error(), s) {
					t.Errorf("error leaks a secret: %v", err)
				}
			}
		})
	}
}

package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/compose"
	"github.com/imagerelay/imagerelay/shared/compose/catalog"
	"github.com/imagerelay/imagerelay/shared/config"
	"github.com/imagerelay/imagerelay/shared/dev/emulators"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/alibabaemu"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/tencentemu"
	"github.com/imagerelay/imagerelay/shared/dev/natsembed"
	"github.com/imagerelay/imagerelay/shared/dev/testenv"
	"github.com/imagerelay/imagerelay/shared/runtime"
	"github.com/imagerelay/imagerelay/shared/runtime/host"
	"github.com/imagerelay/imagerelay/shared/runtime/internal/rtapi"
	"github.com/imagerelay/imagerelay/shared/runtime/internal/rttest"
	"github.com/imagerelay/imagerelay/shared/runtime/lambdart"
)

// envTestFunction makes the test binary run a function instead of the tests: the tests start
// themselves as a subprocess with it, which is exactly what a function binary does (its main
// is runtime.Main), under the real aws-lambda-go and fc-runtime-go-sdk runtime loops.
const envTestFunction = "IMAGERELAY_TEST_FUNCTION"

// scripted is a test-only function whose core's outcome the image id chooses (rttest.Core).
const scripted = "scripted"

func TestMain(m *testing.M) {
	switch f := os.Getenv(envTestFunction); f {
	case "":
		os.Exit(m.Run())
	case scripted:
		runScripted()
	default:
		// What functions/<f>/cmd/main.go does, with the wiring picked by name.
		fn, err := catalog.Function(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		runtime.Main(fn)
	}
}

// runScripted runs the scripted core on Lambda, on the same bus as the real functions.
func runScripted() {
	log := lambdart.NewLogger()
	open := func(ctx context.Context) (*host.Session, error) {
		cfg, err := config.LoadOrDefault(compose.ConfigPath(os.Getenv))
		if err != nil {
			return nil, err
		}
		nc, err := compose.Connect(cfg, scripted)
		if err != nil {
			return nil, err
		}
		b, err := bus.Setup(ctx, nc, compose.BusConfig(cfg), log)
		if err != nil {
			return nil, err
		}
		spec := bus.Spec{Function: scripted, Types: []string{events.TypeImagePublished}, Handler: &rttest.Core{}, Concurrency: 4}
		return &host.Session{Function: scripted, Bus: b, Spec: spec, Conn: nc}, nil
	}
	lambdart.Start(lambdart.New(host.New(scripted, open, log)), func() { os.Exit(0) })
}

func TestDetect(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want runtime.Kind
	}{
		{env: map[string]string{}, want: runtime.Worker},
		{env: map[string]string{"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}, want: runtime.Lambda},
		{env: map[string]string{"FC_RUNTIME_API": "127.0.0.1:9000"}, want: runtime.FunctionCompute},
	}
	for _, tt := range tests {
		if got := runtime.Detect(func(k string) string { return tt.env[k] }); got != tt.want {
			t.Errorf("Detect(%v) = %s, want %s", tt.env, got, tt.want)
		}
	}
}

// stack is what the function processes run against: a NATS server with JetStream listening
// on loopback (the test's, embedded; the function processes connect to it as to any external
// NATS), the cloud emulators, and a configuration file.
type stack struct {
	env     *testenv.Env
	rec     *testenv.Recorder
	emus    *emulators.Set
	natsURL string
	cfgPath string
}

// Alibaba STS keys the emulator accepts; the Function Compute tests hand them over per
// invocation, as the platform does, and never through the environment.
var (
	stsOne = rtapi.STS{AccessKeyID: "STS.one", AccessKeySecret: "sts-one-secret", SecurityToken: "token-one"}
	stsTwo = rtapi.STS{AccessKeyID: "STS.two", AccessKeySecret: "sts-two-secret", SecurityToken: "token-two"}
	stsOld = rtapi.STS{AccessKeyID: "STS.expired", AccessKeySecret: "gone", SecurityToken: "old"}
)

func startStack(t *testing.T) *stack {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Connect()
	if err != nil {
		srv.Shutdown()
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close(); srv.Shutdown() })
	env := &testenv.Env{Server: srv, Conn: nc}
	seed := emulators.DefaultSeed()
	seed.Tencent.CopyDuration = emucore.Duration(300 * time.Millisecond)
	seed.Alibaba.AppStream.CopyDuration = emucore.Duration(300 * time.Millisecond)
	seed.Alibaba.Credentials = []alibabaemu.Credential{
		{AccessKeyID: alibabaemu.DemoAccessKeyID, AccessKeySecret: alibabaemu.DemoAccessKeySecret},
		{AccessKeyID: stsOne.AccessKeyID, AccessKeySecret: stsOne.AccessKeySecret, SecurityToken: stsOne.SecurityToken},
		{AccessKeyID: stsTwo.AccessKeyID, AccessKeySecret: stsTwo.AccessKeySecret, SecurityToken: stsTwo.SecurityToken},
	}
	emus, err := emulators.Start(seed, emulators.Addrs{Tencent: "127.0.0.1:0", Alibaba: "127.0.0.1:0", Huawei: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emus.Close)
	s := &stack{env: env, rec: env.Record(t), emus: emus, natsURL: srv.ClientURL(), cfgPath: filepath.Join(t.TempDir(), "imagerelay.yaml")}
	cfg := fmt.Sprintf(`nats:
  url: %s
  ackWait: 5s
  backoff: [200ms, 1s]
providers:
  tencent:
    endpoint: %s
  alibaba:
    endpoint: %s
    ecdEndpoint: %s
replication:
  pollInterval: 1s
  timeout: 1m
  policies:
    - name: tencent-web
      match: {provider: tencent}
      regions: [ap-singapore]
    - name: alibaba-desktops
      match: {provider: alibaba}
      regions: [cn-hangzhou]
`, s.natsURL, emus.Addrs.Tencent, emus.Addrs.Alibaba, emus.Addrs.Alibaba)
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The operator sets up the stream and the bucket (`imagerelay setup`); functions only bind.
	loaded, err := config.Load(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := compose.Setup(ctx, loaded, nc, nil); err != nil {
		t.Fatal(err)
	}
	return s
}

// proc is a function process under a local runtime API.
type proc struct {
	cmd    *exec.Cmd
	out    *rtapi.Output
	exited chan struct{}
	err    error
}

// childEnv is the environment of a function process: this one's, without anything that would
// change what it does, plus env.
func (s *stack) childEnv(function string, env ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "IMAGERELAY_"), strings.HasPrefix(k, "AWS_LAMBDA_"), k == "FC_RUNTIME_API",
			strings.HasPrefix(k, "TENCENTCLOUD_"), strings.HasPrefix(k, "ALIBABA_CLOUD_"), strings.HasPrefix(k, "HUAWEICLOUD_"):
			continue
		}
		out = append(out, kv)
	}
	out = append(out, envTestFunction+"="+function, compose.EnvConfig+"="+s.cfgPath,
		"TENCENTCLOUD_SECRET_ID="+tencentemu.DemoSecretID, "TENCENTCLOUD_SECRET_KEY="+tencentemu.DemoSecretKey,
		"AWS_LAMBDA_LOG_FORMAT=JSON")
	return append(out, env...)
}

// start starts function as a subprocess of this test binary with env and waits until it asks
// its runtime API for the first invocation.
func (s *stack) start(t *testing.T, ready <-chan struct{}, function string, env ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(os.Args[0], "-test.run=^$"), out: &rtapi.Output{}, exited: make(chan struct{})}
	p.cmd.Env = s.childEnv(function, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if p.out.Contains("DATA RACE") {
			t.Errorf("%s: the race detector found a data race:\n%s", function, p.out)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", function, p.out)
		}
	})
	select {
	case <-ready:
	case <-p.exited:
		t.Fatalf("%s exited before asking for an invocation: %v\n%s", function, p.err, p.out)
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: %v\n%s", function, rtapi.ErrNotReady, p.out)
	}
	return p
}

func startLambda(t *testing.T, s *stack, function string, env ...string) (*rtapi.Lambda, *proc) {
	t.Helper()
	api, err := rtapi.NewLambda()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	// On Lambda, the Alibaba Cloud keys are the function's environment.
	env = append(env, "AWS_LAMBDA_RUNTIME_API="+api.Addr(),
		"ALIBABA_CLOUD_ACCESS_KEY_ID="+alibabaemu.DemoAccessKeyID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET="+alibabaemu.DemoAccessKeySecret)
	p := s.start(t, api.Ready(), function, env...)
	return api, p
}

func startFC(t *testing.T, s *stack, function string) (*rtapi.FC, *proc) {
	t.Helper()
	api, err := rtapi.NewFC()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Close)
	// No Alibaba keys in the environment: they come with each invocation.
	p := s.start(t, api.Ready(), function, "FC_RUNTIME_API="+api.Addr(), "IMAGERELAY_LOG_LEVEL=debug")
	return api, p
}

func lambdaInvoke(t *testing.T, api *rtapi.Lambda, payload []byte, timeout time.Duration) rtapi.Answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
	defer cancel()
	res, err := api.Invoke(ctx, payload, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func fcInvoke(t *testing.T, api *rtapi.FC, payload []byte, o rtapi.FCInvocation) rtapi.Answer {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout+5*time.Second)
	defer cancel()
	res, err := api.Invoke(ctx, payload, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// waitFor waits until an event of typ about imageID (and caused by causeID, when set) is on
// the bus.
func (s *stack) waitFor(t *testing.T, typ, imageID, causeID string) event.Event {
	t.Helper()
	var got event.Event
	testenv.Eventually(t, 15*time.Second, func() error {
		for _, e := range s.rec.OfType(typ) {
			if events.StringExt(e, events.ExtImageID) == imageID && (causeID == "" || events.StringExt(e, events.ExtCausationID) == causeID) {
				got = e
				return nil
			}
		}
		return fmt.Errorf("no %s for %s (cause %q) yet", typ, imageID, causeID)
	})
	return got
}

// none asserts that no event of typ about imageID is on the bus.
func (s *stack) none(t *testing.T, typ, imageID string) {
	t.Helper()
	for _, e := range s.rec.OfType(typ) {
		if events.StringExt(e, events.ExtImageID) == imageID {
			t.Errorf("unexpected %s for %s: %s", typ, imageID, e)
		}
	}
}

// dead returns the dead letters of function.
func (s *stack) dead(function string) []rtapi.Answer {
	var out []rtapi.Answer
	for _, m := range s.rec.DeadLetters() {
		if m.Subject == events.DeadLetterSubject(function) {
			out = append(out, rtapi.Answer{Body: m.Data})
		}
	}
	return out
}

// checkEvents asserts every event on the bus validates against its schema.
func (s *stack) checkEvents(t *testing.T) {
	t.Helper()
	if bad := s.rec.InvalidEvents(); len(bad) > 0 {
		t.Errorf("%d invalid events on the bus, first: %v", len(bad), bad[0])
	}
	for _, e := range s.rec.All() {
		if err := events.Check(e); err != nil {
			t.Errorf("event %s (%s) does not validate: %v", e.ID(), e.Type(), err)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tencentImage and alibabaImage are image.published payloads of images the emulators hold.
func tencentImage(id string) events.ImagePublished {
	return events.ImagePublished{Image: events.Image{Provider: events.ProviderTencent, ImageID: id, SourceRegion: "ap-guangzhou", ImageName: "web-base"}, SizeGB: 20}
}

func alibabaImage(id, version string) events.ImagePublished {
	return events.ImagePublished{Image: events.Image{Provider: events.ProviderAlibaba, ImageID: id, VersionID: version,
		SourceRegion: "cn-shanghai", ProductType: "CloudDesktop", ImageName: "desktop"}}
}

func publishedEvent(t *testing.T, id string, img events.ImagePublished) event.Event {
	t.Helper()
	e, err := events.New(events.TypeImagePublished, img, events.Meta{ID: id, Source: "/test/pipeline",
		Provider: img.Provider, Region: img.SourceRegion, ImageID: img.ImageID})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func eventBridge(t *testing.T, id string, detail any) []byte {
	t.Helper()
	return mustJSON(t, map[string]any{"version": "0", "id": id, "detail-type": events.TypeImagePublished, "source": "imagerelay.pipeline",
		"account": "123456789012", "time": "2026-07-01T10:00:00Z", "region": "eu-west-1", "resources": []string{}, "detail": detail})
}

func scheduledEvent() []byte {
	return []byte(`{"version":"0","id":"tick-1","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012",` +
		`"time":"2026-07-01T10:01:00Z","region":"eu-west-1","resources":["arn:aws:events:eu-west-1:123456789012:rule/imagerelay-poller"],"detail":{}}`)
}

func sqsBatch(t *testing.T, bodies map[string][]byte, order []string) []byte {
	t.Helper()
	var recs []map[string]any
	for _, id := range order {
		recs = append(recs, map[string]any{"messageId": id, "receiptHandle": "rh-" + id, "body": string(bodies[id]),
			"attributes":        map[string]string{"ApproximateReceiveCount": "1", "SentTimestamp": "1751364000000"},
			"messageAttributes": map[string]any{}, "md5OfBody": "", "eventSource": "aws:sqs",
			"eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:imagerelay-intake", "awsRegion": "eu-west-1"})
	}
	return mustJSON(t, map[string]any{"Records": recs})
}

type sqsResponse struct {
	BatchItemFailures []struct {
		ItemIdentifier string `json:"itemIdentifier"`
	} `json:"batchItemFailures"`
}

type response struct {
	Function string `json:"function"`
	Trigger  string `json:"trigger"`
	Handled  int    `json:"handled"`
	Results  []struct {
		EventID string      `json:"eventId"`
		Status  host.Status `json:"status"`
		Reason  string      `json:"reason"`
	} `json:"results"`
}

func decode[T any](t *testing.T, res rtapi.Answer) T {
	t.Helper()
	var v T
	if res.Failed {
		t.Fatalf("invocation failed: %s", res.Body)
	}
	if err := json.Unmarshal(res.Body, &v); err != nil {
		t.Fatalf("response %s: %v", res.Body, err)
	}
	return v
}

// eventually polls cond until it holds, failing the test after 20s.
func eventually(t *testing.T, cond func() error) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, cond)
}

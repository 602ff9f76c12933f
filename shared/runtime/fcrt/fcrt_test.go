package fcrt_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/fc-runtime-go-sdk/fc"
	"github.com/aliyun/fc-runtime-go-sdk/fccontext"

	"github.com/imagerelay/imagerelay/shared/runtime/fcrt"
	"github.com/imagerelay/imagerelay/shared/runtime/host"
	"github.com/imagerelay/imagerelay/shared/runtime/internal/rttest"
)

// invoke runs payload through fc-runtime-go-sdk's handler machinery, as the runtime loop
// does, with the invocation context it builds.
func invoke(t *testing.T, h fc.Handler, requestID string, retries int, payload []byte, timeout time.Duration) ([]byte, error) {
	t.Helper()
	ctx := fccontext.NewContext(context.Background(), &fccontext.FcContext{RequestID: requestID, RetryCount: retries,
		Credentials: fccontext.Credentials{AccessKeyId: "STS.key", AccessKeySecret: "sts-secret", SecurityToken: "token"}})
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return h.Invoke(ctx, payload)
}

// aliEvent is a CloudEvent as Alibaba Cloud EventBridge delivers it: structured, with its
// aliyun* extension attributes.
func aliEvent(t *testing.T, id string, data []byte) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"specversion": "1.0", "id": id, "source": "imagerelay.builder", "type": "imagerelay:image.published",
		"subject": "acs:eventbridge:cn-hangzhou:123:eventbus/default", "time": "2026-07-01T10:00:00Z", "datacontenttype": "application/json",
		"aliyunaccountid": "1234567890", "aliyunpublishtime": "2026-07-01T10:00:00.123Z", "aliyuneventbusname": "default",
		"aliyunregionid": "cn-hangzhou", "aliyunpublishaddr": "10.0.0.1", "data": json.RawMessage(data)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func timerEvent() []byte {
	return []byte(`{"triggerTime":"2026-07-01T10:00:00Z","triggerName":"drain","payload":"{}"}`)
}

func TestInvokeShapes(t *testing.T) {
	env := rttest.Start(t)
	h := fc.NewHandler(fcrt.New(env.Host, nil).Invoke)
	ce := rttest.Published(t, "ce-fc", "img-a")
	arrayOf := func(elems ...[]byte) []byte {
		return append(append([]byte("["), bytes.Join(elems, []byte(","))...), ']')
	}
	quoted := func(b []byte) []byte { q, _ := json.Marshal(string(b)); return q }
	tests := []struct {
		name      string
		payload   []byte
		statuses  []host.Status
		plannedBy []string
		dead      int
		wantErr   bool
	}{
		{name: "single imagerelay CloudEvent", payload: rttest.JSON(t, ce), statuses: []host.Status{host.StatusDone}, plannedBy: []string{"ce-fc"}},
		{name: "single EventBridge CloudEvent wraps its data", payload: aliEvent(t, "ali-1", rttest.PayloadJSON(t, "img-b")),
			statuses: []host.Status{host.StatusDone}, plannedBy: []string{"ali-1"}},
		{name: "array", payload: arrayOf(aliEvent(t, "ali-2", rttest.PayloadJSON(t, "img-c")), aliEvent(t, "ali-3", rttest.PayloadJSON(t, "img-d"))),
			statuses: []host.Status{host.StatusDone, host.StatusDone}, plannedBy: []string{"ali-2", "ali-3"}},
		{name: "array of strings", payload: arrayOf(quoted(aliEvent(t, "ali-4", rttest.PayloadJSON(t, "img-e"))), quoted(rttest.JSON(t, rttest.Published(t, "ce-q", "img-f")))),
			statuses: []host.Status{host.StatusDone, host.StatusDone}, plannedBy: []string{"ali-4", "ce-q"}},
		{name: "RawData payload takes the request id", payload: rttest.PayloadJSON(t, "img-g"),
			statuses: []host.Status{host.StatusDone}, plannedBy: []string{"req-1-0"}},
		{name: "poison element fails only itself", payload: arrayOf(aliEvent(t, "ali-5", rttest.PayloadJSON(t, "img-h")), []byte(`"{broken"`), aliEvent(t, "ali-6", []byte(`{"x":1}`))),
			statuses: []host.Status{host.StatusDone, host.StatusReject, host.StatusReject}, plannedBy: []string{"ali-5"}, dead: 2},
		{name: "deferred", payload: aliEvent(t, "ali-7", rttest.PayloadJSON(t, "img-defer")), statuses: []host.Status{host.StatusDefer}},
		{name: "retry fails the invocation", payload: arrayOf(aliEvent(t, "ali-8", rttest.PayloadJSON(t, "img-ok8")), aliEvent(t, "ali-9", rttest.PayloadJSON(t, "img-retry"))),
			wantErr: true, plannedBy: []string{"ali-8"}},
		{name: "not an array of events", payload: []byte(`[1,`), statuses: []host.Status{host.StatusReject}, dead: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dead := len(env.Rec.DeadLetters())
			out, err := invoke(t, h, "req-1", 0, tt.payload, 10*time.Second)
			if tt.wantErr {
				var re *fcrt.RetryError
				var hre *host.RetryError
				if !errors.As(err, &re) || re.Retry != 1 || re.Of != 2 || !errors.As(err, &hre) || hre.EventID != "ali-9" {
					t.Fatalf("err = %v, want 1 of 2 to retry (ali-9)", err)
				}
			} else {
				if err != nil {
					t.Fatalf("invoke: %v", err)
				}
				var resp fcrt.Response
				if err := json.Unmarshal(out, &resp); err != nil {
					t.Fatalf("response %s: %v", out, err)
				}
				if resp.Trigger != fcrt.TriggerEventBridge || len(resp.Results) != len(tt.statuses) {
					t.Fatalf("response %s", out)
				}
				for i, st := range tt.statuses {
					if resp.Results[i].Status != st {
						t.Errorf("result %d: %s (%s), want %s", i, resp.Results[i].Status, resp.Results[i].Reason, st)
					}
				}
			}
			for _, id := range tt.plannedBy {
				env.WaitPlanned(t, id)
			}
			if tt.dead > 0 {
				for _, d := range env.WaitDead(t, dead+tt.dead)[dead:] {
					if d.Origin != "fc:eventbridge" || d.Reason == "" {
						t.Errorf("dead letter %+v", d)
					}
				}
			}
		})
	}
}

func TestTimerDrainsWithinItsBudget(t *testing.T) {
	env := rttest.Start(t)
	h := fc.NewHandler(fcrt.New(env.Host, nil).Invoke)
	if err := env.Bus.Publish(context.Background(), rttest.Published(t, "nats-1", "img-n")); err != nil {
		t.Fatal(err)
	}
	if _, err := invoke(t, h, "r", 0, aliEvent(t, "ali-loop", rttest.PayloadJSON(t, "img-defer-loop")), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	const timeout = 4 * time.Second
	start := time.Now()
	out, err := invoke(t, h, "tick", 0, timerEvent(), timeout)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= timeout {
		t.Errorf("timer invocation took %v, past its deadline", took)
	}
	var resp fcrt.Response
	if err := json.Unmarshal(out, &resp); err != nil || resp.Trigger != fcrt.TriggerTimer || resp.Handled < 2 {
		t.Fatalf("response %s (%v)", out, err)
	}
	env.WaitPlanned(t, "nats-1")
}

func TestDeliveriesComeFromTheRetryCount(t *testing.T) {
	env := rttest.Start(t)
	h := fc.NewHandler(fcrt.New(env.Host, nil).Invoke)
	if _, err := invoke(t, h, "r", 2, []byte(`{"not":"an event"}`), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	msgs := env.WaitDead(t, 1)
	raw := env.Rec.DeadLetters()[0]
	if got := raw.Header.Get("Imagerelay-Dlq-Deliveries"); got != "3" {
		t.Errorf("deliveries = %q, want 3 (two retries)", got)
	}
	if !strings.Contains(msgs[0].Reason, "provider and imageId are required") {
		t.Errorf("reason = %q", msgs[0].Reason)
	}
}

func TestConcurrentInvocations(t *testing.T) {
	env := rttest.Start(t)
	h := fc.NewHandler(fcrt.New(env.Host, nil).Invoke)
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			if _, err := invoke(t, h, fmt.Sprint("r", i), 0, aliEvent(t, fmt.Sprint("c", i), rttest.PayloadJSON(t, fmt.Sprint("img-slow", i))), 10*time.Second); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range 12 {
		env.WaitPlanned(t, fmt.Sprint("c", i))
	}
	if env.Core.MaxFlight.Load() < 2 {
		t.Errorf("invocations did not overlap (max in flight %d)", env.Core.MaxFlight.Load())
	}
}

func TestLoggerAddsRequestID(t *testing.T) {
	var buf bytes.Buffer
	log := fcrt.NewLogger(&buf, slog.LevelInfo).With("function", "fanout")
	log.InfoContext(fcrt.WithRequestID(context.Background(), "req-42"), "handled")
	log.Info("no context")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log = %q", buf.String())
	}
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if first["requestId"] != "req-42" || first["function"] != "fanout" {
		t.Errorf("first record = %v", first)
	}
	if _, ok := second["requestId"]; ok {
		t.Errorf("record without an invocation has a requestId: %v", second)
	}
}

// The runtime links no cloud adapter: the STS keys of each invocation reach the adapters only
// through the hook the function's main hands over, and an invocation without keys does not
// call it.
func TestCredentialsGoThroughTheHook(t *testing.T) {
	env := rttest.Start(t)
	var mu sync.Mutex
	var got []host.Credentials
	hook := func(ctx context.Context, c host.Credentials) context.Context {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, c)
		return ctx
	}
	h := fc.NewHandler(fcrt.New(env.Host, hook).Invoke)
	if _, err := invoke(t, h, "r1", 0, aliEvent(t, "cred-1", rttest.PayloadJSON(t, "img-a")), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(fccontext.NewContext(context.Background(), &fccontext.FcContext{RequestID: "r2"}), 5*time.Second)
	defer cancel()
	if _, err := h.Invoke(ctx, aliEvent(t, "cred-2", rttest.PayloadJSON(t, "img-b"))); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := host.Credentials{AccessKeyID: "STS.key", AccessKeySecret: "sts-secret", SecurityToken: "token"}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("hook got %v, want the first invocation's keys only", got)
	}
	if s := fmt.Sprintf("%v %#v", got[0], got[0]); strings.Contains(s, "sts-secret") {
		t.Errorf("credentials print their secret: %s", s)
	}
}

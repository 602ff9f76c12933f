package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/dev/testenv"
	"github.com/imagerelay/imagerelay/shared/runtime/host"
	"github.com/imagerelay/imagerelay/shared/runtime/internal/rttest"
)

func TestDecode(t *testing.T) {
	ce := rttest.Published(t, "ce-1", "img-a")
	foreign := map[string]any{"specversion": "1.0", "id": "ali-7", "source": "acs:eventbridge", "type": "imagerelay:image.published",
		"time": "2026-01-02T03:04:05Z", "aliyunaccountid": "123", "data": rttest.Image("img-b")}
	foreignStr := map[string]any{"specversion": "1.0", "id": "ali-8", "source": "acs:eventbridge", "type": "custom",
		"data": string(rttest.PayloadJSON(t, "img-c"))}
	badTyped := map[string]any{"specversion": "1.0", "id": "x", "source": "/s", "type": events.TypeImagePublished,
		"datacontenttype": "application/json", "data": map[string]any{"provider": "tencent"}}
	fb := host.Fallback{ID: "fb-1", Source: "builder.example", Time: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)}
	tests := []struct {
		name      string
		raw       []byte
		wantErr   bool
		wantID    string
		wantImage string
		wantSrc   string
	}{
		{name: "imagerelay CloudEvent", raw: rttest.JSON(t, ce), wantID: "ce-1", wantImage: "img-a", wantSrc: "/test"},
		{name: "foreign CloudEvent wraps its data", raw: mustJSON(t, foreign), wantID: "ali-7", wantImage: "img-b", wantSrc: "acs:eventbridge"},
		{name: "foreign CloudEvent with string data", raw: mustJSON(t, foreignStr), wantID: "ali-8", wantImage: "img-c", wantSrc: "acs:eventbridge"},
		{name: "bare payload gets the fallback", raw: rttest.PayloadJSON(t, "img-d"), wantID: "fb-1", wantImage: "img-d", wantSrc: "builder.example"},
		{name: "imagerelay type with invalid data", raw: mustJSON(t, badTyped), wantErr: true},
		{name: "not JSON", raw: []byte("{oops"), wantErr: true},
		{name: "JSON array is not one event", raw: []byte(`[1,2]`), wantErr: true},
		{name: "object that is no payload", raw: []byte(`{"hello":"world"}`), wantErr: true},
		{name: "payload failing the schema", raw: []byte(`{"provider":"nowhere","imageId":"i","sourceRegion":"r"}`), wantErr: true},
		{name: "unknown imagerelay type", raw: []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"io.imagerelay.nope","data":{}}`), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := host.Decode(tt.raw, fb, "test:origin")
			if in.Origin != "test:origin" || string(in.Raw) != string(tt.raw) || in.Deliveries != 1 {
				t.Errorf("origin %q raw kept %v deliveries %d", in.Origin, string(in.Raw) == string(tt.raw), in.Deliveries)
			}
			if tt.wantErr {
				if !errors.Is(in.Err, host.ErrUndecodable) {
					t.Fatalf("err = %v, want ErrUndecodable", in.Err)
				}
				return
			}
			if in.Err != nil {
				t.Fatalf("err = %v", in.Err)
			}
			if err := events.Check(in.Event); err != nil {
				t.Fatalf("decoded event does not validate: %v", err)
			}
			if in.Event.ID() != tt.wantID || in.Event.Source() != tt.wantSrc || events.StringExt(in.Event, events.ExtImageID) != tt.wantImage {
				t.Errorf("id %q source %q image %q, want %q %q %q", in.Event.ID(), in.Event.Source(),
					events.StringExt(in.Event, events.ExtImageID), tt.wantID, tt.wantSrc, tt.wantImage)
			}
		})
	}
	// The fallback time and a foreign CloudEvent's time are kept: derived ids do not depend on
	// them, but subscribers see when the image was published.
	if in := host.Decode(rttest.PayloadJSON(t, "img-t"), fb, ""); !in.Event.Time().Equal(fb.Time) {
		t.Errorf("time = %v, want %v", in.Event.Time(), fb.Time)
	}
	if in := host.Decode(mustJSON(t, foreign), fb, ""); in.Event.Time().Format(time.RFC3339) != "2026-01-02T03:04:05Z" {
		t.Errorf("foreign time = %v", in.Event.Time())
	}
}

func TestWrapIsDeterministic(t *testing.T) {
	fb := host.Fallback{ID: "eb-1", Source: "s", Time: time.Unix(0, 0)}
	a, err := host.Wrap(rttest.PayloadJSON(t, "img-x"), fb)
	if err != nil {
		t.Fatal(err)
	}
	b, err := host.Wrap(rttest.PayloadJSON(t, "img-x"), fb)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() != "eb-1" || a.ID() != b.ID() || string(a.Data()) != string(b.Data()) {
		t.Errorf("wrapping twice differs: %s %s", a, b)
	}
	if _, err := host.Wrap(rttest.PayloadJSON(t, "img-x"), host.Fallback{}); !errors.Is(err, host.ErrUndecodable) {
		t.Errorf("no id: err = %v", err)
	}
}

func TestBudget(t *testing.T) {
	tests := []struct {
		name     string
		left     time.Duration
		limit    time.Duration
		min, max time.Duration
	}{
		{name: "no deadline, no limit", left: -1, min: time.Minute, max: time.Minute},
		{name: "no deadline, limit", left: -1, limit: 5 * time.Second, min: 5 * time.Second, max: 5 * time.Second},
		{name: "deadline minus margin", left: 60 * time.Second, min: 51 * time.Second, max: 52 * time.Second},
		{name: "limit below deadline", left: 60 * time.Second, limit: 10 * time.Second, min: 10 * time.Second, max: 10 * time.Second},
		{name: "too close to the deadline", left: time.Second, min: 0, max: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.left >= 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.left)
				defer cancel()
			}
			if got := host.Budget(ctx, tt.limit); got < tt.min || got > tt.max {
				t.Errorf("Budget = %v, want %v..%v", got, tt.min, tt.max)
			}
		})
	}
}

func TestHandleOutcomes(t *testing.T) {
	env := rttest.Start(t)
	ctx := context.Background()
	sess, err := env.Host.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ins := []host.Input{
		{Event: rttest.Published(t, "e-done", "img-ok"), Origin: "test", Deliveries: 1},
		{Event: rttest.Published(t, "e-retry", "img-retry1"), Origin: "test", Deliveries: 1},
		{Event: rttest.Published(t, "e-defer", "img-defer1"), Origin: "test", Deliveries: 1},
		{Event: rttest.Published(t, "e-reject", "img-reject1"), Origin: "test:reject", Deliveries: 3},
		host.Decode([]byte("not json"), host.Fallback{ID: "x"}, "test:poison"),
		{Event: plannedEvent(t), Origin: "test:type", Deliveries: 1},
	}
	res := sess.Handle(ctx, ins)
	want := []host.Status{host.StatusDone, host.StatusRetry, host.StatusDefer, host.StatusReject, host.StatusReject, host.StatusReject}
	for i, r := range res {
		if r.Status != want[i] {
			t.Errorf("input %d: status %s (%v), want %s", i, r.Status, r.Err, want[i])
		}
	}
	var re *host.RetryError
	if !errors.As(res[1].Err, &re) || !errors.Is(res[1].Err, host.ErrRetry) || !errors.Is(res[1].Err, rttest.ErrScripted) || re.Delay != time.Second {
		t.Errorf("retry error = %#v", res[1].Err)
	}
	if res[0].Emitted != 1 || res[0].EventID != "e-done" {
		t.Errorf("done result = %+v", res[0])
	}
	env.WaitPlanned(t, "e-done")
	dead := env.WaitDead(t, 3)
	byOrigin := map[string]rttest.DeadLetter{}
	for _, d := range dead {
		if d.Subject != events.DeadLetterSubject(rttest.Function) {
			t.Errorf("dead letter on %s", d.Subject)
		}
		byOrigin[d.Origin] = d
	}
	if d := byOrigin["test:reject"]; d.EventID != "e-reject" || !strings.Contains(d.Reason, "reject img-reject1") {
		t.Errorf("rejected event's dead letter = %+v", d)
	}
	if d := byOrigin["test:poison"]; string(d.Data) != "not json" || !strings.Contains(d.Reason, "not a JSON object") {
		t.Errorf("poison dead letter = %+v", d)
	}
	if d := byOrigin["test:type"]; !strings.Contains(d.Reason, "not "+events.TypeReplicationPlanned) {
		t.Errorf("wrong-type dead letter = %+v", d)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := env.Deferred(t); n != 1 {
			return errors.New("deferred event not stored")
		}
		return nil
	})
	// The deferred event is drained from JetStream once it is due.
	testenv.Eventually(t, 5*time.Second, func() error {
		if _, err := sess.Drain(ctx, 2*time.Second); err != nil {
			return err
		}
		if env.Core.Calls.Load() < 5 { // 4 inputs reached the core; the fifth call is the drained one
			return errors.New("deferred event not handled again yet")
		}
		return nil
	})
}

func TestHandleRetriesWhenTheBusIsDown(t *testing.T) {
	env := rttest.Start(t)
	ctx := context.Background()
	sess, err := env.Host.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	env.Conn.Close()
	res := sess.Handle(ctx, []host.Input{
		{Event: rttest.Published(t, "e1", "img-ok"), Deliveries: 1},
		host.Decode([]byte("poison"), host.Fallback{}, "x"),
		{Event: rttest.Published(t, "e3", "img-defer"), Deliveries: 1},
	})
	for i, r := range res {
		// Nothing may be acknowledged that could not be stored: not the results, not the dead
		// letter, not the deferral.
		if r.Status != host.StatusRetry {
			t.Errorf("input %d: %s, want retry", i, r.Status)
		}
	}
}

func TestHandleRunsConcurrently(t *testing.T) {
	env := rttest.Start(t)
	ctx := context.Background()
	sess, err := env.Host.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ins []host.Input
	for i := range 8 {
		ins = append(ins, host.Input{Event: rttest.Published(t, "slow-"+string(rune('a'+i)), "img-slow"), Deliveries: 1})
	}
	for _, r := range sess.Handle(ctx, ins) {
		if r.Status != host.StatusDone {
			t.Errorf("%s: %s", r.EventID, r.Status)
		}
	}
	if m := env.Core.MaxFlight.Load(); m < 2 || m > 4 {
		t.Errorf("at most %d ran at once, want 2..4 (the spec's concurrency)", m)
	}
}

func TestHostOpensOnceAndReopensAfterClose(t *testing.T) {
	env := rttest.Start(t)
	var opens atomic.Int64
	fail := atomic.Bool{}
	fail.Store(true)
	h := host.New("f", func(ctx context.Context) (*host.Session, error) {
		opens.Add(1)
		if fail.Load() {
			return nil, errors.New("nats down")
		}
		nc, err := env.Server.Connect()
		if err != nil {
			return nil, err
		}
		return &host.Session{Function: "f", Bus: env.Bus, Spec: env.Spec, Conn: nc}, nil
	}, nil)
	ctx := context.Background()
	if _, err := h.Session(ctx); !errors.Is(err, host.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	fail.Store(false)
	var wg sync.WaitGroup
	sessions := make([]*host.Session, 16)
	for i := range sessions {
		wg.Go(func() {
			s, err := h.Session(ctx)
			if err != nil {
				t.Error(err)
			}
			sessions[i] = s
		})
	}
	wg.Wait()
	if opens.Load() != 2 {
		t.Errorf("opened %d times, want 2 (one failure, then one for 16 concurrent callers)", opens.Load())
	}
	for _, s := range sessions[1:] {
		if s != sessions[0] {
			t.Fatal("concurrent callers got different sessions")
		}
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := h.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if !sessions[0].Conn.IsClosed() {
		t.Error("Close did not close the connection")
	}
	s, err := h.Session(ctx)
	if err != nil || s == sessions[0] || opens.Load() != 3 {
		t.Errorf("after Close: session reused=%v err=%v opens=%d", s == sessions[0], err, opens.Load())
	}
	_ = h.Close(cctx)
}

func TestDrainCap(t *testing.T) {
	env := map[string]string{host.EnvDrainBudget: "45s"}
	get := func(k string) string { return env[k] }
	if d, err := host.DrainCap(get); err != nil || d != 45*time.Second {
		t.Errorf("DrainCap = %v, %v", d, err)
	}
	env[host.EnvDrainBudget] = "soon"
	if _, err := host.DrainCap(get); err == nil {
		t.Error("bad budget accepted")
	}
	delete(env, host.EnvDrainBudget)
	if d, err := host.DrainCap(get); err != nil || d != 0 {
		t.Errorf("no budget: %v, %v", d, err)
	}
}

func plannedEvent(t *testing.T) event.Event {
	t.Helper()
	cause := rttest.Published(t, "cause", "img-ok")
	img := rttest.Image("img-ok")
	e, err := events.Derive(cause, "fanout", events.TypeReplicationPlanned, events.ReplicationPlanned{Image: img.Image, Regions: []string{"x"}},
		img.Provider, img.SourceRegion, img.ImageID)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Function Compute retries a whole array delivery when one item fails; the items it
// dead-lettered the first time must not be stored again. Today's main stored an undecodable
// input's dead letter without a message id, once per retry.
func TestRetriedDeliveryStoresOneDeadLetterPerInput(t *testing.T) {
	env := rttest.Start(t)
	ctx := context.Background()
	sess, err := env.Host.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ins := []host.Input{
		{Event: rttest.Published(t, "e-reject", "img-reject1"), Origin: "fc:array", Deliveries: 1},
		host.Decode([]byte("not json"), host.Fallback{ID: "x"}, "fc:array"),
	}
	for range 3 {
		for i, r := range sess.Handle(ctx, ins) {
			if r.Status != host.StatusReject {
				t.Fatalf("input %d: %s", i, r.Status)
			}
		}
	}
	st, err := env.Bus.JetStream().Stream(ctx, env.Bus.Config().Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(events.DeadLetterSubject(rttest.Function)))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[events.DeadLetterSubject(rttest.Function)]; n != 2 {
		t.Fatalf("%d dead letters stored for 2 inputs delivered 3 times, want 2", n)
	}
}

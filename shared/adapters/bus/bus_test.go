package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/core/fn"
	"github.com/imagerelay/imagerelay/shared/dev/testenv"
)

func published(t *testing.T, id, imageID string) event.Event { return publishedTB(t, id, imageID) }

func publishedB(b *testing.B, id string) event.Event { return publishedTB(b, id, "img-bench001") }

func publishedTB(t testing.TB, id, imageID string) event.Event {
	t.Helper()
	e, err := events.New(events.TypeImagePublished, events.ImagePublished{Image: events.Image{
		Provider: events.ProviderTencent, ImageID: imageID, SourceRegion: "ap-guangzhou"}}, events.Meta{
		ID: id, Source: "/test", Provider: events.ProviderTencent, Region: "ap-guangzhou", ImageID: imageID})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// calls records what a test core saw.
type calls struct {
	mu  sync.Mutex
	ids []string
}

func (c *calls) add(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids = append(c.ids, id)
	return len(c.ids)
}

func (c *calls) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

func spec(h fn.Handler) bus.Spec {
	return bus.Spec{Function: "testfn", Types: []string{events.TypeImagePublished}, Handler: h, Concurrency: 2}
}

func TestPublishDropsDuplicateIDs(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	e := published(t, "dup-1", "img-00000001")
	for range 3 {
		if err := env.Bus.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	info, err := env.Bus.JetStream().Stream(ctx, env.Bus.Config().Stream)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("stream holds %d messages, want 1", n)
	}
}

func TestWorkerOutcomes(t *testing.T) {
	tests := []struct {
		name string
		// result is what the core answers on its n-th call (from 1).
		result    func(n int) fn.Result
		wantCalls int
		wantDead  string // substring of the dead-letter reason; "" = no dead letter
	}{
		{"done acknowledges", func(int) fn.Result { return fn.Done() }, 1, ""},
		{"retry later redelivers until done", func(n int) fn.Result {
			if n < 3 {
				return fn.Retry(50*time.Millisecond, errors.New("provider busy"))
			}
			return fn.Done()
		}, 3, ""},
		{"retry beyond max deliver dead-letters", func(int) fn.Result {
			return fn.Retry(20*time.Millisecond, errors.New("always busy"))
		}, 4, "gave up after 4 deliveries: always busy"},
		{"reject dead-letters at once", func(int) fn.Result { return fn.Reject(errors.New("impossible request")) }, 1, "impossible request"},
		{"defer comes back without using up deliveries", func(n int) fn.Result {
			if n < 6 { // more deferrals than MaxDeliver (4) allows redeliveries
				return fn.Defer(30 * time.Millisecond)
			}
			return fn.Done()
		}, 6, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := testenv.Start(t)
			rec := env.Record(t)
			var c calls
			var sawOtherID atomic.Bool
			env.Run(t, spec(fn.HandlerFunc(func(_ context.Context, e event.Event) fn.Result {
				if e.ID() != "evt-1" {
					sawOtherID.Store(true)
				}
				return tt.result(c.add(e.ID()))
			})))
			if err := env.Bus.Publish(context.Background(), published(t, "evt-1", "img-00000001")); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 10*time.Second, func() error {
				if got := c.count(); got < tt.wantCalls {
					return fmt.Errorf("core called %d times, want %d", got, tt.wantCalls)
				}
				if tt.wantDead != "" && len(rec.DeadLetters()) == 0 {
					return errors.New("no dead letter yet")
				}
				return nil
			})
			if sawOtherID.Load() {
				t.Error("the core saw a different event id after a deferral or retry")
			}
			dead := rec.DeadLetters()
			if tt.wantDead == "" && len(dead) > 0 {
				t.Fatalf("unexpected dead letter: %s", dead[0].Header.Get(bus.HeaderDeadLetterReason))
			}
			if tt.wantDead != "" {
				m := dead[0]
				if m.Subject != events.DeadLetterSubject("testfn") {
					t.Errorf("dead letter on %s", m.Subject)
				}
				if r := m.Header.Get(bus.HeaderDeadLetterReason); !strings.Contains(r, tt.wantDead) {
					t.Errorf("reason %q, want it to contain %q", r, tt.wantDead)
				}
				if m.Header.Get("ce-id") != "evt-1" {
					t.Errorf("dead letter lost the original event: headers %v", m.Header)
				}
			}
			// Settled: the core is not called again.
			n := c.count()
			if err := env.Conn.Flush(); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 5*time.Second, func() error {
				info, err := env.Bus.JetStream().Consumer(context.Background(), env.Bus.Config().Stream, "testfn")
				if err != nil {
					return err
				}
				ci := info.CachedInfo()
				if ci.NumAckPending != 0 || ci.NumPending != 0 {
					return fmt.Errorf("consumer still has %d pending, %d unacked", ci.NumPending, ci.NumAckPending)
				}
				return nil
			})
			if c.count() != n {
				t.Errorf("core called again after settling")
			}
		})
	}
}

func TestMalformedInputIsDeadLetteredAndWorkerKeepsRunning(t *testing.T) {
	good := func(t *testing.T) event.Event { return published(t, "good-1", "img-00000009") }
	valid := good(t)
	hdr := func() nats.Header {
		h := nats.Header{}
		for k, v := range events.ToHeaders(valid) {
			h.Set(k, v)
		}
		return h
	}
	cases := []struct {
		name   string
		msg    func() *nats.Msg
		reason string
	}{
		{"bad JSON", func() *nats.Msg {
			return &nats.Msg{Subject: "imagerelay.image.published.tencent.ap-guangzhou", Data: []byte("{not json")}
		}, "not valid JSON"},
		{"missing attribute", func() *nats.Msg {
			h := hdr()
			h.Del("ce-source")
			return &nats.Msg{Subject: "imagerelay.image.published.tencent.ap-guangzhou", Header: h, Data: valid.Data()}
		}, "source"},
		{"unknown type", func() *nats.Msg {
			h := hdr()
			h.Set("ce-type", "com.example.other")
			return &nats.Msg{Subject: "imagerelay.image.published.tencent.ap-guangzhou", Header: h, Data: valid.Data()}
		}, "unknown event type"},
		{"bad data", func() *nats.Msg {
			return &nats.Msg{Subject: "imagerelay.image.published.tencent.ap-guangzhou", Header: hdr(), Data: []byte(`{"provider":"tencent","imageId":"img-1"}`)}
		}, "sourceRegion"},
	}
	env := testenv.Start(t)
	rec := env.Record(t)
	var c calls
	env.Run(t, spec(fn.HandlerFunc(func(_ context.Context, e event.Event) fn.Result {
		c.add(e.ID())
		return fn.Done()
	})))
	for _, tc := range cases {
		m := tc.msg()
		if m.Header == nil {
			m.Header = nats.Header{}
		}
		m.Header.Set("Nats-Msg-Id", "bad-"+tc.name)
		if _, err := env.Bus.JetStream().PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.Bus.Publish(context.Background(), good(t)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if len(rec.DeadLetters()) < len(cases) || c.count() < 1 {
			return fmt.Errorf("%d dead letters, %d handled", len(rec.DeadLetters()), c.count())
		}
		return nil
	})
	reasons := map[string]string{}
	for _, m := range rec.DeadLetters() {
		reasons[m.Header.Get(bus.HeaderDeadLetterMsgID)] = m.Header.Get(bus.HeaderDeadLetterReason)
	}
	for _, tc := range cases {
		r, ok := reasons["bad-"+tc.name]
		if !ok {
			t.Errorf("%s: no dead letter", tc.name)
			continue
		}
		if !strings.Contains(r, tc.reason) {
			t.Errorf("%s: reason %q does not mention %q", tc.name, r, tc.reason)
		}
	}
	if c.count() != 1 {
		t.Errorf("core saw %d events, want only the good one", c.count())
	}
}

func TestStructuredModeEventsAreAccepted(t *testing.T) {
	env := testenv.Start(t)
	var c calls
	env.Run(t, spec(fn.HandlerFunc(func(_ context.Context, e event.Event) fn.Result {
		c.add(e.ID())
		return fn.Done()
	})))
	raw, err := published(t, "structured-1", "img-00000002").MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	// What `nats pub imagerelay.image.published.tencent.ap-guangzhou '<json>'` sends.
	if err := env.Conn.Publish("imagerelay.image.published.tencent.ap-guangzhou", raw); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if c.count() != 1 {
			return errors.New("structured event not handled")
		}
		return nil
	})
}

// batchCore records the sizes of the batches it is given.
type batchCore struct {
	mu    sync.Mutex
	sizes []int
	total int
}

func (b *batchCore) Handle(ctx context.Context, e event.Event) fn.Result {
	return b.HandleBatch(ctx, []event.Event{e})[0]
}

func (b *batchCore) HandleBatch(_ context.Context, evs []event.Event) []fn.Result {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sizes = append(b.sizes, len(evs))
	b.total += len(evs)
	return make([]fn.Result, len(evs))
}

func TestDrainHandsBatchesAndStopsWithinBudget(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	for i := range 30 {
		if err := env.Bus.Publish(ctx, published(t, fmt.Sprintf("b-%d", i), fmt.Sprintf("img-%08d", i))); err != nil {
			t.Fatal(err)
		}
	}
	core := &batchCore{}
	s := bus.Spec{Function: "batchfn", Types: []string{events.TypeImagePublished}, Handler: core, BatchSize: 10}
	n, err := env.Bus.Drain(ctx, s, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n != 30 || core.total != 30 {
		t.Fatalf("drained %d, core saw %d; want 30", n, core.total)
	}
	for _, size := range core.sizes {
		if size > 10 {
			t.Errorf("batch of %d exceeds BatchSize 10", size)
		}
	}
	if len(core.sizes) >= 30 {
		t.Errorf("events were not batched: %v", core.sizes)
	}
	// Nothing left: a second drain returns at once with nothing.
	n, err = env.Bus.Drain(ctx, s, 2*time.Second)
	if err != nil || n != 0 {
		t.Fatalf("second drain: %d, %v", n, err)
	}
}

// A core slower than AckWait is not redelivered meanwhile: the worker heartbeats.
// A core slower than the configured back-off's first step is not redelivered to a second
// worker while it runs. nats-server takes a consumer's first BackOff value as its ack wait,
// so with the default back-off (1s first) any call longer than a second used to be handled
// twice at once.
func TestSlowCoreIsNotRedeliveredWhileRunning(t *testing.T) {
	for _, backoff := range [][]time.Duration{nil, {50 * time.Millisecond, 100 * time.Millisecond}} {
		t.Run(fmt.Sprint("backoff ", backoff), func(t *testing.T) {
			cfg := bus.DefaultConfig()
			cfg.AckWait = 400 * time.Millisecond
			cfg.Backoff = backoff
			cfg.MaxDeliver = 5
			env := testenv.Start(t, testenv.Options{Bus: &cfg})
			var c calls
			release := make(chan struct{})
			env.Run(t, spec(fn.HandlerFunc(func(_ context.Context, e event.Event) fn.Result {
				if c.add(e.ID()) == 1 {
					<-release // hold the first delivery for several AckWaits
				}
				return fn.Done()
			})))
			if err := env.Bus.Publish(context.Background(), published(t, "slow-1", "img-00000003")); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 5*time.Second, func() error {
				if c.count() == 0 {
					return errors.New("not delivered yet")
				}
				return nil
			})
			// Wait until well past three AckWaits, then check that no second delivery happened.
			deadline := time.Now().Add(3 * cfg.AckWait)
			testenv.Eventually(t, 5*time.Second, func() error {
				if time.Now().Before(deadline) {
					return errors.New("still inside the observation window")
				}
				return nil
			})
			close(release)
			if n := c.count(); n != 1 {
				t.Fatalf("core ran %d times while the first delivery was still being handled", n)
			}
		})
	}
}

// A core that panics does not take the worker down: the event is retried, then
// dead-lettered with the panic as the reason, and the next event is handled.
func TestPanickingCoreIsDeadLetteredAndWorkerGoesOn(t *testing.T) {
	env := testenv.Start(t)
	rec := env.Record(t)
	var c calls
	env.Run(t, spec(fn.HandlerFunc(func(_ context.Context, e event.Event) fn.Result {
		c.add(e.ID())
		if e.ID() == "boom" {
			panic("nil map somewhere")
		}
		return fn.Done()
	})))
	ctx := context.Background()
	if err := env.Bus.Publish(ctx, published(t, "boom", "img-00000004")); err != nil {
		t.Fatal(err)
	}
	if err := env.Bus.Publish(ctx, published(t, "fine", "img-00000005")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if len(rec.DeadLetters()) == 0 {
			return errors.New("no dead letter yet")
		}
		return nil
	})
	if r := rec.DeadLetters()[0].Header.Get(bus.HeaderDeadLetterReason); !strings.Contains(r, "panicked: nil map somewhere") {
		t.Errorf("reason %q", r)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, id := range c.ids {
			if id == "fine" {
				return nil
			}
		}
		return errors.New("the event after the panic was not handled")
	})
}

// A message that a worker takes and never answers (it crashed or hung) MaxDeliver times is
// dead-lettered from JetStream's advisory, exactly once.
func TestExhaustedDeliveriesAreDeadLettered(t *testing.T) {
	cfg := bus.DefaultConfig()
	cfg.AckWait, cfg.Backoff, cfg.MaxDeliver = 200*time.Millisecond, nil, 2
	env := testenv.Start(t, testenv.Options{Bus: &cfg})
	rec := env.Record(t)
	ctx := context.Background()
	s := spec(fn.HandlerFunc(func(context.Context, event.Event) fn.Result { return fn.Done() }))
	stop, err := env.Bus.WatchExhausted(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	stop2, err := env.Bus.WatchExhausted(ctx, s) // a second worker of the same function
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	cons, err := env.Bus.Consumer(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Bus.Publish(ctx, published(t, "lost-1", "img-00000006")); err != nil {
		t.Fatal(err)
	}
	// The "crashing worker": take the message and never answer, until the server gives up.
	testenv.Eventually(t, 10*time.Second, func() error {
		if len(rec.DeadLetters()) > 0 {
			return nil
		}
		b, err := cons.Fetch(1, jetstream.FetchMaxWait(300*time.Millisecond))
		if err != nil {
			return err
		}
		for range b.Messages() {
		}
		return errors.New("not dead-lettered yet")
	})
	// Both watchers publish a dead letter (a plain subscriber sees both publishes)...
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := len(rec.DeadLetters()); n < 2 {
			return fmt.Errorf("%d dead-letter publishes, want one per watcher", n)
		}
		return nil
	})
	m := rec.DeadLetters()[0]
	if m.Header.Get("ce-id") != "lost-1" || !strings.Contains(m.Header.Get(bus.HeaderDeadLetterReason), "without an answer") {
		t.Errorf("dead letter %v", m.Header)
	}
	info, err := env.Bus.JetStream().Stream(ctx, cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	// ...and the stream keeps one of them.
	if n := info.CachedInfo().State.Msgs; n != 2 {
		t.Errorf("stream holds %d messages, want the event and exactly one dead letter", n)
	}
}

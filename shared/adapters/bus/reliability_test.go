package bus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/core/fn"
	"github.com/imagerelay/imagerelay/shared/dev/natsembed"
	"github.com/imagerelay/imagerelay/shared/dev/testenv"
)

// subjectCount returns how many messages the stream holds on subject.
func subjectCount(t *testing.T, env *testenv.Env, subject string) uint64 {
	return testenv.SubjectCount(t, env.Bus, subject)
}

// Nothing a publisher writes can park a worker. Today's main honoured an
// Imagerelay-Not-Before header on any message and NAK'd it with that delay, holding an
// ack-pending slot: enough such events filled MaxAckPending and a normal event was never
// handled.
func TestStrangersCannotParkAWorker(t *testing.T) {
	env := testenv.Start(t)
	rec := env.Record(t)
	var c calls
	s := spec(fn.HandlerFunc(func(_ context.Context, e event.Event) fn.Result {
		c.add(e.ID())
		return fn.Done()
	}))
	s.Concurrency = 1 // MaxAckPending 64
	env.Run(t, s)
	ctx := context.Background()
	// More "not before next year" events than the consumer has ack slots.
	for i := range 70 {
		e := published(t, fmt.Sprintf("parked-%d", i), "img-00000001")
		msg := nats.NewMsg(bus.Subject(e))
		for k, v := range events.ToHeaders(e) {
			msg.Header.Set(k, v)
		}
		msg.Header.Set("Imagerelay-Not-Before", time.Now().Add(365*24*time.Hour).Format(time.RFC3339Nano))
		msg.Data = e.Data()
		if _, err := env.Bus.JetStream().PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	// A stranger's message on the defer subject, posing as a deferral.
	forged := published(t, "forged-deferral", "img-00000002")
	msg := nats.NewMsg(bus.DeferSubject("testfn", forged))
	for k, v := range events.ToHeaders(forged) {
		msg.Header.Set(k, v)
	}
	msg.Data = forged.Data()
	if _, err := env.Bus.JetStream().PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	if err := env.Bus.Publish(ctx, published(t, "normal", "img-00000003")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := c.count(); n < 71 {
			return fmt.Errorf("core handled %d of 71 events", n)
		}
		if len(rec.DeadLetters()) == 0 {
			return errors.New("the forged deferral is not dead-lettered yet")
		}
		return nil
	})
	for _, id := range c.ids {
		if id == "forged-deferral" {
			t.Fatal("the core ran a deferral that imagerelay's scheduler did not fire")
		}
	}
	reason := rec.DeadLetters()[0].Header.Get(bus.HeaderDeadLetterReason)
	if !strings.Contains(reason, "not fired by imagerelay's scheduler") {
		t.Errorf("dead-letter reason %q does not say why", reason)
	}
}

// A deferral chain cannot fork: deferrals with one key replace each other on the server, so
// however often a redelivered copy defers again, one schedule is pending.
func TestSchedulesWithOneKeyReplaceEachOther(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	e := published(t, "chain-1", "img-00000001")
	for i := range 5 {
		if err := env.Bus.Schedule(ctx, bus.Deferral{Function: "testfn", Event: e, Key: "one-copy", At: time.Now().Add(time.Hour), Deferrals: i + 1}); err != nil {
			t.Fatal(err)
		}
	}
	if n := subjectCount(t, env, bus.ScheduleSubject("testfn", "one-copy")); n != 1 {
		t.Fatalf("%d schedules pending under one key, want 1", n)
	}
	if err := env.Bus.Schedule(ctx, bus.Deferral{Function: "testfn", Event: e, Key: "another-copy", At: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if n := subjectCount(t, env, bus.SchedulePrefix+"testfn.>"); n != 2 {
		t.Fatalf("%d schedules pending under two keys, want 2", n)
	}
}

// A deferred event comes back when due, fired by the server, and its deferral count goes on.
func TestDeferredEventComesBackFromTheScheduler(t *testing.T) {
	env := testenv.Start(t)
	var c calls
	env.Run(t, spec(fn.HandlerFunc(func(_ context.Context, e event.Event) fn.Result {
		if c.add(e.ID()) == 1 {
			return fn.Result{Outcome: fn.Outcome{Kind: fn.KindDefer, Delay: 200 * time.Millisecond, Key: "k"}}
		}
		return fn.Done()
	})))
	if err := env.Bus.Publish(context.Background(), published(t, "later-1", "img-00000001")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := c.count(); n != 2 {
			return fmt.Errorf("core called %d times, want 2", n)
		}
		return nil
	})
	if n := subjectCount(t, env, bus.ScheduleSubject("testfn", "k")); n != 0 {
		t.Errorf("%d schedules left after firing, want 0", n)
	}
}

// CloudEvents identity is (source, id): two producers that both send id "42" publish two
// events. Today's main used the bare id as Nats-Msg-Id and JetStream dropped one of them.
func TestEventsWithOneIDFromTwoSourcesAreBothStored(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	a := published(t, "42", "img-00000001")
	b := a.Clone()
	b.SetSource("/another/producer")
	for _, e := range []event.Event{a, b, a, b} {
		if err := env.Bus.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if n := subjectCount(t, env, bus.Subject(a)); n != 2 {
		t.Fatalf("stream holds %d events, want 2 (one per source)", n)
	}
	if events.DeriveID(events.Identity(a), "t") == events.DeriveID(events.Identity(b), "t") {
		t.Error("ids derived from the two events are equal")
	}
}

// An event whose results can never be stored (too large) is dead-lettered with the reason
// instead of being retried until JetStream gives up and labels it "worker crashed"; a message
// too large to carry the dead-letter headers is dead-lettered without its payload.
func TestResultsTooLargeAreDeadLetteredWithTheReason(t *testing.T) {
	env := testenv.Start(t)
	rec := env.Record(t)
	var c calls
	env.Run(t, spec(fn.HandlerFunc(func(_ context.Context, e event.Event) fn.Result {
		c.add(e.ID())
		if e.ID() == "huge-result" {
			big := e.Clone()
			big.SetID("huge-emitted")
			if err := big.SetData(events.ContentTypeJSON, map[string]string{"pad": strings.Repeat("x", 2<<20)}); err != nil {
				panic(err)
			}
			return fn.Done(big)
		}
		return fn.Reject(errors.New("refused: " + strings.Repeat("r", 100)))
	})))
	ctx := context.Background()
	if err := env.Bus.Publish(ctx, published(t, "huge-result", "img-00000001")); err != nil {
		t.Fatal(err)
	}
	// An input so close to the server's max payload that the dead-letter headers overflow it.
	near := published(t, "near-limit", "img-00000002")
	nearMsg := func(pad int) *nats.Msg {
		if err := near.SetData(events.ContentTypeJSON, map[string]any{"provider": "tencent", "imageId": "img-00000002", "sourceRegion": "ap-guangzhou", "pad": strings.Repeat("p", pad)}); err != nil {
			t.Fatal(err)
		}
		msg := nats.NewMsg(bus.Subject(near))
		for k, v := range events.ToHeaders(near) {
			msg.Header.Set(k, v)
		}
		msg.Data = near.Data()
		return msg
	}
	empty := nearMsg(0)
	// The encoded size: "NATS/1.0\r\n", "Key: value\r\n" per header, "\r\n", the payload;
	// leave 100 bytes, fewer than the dead-letter headers add.
	size := 10 + 2 + len(empty.Data) + 100
	for k, vs := range empty.Header {
		for _, v := range vs {
			size += len(k) + len(v) + 4
		}
	}
	if _, err := env.Bus.JetStream().PublishMsg(ctx, nearMsg(int(env.Conn.MaxPayload())-size)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, func() error {
		if n := len(rec.DeadLetters()); n < 2 {
			return fmt.Errorf("%d dead letters, want 2", n)
		}
		return nil
	})
	byID := map[string]*nats.Msg{}
	for _, m := range rec.DeadLetters() {
		byID[m.Header.Get("ce-id")] = m
	}
	if m := byID["huge-result"]; m == nil || !strings.Contains(m.Header.Get(bus.HeaderDeadLetterReason), "could not be stored") {
		t.Errorf("huge result: dead letter %v", m)
	}
	m := byID["near-limit"]
	if m == nil {
		t.Fatal("the near-limit message has no dead letter")
	}
	// The contract refuses data this large before any core sees it; its dead letter must still
	// say so, without the payload that does not fit.
	if !strings.Contains(m.Header.Get(bus.HeaderDeadLetterReason), "data") || m.Header.Get(bus.HeaderDeadLetterTruncated) == "" || len(m.Data) != 0 {
		t.Errorf("near-limit dead letter: reason %q, truncated %q, %d bytes of data", m.Header.Get(bus.HeaderDeadLetterReason),
			m.Header.Get(bus.HeaderDeadLetterTruncated), len(m.Data))
	}
	if n := c.count(); n != 1 {
		t.Errorf("core ran %d times, want 1 (no retry of what can never be stored, no core run on refused data)", n)
	}
}

// Only the component that owns the stream changes it. Today's main let any command (an
// `imagerelay publish` without the operator's configuration) rewrite max age and the dedupe
// window.
func TestBindNeverChangesTheStream(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	owned := env.Bus.Config()
	other := owned
	other.MaxAge = time.Hour
	other.DuplicateWindow = time.Minute
	if _, err := bus.Bind(ctx, env.Conn, other, nil); err != nil {
		t.Fatal(err)
	}
	s, err := env.Bus.JetStream().Stream(ctx, owned.Stream)
	if err != nil {
		t.Fatal(err)
	}
	got := s.CachedInfo().Config
	if got.MaxAge != owned.MaxAge || got.Duplicates != owned.DuplicateWindow {
		t.Fatalf("binding changed the stream: max age %v, dedupe window %v", got.MaxAge, got.Duplicates)
	}
	if d := bus.Drift(got, jetstream.StreamConfig{MaxAge: time.Hour, Duplicates: time.Minute, Replicas: 1, Subjects: got.Subjects, Storage: got.Storage}); len(d) != 2 {
		t.Errorf("drift %v, want max age and dedupe window", d)
	}
	missing := owned
	missing.Stream = "NOT-THERE"
	if _, err := bus.Bind(ctx, env.Conn, missing, nil); !errors.Is(err, bus.ErrStreamMissing) || !strings.Contains(err.Error(), "imagerelay setup") {
		t.Errorf("bind to a missing stream: %v", err)
	}
}

// A stream created by an earlier imagerelay (no message schedules) is refused by Bind with
// the command that upgrades it, and Setup upgrades it in place, keeping its events.
func TestSetupUpgradesAStreamWithoutSchedules(t *testing.T) {
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx := context.Background()
	cfg := bus.DefaultConfig()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: cfg.Stream, Subjects: []string{events.SubjectPrefix + ">"},
		Storage: jetstream.FileStorage, MaxAge: cfg.MaxAge, Duplicates: cfg.DuplicateWindow}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, events.SubjectPrefix+"image.published.tencent.ap-guangzhou", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.Bind(ctx, nc, cfg, nil); !errors.Is(err, bus.ErrStreamUnfit) || !strings.Contains(err.Error(), "imagerelay setup") {
		t.Fatalf("bind to a stream without schedules: %v", err)
	}
	if _, err := bus.Setup(ctx, nc, cfg, nil); err != nil {
		t.Fatalf("setup on an older stream: %v", err)
	}
	b, err := bus.Bind(ctx, nc, cfg, nil)
	if err != nil {
		t.Fatalf("bind after the upgrade: %v", err)
	}
	s, err := b.JetStream().Stream(ctx, cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("the upgrade lost events: %d left", n)
	}
}

// Wake makes a pending schedule due now: a waiter comes back when its slot frees, not after
// its back-off. Waking a key with nothing pending does nothing.
func TestWakeMakesAPendingScheduleDueNow(t *testing.T) {
	env := testenv.Start(t)
	var c calls
	env.Run(t, spec(fn.HandlerFunc(func(_ context.Context, e event.Event) fn.Result {
		c.add(e.ID())
		return fn.Done()
	})))
	ctx := context.Background()
	e := published(t, "waiter-1", "img-00000001")
	if err := env.Bus.Schedule(ctx, bus.Deferral{Function: "testfn", Event: e, Key: "slot-wait:x", At: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := env.Bus.Wake(ctx, "testfn", "nothing-pending"); err != nil {
		t.Fatalf("wake with nothing pending: %v", err)
	}
	if err := env.Bus.Wake(ctx, "testfn", "slot-wait:x"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if c.count() != 1 {
			return errors.New("the woken event has not come back")
		}
		return nil
	})
	if n := subjectCount(t, env, bus.ScheduleSubject("testfn", "slot-wait:x")); n != 0 {
		t.Errorf("%d schedules left under the woken key, want 0", n)
	}
}

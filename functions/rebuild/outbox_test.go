package rebuild_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/rebuild"
)

// A rollout is checked many times (every check interval while desktops rebuild), and by
// duplicated triggers: each of its events must be published exactly once, not once per
// check. Core NATS subscribers see every publish; the stream's dedupe window hides repeats
// only from JetStream consumers, and only for as long as the window lasts.
func TestEveryRolloutEventIsPublishedOnce(t *testing.T) {
	st := newStore()
	clk := newClock()
	f := newFleet(clk, fleetOf(7)...)
	c := newCore(st, f, clk, policyFor("once", func(p *rebuild.Policy) { p.BatchSize = 3 }))
	pub := c.Publisher.(*recPublisher)
	r := copyOf("imgc-once0001")
	ev := succeeded(t, st, "ev-once", r, "Windows", nil)
	res := drive(t, c, clk, ev, succeeded(t, st, "ev-once-copy", r, "Windows", nil), ev)
	if done := res.completed(t); done.Succeeded != 7 {
		t.Fatalf("completed %+v", done)
	}
	// 1 planned, 7 started, 7 succeeded, 1 completed.
	if got := len(res.events); got != 16 {
		t.Errorf("%d distinct events, want 16", got)
	}
	if res.deliveries < 10 {
		t.Fatalf("only %d deliveries: the rollout was not checked repeatedly", res.deliveries)
	}
	for id, n := range pub.repeated() {
		t.Errorf("event %s published %d times", id, n)
	}
}

// When a publish fails, the events that were not stored are published again by a later
// delivery, until the bus acknowledges them; none is lost, and an event is repeated only
// after a publish that failed.
func TestRolloutEventsSurviveFailedPublishes(t *testing.T) {
	st := newStore()
	for _, every := range []int{2, 3} {
		t.Run(fmt.Sprintf("every %d publishes fails", every), func(t *testing.T) {
			clk := newClock()
			f := newFleet(clk, fleetOf(5)...)
			c := newCore(st, f, clk, policyFor("flaky", func(p *rebuild.Policy) { p.BatchSize = 2 }))
			pub := c.Publisher.(*recPublisher)
			pub.failAt = func(call int) bool { return call%every == 0 }
			r := copyOf(fmt.Sprintf("imgc-flaky%03d", every))
			res := drive(t, c, clk, succeeded(t, st, "ev-"+r.ImageID, r, "Windows", nil))
			if done := res.completed(t); done.Succeeded != 5 {
				t.Fatalf("completed %+v", done)
			}
			if got := len(res.events); got != 12 {
				t.Errorf("%d distinct events stored, want 12", got)
			}
			for id, n := range pub.repeated() {
				if !pub.inFailed[id] {
					t.Errorf("event %s published %d times without a failed publish", id, n)
				}
			}
			rec, err := getRollout(st, "flaky", r)
			if err != nil {
				t.Fatal(err)
			}
			if len(rec.Outbox) != 0 {
				t.Errorf("%d events left in the outbox after the rollout ended", len(rec.Outbox))
			}
		})
	}
}

// Without a Publisher the core falls back to returning its recent events on every delivery.
func TestWithoutPublisherEventsAreReturned(t *testing.T) {
	st := newStore()
	clk := newClock()
	f := newFleet(clk, fleetOf(3)...)
	c := newCore(st, f, clk, policyFor("fallback", nil))
	c.Publisher = nil
	r := copyOf("imgc-fallback1")
	res := drive(t, c, clk, succeeded(t, st, "ev-fallback", r, "Windows", nil))
	if done := res.completed(t); done.Succeeded != 3 {
		t.Fatalf("completed %+v", done)
	}
	if n := len(res.ofType(events.TypeDesktopRebuildStarted)); n != 3 {
		t.Errorf("%d started events, want 3", n)
	}
}

func getRollout(st *memStore, policy string, r events.Replication) (rebuild.Rollout, error) {
	return st.rollouts.Get(context.Background(), rebuild.RolloutKey(policy, r)...)
}

package rebuild_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/rebuild"
	"github.com/imagerelay/imagerelay/functions/rebuild/rules"
	"github.com/imagerelay/imagerelay/shared/core/fn"
	"github.com/imagerelay/imagerelay/shared/core/policy"
	"github.com/imagerelay/imagerelay/shared/dev/coretest"
	"github.com/imagerelay/imagerelay/shared/domain"
)

const region = "cn-hangzhou"

// copyOf is a replication of a test-unique Alibaba image to region.
func copyOf(imageID string) events.Replication {
	return events.Replication{Image: events.Image{Provider: events.ProviderAlibaba, ImageID: imageID, VersionID: "iv-" + imageID,
		ImageName: "office-" + imageID, SourceRegion: "cn-shanghai", ProductType: "CloudDesktop"}, DestinationRegion: region}
}

// succeeded builds the replication.succeeded event that triggers rebuild, and records the
// copy as succeeded in store, as the poller does before it emits the event.
func succeeded(t *testing.T, store *memStore, id string, r events.Replication, osType string, tags map[string]string) event.Event {
	t.Helper()
	store.putCopy(domain.Record{Copy: domain.Copy{Image: domain.Image(r.Image), DestinationRegion: r.DestinationRegion}, State: domain.StateSucceeded, DestinationImageID: r.ImageID})
	e, err := events.New(events.TypeReplicationSucceeded, events.ReplicationSucceeded{Replication: r, DestinationImageID: r.ImageID,
		FinishedAt: time.Now(), OSType: osType, Tags: tags}, events.Meta{
		ID: id, Source: "/imagerelay/poller", Provider: r.Provider, Region: r.DestinationRegion, ImageID: r.ImageID, CorrelationID: "pub-" + r.ImageID,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// policyFor selects the desktops tagged team=design in region.
func policyFor(name string, f func(*rebuild.Policy)) rebuild.Policy {
	p := rules.DefaultPolicy()
	p.Timeout = time.Minute
	p.Name = name
	p.Match = policy.Match{Provider: "alibaba", ProductType: "CloudDesktop"}
	p.Regions = []string{region}
	p.Desktops.Tags = map[string]string{"team": "design"}
	p.CheckInterval = time.Second
	if f != nil {
		f(&p)
	}
	return p
}

// fleetOf makes n selected Windows desktops ecd-00..ecd-NN on image m-old, plus two the
// policy does not select (team=dev).
func fleetOf(n int) []rebuild.Desktop {
	var out []rebuild.Desktop
	for i := range n {
		out = append(out, win(fmt.Sprintf("ecd-%02d", i)))
	}
	for i := range 2 {
		d := win(fmt.Sprintf("ecd-dev%d", i))
		d.Tags["team"] = "dev"
		out = append(out, d)
	}
	return out
}

// run is the outcome of driving a core until every chain of deliveries ended.
type run struct {
	events   []event.Event // distinct by id, in emission order
	outcomes []fn.Kind     // the last outcome of each chain
	errs     []error
	// deliveries counts the Handle calls.
	deliveries int
}

func (r run) ofType(typ string) []event.Event {
	var out []event.Event
	for _, e := range r.events {
		if e.Type() == typ {
			out = append(out, e)
		}
	}
	return out
}

func (r run) completed(t *testing.T) events.RebuildCompleted {
	t.Helper()
	cs := r.ofType(events.TypeRebuildCompleted)
	if len(cs) != 1 {
		t.Fatalf("%d rebuild.completed events, want 1", len(cs))
	}
	d, err := events.DataAs[events.RebuildCompleted](cs[0])
	if err != nil {
		t.Fatal(err)
	}
	return *d
}

func (r run) desktops(typ string) []string {
	var out []string
	for _, e := range r.ofType(typ) {
		d, _ := events.DataAs[events.DesktopRebuild](e)
		out = append(out, d.DesktopID)
	}
	slices.Sort(out)
	return out
}

// drive delivers each chain's event to the core, as the bus would: a deferred event comes
// back after its delay (the clock jumps there), a retried one after a second. Chains run in
// order of due time, so duplicates interleave with the original. It stops when every chain
// ended, or fails the test after too many steps.
func drive(t *testing.T, c *rebuild.Core, clk *coretest.Clock, chains ...event.Event) run {
	t.Helper()
	due := make([]time.Time, len(chains))
	for i := range due {
		due[i] = clk.Now()
	}
	alive := make([]bool, len(chains))
	for i := range alive {
		alive[i] = true
	}
	var r run
	r.outcomes = make([]fn.Kind, len(chains))
	seen := map[string]bool{}
	for steps := 0; ; steps++ {
		if steps > 500 {
			t.Fatalf("rollout did not end after %d deliveries", steps)
		}
		next := -1
		for i := range chains {
			if alive[i] && (next < 0 || due[i].Before(due[next])) {
				next = i
			}
		}
		if next < 0 {
			return r
		}
		if due[next].After(clk.Now()) {
			clk.Advance(due[next].Sub(clk.Now()))
		}
		pub, _ := c.Publisher.(*recPublisher)
		before := 0
		if pub != nil {
			before = pub.count()
		}
		res := c.Handle(context.Background(), chains[next])
		r.deliveries++
		emitted := res.Emit
		if pub != nil {
			if len(res.Emit) > 0 {
				t.Fatalf("a core with a publisher returned %d events for the runtime to publish", len(res.Emit))
			}
			emitted = pub.since(before)
		}
		for _, e := range emitted {
			if err := events.Check(e); err != nil {
				t.Fatalf("emitted %s does not validate: %v", e.Type(), err)
			}
			if !seen[e.ID()] {
				seen[e.ID()] = true
				r.events = append(r.events, e)
			}
		}
		r.outcomes[next] = res.Outcome.Kind
		switch res.Outcome.Kind {
		case fn.KindDefer:
			due[next] = clk.Now().Add(res.Outcome.Delay)
		case fn.KindRetry:
			r.errs = append(r.errs, res.Outcome.Err)
			due[next] = clk.Now().Add(time.Second)
			if len(r.errs) > 20 {
				t.Fatalf("too many retries: %v", res.Outcome.Err)
			}
		default:
			if res.Outcome.Err != nil {
				r.errs = append(r.errs, res.Outcome.Err)
			}
			alive[next] = false
		}
	}
}

// newCore returns a core that publishes through a recPublisher, as a wired runtime does.
func newCore(store *memStore, f *fakeFleet, clk *coretest.Clock, pols ...rebuild.Policy) *rebuild.Core {
	return rebuild.New(rebuild.Config{Fleet: f, Policies: pols, Store: store.ports(), Now: clk.Now, Publisher: newPublisher(),
		Log: slog.New(slog.DiscardHandler)})
}

// published returns the events c's recPublisher stored.
func published(c *rebuild.Core) []event.Event {
	return c.Publisher.(*recPublisher).since(0)
}

func TestRollout(t *testing.T) {
	st := newStore()
	tests := []struct {
		name  string
		n     int
		pol   func(*rebuild.Policy)
		setup func(f *fakeFleet)
		// calls are the desktop counts of the RebuildDesktops calls, in order.
		calls                      []int
		succeeded, failed, skipped int
		stopped                    string // substring of the stop reason; "" means not stopped
	}{
		{name: "canary then batches", n: 7, pol: func(p *rebuild.Policy) { p.BatchSize = 3 },
			calls: []int{1, 3, 3}, succeeded: 7},
		{name: "no canary", n: 5, pol: func(p *rebuild.Policy) { p.Canary, p.BatchSize = 0, 2 },
			calls: []int{2, 2, 1}, succeeded: 5},
		{name: "canary fails", n: 7, pol: func(p *rebuild.Policy) { p.BatchSize = 3; p.FailureBudget = 5 },
			setup: func(f *fakeFleet) { f.fail["ecd-00"] = true },
			calls: []int{1}, failed: 1, stopped: "the canary failed (ecd-00: RebuildFailed)"},
		{name: "canary refused per desktop", n: 4, pol: func(p *rebuild.Policy) { p.BatchSize = 3 },
			setup: func(f *fakeFleet) { f.refuse["ecd-00"] = "IncorrectDesktopStatus" },
			calls: []int{1}, failed: 1, stopped: "ecd-00: IncorrectDesktopStatus"},
		{name: "failure budget spent", n: 10, pol: func(p *rebuild.Policy) { p.BatchSize = 3; p.FailureBudget = 1 },
			setup: func(f *fakeFleet) { f.fail["ecd-01"], f.refuse["ecd-02"] = true, "InvalidImage.GpuMismatch" },
			calls: []int{1, 3}, succeeded: 2, failed: 2, stopped: "more than the failure budget of 1, so the rollout stopped after batch 1 of 3; 6 desktops"},
		{name: "failure within budget", n: 7, pol: func(p *rebuild.Policy) { p.BatchSize = 3; p.FailureBudget = 1 },
			setup: func(f *fakeFleet) { f.fail["ecd-05"] = true },
			calls: []int{1, 3, 3}, succeeded: 6, failed: 1},
		{name: "stuck desktop times out", n: 4, pol: func(p *rebuild.Policy) { p.BatchSize = 3; p.FailureBudget = 1 },
			setup: func(f *fakeFleet) { f.stuck["ecd-02"] = true },
			calls: []int{1, 3}, succeeded: 3, failed: 1},
		{name: "status changed since the plan", n: 4, pol: func(p *rebuild.Policy) { p.BatchSize = 3 },
			calls: []int{1, 2}, succeeded: 3, skipped: 1},
		{name: "throttled call is retried", n: 4, pol: func(p *rebuild.Policy) { p.BatchSize = 3 },
			setup: func(f *fakeFleet) { f.callErrs, f.lostAnswer = []error{throttled()}, []bool{false} },
			calls: []int{1, 1, 3}, succeeded: 4},
		{name: "lost answer is not called again", n: 4, pol: func(p *rebuild.Policy) { p.BatchSize = 3 },
			setup: func(f *fakeFleet) { f.callErrs, f.lostAnswer = []error{errors.New("connection reset")}, []bool{true} },
			calls: []int{1, 3}, succeeded: 4},
		{name: "terminal call error fails the batch", n: 4, pol: func(p *rebuild.Policy) { p.BatchSize = 3 },
			setup: func(f *fakeFleet) { f.callErrs, f.lostAnswer = []error{forbidden()}, []bool{false} },
			calls: []int{1}, failed: 1, stopped: "Forbidden.RAM"},
		{name: "nothing to rebuild", n: 0, calls: nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			f := newFleet(clk, fleetOf(tt.n)...)
			if tt.setup != nil {
				tt.setup(f)
			}
			c := newCore(st, f, clk, policyFor("p", tt.pol))
			if tt.name == "status changed since the plan" {
				// ecd-02 turns Pending right after the plan was made: it is left alone
				// when its batch comes, and counted as skipped rather than failed.
				c.Fleet = &statusFlipper{fakeFleet: f, id: "ecd-02", to: "Pending"}
			}
			r := copyOf(fmt.Sprintf("imgc-roll%02d", i))
			res := drive(t, c, clk, succeeded(t, st, "ev-"+r.ImageID, r, "Windows", nil))
			var calls []int
			for _, call := range f.callLog() {
				calls = append(calls, len(call))
			}
			if !slices.Equal(calls, tt.calls) {
				t.Fatalf("RebuildDesktops calls named %v desktops, want %v", calls, tt.calls)
			}
			for id, n := range f.named() {
				if strings.HasPrefix(id, "ecd-dev") {
					t.Errorf("unselected desktop %s was named", id)
				}
				if n > 1 && tt.name != "throttled call is retried" {
					t.Errorf("%s named in %d calls", id, n)
				}
			}
			if len(calls) > 0 && calls[0] != 1 && tt.name != "no canary" {
				t.Errorf("first call named %d desktops, want the canary alone", calls[0])
			}
			done := res.completed(t)
			if done.Succeeded != tt.succeeded || done.Failed != tt.failed || done.Skipped != tt.skipped {
				t.Errorf("completed %d succeeded, %d failed, %d skipped; want %d, %d, %d (%s)", done.Succeeded, done.Failed, done.Skipped,
					tt.succeeded, tt.failed, tt.skipped, done.Reason)
			}
			if (tt.stopped != "") != done.Stopped || !strings.Contains(done.Reason, tt.stopped) {
				t.Errorf("stopped %v %q, want %q", done.Stopped, done.Reason, tt.stopped)
			}
			if n := len(res.desktops(events.TypeDesktopRebuildSucceeded)); n != tt.succeeded {
				t.Errorf("%d desktop.rebuild.succeeded events, want %d", n, tt.succeeded)
			}
			if n := len(res.desktops(events.TypeDesktopRebuildFailed)); n != tt.failed {
				t.Errorf("%d desktop.rebuild.failed events, want %d", n, tt.failed)
			}
			for _, id := range res.desktops(events.TypeDesktopRebuildSucceeded) {
				if img, st := f.image(id); img != r.ImageID || st != "Running" {
					t.Errorf("%s reported rebuilt but is %s on %s", id, st, img)
				}
			}
			if len(res.ofType(events.TypeRebuildPlanned)) != 1 {
				t.Errorf("%d rebuild.planned events", len(res.ofType(events.TypeRebuildPlanned)))
			}
			if res.outcomes[0] != fn.KindDone {
				t.Errorf("the chain ended with %s", res.outcomes[0])
			}
			// Once done, a late duplicate changes nothing.
			before := len(f.callLog())
			again := c.Handle(context.Background(), succeeded(t, st, "late-"+r.ImageID, r, "Windows", nil))
			if again.Outcome.Kind != fn.KindDone || len(f.callLog()) != before {
				t.Errorf("a late duplicate did %s and %d calls", again.Outcome.Kind, len(f.callLog())-before)
			}
		})
	}
}

// statusFlipper changes one desktop's status right after the first ListDesktops (the plan).
type statusFlipper struct {
	*fakeFleet
	id, to  string
	flipped bool
}

func (s *statusFlipper) ListDesktops(ctx context.Context, r string, f rebuild.DesktopFilter) ([]rebuild.Desktop, error) {
	out, err := s.fakeFleet.ListDesktops(ctx, r, f)
	if !s.flipped {
		s.flipped = true
		s.mu.Lock()
		s.desk[s.id].Status = s.to
		s.mu.Unlock()
	}
	return out, err
}

func TestDuplicatedTriggersRebuildEachDesktopOnce(t *testing.T) {
	st := newStore()
	clk := newClock()
	f := newFleet(clk, fleetOf(45)...)
	c := newCore(st, f, clk, policyFor("dup", func(p *rebuild.Policy) { p.FailureBudget = 3 }))
	r := copyOf("imgc-dup0001")
	ev := succeeded(t, st, "ev-dup", r, "Windows", nil)
	dup := succeeded(t, st, "ev-dup-copy", r, "Windows", nil)
	// The original, a copy under a new id, and a redelivery of the original racing it.
	res := drive(t, c, clk, ev, dup, ev)
	for id, n := range f.named() {
		if n != 1 {
			t.Errorf("%s named in %d RebuildDesktops calls", id, n)
		}
	}
	if len(f.named()) != 45 {
		t.Errorf("%d desktops named, want 45", len(f.named()))
	}
	if done := res.completed(t); done.Succeeded != 45 || done.Stopped {
		t.Errorf("completed %+v", done)
	}
	for i, k := range res.outcomes {
		if k != fn.KindDone {
			t.Errorf("chain %d ended with %s", i, k)
		}
	}
	if n := len(res.ofType(events.TypeDesktopRebuildStarted)); n != 45 {
		t.Errorf("%d distinct started events, want 45", n)
	}
}

func TestDryRunPlansOnly(t *testing.T) {
	st := newStore()
	clk := newClock()
	ds := fleetOf(5)
	ds[1].Status = "Pending"
	ds[2].GPU = true
	f := newFleet(clk, ds...)
	c := newCore(st, f, clk, policyFor("dry", func(p *rebuild.Policy) { p.DryRun = true }))
	r := copyOf("imgc-dry0001")
	res := drive(t, c, clk, succeeded(t, st, "ev-dry", r, "Windows", nil))
	if len(f.callLog()) != 0 {
		t.Fatalf("dry run made %d RebuildDesktops calls", len(f.callLog()))
	}
	if len(res.events) != 1 || res.events[0].Type() != events.TypeRebuildPlanned {
		t.Fatalf("dry run emitted %d events, want rebuild.planned only", len(res.events))
	}
	plan, _ := events.DataAs[events.RebuildPlanned](res.events[0])
	if !plan.DryRun || len(plan.Decisions) != 5 {
		t.Fatalf("plan %+v", plan)
	}
	want := map[string]string{"ecd-00": "rebuild", "ecd-01": "skip", "ecd-02": "skip", "ecd-03": "rebuild", "ecd-04": "rebuild"}
	for _, d := range plan.Decisions {
		if want[d.DesktopID] != d.Action {
			t.Errorf("%s: %s (%s), want %s", d.DesktopID, d.Action, d.Reason, want[d.DesktopID])
		}
	}
	if res.outcomes[0] != fn.KindDone {
		t.Errorf("dry run ended %s", res.outcomes[0])
	}
}

func TestMaintenanceWindowWaits(t *testing.T) {
	st := newStore()
	clk := newClock() // Wednesday 12:00 UTC = 20:00 in Shanghai
	f := newFleet(clk, fleetOf(3)...)
	c := newCore(st, f, clk, policyFor("window", func(p *rebuild.Policy) {
		p.Window = mustWindow(t, rules.WindowSpec{Start: "22:00", End: "02:00", TimeZone: "Asia/Shanghai"})
	}))
	r := copyOf("imgc-win0001")
	ev := succeeded(t, st, "ev-win", r, "Windows", nil)
	first := c.Handle(context.Background(), ev)
	if first.Outcome.Kind != fn.KindDefer || first.Outcome.Delay != time.Hour {
		t.Fatalf("outside the window: %s after %s, want defer for the 1h cap", first.Outcome.Kind, first.Outcome.Delay)
	}
	if len(f.callLog()) != 0 {
		t.Fatal("rebuilt outside the maintenance window")
	}
	if got := published(c); len(got) != 1 || got[0].Type() != events.TypeRebuildPlanned {
		t.Fatalf("outside the window the plan is still announced; got %d events", len(got))
	}
	clk.Advance(time.Hour)
	second := c.Handle(context.Background(), ev)
	if second.Outcome.Kind != fn.KindDefer || second.Outcome.Delay != time.Hour || len(f.callLog()) != 0 {
		t.Fatalf("at 21:00: %s after %s with %d calls", second.Outcome.Kind, second.Outcome.Delay, len(f.callLog()))
	}
	clk.Advance(time.Hour) // 22:00 Shanghai: open
	res := drive(t, c, clk, ev)
	calls := f.callLog()
	if len(calls) != 2 || len(calls[0]) != 1 {
		t.Fatalf("calls %v", calls)
	}
	if done := res.completed(t); done.Succeeded != 3 {
		t.Fatalf("completed %+v", done)
	}
}

func TestPlanningFailures(t *testing.T) {
	st := newStore()
	clk := newClock()
	f := newFleet(clk, fleetOf(3)...)
	f.listErr = forbidden()
	c := newCore(st, f, clk, policyFor("denied", nil))
	r := copyOf("imgc-deny001")
	res := c.Handle(context.Background(), succeeded(t, st, "ev-deny", r, "Windows", nil))
	if res.Outcome.Kind != fn.KindReject || !strings.Contains(res.Outcome.Err.Error(), "Forbidden.RAM") {
		t.Fatalf("terminal listing error: %s %v", res.Outcome.Kind, res.Outcome.Err)
	}
	if _, err := st.rollouts.Get(context.Background(), rebuild.RolloutKey("denied", r)...); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("a rollout was recorded although planning failed: %v", err)
	}
	// Fixed permissions: the replayed event plans afresh.
	f.listErr = errors.New("connection reset")
	if res := c.Handle(context.Background(), succeeded(t, st, "ev-deny", r, "Windows", nil)); res.Outcome.Kind != fn.KindRetry {
		t.Fatalf("retryable listing error: %s", res.Outcome.Kind)
	}
	f.listErr = nil
	if done := drive(t, c, clk, succeeded(t, st, "ev-deny", r, "Windows", nil)).completed(t); done.Succeeded != 3 {
		t.Fatalf("after the fix: %+v", done)
	}
}

func TestNothingHappensWithoutAMatchingPolicy(t *testing.T) {
	st := newStore()
	clk := newClock()
	f := newFleet(clk, fleetOf(3)...)
	tests := []struct {
		name string
		core *rebuild.Core
		r    events.Replication
	}{
		{name: "no policy", core: newCore(st, f, clk), r: copyOf("imgc-none001")},
		{name: "other region", core: newCore(st, f, clk, policyFor("p", func(p *rebuild.Policy) { p.Regions = []string{"cn-beijing"} })), r: copyOf("imgc-none002")},
		{name: "other image", core: newCore(st, f, clk, policyFor("p", func(p *rebuild.Policy) { p.Match.NamePattern = "render-*" })), r: copyOf("imgc-none003")},
		{name: "not alibaba", core: newCore(st, f, clk, policyFor("p", func(p *rebuild.Policy) { p.Match.Provider, p.Match.ProductType = "", "" })),
			r: func() events.Replication {
				r := copyOf("img-none004")
				r.Provider, r.ProductType = "tencent", ""
				return r
			}()},
		{name: "disabled", core: rebuild.New(rebuild.Config{Policies: []rebuild.Policy{policyFor("p", nil)}, Store: st.ports(), Log: slog.New(slog.DiscardHandler)}), r: copyOf("imgc-none005")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.core.Handle(context.Background(), succeeded(t, st, "ev-"+tt.r.ImageID, tt.r, "Windows", nil))
			if pub, ok := tt.core.Publisher.(*recPublisher); ok && pub.count() > 0 {
				t.Fatalf("published %d events", pub.count())
			}
			if res.Outcome.Kind != fn.KindDone || len(res.Emit) != 0 {
				t.Fatalf("%s with %d events", res.Outcome.Kind, len(res.Emit))
			}
			if f.lists != 0 || len(f.callLog()) != 0 {
				t.Fatalf("the fleet was asked: %d lists, %d rebuilds", f.lists, len(f.callLog()))
			}
		})
	}
}

func TestStuckDesktopFailsAfterThePolicyTimeout(t *testing.T) {
	st := newStore()
	clk := newClock()
	f := newFleet(clk, fleetOf(1)...)
	f.stuck["ecd-00"] = true
	c := newCore(st, f, clk, policyFor("p", func(p *rebuild.Policy) { p.Timeout = 7 * time.Minute }))
	begin := clk.Now()
	res := drive(t, c, clk, succeeded(t, st, "ev-stuck", copyOf("imgc-stuck0001"), "Windows", nil))
	failed := res.ofType(events.TypeDesktopRebuildFailed)
	if len(failed) != 1 {
		t.Fatalf("%d desktop.rebuild.failed events, want 1", len(failed))
	}
	d, _ := events.DataAs[events.DesktopRebuild](failed[0])
	if d.DesktopID != "ecd-00" || d.Code != "Timeout" || !strings.Contains(d.Message, "7m0s") {
		t.Errorf("failed %+v, want ecd-00 timed out after the policy's 7m0s", d)
	}
	if waited := clk.Now().Sub(begin); waited < 7*time.Minute || waited > 8*time.Minute {
		t.Errorf("the desktop was given up after %s, want just over 7m", waited)
	}
}

func TestTwoPoliciesNeverRebuildADesktopTwice(t *testing.T) {
	st := newStore()
	clk := newClock()
	f := newFleet(clk, fleetOf(4)...)
	a := policyFor("a", func(p *rebuild.Policy) { p.BatchSize = 2 })
	b := policyFor("b", func(p *rebuild.Policy) { p.Desktops = rebuild.Selector{IDs: []string{"ecd-02", "ecd-03"}} })
	c := newCore(st, f, clk, a, b)
	r := copyOf("imgc-two0001")
	res := drive(t, c, clk, succeeded(t, st, "ev-two", r, "Windows", nil))
	for id, n := range f.named() {
		if n != 1 {
			t.Errorf("%s named %d times", id, n)
		}
	}
	cs := res.ofType(events.TypeRebuildCompleted)
	if len(cs) != 2 {
		t.Fatalf("%d completed events, want one per policy", len(cs))
	}
	total := 0
	for _, e := range cs {
		d, _ := events.DataAs[events.RebuildCompleted](e)
		total += d.Succeeded
		if d.Stopped {
			t.Errorf("policy %s stopped: %s", d.Policy, d.Reason)
		}
	}
	if total != 4 {
		t.Errorf("%d rebuilt in total, want 4", total)
	}
}

func TestNewVersionOfTheSameImageID(t *testing.T) {
	st := newStore()
	clk := newClock()
	f := newFleet(clk, fleetOf(3)...)
	older := policyFor("older", func(p *rebuild.Policy) {
		p.Desktops = rebuild.Selector{OlderVersionOfImage: true}
	})
	tagged := policyFor("tagged", nil)
	r1 := copyOf("imgc-ver0001")
	// Version 1: the tagged policy moves the fleet onto it; the older-version policy finds
	// nobody on an older copy.
	c := newCore(st, f, clk, tagged, older)
	res := drive(t, c, clk, succeeded(t, st, "ev-v1", r1, "Windows", nil))
	if n := len(f.named()); n != 3 {
		t.Fatalf("v1 rebuilt %d desktops", n)
	}
	for _, e := range res.ofType(events.TypeRebuildPlanned) {
		d, _ := events.DataAs[events.RebuildPlanned](e)
		if d.Policy == "older" && len(d.Decisions) != 0 {
			t.Fatalf("older-version policy planned %v for a first version", d.Decisions)
		}
	}
	// Version 2 keeps the image id (App Streaming): the desktops imagerelay put on v1 are on
	// an older version, not "already on the image".
	r2 := r1
	r2.VersionID = "iv-ver0002"
	c = newCore(st, f, clk, older)
	res = drive(t, c, clk, succeeded(t, st, "ev-v2", r2, "Windows", nil))
	if done := res.completed(t); done.Succeeded != 3 {
		t.Fatalf("v2: %+v", done)
	}
	// Version 2 again under another policy: everyone is on it now.
	c = newCore(st, f, clk, policyFor("again", nil))
	res = drive(t, c, clk, succeeded(t, st, "ev-v2b", r2, "Windows", nil))
	plan, _ := events.DataAs[events.RebuildPlanned](res.ofType(events.TypeRebuildPlanned)[0])
	for _, d := range plan.Decisions {
		if d.Action != rebuild.ActionSkip || !strings.Contains(d.Reason, "already on image") {
			t.Errorf("%s: %s %s", d.DesktopID, d.Action, d.Reason)
		}
	}
}

// mustWindow parses a window the test knows to be well formed.
func mustWindow(t *testing.T, s rules.WindowSpec) *rebuild.Window {
	t.Helper()
	w, problems := rules.ParseWindow(s)
	if len(problems) > 0 {
		t.Fatalf("window %+v: %v", s, problems)
	}
	return w
}

// flakyLister fails the ListDesktops calls numbered in fail (1-based) with err.
type flakyLister struct {
	*fakeFleet
	n    int
	fail map[int]bool
	err  error
}

func (l *flakyLister) ListDesktops(ctx context.Context, r string, f rebuild.DesktopFilter) ([]rebuild.Desktop, error) {
	l.n++
	if l.fail[l.n] {
		return nil, l.err
	}
	return l.fakeFleet.ListDesktops(ctx, r, f)
}

// When the desktops of a batch cannot be looked at just before they are named, nobody is
// named: the rollout waits as long as the service asked and looks again.
func TestBatchWaitsWhenItsDesktopsCannotBeListed(t *testing.T) {
	st := newStore()
	clk := newClock()
	f := newFleet(clk, fleetOf(2)...)
	c := newCore(st, f, clk, policyFor("look", nil))
	// Listing 1 is the plan; 2 is the look before the canary is named.
	c.Fleet = &flakyLister{fakeFleet: f, fail: map[int]bool{2: true}, err: &domain.ProviderError{Provider: "alibaba",
		Action: "DescribeDesktops", Code: "Throttling.User", Class: domain.Retryable, RetryAfter: 7 * time.Second}}
	r := copyOf("imgc-look0001")
	ev := succeeded(t, st, "ev-look", r, "Windows", nil)
	first := c.Handle(context.Background(), ev)
	if first.Outcome.Kind != fn.KindDefer || first.Outcome.Delay != 7*time.Second || len(f.callLog()) != 0 {
		t.Fatalf("first delivery: %s after %s with %d calls, want defer 7s and none", first.Outcome.Kind, first.Outcome.Delay, len(f.callLog()))
	}
	clk.Advance(7 * time.Second)
	if done := drive(t, c, clk, ev).completed(t); done.Succeeded != 2 {
		t.Fatalf("completed %+v", done)
	}
	for id, n := range f.named() {
		if n != 1 {
			t.Errorf("%s named %d times", id, n)
		}
	}
}

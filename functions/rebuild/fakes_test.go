package rebuild_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/functions/rebuild"
	"github.com/imagerelay/imagerelay/shared/dev/coretest"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// clock is a settable clock shared by the core and the fake fleet.
func newClock() *coretest.Clock {
	// A Wednesday noon in UTC, so window tests know where they stand.
	return coretest.NewClock(time.Date(2026, 7, 15, 12, 0, 0, 0, time.UTC))
}

// fakeFleet is a test double of Elastic Desktop Service: accepted desktops are Rebuilding
// for dur, then Running on the new image (or Stopped on the old one when listed in fail).
type fakeFleet struct {
	mu    sync.Mutex
	clock *coretest.Clock
	dur   time.Duration
	desk  map[string]*fakeDesk
	// refuse gives the per-desktop code RebuildDesktops answers instead of success.
	refuse map[string]string
	// fail lists desktops whose accepted rebuild ends Stopped on the old image.
	fail map[string]bool
	// stuck lists desktops that stay Rebuilding forever.
	stuck map[string]bool
	// callErrs are returned by successive RebuildDesktops calls; lostAnswer marks the ones
	// that were carried out before the error (an answer lost on the way back).
	callErrs   []error
	lostAnswer []bool
	// listErr, when set, fails every ListDesktops call.
	listErr error

	calls [][]string // desktop ids of every RebuildDesktops call, in order
	lists int
}

type fakeDesk struct {
	rebuild.Desktop
	target  string
	started time.Time
}

func newFleet(c *coretest.Clock, ds ...rebuild.Desktop) *fakeFleet {
	f := &fakeFleet{clock: c, dur: 3 * time.Second, desk: map[string]*fakeDesk{}, refuse: map[string]string{}, fail: map[string]bool{}, stuck: map[string]bool{}}
	for _, d := range ds {
		d.Tags = maps.Clone(d.Tags)
		f.desk[d.ID] = &fakeDesk{Desktop: d}
	}
	return f
}

// settle finishes rebuilds whose time is up. Callers hold f.mu.
func (f *fakeFleet) settle() {
	now := f.clock.Now()
	for id, d := range f.desk {
		if d.Status != rebuild.StatusRebuilding || f.stuck[id] || now.Before(d.started.Add(f.dur)) {
			continue
		}
		if f.fail[id] {
			d.Status = rebuild.StatusStopped
			continue
		}
		d.Status, d.ImageID = rebuild.StatusRunning, d.target
	}
}

func (f *fakeFleet) ListDesktops(_ context.Context, _ string, filter rebuild.DesktopFilter) ([]rebuild.Desktop, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.listErr != nil {
		return nil, f.listErr
	}
	f.settle()
	var out []rebuild.Desktop
	for _, id := range slices.Sorted(maps.Keys(f.desk)) {
		d := f.desk[id]
		if len(filter.DesktopIDs) > 0 && !slices.Contains(filter.DesktopIDs, id) ||
			len(filter.ImageIDs) > 0 && !slices.Contains(filter.ImageIDs, d.ImageID) ||
			filter.GroupID != "" && filter.GroupID != d.GroupID {
			continue
		}
		match := true
		for k, v := range filter.Tags {
			if d.Tags[k] != v {
				match = false
			}
		}
		if match {
			dd := d.Desktop
			dd.Tags = maps.Clone(d.Tags)
			out = append(out, dd)
		}
	}
	return out, nil
}

func (f *fakeFleet) RebuildDesktops(_ context.Context, _ string, ids []string, imageID string, _ rebuild.Options) ([]rebuild.DesktopResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, slices.Clone(ids))
	var callErr error
	lost := false
	if len(f.callErrs) > 0 {
		callErr, f.callErrs = f.callErrs[0], f.callErrs[1:]
		if len(f.lostAnswer) > 0 {
			lost, f.lostAnswer = f.lostAnswer[0], f.lostAnswer[1:]
		}
		if !lost {
			return nil, callErr
		}
	}
	f.settle()
	var out []rebuild.DesktopResult
	for _, id := range ids {
		d := f.desk[id]
		switch {
		case d == nil:
			out = append(out, rebuild.DesktopResult{DesktopID: id, Code: "InvalidDesktopId.NotFound"})
		case f.refuse[id] != "":
			out = append(out, rebuild.DesktopResult{DesktopID: id, Code: f.refuse[id], Message: "refused by the fake"})
		case d.Status != rebuild.StatusRunning && d.Status != rebuild.StatusStopped:
			out = append(out, rebuild.DesktopResult{DesktopID: id, Code: "IncorrectDesktopStatus"})
		default:
			d.Status, d.target, d.started = rebuild.StatusRebuilding, imageID, f.clock.Now()
			out = append(out, rebuild.DesktopResult{DesktopID: id, Code: "SUCCESS", OK: true})
		}
	}
	if lost {
		return nil, callErr
	}
	return out, nil
}

// named counts how many RebuildDesktops calls named each desktop.
func (f *fakeFleet) named() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for _, c := range f.calls {
		for _, id := range c {
			out[id]++
		}
	}
	return out
}

func (f *fakeFleet) callLog() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeFleet) image(id string) (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.settle()
	return f.desk[id].ImageID, f.desk[id].Status
}

func throttled() error {
	return &domain.ProviderError{Provider: "alibaba", Action: "RebuildDesktops", Code: "Throttling.User", Message: "slow down",
		Class: domain.Retryable, RetryAfter: 2 * time.Second}
}

func forbidden() error {
	return &domain.ProviderError{Provider: "alibaba", Action: "DescribeDesktops", Code: "Forbidden.RAM", Message: "denied",
		Class: domain.Terminal, Hint: "grant ecd:DescribeDesktops"}
}

// recPublisher is a test double of the bus: it counts every publish of every event id (as a
// core NATS subscriber would see them) and stores each id once (as the stream would).
// failAt, when set, makes the publish calls it returns true for fail at their second event,
// after storing the first, the way bus.Publish stops at the first error.
type recPublisher struct {
	mu     sync.Mutex
	calls  int
	counts map[string]int
	stored []event.Event
	seen   map[string]bool
	// inFailed marks ids that were part of a failed call (they may be published again).
	inFailed map[string]bool
	failAt   func(call int) bool
}

func newPublisher() *recPublisher {
	return &recPublisher{counts: map[string]int{}, seen: map[string]bool{}, inFailed: map[string]bool{}}
}

func (p *recPublisher) Publish(_ context.Context, evs ...event.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	fail := p.failAt != nil && p.failAt(p.calls)
	for i, e := range evs {
		if fail && i == min(1, len(evs)-1) {
			for _, rest := range evs {
				p.inFailed[rest.ID()] = true
			}
			return errors.New("nats: timeout")
		}
		p.counts[e.ID()]++
		if !p.seen[e.ID()] {
			p.seen[e.ID()] = true
			p.stored = append(p.stored, e)
		}
	}
	return nil
}

// since returns the events stored after the first n.
func (p *recPublisher) since(n int) []event.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.stored[n:])
}

func (p *recPublisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.stored)
}

// repeated returns the ids published more than once.
func (p *recPublisher) repeated() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for id, n := range p.counts {
		if n > 1 {
			out[id] = n
		}
	}
	return out
}

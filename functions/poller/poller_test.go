package poller_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/lifecycle"
	"github.com/imagerelay/imagerelay/functions/poller"
	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/adapters/state/memkv"
	"github.com/imagerelay/imagerelay/shared/core/fn"
	"github.com/imagerelay/imagerelay/shared/dev/coretest"
	"github.com/imagerelay/imagerelay/shared/domain"
)

const (
	pollSeconds = 30
	interval    = pollSeconds * time.Second
)

func image(provider, id string) events.Image {
	return events.Image{Provider: provider, ImageID: id, VersionID: "v1", ImageName: "base-" + id, SourceRegion: "ap-shanghai"}
}

func replicationOf(img events.Image, region string) events.Replication {
	return events.Replication{Image: img, DestinationRegion: region}
}

// copyOpts tweak the in-flight copy that inFlight stores.
type copyOpts struct {
	deadline time.Time // zero: one hour after now
	imageID  string    // destination image id known at start
}

// inFlight stores the record replicate leaves for a started copy and returns the
// replication.started event that brings it to the poller.
func inFlight(t *testing.T, store *state.Store, clk *coretest.Clock, r events.Replication, taskID string, o copyOpts) event.Event {
	t.Helper()
	now := clk.Now()
	if o.deadline.IsZero() {
		o.deadline = now.Add(time.Hour)
	}
	rec := domain.Record{
		Key: events.ReplicationKey(r), Copy: lifecycle.CopyOf(r), State: domain.StateInProgress, TaskID: taskID,
		DestinationImageID: o.imageID, StartCalls: 1, CorrelationID: "pub-" + r.ImageID,
		RequestedAt: now, StartedAt: now, Deadline: o.deadline, UpdatedAt: now, PollIntervalSeconds: pollSeconds,
		Tags: map[string]string{"team": "ops"}, OSType: "Linux",
	}
	if err := store.CreateRecord(context.Background(), rec); err != nil {
		t.Fatalf("create record: %v", err)
	}
	pub, err := events.New(events.TypeImagePublished, events.ImagePublished{Image: r.Image}, events.Meta{
		ID: "pub-" + r.ImageID, Source: "/test/publisher", Provider: r.Provider, Region: r.SourceRegion, ImageID: r.ImageID,
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := events.Derive(pub, "replicate", events.TypeReplicationStarted, events.ReplicationStarted{
		Replication: r, TaskID: taskID, DestinationImageID: o.imageID, StartedAt: now, Deadline: o.deadline, PollIntervalSeconds: pollSeconds,
	}, r.Provider, r.DestinationRegion, r.ImageID, events.ReplicationKey(r))
	if err != nil {
		t.Fatalf("build started: %v", err)
	}
	return e
}

// config is the poller's configuration for a test: one provider's reader, the store, the
// test's clock, and two unknown answers tolerated.
func config(store *state.Store, clk *coretest.Clock, provider string, reader poller.StatusReader) poller.Config {
	return poller.Config{
		Readers:        map[string]poller.StatusReader{provider: reader},
		Store:          store,
		NotFoundChecks: 2,
		Now:            clk.Now,
		Log:            slog.New(slog.DiscardHandler),
	}
}

func newCore(store *state.Store, clk *coretest.Clock, provider string, reader poller.StatusReader) *poller.Core {
	return poller.New(config(store, clk, provider, reader))
}

// emitted checks every emitted event against the contract and groups them by type.
func emitted(t *testing.T, res fn.Result) map[string][]event.Event {
	t.Helper()
	return coretest.Emitted(t, poller.Name, res)
}

func wantOutcome(t *testing.T, res fn.Result, kind fn.Kind, delay time.Duration) {
	t.Helper()
	if res.Outcome.Kind != kind || res.Outcome.Delay != delay {
		t.Fatalf("outcome = %v after %v (err %v), want %v after %v", res.Outcome.Kind, res.Outcome.Delay, res.Outcome.Err, kind, delay)
	}
	emitted(t, res) // whatever the outcome, every emitted event must meet the contract
}

func record(t *testing.T, store *state.Store, r events.Replication) domain.Record {
	t.Helper()
	rec, err := store.Record(context.Background(), lifecycle.CopyOf(r))
	if err != nil {
		t.Fatalf("read record: %v", err)
	}
	return rec
}

func TestProgress(t *testing.T) {
	t.Parallel()
	store := memkv.NewStore()
	ctx := context.Background()
	clk := newClock()
	reader := &fakeReader{batch: 100}
	core := newCore(store, clk, events.ProviderTencent, reader)
	r := replicationOf(image(events.ProviderTencent, "img-progress"), "ap-guangzhou")
	started := inFlight(t, store, clk, r, "img-copy", copyOpts{})
	reader.set("img-copy", inProgress(10, "SYNCING"), inProgress(10, "SYNCING"), inProgress(10, "CREATING"), inProgress(40, "CREATING"), inProgress(40, "CREATING"))

	steps := []struct {
		name        string
		wantPercent int    // of the progressed event; -1 for none
		wantStatus  string // of the progressed event
	}{
		{"first percent", 10, "SYNCING"},
		{"same percent again", -1, ""},
		{"new provider status", 10, "CREATING"},
		{"new percent", 40, "CREATING"},
		{"same again", -1, ""},
	}
	seen := map[string]bool{}
	for i, step := range steps {
		if i > 0 {
			clk.Advance(interval)
		}
		res := core.Handle(ctx, started)
		wantOutcome(t, res, fn.KindDefer, interval)
		evs := emitted(t, res)
		if len(res.Emit) != len(evs[events.TypeReplicationProgressed]) {
			t.Fatalf("%s: emitted %v, want only progress", step.name, res.Emit)
		}
		if step.wantPercent < 0 {
			if len(res.Emit) != 0 {
				t.Errorf("%s: emitted %d events, want none", step.name, len(res.Emit))
			}
			continue
		}
		if len(res.Emit) != 1 {
			t.Fatalf("%s: emitted %d events, want one replication.progressed", step.name, len(res.Emit))
		}
		p, _ := events.DataAs[events.ReplicationProgressed](res.Emit[0])
		if p.Percent != step.wantPercent || p.Status != step.wantStatus || p.TaskID != "img-copy" || p.DestinationRegion != "ap-guangzhou" {
			t.Errorf("%s: progressed = %+v", step.name, p)
		}
		if seen[res.Emit[0].ID()] {
			t.Errorf("%s: progressed id %s reused", step.name, res.Emit[0].ID())
		}
		seen[res.Emit[0].ID()] = true
		if events.CorrelationID(res.Emit[0]) != "pub-img-progress" {
			t.Errorf("%s: correlationid %q", step.name, events.CorrelationID(res.Emit[0]))
		}
	}
	if n := len(reader.callLog()); n != len(steps) {
		t.Errorf("%d status calls, want %d", n, len(steps))
	}
	rec := record(t, store, r)
	if rec.State != domain.StateInProgress || rec.Percent != 40 || rec.ProviderStatus != "CREATING" || rec.Polls != len(steps) {
		t.Errorf("record %s %d%% %q after %d polls", rec.State, rec.Percent, rec.ProviderStatus, rec.Polls)
	}
}

func TestOneCheck(t *testing.T) {
	t.Parallel()
	store := memkv.NewStore()
	cases := []struct {
		name      string
		status    *domain.CopyStatus // nil: the fake's default (in progress)
		fail      func() error
		short     bool
		deadline  time.Duration // relative to now; zero: one hour ahead
		startID   string        // destination image id known at start
		wantKind  fn.Kind
		wantType  string // the one emitted event type; "" for none
		wantState domain.State
		check     func(t *testing.T, e event.Event, rec domain.Record)
	}{
		{
			name: "succeeded", status: &domain.CopyStatus{Phase: domain.PhaseSucceeded, ProviderStatus: "NORMAL", DestinationImageID: "img-new"},
			wantKind: fn.KindDone, wantType: events.TypeReplicationSucceeded, wantState: domain.StateSucceeded,
			check: func(t *testing.T, e event.Event, rec domain.Record) {
				d, _ := events.DataAs[events.ReplicationSucceeded](e)
				if d.DestinationImageID != "img-new" || d.TaskID != "task-1" || d.OSType != "Linux" || d.Tags["team"] != "ops" || d.DurationSeconds < 0 {
					t.Errorf("succeeded data %+v", d)
				}
				if rec.Percent != 100 || rec.DestinationImageID != "img-new" || rec.FinishedAt.IsZero() {
					t.Errorf("record %d%% image %q finished %v", rec.Percent, rec.DestinationImageID, rec.FinishedAt)
				}
			},
		},
		{
			name: "succeeded keeps the image id known at start", status: &domain.CopyStatus{Phase: domain.PhaseSucceeded},
			startID:  "img-from-start",
			wantKind: fn.KindDone, wantType: events.TypeReplicationSucceeded, wantState: domain.StateSucceeded,
			check: func(t *testing.T, e event.Event, _ domain.Record) {
				if d, _ := events.DataAs[events.ReplicationSucceeded](e); d.DestinationImageID != "img-from-start" {
					t.Errorf("destination image id %q", d.DestinationImageID)
				}
			},
		},
		{
			name: "failed", status: &domain.CopyStatus{Phase: domain.PhaseFailed, Code: "SyncFailed", Message: "disk error", ProviderStatus: "SYNC_FAILED"},
			wantKind: fn.KindDone, wantType: events.TypeReplicationFailed, wantState: domain.StateFailed,
			check: func(t *testing.T, e event.Event, rec domain.Record) {
				d, _ := events.DataAs[events.ReplicationFailed](e)
				if d.Code != "SyncFailed" || d.Message != "disk error" || d.TaskID != "task-1" || d.FailedAt.IsZero() {
					t.Errorf("failed data %+v", d)
				}
				if rec.Code != "SyncFailed" || rec.ProviderStatus != "SYNC_FAILED" {
					t.Errorf("record code %q status %q", rec.Code, rec.ProviderStatus)
				}
			},
		},
		{
			name: "failed without a code", status: &domain.CopyStatus{Phase: domain.PhaseFailed},
			wantKind: fn.KindDone, wantType: events.TypeReplicationFailed, wantState: domain.StateFailed,
			check: func(t *testing.T, e event.Event, _ domain.Record) {
				if d, _ := events.DataAs[events.ReplicationFailed](e); d.Code != "TaskFailed" {
					t.Errorf("code %q, want TaskFailed", d.Code)
				}
			},
		},
		{
			name: "deadline passed", status: &domain.CopyStatus{Phase: domain.PhaseInProgress, Percent: 60, ProviderStatus: "SYNCING"},
			deadline: -time.Second,
			wantKind: fn.KindDone, wantType: events.TypeReplicationFailed, wantState: domain.StateFailed,
			check: func(t *testing.T, e event.Event, _ domain.Record) {
				d, _ := events.DataAs[events.ReplicationFailed](e)
				if d.Code != "Timeout" || !strings.Contains(d.Message, "60%") || !strings.Contains(d.Hint, "timeout") {
					t.Errorf("failed data %+v, want code Timeout", d)
				}
			},
		},
		{
			name: "succeeded just after the deadline still succeeds", status: &domain.CopyStatus{Phase: domain.PhaseSucceeded, DestinationImageID: "img-late"},
			deadline: -time.Second,
			wantKind: fn.KindDone, wantType: events.TypeReplicationSucceeded, wantState: domain.StateSucceeded,
		},
		{
			name: "retryable status error", fail: providerError(domain.Retryable, "RequestLimitExceeded"),
			wantKind: fn.KindDefer, wantState: domain.StateInProgress,
		},
		{
			name: "network error is retryable", fail: func() error { return errors.New("connection reset") },
			wantKind: fn.KindDefer, wantState: domain.StateInProgress,
		},
		{
			name: "provider answers too few statuses", short: true,
			wantKind: fn.KindDefer, wantState: domain.StateInProgress,
		},
		{
			name: "terminal status error", fail: providerError(domain.Terminal, "AuthFailure"),
			wantKind: fn.KindDone, wantType: events.TypeReplicationFailed, wantState: domain.StateFailed,
			check: func(t *testing.T, e event.Event, rec domain.Record) {
				d, _ := events.DataAs[events.ReplicationFailed](e)
				if d.Code != "AuthFailure" || d.Message != "AuthFailure happened" || d.Hint != "check the account" {
					t.Errorf("failed data %+v", d)
				}
			},
		},
		{
			name: "retryable status error past the deadline times out", fail: providerError(domain.Retryable, "InternalError"),
			deadline: -time.Minute,
			wantKind: fn.KindDone, wantType: events.TypeReplicationFailed, wantState: domain.StateFailed,
			check: func(t *testing.T, e event.Event, _ domain.Record) {
				if d, _ := events.DataAs[events.ReplicationFailed](e); d.Code != "Timeout" {
					t.Errorf("code %q, want Timeout", d.Code)
				}
			},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			clk := newClock()
			reader := &fakeReader{batch: 100, fail: tc.fail, short: tc.short}
			if tc.status != nil {
				reader.set("task-1", *tc.status)
			}
			core := newCore(store, clk, events.ProviderTencent, reader)
			r := replicationOf(image(events.ProviderTencent, fmt.Sprintf("img-one-%d", i)), "ap-guangzhou")
			o := copyOpts{imageID: tc.startID}
			if tc.deadline != 0 {
				o.deadline = clk.Now().Add(tc.deadline)
			}
			started := inFlight(t, store, clk, r, "task-1", o)

			res := core.Handle(ctx, started)
			if tc.wantKind == fn.KindDefer {
				wantOutcome(t, res, fn.KindDefer, interval)
			} else {
				wantOutcome(t, res, tc.wantKind, 0)
			}
			evs := emitted(t, res)
			rec := record(t, store, r)
			if rec.State != tc.wantState {
				t.Errorf("record state %s, want %s", rec.State, tc.wantState)
			}
			if tc.wantType == "" {
				if len(res.Emit) != 0 {
					t.Errorf("emitted %v, want nothing", res.Emit)
				}
				return
			}
			if len(res.Emit) != 1 || len(evs[tc.wantType]) != 1 {
				t.Fatalf("emitted %v, want one %s (no plan is stored, so no completed)", res.Emit, tc.wantType)
			}
			e := evs[tc.wantType][0]
			if events.CorrelationID(e) != "pub-"+r.ImageID || events.StringExt(e, events.ExtCausationID) != started.ID() {
				t.Errorf("correlation %q causation %q", events.CorrelationID(e), events.StringExt(e, events.ExtCausationID))
			}
			if tc.check != nil {
				tc.check(t, e, rec)
			}

			// A settled copy delivered again announces the same event and asks nobody.
			calls := len(reader.callLog())
			clk.Advance(interval)
			again := core.Handle(ctx, started)
			wantOutcome(t, again, fn.KindDone, 0)
			if got := emitted(t, again)[tc.wantType]; len(got) != 1 || got[0].ID() != e.ID() {
				t.Errorf("redelivery emitted %v, want %s %s again", again.Emit, tc.wantType, e.ID())
			}
			if n := len(reader.callLog()); n != calls {
				t.Errorf("redelivery of a settled copy made a status call")
			}
		})
	}
}

func TestCompletedAfterLastRegion(t *testing.T) {
	t.Parallel()
	store := memkv.NewStore()
	ctx := context.Background()
	clk := newClock()
	reader := &fakeReader{batch: 100}
	core := newCore(store, clk, events.ProviderHuawei, reader)
	img := image(events.ProviderHuawei, "img-two")
	regions := []string{"cn-north-4", "cn-east-3"}
	if err := store.SavePlan(ctx, domain.Plan{Image: domain.Image(img), Regions: regions, CorrelationID: "pub-img-two"}); err != nil {
		t.Fatal(err)
	}
	first := inFlight(t, store, clk, replicationOf(img, regions[0]), "job-1", copyOpts{})
	second := inFlight(t, store, clk, replicationOf(img, regions[1]), "job-2", copyOpts{})
	reader.set("job-1", succeeded("img-north"))
	reader.set("job-2", inProgress(50, "RUNNING"), domain.CopyStatus{Phase: domain.PhaseFailed, Code: "IMG.0010", Message: "quota exceeded"})

	steps := []struct {
		name          string
		in            event.Event
		wantType      string
		wantCompleted bool
	}{
		{"first region succeeds", first, events.TypeReplicationSucceeded, false},
		{"second still running", second, events.TypeReplicationProgressed, false},
		{"second fails, the image is complete", second, events.TypeReplicationFailed, true},
	}
	var completed event.Event
	for _, step := range steps {
		res := core.Handle(ctx, step.in)
		evs := emitted(t, res)
		if len(evs[step.wantType]) != 1 {
			t.Fatalf("%s: emitted %v, want %s", step.name, res.Emit, step.wantType)
		}
		got := evs[events.TypeReplicationCompleted]
		if (len(got) == 1) != step.wantCompleted {
			t.Fatalf("%s: completed emitted %d times, want %v", step.name, len(got), step.wantCompleted)
		}
		if step.wantCompleted {
			completed = got[0]
		}
		clk.Advance(interval)
	}
	d, _ := events.DataAs[events.ReplicationCompleted](completed)
	if d.Succeeded != 1 || d.Failed != 1 || len(d.Regions) != 2 {
		t.Fatalf("completed = %+v", d)
	}
	want := []events.RegionOutcome{
		{Region: "cn-north-4", State: "succeeded", DestinationImageID: "img-north"},
		{Region: "cn-east-3", State: "failed", Code: "IMG.0010", Message: "quota exceeded"},
	}
	if !slices.Equal(d.Regions, want) {
		t.Errorf("completed regions %+v, want %+v", d.Regions, want)
	}
	if events.CorrelationID(completed) != "pub-img-two" || events.StringExt(completed, events.ExtRegion) != img.SourceRegion {
		t.Errorf("completed correlation %q region %q", events.CorrelationID(completed), events.StringExt(completed, events.ExtRegion))
	}
	// Either settled region delivered again announces the same completion.
	res := core.Handle(ctx, first)
	if got := emitted(t, res)[events.TypeReplicationCompleted]; len(got) != 1 || got[0].ID() != completed.ID() {
		t.Errorf("redelivered first region emitted %v, want completed %s", res.Emit, completed.ID())
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	store := memkv.NewStore()
	ctx := context.Background()
	clk := newClock()
	reader := &fakeReader{batch: 100}
	core := newCore(store, clk, events.ProviderHuawei, reader)
	r := replicationOf(image(events.ProviderHuawei, "img-gone"), "cn-north-4")
	started := inFlight(t, store, clk, r, "job-gone", copyOpts{})
	reader.set("job-gone", notFound())

	// The provider may not know a task yet: NotFoundChecks unknown answers are tolerated.
	for check := 1; check <= core.NotFoundChecks; check++ {
		res := core.Handle(ctx, started)
		wantOutcome(t, res, fn.KindDefer, interval)
		if len(res.Emit) != 0 {
			t.Fatalf("check %d emitted %v", check, res.Emit)
		}
		clk.Advance(interval)
	}
	res := core.Handle(ctx, started)
	wantOutcome(t, res, fn.KindDone, 0)
	evs := emitted(t, res)[events.TypeReplicationFailed]
	if len(evs) != 1 {
		t.Fatalf("emitted %v, want replication.failed", res.Emit)
	}
	d, _ := events.DataAs[events.ReplicationFailed](evs[0])
	if d.Code != "TaskNotFound" || !strings.Contains(d.Message, "job-gone") || d.Hint == "" {
		t.Errorf("failed data %+v", d)
	}
	if n := len(reader.callLog()); n != core.NotFoundChecks+1 {
		t.Errorf("%d status calls, want %d", n, core.NotFoundChecks+1)
	}
}

func TestDuplicatePollChain(t *testing.T) {
	t.Parallel()
	store := memkv.NewStore()
	ctx := context.Background()
	clk := newClock()
	reader := &fakeReader{batch: 100}
	core := newCore(store, clk, events.ProviderTencent, reader)
	r := replicationOf(image(events.ProviderTencent, "img-dup"), "ap-guangzhou")
	started := inFlight(t, store, clk, r, "task-dup", copyOpts{})

	steps := []struct {
		name      string
		advance   time.Duration
		wantKind  fn.Kind
		wantCalls int
		wantDelay time.Duration
	}{
		{"first check", 0, fn.KindDefer, 1, interval},
		// A duplicate must not end the chain: it leaves the provider alone but schedules
		// the next check under the copy's key, replacing the live chain's schedule rather
		// than adding one (today's main returned Done here, and the copy was never checked
		// again when the duplicate was the live chain).
		{"duplicate right away", 0, fn.KindDefer, 1, interval},
		{"duplicate within half an interval", interval/2 - time.Second, fn.KindDefer, 1, interval/2 + time.Second},
		{"a check more than half an interval after the last", 2 * time.Second, fn.KindDefer, 2, interval},
	}
	for _, step := range steps {
		clk.Advance(step.advance)
		res := core.Handle(ctx, started)
		if res.Outcome.Kind != step.wantKind || len(res.Emit) != 0 {
			t.Fatalf("%s: outcome %v emitted %d, want %v and nothing", step.name, res.Outcome.Kind, len(res.Emit), step.wantKind)
		}
		if res.Outcome.Delay != step.wantDelay || res.Outcome.Key != poller.CheckKey(lifecycle.CopyOf(r)) {
			t.Fatalf("%s: next check in %v under key %q, want %v under %q", step.name, res.Outcome.Delay, res.Outcome.Key, step.wantDelay, poller.CheckKey(lifecycle.CopyOf(r)))
		}
		if n := len(reader.callLog()); n != step.wantCalls {
			t.Fatalf("%s: %d status calls, want %d", step.name, n, step.wantCalls)
		}
	}
}

func TestHandleBatch(t *testing.T) {
	t.Parallel()
	store := memkv.NewStore()
	ctx := context.Background()
	clk := newClock()
	reader := &fakeReader{batch: 100}
	core := newCore(store, clk, events.ProviderTencent, reader)
	img := image(events.ProviderTencent, "img-batch")

	var evs []event.Event
	region := map[string]string{} // task → region
	add := func(n int, reg string) {
		for i := range n {
			task := fmt.Sprintf("%s-%03d", reg, i)
			r := replicationOf(img, reg)
			r.VersionID = fmt.Sprintf("v%d", i) // one copy per version, all to the same region
			evs = append(evs, inFlight(t, store, clk, r, task, copyOpts{}))
			region[task] = reg
		}
	}
	add(150, "ap-guangzhou")
	add(3, "ap-beijing")
	// Interleave a foreign event and one that settles, to check results keep input order.
	wrong, err := events.New(events.TypeImagePublished, events.ImagePublished{Image: img}, events.Meta{
		ID: "pub-x", Source: "/test", Provider: img.Provider, Region: img.SourceRegion, ImageID: img.ImageID})
	if err != nil {
		t.Fatal(err)
	}
	evs = slices.Insert(evs, 7, wrong)
	reader.set("ap-beijing-001", succeeded("img-bj"))

	results := core.HandleBatch(ctx, evs)
	if len(results) != len(evs) {
		t.Fatalf("%d results for %d events", len(results), len(evs))
	}
	calls := reader.callLog()
	var sizes []int
	for _, call := range calls {
		sizes = append(sizes, len(call))
		for _, task := range call {
			if task.DestinationRegion != call[0].DestinationRegion || region[task.TaskID] != task.DestinationRegion {
				t.Errorf("call mixes regions: %s (%s) with %s", task.TaskID, task.DestinationRegion, call[0].DestinationRegion)
			}
		}
	}
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int{3, 50, 100}) {
		t.Errorf("status call sizes %v, want [3 50 100]", sizes)
	}
	for i, res := range results {
		emitted(t, res)
		switch {
		case i == 7:
			if res.Outcome.Kind != fn.KindReject {
				t.Errorf("foreign event: outcome %v, want reject", res.Outcome.Kind)
			}
		case evs[i].ID() == evs[len(evs)-2].ID(): // ap-beijing-001
			if got := emitted(t, res)[events.TypeReplicationSucceeded]; res.Outcome.Kind != fn.KindDone || len(got) != 1 {
				t.Errorf("result %d: %v %v, want the succeeded copy", i, res.Outcome.Kind, res.Emit)
			}
		default:
			if res.Outcome.Kind != fn.KindDefer || res.Outcome.Delay != interval || len(res.Emit) != 0 {
				t.Errorf("result %d: %v after %v with %d events, want defer", i, res.Outcome.Kind, res.Outcome.Delay, len(res.Emit))
			}
		}
	}
}

func TestLimitedSlot(t *testing.T) {
	t.Parallel()
	clk := newClock()
	// The semaphore's leases follow the test's clock, so a slow run cannot expire them.
	store := memkv.NewStore().WithClock(clk.Now)
	ctx := context.Background()
	reader := &fakeReader{batch: 1}
	waker := &recordingWaker{}
	cfg := config(store, clk, events.ProviderHuawei, reader)
	cfg.Slots = lifecycle.Slots{Limits: map[string]int{events.ProviderHuawei: 2}, Limiter: store, Waker: waker, Log: cfg.Log}
	core := poller.New(cfg)
	r := replicationOf(image(events.ProviderHuawei, "img-slot"), "cn-north-4")
	other := replicationOf(image(events.ProviderHuawei, "img-slot-other"), "cn-north-4")
	waiting := lifecycle.CopyOf(replicationOf(image(events.ProviderHuawei, "img-slot-waiting"), "cn-north-4"))
	slot, key := lifecycle.SlotName(lifecycle.CopyOf(r)), events.ReplicationKey(r)
	// replicate took the slots when it started the copies, with a short lease.
	for _, h := range []string{key, events.ReplicationKey(other)} {
		if got, err := store.Acquire(ctx, slot, h, 2, time.Second); err != nil || !got {
			t.Fatalf("acquire: %v %v", got, err)
		}
	}
	// A third copy waits for a slot.
	if got, err := store.Acquire(ctx, slot, waiting.Key(), 2, time.Second); err != nil || got {
		t.Fatalf("a third copy got a slot: %v %v", got, err)
	}
	started := inFlight(t, store, clk, r, "job-slot", copyOpts{})
	reader.set("job-slot", inProgress(30, "RUNNING"), succeeded("img-done"))

	wantOutcome(t, core.Handle(ctx, started), fn.KindDefer, interval)
	holders, _ := store.Holders(ctx, slot)
	if until, ok := holders[key]; !ok || until.Sub(clk.Now()) < lifecycle.SlotLease(interval)-time.Minute {
		t.Errorf("in-flight check left the slot %v, want it renewed for about %v", holders, lifecycle.SlotLease(interval))
	}

	clk.Advance(interval)
	res := core.Handle(ctx, started)
	wantOutcome(t, res, fn.KindDone, 0)
	if len(emitted(t, res)[events.TypeReplicationSucceeded]) != 1 {
		t.Fatalf("emitted %v, want succeeded", res.Emit)
	}
	holders, _ = store.Holders(ctx, slot)
	if _, ok := holders[key]; ok {
		t.Errorf("settled copy still holds its slot: %v", holders)
	}
	if _, ok := holders[events.ReplicationKey(other)]; !ok {
		t.Errorf("settling one copy released another's slot: %v", holders)
	}
	// The freed slot is handed over at once: the waiting request's schedule is woken.
	if want := []string{lifecycle.SlotWaitFunction + " " + lifecycle.WaitKey(waiting)}; !slices.Equal(waker.woken, want) {
		t.Errorf("woken %v, want %v", waker.woken, want)
	}
}

// recordingWaker records what a core wakes.
type recordingWaker struct {
	mu    sync.Mutex
	woken []string
}

func (w *recordingWaker) Wake(_ context.Context, function, key string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.woken = append(w.woken, function+" "+key)
	return nil
}

func TestRejects(t *testing.T) {
	t.Parallel()
	store := memkv.NewStore()
	clk := newClock()
	img := image(events.ProviderTencent, "img-reject")
	known := inFlight(t, store, clk, replicationOf(img, "ap-guangzhou"), "task-r", copyOpts{})
	huawei := inFlight(t, store, clk, replicationOf(image(events.ProviderHuawei, "img-hw"), "cn-north-4"), "job-r", copyOpts{})
	orphan, err := events.Derive(known, "replicate", events.TypeReplicationStarted, events.ReplicationStarted{
		Replication: replicationOf(img, "ap-beijing"), TaskID: "task-o", StartedAt: clk.Now(), Deadline: clk.Now().Add(time.Hour),
	}, img.Provider, "ap-beijing", img.ImageID, "orphan")
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := events.New(events.TypeImagePublished, events.ImagePublished{Image: img}, events.Meta{
		ID: "pub-w", Source: "/test", Provider: img.Provider, Region: img.SourceRegion, ImageID: img.ImageID})
	if err != nil {
		t.Fatal(err)
	}
	// A forged started event for a real copy: another task, an earlier deadline and a
	// one-second poll interval. Today's main polled the forged task and would have timed the
	// copy out at the forged deadline.
	forged, err := events.Derive(known, "forger", events.TypeReplicationStarted, events.ReplicationStarted{
		Replication: replicationOf(img, "ap-guangzhou"), TaskID: "task-forged", StartedAt: clk.Now(), Deadline: clk.Now().Add(-time.Hour),
		PollIntervalSeconds: 1,
	}, img.Provider, "ap-guangzhou", img.ImageID, "forged")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		in      event.Event
		mention string
	}{
		{"wrong type", wrong, events.TypeReplicationStarted},
		{"unconfigured provider", huawei, "imagerelay.yaml"},
		{"no record", orphan, "no replication record"},
		{"forged task", forged, "does not match the task"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reader := &fakeReader{batch: 100}
			res := newCore(store, clk, events.ProviderTencent, reader).Handle(context.Background(), tc.in)
			wantOutcome(t, res, fn.KindReject, 0)
			if res.Outcome.Err == nil || !strings.Contains(res.Outcome.Err.Error(), tc.mention) {
				t.Errorf("reject reason %v does not mention %q", res.Outcome.Err, tc.mention)
			}
			if len(res.Emit) != 0 {
				t.Errorf("a rejected event emitted %d events", len(res.Emit))
			}
			if len(reader.callLog()) != 0 {
				t.Error("a rejected event made a status call")
			}
		})
	}
}

// An unknown answer in the middle of a long copy is tolerated like one at the start: only
// NotFoundChecks unknown answers in a row fail the copy, however many checks came before.
func TestNotFoundCountsOnlyConsecutiveUnknownAnswers(t *testing.T) {
	t.Parallel()
	store := memkv.NewStore()
	ctx := context.Background()
	clk := newClock()
	reader := &fakeReader{batch: 100}
	core := newCore(store, clk, events.ProviderHuawei, reader)
	r := replicationOf(image(events.ProviderHuawei, "img-flaky"), "cn-north-4")
	started := inFlight(t, store, clk, r, "job-flaky", copyOpts{})
	var script []domain.CopyStatus
	for i := range 6 {
		script = append(script, inProgress(10+i, "RUNNING"))
	}
	script = append(script, notFound(), inProgress(50, "RUNNING"), notFound(), notFound(), succeeded("img-new"))
	reader.set("job-flaky", script...)
	for check := 1; check < len(script); check++ {
		res := core.Handle(ctx, started)
		wantOutcome(t, res, fn.KindDefer, interval)
		if len(emitted(t, res)[events.TypeReplicationFailed]) != 0 {
			t.Fatalf("check %d failed the copy on an isolated unknown answer", check)
		}
		clk.Advance(interval)
	}
	res := core.Handle(ctx, started)
	if len(emitted(t, res)[events.TypeReplicationSucceeded]) != 1 {
		t.Fatalf("emitted %v, want replication.succeeded", res.Emit)
	}
}

// The sweep re-arms a copy whose checks stopped (every check message lost) and leaves alone
// the copies that are checked, settled or not started yet.
func TestSweepRearmsCopiesWithoutChecks(t *testing.T) {
	t.Parallel()
	store := memkv.NewStore()
	ctx := context.Background()
	clk := newClock()
	reader := &fakeReader{batch: 100}
	core := newCore(store, clk, events.ProviderTencent, reader)
	img := image(events.ProviderTencent, "img-sweep")
	lost := replicationOf(img, "ap-guangzhou")
	inFlight(t, store, clk, lost, "task-lost", copyOpts{})
	checked := replicationOf(img, "ap-beijing")
	checkedStarted := inFlight(t, store, clk, checked, "task-checked", copyOpts{})

	if got, err := core.Sweep(ctx); err != nil || len(got) != 0 {
		t.Fatalf("sweep right after the start: %d wakeups, %v; want none", len(got), err)
	}
	// Long past three intervals and the grace; only one of the two copies was checked.
	clk.Advance(3*interval + 3*time.Minute)
	if res := core.Handle(ctx, checkedStarted); res.Outcome.Kind != fn.KindDefer {
		t.Fatalf("check: %v", res.Outcome.Kind)
	}
	got, err := core.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Key != poller.CheckKey(lifecycle.CopyOf(lost)) || got[0].TTL == 0 {
		t.Fatalf("wakeups %+v, want one for %s", got, poller.CheckKey(lifecycle.CopyOf(lost)))
	}
	// The wakeup is a check like any other: it polls the copy and goes on.
	if res := core.Handle(ctx, got[0].Event); res.Outcome.Kind != fn.KindDefer || res.Outcome.Key != poller.CheckKey(lifecycle.CopyOf(lost)) {
		t.Fatalf("the re-armed check: %v under %q", res.Outcome.Kind, res.Outcome.Key)
	}
	if r := record(t, store, lost); r.Polls != 1 {
		t.Errorf("the lost copy was polled %d times, want 1", r.Polls)
	}
}

// An event for a provider whose client could not be built names that cause (today's main said
// "not configured" for a provider whose credentials were missing).
func TestUnavailableProviderNamesTheCause(t *testing.T) {
	t.Parallel()
	store := memkv.NewStore()
	clk := newClock()
	started := inFlight(t, store, clk, replicationOf(image(events.ProviderHuawei, "img-nocreds"), "cn-north-4"), "job-n", copyOpts{})
	core := newCore(store, clk, events.ProviderTencent, &fakeReader{batch: 100})
	core.Unavailable = map[string]error{events.ProviderHuawei: errors.New("huawei: no credentials: set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK")}
	res := core.Handle(context.Background(), started)
	wantOutcome(t, res, fn.KindReject, 0)
	if msg := res.Outcome.Err.Error(); !strings.Contains(msg, "HUAWEICLOUD_SDK_AK") || strings.Contains(msg, "not configured") {
		t.Errorf("reason %q does not name the missing credentials", msg)
	}
}

// New applies every default once, to the settings the configuration leaves at zero, and keeps
// the ones it sets.
func TestNewAppliesDefaults(t *testing.T) {
	t.Parallel()
	core := poller.New(poller.Config{})
	if core.NotFoundChecks != 5 || core.SweepGrace != 2*time.Minute || core.Now == nil || core.Log == nil {
		t.Errorf("defaults: %d unknown answers, grace %v, clock set %v, log set %v", core.NotFoundChecks, core.SweepGrace, core.Now != nil, core.Log != nil)
	}
	clk := newClock()
	set := poller.New(config(memkv.NewStore(), clk, events.ProviderTencent, &fakeReader{batch: 1}))
	if set.NotFoundChecks != 2 || !set.Now().Equal(clk.Now()) {
		t.Errorf("set values overridden: %d unknown answers, clock %v", set.NotFoundChecks, set.Now())
	}
}

// reentrantReader runs another check of the same copy inside the first check's status call,
// so both read the record before either writes: two checks at the very same moment.
type reentrantReader struct {
	fakeReader
	inner func()
	ran   atomic.Bool
}

func (r *reentrantReader) CopyStatus(ctx context.Context, tasks []domain.Task) ([]domain.CopyStatus, error) {
	if !r.ran.Swap(true) {
		r.inner() // the inner check's own call comes back here and goes straight on
	}
	return r.fakeReader.CopyStatus(ctx, tasks)
}

// A check reads the record once and writes it once, after the status call. Two checks that
// meet both ask the provider, but only the first to write records its answer: the other finds
// a poll recorded since its read and stands down, so the poll is counted once and its
// progress announced once.
func TestSimultaneousChecksRecordOnePoll(t *testing.T) {
	t.Parallel()
	store := memkv.NewStore()
	ctx := context.Background()
	clk := newClock()
	reader := &reentrantReader{fakeReader: fakeReader{batch: 100}}
	core := newCore(store, clk, events.ProviderTencent, reader)
	r := replicationOf(image(events.ProviderTencent, "img-simultaneous"), "ap-guangzhou")
	started := inFlight(t, store, clk, r, "task-sim", copyOpts{})
	reader.set("task-sim", inProgress(30, "SYNCING"))
	var inner fn.Result
	reader.inner = func() { inner = core.Handle(ctx, started) }

	outer := core.Handle(ctx, started)
	wantOutcome(t, inner, fn.KindDefer, interval)
	wantOutcome(t, outer, fn.KindDefer, interval)
	if got := len(emitted(t, inner)[events.TypeReplicationProgressed]) + len(emitted(t, outer)[events.TypeReplicationProgressed]); got != 1 {
		t.Errorf("progressed announced %d times, want once", got)
	}
	if rec := record(t, store, r); rec.Polls != 1 || rec.Percent != 30 || !rec.LastPolledAt.Equal(clk.Now()) {
		t.Errorf("record: %d polls at %d%%, last polled %v; want 1 poll at 30%%, now", rec.Polls, rec.Percent, rec.LastPolledAt)
	}
}

// A plan stored by an earlier version does not record its settled regions: the poller still
// announces replication.completed once its last region settles, judged from the records
// (including a region settled before the upgrade, which the plan never heard of).
func TestCompletedForAPlanStoredByAnEarlierVersion(t *testing.T) {
	t.Parallel()
	store := memkv.NewStore()
	ctx := context.Background()
	clk := newClock()
	reader := &fakeReader{batch: 100}
	core := newCore(store, clk, events.ProviderTencent, reader)
	img := image(events.ProviderTencent, "img-legacy-plan")
	regions := []string{"ap-beijing", "ap-guangzhou"}
	raw, err := json.Marshal(domain.Plan{Image: domain.Image(img), Regions: regions, CorrelationID: "pub-img-legacy-plan"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Bucket().Create(ctx, state.PlanKey(domain.Image(img)), raw); err != nil {
		t.Fatal(err)
	}
	first := inFlight(t, store, clk, replicationOf(img, regions[0]), "task-1", copyOpts{})
	second := inFlight(t, store, clk, replicationOf(img, regions[1]), "task-2", copyOpts{})
	reader.set("task-1", succeeded("img-bj"))
	reader.set("task-2", succeeded("img-gz"))
	if res := core.Handle(ctx, first); len(emitted(t, res)[events.TypeReplicationCompleted]) != 0 {
		t.Fatalf("first region: emitted %v, want no completion yet", res.Emit)
	}
	res := core.Handle(ctx, second)
	got := emitted(t, res)[events.TypeReplicationCompleted]
	if len(got) != 1 {
		t.Fatalf("last region: emitted %v, want replication.completed", res.Emit)
	}
	if d, _ := events.DataAs[events.ReplicationCompleted](got[0]); d.Succeeded != 2 || len(d.Regions) != 2 || d.Regions[0].DestinationImageID != "img-bj" {
		t.Errorf("completed = %+v", d)
	}
}

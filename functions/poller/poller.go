// Package poller is the core of the poller function: it follows in-flight copies without a
// sleeping function. Each replication.started event is checked against the provider and,
// while the copy is in flight, deferred back onto the bus for the next check; status calls
// for copies that are due together are batched per provider, account and region.
package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/lifecycle"
	"github.com/imagerelay/imagerelay/shared/core/fn"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// Name is the function's name on the bus.
const Name = "poller"

// Config is what the poller core is built from; [New] sets the zero fields to their defaults.
type Config struct {
	// Readers holds the status reader of each configured provider.
	Readers map[string]StatusReader
	// Unavailable holds why each provider without a reader could not be built (missing
	// credentials), for the dead-letter reason.
	Unavailable map[string]error
	// Store keeps the replication records the poller advances and the plans it completes.
	Store Records
	// Slots are the copy slots of providers that limit copies in flight (renewed at each
	// check, released when the copy settles).
	Slots lifecycle.Slots
	// NotFoundChecks is how many checks a task may be unknown to the provider before the
	// copy is reported failed (default 5).
	NotFoundChecks int
	// SweepGrace is how long past three poll intervals a copy may go unchecked before
	// [Core.Sweep] schedules a check for it (default 2 minutes: a scheduled serverless drain
	// runs once a minute).
	SweepGrace time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives the core's logs (default slog.Default()).
	Log *slog.Logger
}

// Core is the poller function. Build it with [New], which applies the defaults once, so the
// core reads its settings as they are. It is safe for concurrent use; its settings must not
// change once it handles events.
type Core struct {
	Config
}

// New returns the poller core for cfg. It is the one place where the core's defaults are
// applied, to the settings cfg leaves at zero.
func New(cfg Config) *Core {
	if cfg.NotFoundChecks <= 0 {
		cfg.NotFoundChecks = 5
	}
	if cfg.SweepGrace <= 0 {
		cfg.SweepGrace = 2 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Core{Config: cfg}
}

// emit builds the poller's lifecycle events; their ids derive from the copy, so a redelivery
// emits the same events again.
var emit = lifecycle.Emitter{Function: Name}

// Handle checks one in-flight copy.
func (c *Core) Handle(ctx context.Context, e event.Event) fn.Result {
	return c.HandleBatch(ctx, []event.Event{e})[0]
}

// item is one event on its way through a batch.
type item struct {
	ev   event.Event
	data *events.ReplicationStarted
	copy domain.Copy // data's copy, in the domain's terms
	rec  domain.Record
	// rev is the revision rec was read at: the check writes the record once, after the
	// status call, with compare-and-swap at that revision.
	rev uint64
	// interval is the record's poll interval: the time to the next check.
	interval time.Duration
}

// task is what the poller asks a provider about the item's copy: the domain's view of the
// event, mapped here, at the core's edge.
func (it item) task() domain.Task {
	return domain.Task{Copy: it.copy, TaskID: it.data.TaskID, DestinationImageID: it.data.DestinationImageID}
}

// HandleBatch checks several copies, with one status call per provider/account/region group
// of up to BatchSize tasks. The calls of different groups (and of the chunks of a group
// larger than its provider's BatchSize) run side by side, at most statusParallel at once:
// each provider's rate limiter paces its own calls, and a slow region no longer holds up the
// others.
func (c *Core) HandleBatch(ctx context.Context, evs []event.Event) []fn.Result {
	results := make([]fn.Result, len(evs))
	groups := map[string][]int{}
	var order []string
	items := make([]item, len(evs))
	keys := make([]string, len(evs))
	for i, e := range evs {
		res, it, ok := c.prepare(ctx, e)
		if it.data != nil {
			keys[i] = CheckKey(it.copy)
		}
		if !ok {
			results[i] = res
			continue
		}
		items[i] = it
		g := it.copy.Provider + "/" + it.copy.Account + "/" + it.copy.DestinationRegion
		if _, seen := groups[g]; !seen {
			order = append(order, g)
		}
		groups[g] = append(groups[g], i)
	}
	var chunks [][]int
	for _, g := range order {
		idx := groups[g]
		size := max(c.Readers[items[idx[0]].copy.Provider].BatchSize(), 1)
		for start := 0; start < len(idx); start += size {
			chunks = append(chunks, idx[start:min(start+size, len(idx))])
		}
	}
	sem := make(chan struct{}, statusParallel)
	var wg sync.WaitGroup
	for _, chunk := range chunks {
		if len(chunks) == 1 {
			c.checkChunk(ctx, items, chunk, results)
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c.checkChunk(ctx, items, chunk, results)
		})
	}
	wg.Wait()
	// Every check of one copy, whichever event or delivery it came from, is scheduled under
	// the copy's key: the schedules replace each other, so one chain of checks remains.
	for i := range results {
		if keys[i] != "" {
			results[i].Outcome.Key, results[i].Outcome.TTL = keys[i], CheckTTL
		}
	}
	return results
}

// statusParallel bounds the status calls one batch makes at once.
const statusParallel = 8

// checkChunk makes one status call for the items at chunk (one provider, account and region)
// and writes each item's result. It runs on its own goroutine, where a panic would end the
// process rather than reach the runtime's recovery: a panic becomes a Retry of the chunk's
// events instead, as fn.SafeHandleBatch would make it.
func (c *Core) checkChunk(ctx context.Context, items []item, chunk []int, results []fn.Result) {
	defer func() {
		if p := recover(); p != nil {
			c.Log.Error("status check panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			for _, i := range chunk {
				results[i] = fn.Retry(0, fmt.Errorf("poller: status check panicked: %v", p))
			}
		}
	}()
	provider := items[chunk[0]].copy.Provider
	tasks := make([]domain.Task, len(chunk))
	for j, i := range chunk {
		tasks[j] = items[i].task()
	}
	statuses, err := c.Readers[provider].CopyStatus(ctx, tasks)
	if err == nil && len(statuses) != len(tasks) {
		err = fmt.Errorf("%s returned %d statuses for %d tasks", provider, len(statuses), len(tasks))
	}
	for j, i := range chunk {
		if err != nil {
			results[i] = c.statusFailed(ctx, items[i], domain.AsProviderError(provider, "CopyStatus", err))
			continue
		}
		results[i] = c.apply(ctx, items[i], statuses[j])
	}
}

// onlyReplicate ends the reason a started event without a matching record is rejected.
const onlyReplicate = "replication.started is emitted by imagerelay's replicate only"

// CheckKey is the schedule key of a copy's next check. One key per copy is what keeps its
// checks a single chain however often the check is delivered.
func CheckKey(c domain.Copy) string { return "check:" + c.Key() }

// CheckTTL is how long a fired check stays in the stream. Checks are the most frequent
// messages imagerelay writes; one lost to the TTL (workers down for a day) is re-armed by
// [Core.Sweep].
const CheckTTL = 24 * time.Hour

// prepare decodes an event and decides whether its copy needs a status call now. The record,
// not the event, is the truth about the copy: the task, deadline and poll interval come from
// it, so a forged or outdated replication.started cannot redirect or hurry the checks. The
// item it returns carries the event's data when the outcome is to be scheduled under the
// copy's [CheckKey].
func (c *Core) prepare(ctx context.Context, e event.Event) (fn.Result, item, bool) {
	d, res, ok := fn.Decode[events.ReplicationStarted](Name, events.TypeReplicationStarted, e)
	if !ok {
		return res, item{}, false
	}
	it := item{ev: e, data: d, copy: lifecycle.CopyOf(d.Replication)}
	if _, err := domain.Pick(c.Readers, d.Provider, c.Unavailable); err != nil {
		return fn.Reject(err), it, false
	}
	// One read: the check writes the record once, after the status call, from this
	// revision (see apply and settle).
	rec, rev, err := c.Store.RecordRevision(ctx, it.copy)
	if errors.Is(err, domain.ErrNotFound) {
		return fn.Reject(fmt.Errorf("no replication record for %s; %s", events.ReplicationKey(d.Replication), onlyReplicate)), item{}, false
	}
	if err != nil {
		return fn.Retry(0, err), it, false
	}
	if rec.State.Settled() {
		// Settled by an earlier delivery that may have stopped before its events were stored:
		// emit them again (same ids, so the bus keeps one of each).
		return c.announce(ctx, it, rec), item{}, false
	}
	if rec.State != domain.StateInProgress {
		return fn.Reject(fmt.Errorf("taskId %q cannot be followed: replication %s is %s, not in progress; %s",
			d.TaskID, rec.Key, rec.State, onlyReplicate)), item{}, false
	}
	if rec.TaskID != d.TaskID {
		return fn.Reject(fmt.Errorf("taskId %q does not match the task %q recorded for %s; the event is forged or from an earlier attempt", d.TaskID, rec.TaskID, rec.Key)), item{}, false
	}
	d.DestinationImageID, d.StartedAt, d.Deadline, d.PollIntervalSeconds = rec.DestinationImageID, rec.StartedAt, rec.Deadline, rec.PollIntervalSeconds
	it.rec, it.rev, it.interval = rec, rev, lifecycle.PollInterval(rec.PollIntervalSeconds)
	// Two checks of one copy can meet (a redelivered check, a sweeper's re-arm): the one
	// that finds a check less than half an interval old leaves the provider alone and only
	// makes sure the next check is scheduled. Checks that run at the very same moment both
	// ask; the second to write finds the first's check recorded and stands down (see
	// polled).
	if now := c.Now(); !rec.LastPolledAt.IsZero() && now.Sub(rec.LastPolledAt) < it.interval/2 {
		return fn.Defer(max(rec.LastPolledAt.Add(it.interval).Sub(now), 0)), it, false
	}
	c.Slots.Renew(ctx, it.copy, it.interval)
	return fn.Result{}, it, true
}

// errPolledMeanwhile says that another check of the copy recorded its poll after this check
// read the record: this one stands down.
var errPolledMeanwhile = errors.New("the copy was checked meanwhile")

// polled counts this check in r (the poll guard's time and the poll count), unless another
// check recorded one since it.rec was read.
func (c *Core) polled(it item, r *domain.Record) error {
	if !r.LastPolledAt.Equal(it.rec.LastPolledAt) {
		return errPolledMeanwhile
	}
	r.LastPolledAt, r.Polls = c.Now(), r.Polls+1
	return nil
}

// apply records a status and decides what comes next.
func (c *Core) apply(ctx context.Context, it item, st domain.CopyStatus) fn.Result {
	switch st.Phase {
	case domain.PhaseSucceeded:
		return c.settle(ctx, it, domain.StateSucceeded, st, "")
	case domain.PhaseFailed:
		return c.settle(ctx, it, domain.StateFailed, st, "")
	}
	// The task may be unknown for NotFoundChecks checks in a row (a provider can take a
	// moment to list a new task); the check after that gives up.
	if notFound := it.rec.NotFound + 1; st.Phase == domain.PhaseNotFound && notFound > c.NotFoundChecks {
		st.Code, st.Message = "TaskNotFound", fmt.Sprintf("%s has no trace of task %s after %d checks", it.data.Provider, it.data.TaskID, notFound)
		return c.settle(ctx, it, domain.StateFailed, st, "check the copy in the provider's console; it may have been deleted")
	}
	if c.Now().After(it.data.Deadline) && !it.data.Deadline.IsZero() {
		st.Code = "Timeout"
		st.Message = fmt.Sprintf("copy still %s at %d%% after %s", st.ProviderStatus, st.Percent, c.Now().Sub(it.data.StartedAt).Round(time.Second))
		return c.settle(ctx, it, domain.StateFailed, st, "the copy was not cancelled; raise replication.timeout if copies of this size take longer")
	}
	progressed := st.Phase == domain.PhaseInProgress && (st.Percent != it.rec.Percent || st.ProviderStatus != it.rec.ProviderStatus)
	// One write records the check, the unknown-task count and the progress.
	rec, _, err := c.Store.UpdateRecordFrom(ctx, it.rec, it.rev, func(r *domain.Record) error {
		if r.State != domain.StateInProgress || r.TaskID != it.rec.TaskID {
			return domain.ErrNoChange // settled meanwhile, by another check: it announces
		}
		if err := c.polled(it, r); err != nil {
			return err
		}
		if st.Phase == domain.PhaseNotFound {
			r.NotFound++
		} else {
			r.NotFound = 0
		}
		if progressed {
			r.Percent, r.ProviderStatus, r.UpdatedAt = st.Percent, st.ProviderStatus, c.Now()
		}
		return nil
	})
	switch {
	case errors.Is(err, errPolledMeanwhile):
		return fn.Defer(it.interval)
	case err != nil:
		return fn.Retry(0, err)
	}
	var out []event.Event
	if progressed && rec.State == domain.StateInProgress && rec.Percent == st.Percent && rec.ProviderStatus == st.ProviderStatus {
		ev, err := emit.Progressed(it.ev, rec)
		if err != nil {
			return fn.Reject(err)
		}
		out = append(out, ev)
	}
	return fn.Defer(it.interval, out...)
}

// statusFailed handles a failed status call: terminal errors (wrong credentials, access
// denied) end the copy, anything else is checked again at the next interval until the
// deadline.
func (c *Core) statusFailed(ctx context.Context, it item, pe *domain.ProviderError) fn.Result {
	if pe.Class == domain.Terminal {
		return c.settle(ctx, it, domain.StateFailed, domain.CopyStatus{Code: pe.Code, Message: pe.Message}, pe.Hint)
	}
	c.Log.Warn("status check failed; will check again", "event_id", it.ev.ID(), "correlation_id", events.CorrelationID(it.ev), "error", pe.Error())
	return c.apply(ctx, it, domain.CopyStatus{Phase: domain.PhaseInProgress, Percent: it.rec.Percent, ProviderStatus: it.rec.ProviderStatus})
}

// settle records the end of a copy and emits succeeded or failed, and completed when it was
// the last region of its image.
func (c *Core) settle(ctx context.Context, it item, to domain.State, st domain.CopyStatus, hint string) fn.Result {
	// One write, from the revision prepare read: the settlement and the check together.
	rec, _, err := c.Store.UpdateRecordFrom(ctx, it.rec, it.rev, func(r *domain.Record) error {
		if r.State.Settled() {
			return domain.ErrNoChange
		}
		if r.LastPolledAt.Equal(it.rec.LastPolledAt) {
			r.Polls++
		}
		t := c.Now()
		r.LastPolledAt = t
		r.State, r.FinishedAt, r.UpdatedAt = to, t, t
		if st.DestinationImageID != "" {
			r.DestinationImageID = st.DestinationImageID
		}
		if to == domain.StateSucceeded {
			r.Percent = 100
		} else {
			r.Code, r.Message, r.Hint = st.Code, st.Message, hint
			if r.Code == "" {
				r.Code = "TaskFailed"
			}
		}
		if st.ProviderStatus != "" {
			r.ProviderStatus = st.ProviderStatus
		}
		return nil
	})
	if err != nil {
		return fn.Retry(0, err)
	}
	c.Slots.Release(ctx, it.copy)
	return c.announce(ctx, it, rec)
}

// announce emits the events of a settled copy: succeeded or failed, and completed when every
// region of the image has settled.
func (c *Core) announce(ctx context.Context, it item, rec domain.Record) fn.Result {
	var (
		ev  event.Event
		err error
	)
	if rec.State == domain.StateSucceeded {
		ev, err = emit.Succeeded(it.ev, rec)
	} else {
		ev, err = emit.Failed(it.ev, rec, "")
	}
	if err != nil {
		return fn.Reject(err)
	}
	out := []event.Event{ev}
	done, ok, err := emit.Completed(ctx, c.Store, it.ev, it.copy.Image, rec)
	if err != nil {
		return fn.Retry(0, err, out...)
	}
	if ok {
		out = append(out, done)
	}
	return fn.Done(out...)
}

// Sweep returns a check for every copy in flight whose checks have stopped: no check for three
// poll intervals plus SweepGrace. Nothing in the design loses a check, but a message can
// still be lost outside it (expired by its TTL while every worker was down, purged by hand,
// a crash of every NATS replica before fsync); the sweep makes sure such a copy is still
// checked, and so reaches succeeded, failed or Timeout by its deadline. A wakeup replaces the
// copy's pending check, so a sweep never forks a chain.
func (c *Core) Sweep(ctx context.Context) ([]fn.Wakeup, error) {
	recs, err := c.Store.Records(ctx)
	if err != nil {
		return nil, err
	}
	var out []fn.Wakeup
	for _, r := range recs {
		if r.State != domain.StateInProgress {
			continue
		}
		last := r.LastPolledAt
		if last.IsZero() {
			last = r.StartedAt
		}
		if c.Now().Sub(last) < 3*lifecycle.PollInterval(r.PollIntervalSeconds)+c.SweepGrace {
			continue
		}
		cause := event.New()
		cause.SetID(r.CorrelationID)
		cause.SetSource(events.SourceOf(Name))
		ev, err := emit.Started(cause, r)
		if err != nil {
			return out, err
		}
		c.Log.Warn("a copy in flight had no check scheduled; checking it again", "key", r.Key, "correlation_id", r.CorrelationID,
			"last_check", last)
		out = append(out, fn.Wakeup{Event: ev, Key: CheckKey(r.Copy), TTL: CheckTTL})
	}
	return out, nil
}

// Package replicate is the core of the replicate function: it makes exactly one provider call
// per (image, version, destination region) however often a replication.requested event is
// delivered, and reports replication.started or replication.failed.
//
// The claim is a record in the KV store: created on first sight, then moved to "starting"
// with compare-and-swap by the one worker that calls the provider. A worker that crashes
// after the claim leaves a "starting" record; after StartLease the next delivery first looks
// for the copy at the provider before it calls again.
package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/internal/lifecycle"
	"github.com/imagerelay/imagerelay/shared/fn"
	"github.com/imagerelay/imagerelay/shared/replication"
	"github.com/imagerelay/imagerelay/shared/state"
)

// Name is the function's name on the bus.
const Name = "replicate"

// Core is the replicate function. It is safe for concurrent use.
type Core struct {
	// Copiers holds the copier of each configured provider.
	Copiers map[string]Copier
	Store   *state.Store
	// StartLease is how long a "starting" claim is trusted before it is taken for a crash
	// (default 2 minutes; keep it above the longest provider call).
	StartLease time.Duration
	// SlotWait is how long a request waits before asking again for a concurrency slot
	// (default 5 seconds).
	SlotWait time.Duration
	// MaxStartAttempts bounds retryable failures of the start call before the replication is
	// reported failed (default 20).
	MaxStartAttempts int
	// Now is the clock (default time.Now).
	Now func() time.Time
	Log *slog.Logger
}

func (c *Core) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Core) emitter() lifecycle.Emitter { return lifecycle.Emitter{Function: Name} }

// Handle starts (or recognises as started) one replication.
func (c *Core) Handle(ctx context.Context, e event.Event) fn.Result {
	if e.Type() != events.TypeReplicationRequested {
		return fn.RejectWith(fmt.Errorf("replicate handles %s, not %s", events.TypeReplicationRequested, e.Type()))
	}
	req, err := events.DataAs[events.ReplicationRequested](e)
	if err != nil {
		return fn.RejectWith(err)
	}
	copier, ok := c.Copiers[req.Provider]
	if !ok {
		return fn.RejectWith(fmt.Errorf("provider %q is not configured; add it under providers: in imagerelay.yaml and publish the request again", req.Provider))
	}
	rec, err := c.ensureRecord(ctx, e, req, req.DestinationRegion)
	if err != nil {
		return fn.Retry(0, err)
	}
	switch {
	case rec.State == replication.StateInProgress:
		// Started before (by this request or by a multi-region call for a sibling region):
		// say so again; the event id is the same, so the bus keeps one.
		return c.ok(e, rec)
	case rec.State == replication.StateFailed && rec.StartedAt.IsZero():
		// Failed at the start call by an earlier delivery that may have stopped before its
		// events were stored: announce it again (same ids, so the bus keeps one of each).
		return c.announceFailed(ctx, e, req, []replication.Record{rec}, "")
	case rec.State.Settled():
		// Settled by the poller, which announces it.
		return fn.OK()
	case rec.State == replication.StateStarting && !c.stale(rec):
		// Another worker is calling the provider right now; look again shortly.
		return fn.DeferFor(c.startLease() / 4)
	case rec.State == replication.StateStarting:
		// The worker that claimed it stopped mid-call. The copy may exist: look before calling.
		if res, found := c.recover(ctx, e, copier, req, rec); found {
			return res
		}
	}
	return c.start(ctx, e, copier, req)
}

// ensureRecord creates the record of one region if it does not exist and returns it.
func (c *Core) ensureRecord(ctx context.Context, e event.Event, req *events.ReplicationRequested, region string) (replication.Record, error) {
	r := req.Replication
	r.DestinationRegion = region
	t := c.now()
	timeout := time.Duration(req.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = 6 * time.Hour
	}
	rec := replication.Record{
		Key:                 events.ReplicationKey(r),
		Replication:         r,
		State:               replication.StateRequested,
		CorrelationID:       events.CorrelationID(e),
		RequestedAt:         t,
		UpdatedAt:           t,
		Deadline:            t.Add(timeout),
		PollIntervalSeconds: req.PollIntervalSeconds,
		OSType:              req.OSType,
		Tags:                req.Tags,
	}
	if err := c.Store.CreateRecord(ctx, rec); err != nil && !errors.Is(err, state.ErrExists) {
		return rec, err
	}
	got, _, err := c.Store.Record(ctx, r)
	return got, err
}

// recover looks for a copy an interrupted attempt may have started.
func (c *Core) recover(ctx context.Context, e event.Event, copier Copier, req *events.ReplicationRequested, rec replication.Record) (fn.Result, bool) {
	h, found, err := copier.FindCopy(ctx, c.copyRequest(req, []string{req.DestinationRegion}))
	if err != nil {
		pe := replication.AsProviderError(req.Provider, "FindCopy", err)
		return fn.Retry(pe.RetryAfter, pe), true
	}
	if !found {
		return fn.Result{}, false
	}
	started, err := c.markStarted(ctx, rec.Replication, h)
	if err != nil {
		return fn.Retry(0, err), true
	}
	return c.ok(e, started), true
}

// start claims the regions to start, takes a concurrency slot where the provider needs one,
// calls the provider once and records what happened.
func (c *Core) start(ctx context.Context, e event.Event, copier Copier, req *events.ReplicationRequested) fn.Result {
	regions := []string{req.DestinationRegion}
	if mc, ok := copier.(MultiRegionCopier); ok && mc.MultiRegion() {
		// One call for every region of the image that nobody has started yet. Regions are
		// claimed in sorted order by every worker (lock ordering), so when requests for
		// sibling regions race, the first to claim the lowest free region takes them all
		// and the others back off, instead of each starting a part.
		for _, r := range req.Regions {
			if !slices.Contains(regions, r) {
				regions = append(regions, r)
			}
		}
		slices.Sort(regions)
	}
	poll := time.Duration(max(req.PollIntervalSeconds, 1)) * time.Second
	if lc, ok := copier.(LimitedCopier); ok {
		got, err := c.Store.Acquire(ctx, lifecycle.SlotName(req.Replication), events.ReplicationKey(req.Replication), lc.MaxInFlight(), lifecycle.SlotLease(poll))
		if err != nil {
			return fn.Retry(0, err)
		}
		if !got {
			_, _ = c.Store.UpdateRecord(ctx, req.Replication, func(r *replication.Record) error {
				// A stale claim gets here only after FindCopy found no copy, so it waits too;
				// left "starting", every later delivery would look at the provider again.
				if r.State != replication.StateRequested && !c.stale(*r) {
					return state.ErrNoChange
				}
				r.State, r.Message, r.UpdatedAt = replication.StateWaiting, fmt.Sprintf("waiting for one of %d copy slots", lc.MaxInFlight()), c.now()
				return nil
			})
			return fn.DeferFor(c.slotWait())
		}
	}
	var claimed []string
	for _, region := range regions {
		if region != req.DestinationRegion {
			if _, err := c.ensureRecord(ctx, e, req, region); err != nil {
				c.unclaim(ctx, req, claimed)
				return fn.Retry(0, err)
			}
		}
		won, busy, err := c.claim(ctx, req, region)
		if err != nil {
			c.unclaim(ctx, req, claimed)
			return fn.Retry(0, err)
		}
		switch {
		case won:
			claimed = append(claimed, region)
		case busy && len(claimed) == 0:
			// Another worker is starting this image's regions (ours too, if it was free);
			// it reports them. Look again shortly.
			return fn.DeferFor(c.startLease() / 4)
		}
		// Otherwise the region is already in flight or settled: nothing to start there.
	}
	if len(claimed) == 0 {
		rec, _, err := c.Store.Record(ctx, req.Replication)
		switch {
		case err != nil:
			return fn.Retry(0, err)
		case rec.State == replication.StateInProgress:
			return c.ok(e, rec)
		case rec.State.Settled():
			return fn.OK()
		}
		return fn.DeferFor(c.startLease() / 4)
	}
	handles, err := copier.StartCopy(ctx, c.copyRequest(req, claimed))
	if err != nil {
		return c.startFailed(ctx, e, req, claimed, replication.AsProviderError(req.Provider, "StartCopy", err))
	}
	var out []event.Event
	for _, h := range handles {
		if !slices.Contains(claimed, h.Region) {
			continue
		}
		r := req.Replication
		r.DestinationRegion = h.Region
		rec, err := c.markStarted(ctx, r, h)
		if err != nil {
			return fn.Retry(0, err)
		}
		ev, err := c.emitter().Started(e, rec)
		if err != nil {
			return fn.RejectWith(err)
		}
		out = append(out, ev)
		claimed = slices.DeleteFunc(claimed, func(s string) bool { return s == h.Region })
	}
	// Regions the provider did not answer for go back to requested; their own requests retry.
	c.unclaim(ctx, req, claimed)
	if slices.Contains(claimed, req.DestinationRegion) {
		return fn.Retry(0, fmt.Errorf("%s accepted the copy but returned no handle for %s", req.Provider, req.DestinationRegion), out...)
	}
	return fn.OK(out...)
}

// claim moves a region's record to starting if nobody else holds it. busy reports that
// another worker holds a fresh claim on it.
func (c *Core) claim(ctx context.Context, req *events.ReplicationRequested, region string) (won, busy bool, err error) {
	r := req.Replication
	r.DestinationRegion = region
	_, err = c.Store.UpdateRecord(ctx, r, func(rec *replication.Record) error {
		won, busy = false, rec.State == replication.StateStarting && !c.stale(*rec)
		if rec.State != replication.StateRequested && rec.State != replication.StateWaiting && !c.stale(*rec) {
			return state.ErrNoChange
		}
		t := c.now()
		rec.State, rec.StartingSince, rec.UpdatedAt, rec.Message = replication.StateStarting, t, t, ""
		rec.StartCalls++
		won = true
		return nil
	})
	return won, busy, err
}

// stale reports whether rec is a "starting" claim older than the start lease: its worker is
// taken to have stopped mid-call.
func (c *Core) stale(rec replication.Record) bool {
	return rec.State == replication.StateStarting && c.now().Sub(rec.StartingSince) >= c.startLease()
}

// unclaim returns claimed regions to requested after a retryable failure.
func (c *Core) unclaim(ctx context.Context, req *events.ReplicationRequested, regions []string) {
	for _, region := range regions {
		r := req.Replication
		r.DestinationRegion = region
		_, _ = c.Store.UpdateRecord(ctx, r, func(rec *replication.Record) error {
			if rec.State != replication.StateStarting {
				return state.ErrNoChange
			}
			rec.State, rec.UpdatedAt = replication.StateRequested, c.now()
			return nil
		})
	}
}

func (c *Core) markStarted(ctx context.Context, r events.Replication, h replication.CopyHandle) (replication.Record, error) {
	return c.Store.UpdateRecord(ctx, r, func(rec *replication.Record) error {
		if rec.State == replication.StateInProgress || rec.State.Settled() {
			return state.ErrNoChange
		}
		t := c.now()
		rec.State, rec.TaskID, rec.DestinationImageID = replication.StateInProgress, h.TaskID, h.DestinationImageID
		rec.StartedAt, rec.UpdatedAt, rec.Code, rec.Message, rec.Hint = t, t, "", "", ""
		if h.AlreadyPresent {
			rec.ProviderStatus = "already present"
		}
		return nil
	})
}

// startFailed records a failed start call: retryable errors come back later (and are given up
// after MaxStartAttempts), terminal ones end the replication with replication.failed.
func (c *Core) startFailed(ctx context.Context, e event.Event, req *events.ReplicationRequested, claimed []string, pe *replication.ProviderError) fn.Result {
	if pe.Class == replication.Retryable {
		rec, _, err := c.Store.Record(ctx, req.Replication)
		if err != nil {
			// Without the attempt count we cannot tell whether to give up: try again rather
			// than fail a copy for a store hiccup.
			c.unclaim(ctx, req, claimed)
			c.releaseSlot(ctx, req.Replication)
			return fn.Retry(0, err)
		}
		if rec.StartCalls < c.maxStartAttempts() {
			c.unclaim(ctx, req, claimed)
			c.releaseSlot(ctx, req.Replication)
			c.log().Info("provider asked to retry later", "event_id", e.ID(), "correlation_id", events.CorrelationID(e), "code", pe.Code, "attempt", rec.StartCalls)
			// Waiting out throttling is deferral, not failure: it must not use up deliveries.
			return fn.DeferFor(max(pe.RetryAfter, backoff(rec.StartCalls)))
		}
		// A copy, so that a provider error value reused across calls is not edited.
		given := *pe
		given.Hint = fmt.Sprintf("gave up after %d attempts; %s", c.maxStartAttempts(), pe.Hint)
		pe = &given
	}
	var recs []replication.Record
	for _, region := range claimed {
		r := req.Replication
		r.DestinationRegion = region
		rec, err := c.Store.UpdateRecord(ctx, r, func(rec *replication.Record) error {
			t := c.now()
			rec.State, rec.Code, rec.Message, rec.Hint, rec.FinishedAt, rec.UpdatedAt = replication.StateFailed, pe.Code, pe.Message, pe.Hint, t, t
			return nil
		})
		if err != nil {
			return fn.Retry(0, err)
		}
		recs = append(recs, rec)
	}
	c.releaseSlot(ctx, req.Replication)
	return c.announceFailed(ctx, e, req, recs, pe.RequestID)
}

// announceFailed emits replication.failed for records that failed at the start call, and
// replication.completed when that settled the image's last planned region.
func (c *Core) announceFailed(ctx context.Context, e event.Event, req *events.ReplicationRequested, recs []replication.Record, requestID string) fn.Result {
	var out []event.Event
	for _, rec := range recs {
		ev, err := c.emitter().Failed(e, rec, requestID)
		if err != nil {
			return fn.RejectWith(err)
		}
		out = append(out, ev)
	}
	done, ok, err := c.emitter().Completed(ctx, c.Store, e, req.Image)
	if err != nil {
		return fn.Retry(0, err, out...)
	}
	if ok {
		out = append(out, done)
	}
	return fn.OK(out...)
}

func (c *Core) releaseSlot(ctx context.Context, r events.Replication) {
	if _, ok := c.Copiers[r.Provider].(LimitedCopier); ok {
		_ = c.Store.Release(ctx, lifecycle.SlotName(r), events.ReplicationKey(r))
	}
}

func (c *Core) ok(e event.Event, rec replication.Record) fn.Result {
	ev, err := c.emitter().Started(e, rec)
	if err != nil {
		return fn.RejectWith(err)
	}
	return fn.OK(ev)
}

func (c *Core) copyRequest(req *events.ReplicationRequested, regions []string) replication.CopyRequest {
	// The regions are copied: start keeps editing its claimed list after the call, and the
	// provider must not see its request change under it.
	return replication.CopyRequest{ReplicationRequested: *req, DestinationRegions: slices.Clone(regions), Name: replication.CopyName(req.Replication)}
}

func (c *Core) startLease() time.Duration {
	if c.StartLease > 0 {
		return c.StartLease
	}
	return 2 * time.Minute
}

func (c *Core) slotWait() time.Duration {
	if c.SlotWait > 0 {
		return c.SlotWait
	}
	return 5 * time.Second
}

func (c *Core) maxStartAttempts() int {
	if c.MaxStartAttempts > 0 {
		return c.MaxStartAttempts
	}
	return 20
}

func (c *Core) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}

// backoff grows the wait after each retryable failure, from 500 ms to one minute.
func backoff(attempt int) time.Duration {
	d := 500 * time.Millisecond << min(max(attempt-1, 0), 7)
	return min(d, time.Minute)
}

// Package replicate is the core of the replicate function: it makes exactly one provider call
// per (image, version, destination region) however often a replication.requested event is
// delivered, and reports replication.started or replication.failed.
//
// The claim is a record in the KV store: created on first sight, then moved to "starting"
// with compare-and-swap by the one worker that calls the provider. A copy started alone
// that takes no concurrency slot skips the first step: its record is created already
// "starting" (a create is as exclusive as a compare-and-swap), and the start is recorded
// from the revision that create returned. A worker that crashes
// after the claim leaves a "starting" record; after StartLease the next delivery first looks
// for the copy at the provider before it calls again. A start call that ends without a clear
// answer (a timeout, a dropped connection, a 5xx) is treated the same way: the record keeps
// the time of that ambiguous answer, and the next attempt looks for the copy first.
//
// Only fanout emits replication.requested: every request is checked against the plan fanout
// stored for the image, and one that the plan does not cover is refused before any call.
package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/lifecycle"
	"github.com/imagerelay/imagerelay/shared/core/fn"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// Name is the function's name on the bus.
const Name = "replicate"

// Config is what the replicate core is built from; [New] sets the zero fields to their
// defaults.
type Config struct {
	// Copiers holds the copier of each configured provider.
	Copiers map[string]Copier
	// Unavailable holds why each provider without a copier could not be built (missing
	// credentials), for the dead-letter reason.
	Unavailable map[string]error
	// Slots are the copy slots of providers that limit copies in flight (Huawei): a start
	// takes one, and a start that fails for good releases it.
	Slots lifecycle.Slots
	// Store keeps the replication records and reads the plans fanout stored.
	Store Records
	// StartLease is how long a "starting" claim is trusted before it is taken for a crash
	// (default 2 minutes; keep it above the longest provider call).
	StartLease time.Duration
	// SlotWait is how long a request first waits before asking again for a concurrency slot
	// (default 5 seconds); the wait doubles each time the slots are still taken, up to
	// MaxSlotWait (default one minute, never below SlotWait), so waiting copies do not flood
	// the bus.
	SlotWait    time.Duration
	MaxSlotWait time.Duration
	// MaxStartAttempts bounds retryable failures of the start call before the replication is
	// reported failed (default 20).
	MaxStartAttempts int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives the core's logs (default slog.Default()).
	Log *slog.Logger
}

// Core is the replicate function. Build it with [New], which applies the defaults once, so
// the core reads its settings as they are. It is safe for concurrent use; its settings must
// not change once it handles events.
type Core struct {
	Config
}

// New returns the replicate core for cfg. It is the one place where the core's defaults are
// applied.
func New(cfg Config) *Core {
	if cfg.StartLease <= 0 {
		cfg.StartLease = 2 * time.Minute
	}
	if cfg.SlotWait <= 0 {
		cfg.SlotWait = 5 * time.Second
	}
	if cfg.MaxSlotWait <= 0 {
		cfg.MaxSlotWait = time.Minute
	}
	cfg.MaxSlotWait = max(cfg.MaxSlotWait, cfg.SlotWait)
	if cfg.MaxStartAttempts <= 0 {
		cfg.MaxStartAttempts = 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Core{Config: cfg}
}

// emit builds the lifecycle events replicate emits.
var emit = lifecycle.Emitter{Function: Name}

// Handle starts (or recognises as started) one replication.
func (c *Core) Handle(ctx context.Context, e event.Event) fn.Result {
	req, res, ok := fn.Decode[events.ReplicationRequested](Name, events.TypeReplicationRequested, e)
	if !ok {
		return res
	}
	copier, err := domain.Pick(c.Copiers, req.Provider, c.Unavailable)
	if err != nil {
		return fn.Reject(err)
	}
	if res, ok = c.checkPlan(ctx, req); !ok {
		return res
	}
	var rec domain.Record
	if c.claimsOnCreate(copier, req.Provider) {
		// Create-as-claim: the first delivery creates the record already claimed, so winning
		// the claim costs the write that creates the record, and the start is recorded with
		// the revision that write returned, without reading the record again. Create is
		// atomic: of all deliveries, only one creates the record; the others find it below,
		// claimed, exactly as if it had been claimed with compare-and-swap.
		claimed := c.newRecord(e, req, req.DestinationRegion)
		t := c.Now()
		claimed.State, claimed.StartingSince, claimed.StartCalls = domain.StateStarting, t, 1
		rev, err := c.Store.CreateRecordRevision(ctx, claimed)
		if err == nil {
			return c.startClaimed(ctx, e, copier, req, []string{req.DestinationRegion}, nil, &held{rec: claimed, rev: rev})
		}
		if !errors.Is(err, domain.ErrExists) {
			return fn.Retry(0, err)
		}
		if rec, err = c.Store.Record(ctx, copyOf(req)); err != nil {
			return fn.Retry(0, err)
		}
	} else {
		var err error
		if rec, err = c.ensureRecord(ctx, e, req, req.DestinationRegion); err != nil {
			return fn.Retry(0, err)
		}
	}
	looked := notLooked
	switch {
	case rec.State == domain.StateInProgress:
		// Started before (by this request or by a multi-region call for a sibling region):
		// say so again; the event id is the same, so the bus keeps one.
		return c.ok(e, rec)
	case rec.State == domain.StateFailed && rec.StartedAt.IsZero():
		// Failed at the start call by an earlier delivery that may have stopped before its
		// events were stored: announce it again (same ids, so the bus keeps one of each).
		return c.announceFailed(ctx, e, req, []domain.Record{rec}, "")
	case rec.State.Settled():
		// Settled by the poller, which announces it.
		return fn.Done()
	case rec.State == domain.StateStarting && !c.stale(rec):
		// Another worker is calling the provider right now; look again shortly.
		return fn.Defer(c.busyWait(req.Provider))
	case rec.State == domain.StateStarting || rec.Ambiguous():
		// The worker that claimed it stopped mid-call, or an earlier call ended without an
		// answer: the copy may exist. Look before calling.
		if res, found := c.recover(ctx, e, copier, req, rec); found {
			return res
		}
		// Nothing there. The claim below succeeds only if nobody has called the provider
		// since this lookup (the start count is unchanged); otherwise we look again.
		looked = rec.StartCalls
	}
	return c.start(ctx, e, copier, req, looked)
}

// notLooked says that no lookup at the provider preceded a start.
const notLooked = -1

// held is a record this delivery claimed and the revision of that claim, so the start can be
// recorded with compare-and-swap at that revision instead of a read and a write.
type held struct {
	rec domain.Record
	rev uint64
}

// claimsOnCreate reports whether a request's record can be created already claimed: its
// copy is started alone (not in one call with sibling regions, which are claimed in sorted
// order so that racing requests do not each start a part) and takes no concurrency slot
// (a copy that has to wait for one is recorded as waiting, not claimed).
func (c *Core) claimsOnCreate(copier Copier, provider string) bool {
	if mc, ok := copier.(MultiRegionCopier); ok && mc.MultiRegion() {
		return false
	}
	return c.Slots.Limit(provider) == 0
}

// fromFanout is the fix named by every refusal of a request that fanout did not emit.
const fromFanout = "publish io.imagerelay.image.published; replication.requested is emitted by fanout only"

// checkPlan refuses a request that the image's stored plan does not cover: only fanout emits
// replication.requested, after storing the plan, so anything else (a forged or hand-made
// request, a request altered on the way) must not reach a provider. ok is false when the
// request must not go on; res then says why.
func (c *Core) checkPlan(ctx context.Context, req *events.ReplicationRequested) (res fn.Result, ok bool) {
	// A plan only grows (regions added, attributes set once on a plan stored without them),
	// so a recent copy that allows the request and has its attributes allows it as the
	// stored plan would: the request goes on without a read. Anything else is decided by
	// the stored plan.
	if plan, ok := c.Store.RecentPlan(domain.Image(req.Image)); ok && plan.Attributes != nil && planMismatch(plan, req) == "" {
		return fn.Result{}, true
	}
	plan, err := c.Store.Plan(ctx, domain.Image(req.Image))
	if errors.Is(err, domain.ErrNotFound) {
		return fn.Reject(fmt.Errorf("no replication plan exists for image %s (data.provider, data.account, data.imageId, data.versionId): nothing planned a copy of it; %s",
			events.ImageKey(req.Image), fromFanout)), false
	}
	if err != nil {
		return fn.Retry(0, err), false
	}
	if why := planMismatch(plan, req); why != "" {
		return fn.Reject(fmt.Errorf("the request does not match the replication plan of image %s: %s; %s",
			events.ImageKey(req.Image), why, fromFanout)), false
	}
	return fn.Result{}, true
}

// planMismatch names the first field of req that its plan does not allow, or returns "".
func planMismatch(plan domain.Plan, req *events.ReplicationRequested) string {
	if !slices.Contains(plan.Regions, req.DestinationRegion) {
		return fmt.Sprintf("data.destinationRegion %q is not a planned region (planned: %s)", req.DestinationRegion, strings.Join(plan.Regions, ", "))
	}
	for _, r := range req.Regions {
		if !slices.Contains(plan.Regions, r) {
			return fmt.Sprintf("data.regions names %q, which is not a planned region (planned: %s)", r, strings.Join(plan.Regions, ", "))
		}
	}
	p, q := plan.Image, domain.Image(req.Image)
	for _, f := range []struct{ name, planned, got string }{
		{"data.imageName", p.ImageName, q.ImageName},
		{"data.sourceRegion", p.SourceRegion, q.SourceRegion},
		{"data.productType", p.ProductType, q.ProductType},
	} {
		if f.planned != f.got {
			return fmt.Sprintf("%s is %q, the plan has %q", f.name, f.got, f.planned)
		}
	}
	if a := plan.Attributes; a != nil {
		switch {
		case a.SizeGB != req.SizeGB:
			return fmt.Sprintf("data.sizeGB is %d, the plan has %d", req.SizeGB, a.SizeGB)
		case a.Encrypted != req.Encrypted:
			return fmt.Sprintf("data.encrypted is %v, the plan has %v", req.Encrypted, a.Encrypted)
		case a.FromISO != req.FromISO:
			return fmt.Sprintf("data.fromISO is %v, the plan has %v", req.FromISO, a.FromISO)
		}
	}
	return ""
}

// newRecord is the record of one region of req as first stored: requested.
func (c *Core) newRecord(e event.Event, req *events.ReplicationRequested, region string) domain.Record {
	r := copyTo(req, region)
	t := c.Now()
	timeout := time.Duration(req.TimeoutSeconds) * time.Second
	if timeout <= 0 {
		timeout = 6 * time.Hour
	}
	return domain.Record{
		Key:                 r.Key(),
		Copy:                r,
		State:               domain.StateRequested,
		CorrelationID:       events.CorrelationID(e),
		RequestedAt:         t,
		UpdatedAt:           t,
		Deadline:            t.Add(timeout),
		PollIntervalSeconds: req.PollIntervalSeconds,
		OSType:              req.OSType,
		Tags:                req.Tags,
	}
}

// ensureRecord creates the record of one region if it does not exist and returns it.
func (c *Core) ensureRecord(ctx context.Context, e event.Event, req *events.ReplicationRequested, region string) (domain.Record, error) {
	rec := c.newRecord(e, req, region)
	if err := c.Store.CreateRecord(ctx, rec); err != nil && !errors.Is(err, domain.ErrExists) {
		return rec, err
	}
	return c.Store.Record(ctx, rec.Copy)
}

// recover looks for a copy an interrupted attempt may have started.
func (c *Core) recover(ctx context.Context, e event.Event, copier Copier, req *events.ReplicationRequested, rec domain.Record) (fn.Result, bool) {
	h, found, err := copier.FindCopy(ctx, c.copyRequest(req, []string{req.DestinationRegion}))
	if err != nil {
		pe := domain.AsProviderError(req.Provider, "FindCopy", err)
		if pe.Class == domain.Retryable && c.Now().Before(rec.Deadline) {
			// A lookup the provider could not answer now (throttled, a 5xx) is waited out
			// like a start call, without using up deliveries, until the copy's deadline.
			return waitOut(pe, rec.StartCalls), true
		}
		return fn.Retry(pe.RetryAfter, pe), true
	}
	if !found {
		return fn.Result{}, false
	}
	// The found copy occupies one of the provider's slots, if it has any.
	c.Slots.Count(ctx, rec.Copy, lifecycle.PollInterval(req.PollIntervalSeconds))
	started, err := c.markStarted(ctx, rec.Copy, h)
	if err != nil {
		return fn.Retry(0, err), true
	}
	return c.ok(e, started), true
}

// start claims the regions to start, takes a concurrency slot where the provider needs one,
// calls the provider once and records what happened.
// looked is the record's start count when a lookup at the provider found no copy, or
// notLooked.
func (c *Core) start(ctx context.Context, e event.Event, copier Copier, req *events.ReplicationRequested, looked int) fn.Result {
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
	if got, err := c.Slots.Take(ctx, copyOf(req), lifecycle.PollInterval(req.PollIntervalSeconds)); err != nil {
		return fn.Retry(0, err)
	} else if !got {
		return c.waitForSlot(ctx, req)
	}
	var claimed []string
	// found holds replication.started of sibling regions whose copies a lookup found; every
	// result from here on carries them.
	var found []event.Event
	with := func(res fn.Result) fn.Result {
		res.Emit = append(res.Emit, found...)
		return res
	}
	// failed gives the claimed regions back after a store error, for the request's retry.
	failed := func(err error) fn.Result {
		c.unclaim(ctx, req, claimed, time.Time{})
		return with(fn.Retry(0, err))
	}
	for _, region := range regions {
		regionLooked := looked
		if region != req.DestinationRegion {
			rec, err := c.ensureRecord(ctx, e, req, region)
			if err != nil {
				return failed(err)
			}
			regionLooked = notLooked
			if !rec.State.Settled() && rec.State != domain.StateInProgress && (rec.Ambiguous() || c.stale(rec)) {
				// An earlier call may have started this sibling region: look for its copy
				// before naming it in one call with the others, as its own request would.
				ev, done, err := c.lookSibling(ctx, e, copier, req, rec)
				switch {
				case err != nil:
					continue // left for its own request, which looks again
				case done:
					found = append(found, ev)
					continue
				}
				regionLooked = rec.StartCalls
			}
		}
		won, busy, look, err := c.claim(ctx, req, region, regionLooked)
		if err != nil {
			return failed(err)
		}
		switch {
		case won:
			claimed = append(claimed, region)
		case look && len(claimed) == 0:
			// An attempt since our lookup (or none at all) may have started the copy: look
			// at the provider first, on the next delivery.
			return with(fn.Defer(time.Second))
		case busy && len(claimed) == 0:
			// Another worker is starting this image's regions (ours too, if it was free);
			// it reports them. Look again shortly.
			return with(fn.Defer(c.busyWait(req.Provider)))
		}
		// Otherwise the region is already in flight or settled: nothing to start there.
	}
	if len(claimed) == 0 {
		// Nothing to start: every region is in flight or settled, or left to its own request.
		return c.ownRegion(ctx, e, req, c.busyWait(req.Provider), found)
	}
	if !slices.Contains(claimed, req.DestinationRegion) {
		// This call is for sibling regions only: ours was left out (an attempt since our
		// lookup may have started it, so it must be looked for first). Whatever the call
		// does, this request must come back for its own region rather than end here.
		return c.comeBackForOwn(ctx, e, req, c.startClaimed(ctx, e, copier, req, claimed, found, nil))
	}
	return c.startClaimed(ctx, e, copier, req, claimed, found, nil)
}

// comeBackForOwn turns a finished result into a deferral when the request's own region is
// still to be started, so that the request is handled again instead of acknowledged.
func (c *Core) comeBackForOwn(ctx context.Context, e event.Event, req *events.ReplicationRequested, res fn.Result) fn.Result {
	if res.Outcome.Kind != fn.KindDone {
		return res
	}
	return c.ownRegion(ctx, e, req, time.Second, res.Emit)
}

// ownRegion is the result for a request whose own region this delivery has not started: it
// says replication.started again when another call started the copy, is done when the copy
// has settled, and otherwise comes back after wait. carried are events this delivery has
// already built (for sibling regions); every result emits them.
func (c *Core) ownRegion(ctx context.Context, e event.Event, req *events.ReplicationRequested, wait time.Duration, carried []event.Event) fn.Result {
	rec, err := c.Store.Record(ctx, copyOf(req))
	switch {
	case err != nil:
		return fn.Retry(0, err, carried...)
	case rec.State == domain.StateInProgress:
		res := c.ok(e, rec)
		res.Emit = slices.Concat(carried, res.Emit)
		return res
	case rec.State.Settled():
		// This delivery took the copy's slot before it found the copy settled (a late
		// duplicate racing the settle, which released the slot): give it back, or it stays
		// taken until its lease ends and the account's next copies wait for it.
		c.Slots.Release(ctx, rec.Copy)
		return fn.Done(carried...)
	}
	return fn.Defer(wait, carried...)
}

// startClaimed makes the one provider call for the claimed regions and records its answer;
// found are the started events of sibling regions a lookup found, carried by every result.
// own, when set, is the request's own record as this delivery claimed it, so its start is
// recorded from the claim's revision.
func (c *Core) startClaimed(ctx context.Context, e event.Event, copier Copier, req *events.ReplicationRequested, claimed []string, found []event.Event, own *held) fn.Result {
	handles, err := copier.StartCopy(ctx, c.copyRequest(req, claimed))
	if err != nil {
		res := c.startFailed(ctx, e, req, claimed, domain.AsProviderError(req.Provider, "StartCopy", err))
		res.Emit = append(res.Emit, found...)
		return res
	}
	out := found
	for _, h := range handles {
		if !slices.Contains(claimed, h.Region) {
			continue
		}
		var (
			rec domain.Record
			err error
		)
		if own != nil && own.rec.DestinationRegion == h.Region {
			rec, _, err = c.Store.UpdateRecordFrom(ctx, own.rec, own.rev, c.started(h))
		} else {
			rec, err = c.markStarted(ctx, copyTo(req, h.Region), h)
		}
		if err != nil {
			return fn.Retry(0, err, out...)
		}
		ev, err := emit.Started(e, rec)
		if err != nil {
			return fn.Reject(err)
		}
		out = append(out, ev)
		claimed = slices.DeleteFunc(claimed, func(s string) bool { return s == h.Region })
	}
	// Regions the provider did not answer for go back to requested; their own requests retry.
	c.unclaim(ctx, req, claimed, time.Time{})
	if slices.Contains(claimed, req.DestinationRegion) {
		return fn.Retry(0, fmt.Errorf("%s accepted the copy but returned no handle for %s", req.Provider, req.DestinationRegion), out...)
	}
	return fn.Done(out...)
}

// lookSibling looks for a copy to a sibling region (of a multi-region call) that an earlier
// call may have started. done reports that it found one and recorded it; ev then announces it.
func (c *Core) lookSibling(ctx context.Context, e event.Event, copier Copier, req *events.ReplicationRequested, rec domain.Record) (ev event.Event, done bool, err error) {
	h, found, err := copier.FindCopy(ctx, c.copyRequest(req, []string{rec.DestinationRegion}))
	if err != nil || !found {
		return ev, false, err
	}
	started, err := c.markStarted(ctx, rec.Copy, h)
	if err != nil {
		return ev, false, err
	}
	ev, err = emit.Started(e, started)
	return ev, err == nil, err
}

// claim moves a region's record to starting if nobody else holds it. busy reports that
// another worker holds a fresh claim on it. look reports that the copy may already exist (a
// stale claim, or an earlier start call that ended without an answer) and that no lookup at
// the provider has been made since the last start call (looked is the start count the last
// lookup saw): the caller must look first.
func (c *Core) claim(ctx context.Context, req *events.ReplicationRequested, region string, looked int) (won, busy, look bool, err error) {
	r := copyTo(req, region)
	_, err = c.Store.UpdateRecord(ctx, r, func(rec *domain.Record) error {
		won, busy, look = false, rec.State == domain.StateStarting && !c.stale(*rec), false
		if !c.claimable(*rec) {
			return domain.ErrNoChange
		}
		if (c.stale(*rec) || rec.Ambiguous()) && rec.StartCalls != looked {
			look = region == req.DestinationRegion
			return domain.ErrNoChange
		}
		t := c.Now()
		rec.State, rec.StartingSince, rec.UpdatedAt, rec.Message = domain.StateStarting, t, t, ""
		rec.StartCalls++
		rec.SlotWaits = 0
		won = true
		return nil
	})
	return won, busy, look, err
}

// claimable reports whether a worker may claim rec's copy to start it: nobody has started it,
// or the worker that claimed it is taken to have stopped mid-call.
func (c *Core) claimable(rec domain.Record) bool {
	return rec.State == domain.StateRequested || rec.State == domain.StateWaiting || c.stale(rec)
}

// stale reports whether rec is a "starting" claim older than the start lease: its worker is
// taken to have stopped mid-call.
func (c *Core) stale(rec domain.Record) bool {
	return rec.State == domain.StateStarting && c.Now().Sub(rec.StartingSince) >= c.startLease(rec.Provider)
}

// unclaim returns claimed regions to requested. A non-zero ambiguousAt records that the
// start call may have started them anyway, so their next attempt looks first; a clear answer
// never clears an earlier ambiguity (that copy may still appear).
func (c *Core) unclaim(ctx context.Context, req *events.ReplicationRequested, regions []string, ambiguousAt time.Time) {
	for _, region := range regions {
		r := copyTo(req, region)
		_, _ = c.Store.UpdateRecord(ctx, r, func(rec *domain.Record) error {
			if rec.State != domain.StateStarting {
				return domain.ErrNoChange
			}
			rec.State, rec.UpdatedAt = domain.StateRequested, c.Now()
			if !ambiguousAt.IsZero() {
				rec.AmbiguousAt = ambiguousAt
			}
			return nil
		})
	}
}

// markStarted records that the copy to r's region was started, with handle h.
func (c *Core) markStarted(ctx context.Context, r domain.Copy, h domain.Handle) (domain.Record, error) {
	return c.Store.UpdateRecord(ctx, r, c.started(h))
}

// started is the change that records a copy started with handle h; it leaves a copy already
// in flight or settled as it is.
func (c *Core) started(h domain.Handle) func(*domain.Record) error {
	return func(rec *domain.Record) error {
		if rec.State == domain.StateInProgress || rec.State.Settled() {
			return domain.ErrNoChange
		}
		t := c.Now()
		rec.State, rec.TaskID, rec.DestinationImageID = domain.StateInProgress, h.TaskID, h.DestinationImageID
		rec.StartedAt, rec.UpdatedAt, rec.Code, rec.Message, rec.Hint = t, t, "", "", ""
		rec.AmbiguousAt, rec.SlotWaits = time.Time{}, 0
		if h.AlreadyPresent {
			rec.ProviderStatus = "already present"
		}
		return nil
	}
}

// startFailed records a failed start call: retryable errors come back later (and are given up
// after MaxStartAttempts), terminal ones end the replication with replication.failed. A
// retryable error that may have started the copy anyway (see domain.MaybeStarted) is
// recorded as ambiguous, and the copy keeps its concurrency slot: the next attempt looks for
// the copy before calling again.
func (c *Core) startFailed(ctx context.Context, e event.Event, req *events.ReplicationRequested, claimed []string, pe *domain.ProviderError) fn.Result {
	var ambiguousAt time.Time
	if domain.MaybeStarted(pe) {
		ambiguousAt = c.Now()
	}
	if pe.Class == domain.Retryable {
		rec, err := c.Store.Record(ctx, copyOf(req))
		// Without the attempt count we cannot tell whether to give up: try again rather than
		// fail a copy for a store hiccup.
		if err != nil || rec.StartCalls < c.MaxStartAttempts {
			c.unclaim(ctx, req, claimed, ambiguousAt)
			// A copy that may exist keeps its slot (see above).
			if ambiguousAt.IsZero() && (err != nil || !rec.Ambiguous()) {
				c.Slots.Release(ctx, copyOf(req))
			}
			if err != nil {
				return fn.Retry(0, err)
			}
			c.Log.Info("provider asked to retry later", "event_id", e.ID(), "correlation_id", events.CorrelationID(e), "code", pe.Code,
				"attempt", rec.StartCalls, "maybe_started", !ambiguousAt.IsZero())
			// Waiting out throttling is deferral, not failure: it must not use up deliveries.
			return waitOut(pe, rec.StartCalls)
		}
		// A copy, so that a provider error value reused across calls is not edited.
		given := *pe
		given.Hint = fmt.Sprintf("gave up after %d attempts; %s", c.MaxStartAttempts, pe.Hint)
		if !ambiguousAt.IsZero() || rec.Ambiguous() {
			given.Hint = fmt.Sprintf("gave up after %d attempts, the last answers lost or unclear: a copy named %q may exist in the destination region; check for it before publishing the image again; %s",
				c.MaxStartAttempts, domain.CopyName(copyOf(req)), pe.Hint)
		}
		pe = &given
	}
	var recs []domain.Record
	for _, region := range claimed {
		r := copyTo(req, region)
		rec, err := c.Store.UpdateRecord(ctx, r, func(rec *domain.Record) error {
			t := c.Now()
			rec.State, rec.Code, rec.Message, rec.Hint, rec.FinishedAt, rec.UpdatedAt = domain.StateFailed, pe.Code, pe.Message, pe.Hint, t, t
			return nil
		})
		if err != nil {
			return fn.Retry(0, err)
		}
		recs = append(recs, rec)
	}
	c.Slots.Release(ctx, copyOf(req))
	return c.announceFailed(ctx, e, req, recs, pe.RequestID)
}

// announceFailed emits replication.failed for records that failed at the start call, and
// replication.completed when that settled the image's last planned region.
func (c *Core) announceFailed(ctx context.Context, e event.Event, req *events.ReplicationRequested, recs []domain.Record, requestID string) fn.Result {
	var out []event.Event
	for _, rec := range recs {
		ev, err := emit.Failed(e, rec, requestID)
		if err != nil {
			return fn.Reject(err)
		}
		out = append(out, ev)
	}
	done, ok, err := emit.Completed(ctx, c.Store, e, domain.Image(req.Image), recs...)
	if err != nil {
		return fn.Retry(0, err, out...)
	}
	if ok {
		out = append(out, done)
	}
	return fn.Done(out...)
}

// ok announces rec started, with the same id every time it is said, so the bus keeps one.
func (c *Core) ok(e event.Event, rec domain.Record) fn.Result {
	ev, err := emit.Started(e, rec)
	if err != nil {
		return fn.Reject(err)
	}
	return fn.Done(ev)
}

// waitForSlot marks req's copy as waiting for one of its provider's copy slots and defers the
// request. Extra copies wait, they do not fail: deferral uses up no delivery, and the wait
// grows with the waits counted in the record. The wait is keyed by the copy, so that whoever
// frees a slot can wake it at once.
func (c *Core) waitForSlot(ctx context.Context, req *events.ReplicationRequested) fn.Result {
	rec, err := c.Store.UpdateRecord(ctx, copyOf(req), func(r *domain.Record) error {
		// A stale claim gets here only after FindCopy found no copy, so it waits too; left
		// "starting", every later delivery would look at the provider again.
		if !c.claimable(*r) {
			return domain.ErrNoChange
		}
		r.State, r.Message, r.UpdatedAt = domain.StateWaiting, fmt.Sprintf("waiting for one of %d copy slots", c.Slots.Limit(req.Provider)), c.Now()
		r.SlotWaits++
		return nil
	})
	waits := 0
	if err == nil {
		waits = rec.SlotWaits
	}
	res := fn.Defer(c.slotWait(waits))
	res.Outcome.Key = lifecycle.WaitKey(copyOf(req))
	return res
}

// copyOf is req's own copy, in the domain's terms.
func copyOf(req *events.ReplicationRequested) domain.Copy { return lifecycle.CopyOf(req.Replication) }

// copyTo is req's copy redirected to region (the request's own region or a sibling of a
// multi-region call), the copy the store knows the region's record by.
func copyTo(req *events.ReplicationRequested, region string) domain.Copy {
	c := copyOf(req)
	c.DestinationRegion = region
	return c
}

// copyRequest is what a provider is asked to start (or look for) in regions: the domain's
// view of req, mapped here, at the core's edge. The copy is named after req's own copy.
func (c *Core) copyRequest(req *events.ReplicationRequested, regions []string) domain.StartRequest {
	// The regions are copied: start keeps editing its claimed list after the call, and the
	// provider must not see its request change under it.
	return domain.StartRequest{
		Source:  domain.Source{Image: domain.Image(req.Image), SizeGB: req.SizeGB, Encrypted: req.Encrypted, FromISO: req.FromISO},
		Regions: slices.Clone(regions),
		Name:    domain.CopyName(copyOf(req)),
	}
}

// startLease is how long a "starting" claim on a copy at provider is trusted: StartLease,
// but never less than the longest call the provider's copier can make plus a margin, so a
// slow call is never taken for a crash (and its copy never started twice).
func (c *Core) startLease(provider string) time.Duration {
	if bc, ok := c.Copiers[provider].(BoundedCopier); ok {
		return max(c.StartLease, bc.MaxCallDuration()+30*time.Second)
	}
	return c.StartLease
}

// busyWait is how long a request waits before it looks again at a copy another worker is
// starting: a fraction of the start lease, so a crashed worker's claim is noticed soon after
// it goes stale.
func (c *Core) busyWait(provider string) time.Duration { return c.startLease(provider) / 4 }

// slotWait is the wait before asking again for a concurrency slot after waits failed
// attempts in a row: SlotWait, doubling, up to MaxSlotWait.
func (c *Core) slotWait(waits int) time.Duration {
	return min(c.SlotWait<<min(max(waits-1, 0), 16), c.MaxSlotWait)
}

// waitOut defers a request after a retryable provider error, for as long as the provider asked
// or the back-off after calls start calls, whichever is longer.
func waitOut(pe *domain.ProviderError, calls int) fn.Result {
	return fn.Defer(max(pe.RetryAfter, backoff(calls)))
}

// backoff grows the wait after each retryable failure, from 500 ms to one minute.
func backoff(attempt int) time.Duration {
	d := 500 * time.Millisecond << min(max(attempt-1, 0), 7)
	return min(d, time.Minute)
}

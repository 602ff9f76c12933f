// Package rebuild is the core of the rebuild function: when a copy of an Alibaba App
// Streaming image lands in a region (replication.succeeded), it rolls the cloud desktops a
// rebuild policy selects onto it — a canary first, then batches of at most 20 through
// RebuildDesktops — and stops when the policy's failure budget is spent.
//
// Nothing happens unless a policy matches. The plan (who is rebuilt, who is skipped and why,
// which batch) is computed once, stored with the rollout's KV record and announced in
// rebuild.planned; every later delivery follows the stored plan. Each desktop is claimed in
// its own KV record before a RebuildDesktops call names it, so a duplicated or redelivered
// trigger never rebuilds a desktop twice. Waiting — for a canary, a batch or a maintenance
// window — is done by deferring the trigger event on the bus, never by a sleeping function.
package rebuild

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
	"github.com/imagerelay/imagerelay/functions/rebuild/rules"
	"github.com/imagerelay/imagerelay/shared/core/fn"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// Name is the function's name on the bus.
const Name = "rebuild"

// ErrDisabled is wrapped by Core.Disabled when rebuild cannot run (no desktop client).
var ErrDisabled = errors.New("rebuild: disabled")

// Config is what the rebuild core is built from; [New] sets the zero fields to their defaults.
type Config struct {
	// Fleet lists and rebuilds desktops; nil disables rebuild (matching events are
	// acknowledged and a warning explains Disabled).
	Fleet Fleet
	// Disabled says why Fleet is nil.
	Disabled error
	// Policies are the rebuild policies, in file order.
	Policies []Policy
	// Store keeps the rollouts and desktop records and reads the replication records.
	Store Store
	// StartLease is how long a desktop claim taken before a RebuildDesktops call is trusted
	// before the call is taken to have died (default 2 minutes).
	StartLease time.Duration
	// MaxCallAttempts bounds the RebuildDesktops calls that may name one desktop after
	// retryable failures (default 5).
	MaxCallAttempts int
	// Publisher stores the rollout's events on the bus. Each step writes its events to the
	// rollout's outbox (in the same compare-and-swap as the state change), publishes the
	// outbox and removes what the bus acknowledged, so every event is published until it is
	// known to be stored and never again. Only the core can know that: a runtime that
	// publishes Result.Emit hands the input back after a failed publish exactly as after a
	// successful one followed by a deferral, so a core that returned its events could only
	// guess when to stop repeating them.
	//
	// Nil falls back to returning the outbox in Result.Emit on every delivery for OutboxTTL,
	// which relies on the bus's duplicate window and shows every repetition to core NATS
	// subscribers.
	Publisher fn.Publisher
	// OutboxTTL is how long, without a Publisher, a step's events are emitted again by later
	// deliveries; keep it below the bus's duplicate window (default 2 minutes).
	OutboxTTL time.Duration
	// MaxWait caps one deferral while waiting for a maintenance window (default 1 hour), so
	// a changed clock or window is noticed.
	MaxWait time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives the core's logs (default slog.Default()).
	Log *slog.Logger
}

// Core is the rebuild function. Build it with [New], which applies the defaults once, so the
// core reads its settings as they are. It is safe for concurrent use; its settings must not
// change once it handles events.
type Core struct {
	Config
}

// New returns the rebuild core for cfg. It is the one place where the core's defaults are
// applied: to the settings cfg leaves at zero and, through [Policy.WithDefaults], to every
// policy.
func New(cfg Config) *Core {
	if cfg.StartLease <= 0 {
		cfg.StartLease = 2 * time.Minute
	}
	if cfg.MaxCallAttempts <= 0 {
		cfg.MaxCallAttempts = 5
	}
	if cfg.OutboxTTL <= 0 {
		cfg.OutboxTTL = 2 * time.Minute
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	pols := make([]Policy, len(cfg.Policies))
	for i, p := range cfg.Policies {
		pols[i] = p.WithDefaults()
	}
	cfg.Policies = pols
	return &Core{Config: cfg}
}

// step is what one policy's rollout decided for the current delivery.
type step struct {
	emit    []event.Event
	pending bool
	delay   time.Duration
	retry   error
	reject  error
}

// Handle advances the rollout of every policy that matches the copy.
func (c *Core) Handle(ctx context.Context, e event.Event) fn.Result {
	d, err := input(e)
	if err != nil {
		return fn.Reject(err)
	}
	pols := rules.Applies(c.Policies, d)
	if len(pols) == 0 {
		return fn.Done()
	}
	if c.Fleet == nil {
		c.Log.Warn("a rebuild policy matches this copy but rebuild is disabled", "event_id", e.ID(),
			"policy", pols[0].Name, "region", d.DestinationRegion, "reason", errString(c.Disabled))
		return fn.Done()
	}
	if d.DestinationImageID == "" {
		return fn.Reject(fmt.Errorf("replication.succeeded for %s has no destinationImageId to rebuild onto", events.ReplicationKey(d.Replication)))
	}
	if res, ok := c.verifyCopy(ctx, d); !ok {
		return res
	}
	var (
		out           []event.Event
		retry, reject error
		pending       bool
		delay         time.Duration
	)
	for _, p := range pols {
		s := c.rollout(ctx, e, d, p)
		out = append(out, s.emit...)
		switch {
		case s.retry != nil:
			retry = errors.Join(retry, s.retry)
		case s.reject != nil:
			reject = errors.Join(reject, s.reject)
		case s.pending:
			if !pending || s.delay < delay {
				delay = s.delay
			}
			pending = true
		}
	}
	switch {
	case retry != nil:
		return fn.Retry(0, retry, out...)
	case pending:
		return fn.Defer(max(delay, 100*time.Millisecond), out...)
	case reject != nil:
		return fn.Result{Emit: out, Outcome: fn.Outcome{Kind: fn.KindReject, Err: reject}}
	}
	return fn.Done(out...)
}

// input decodes the event rebuild handles, replication.succeeded, and refuses any other.
func input(e event.Event) (*events.ReplicationSucceeded, error) {
	if e.Type() != events.TypeReplicationSucceeded {
		return nil, fmt.Errorf("%s handles %s, not %s", Name, events.TypeReplicationSucceeded, e.Type())
	}
	return events.DataAs[events.ReplicationSucceeded](e)
}

// verifyCopy checks the copy against its replication record before any desktop is
// touched: rebuild acts only on copies imagerelay made and saw succeed, so a forged or
// stale replication.succeeded (an unknown copy, another destination image) is
// dead-lettered instead of rebuilding a fleet onto an image nobody checked. The poller
// records the success before it emits the event, so a genuine event always finds it.
func (c *Core) verifyCopy(ctx context.Context, d *events.ReplicationSucceeded) (fn.Result, bool) {
	key := events.ReplicationKey(d.Replication)
	rec, err := c.Store.Copies.Record(ctx, domain.Copy{Image: domain.Image(d.Image), DestinationRegion: d.DestinationRegion})
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return fn.Reject(fmt.Errorf("no replication record for %s: rebuild acts only on copies imagerelay replicated (was this replication.succeeded published by imagerelay's poller?)", key)), false
	case err != nil:
		return fn.Retry(0, err), false
	case rec.State != domain.StateSucceeded:
		return fn.Reject(fmt.Errorf("the replication record of %s is %s, not succeeded: refusing to rebuild onto it", key, rec.State)), false
	case rec.DestinationImageID != "" && rec.DestinationImageID != d.DestinationImageID:
		return fn.Reject(fmt.Errorf("destinationImageId %s does not match the replication record of %s (%s): refusing to rebuild onto it",
			d.DestinationImageID, key, rec.DestinationImageID)), false
	}
	return fn.Result{}, true
}

// rollout creates or advances one policy's rollout onto the copy.
func (c *Core) rollout(ctx context.Context, e event.Event, d *events.ReplicationSucceeded, p Policy) step {
	key := RolloutKey(p.Name, d.Replication)
	ro, err := c.Store.Rollouts.Get(ctx, key...)
	created := false
	if errors.Is(err, domain.ErrNotFound) {
		ro, created, err = c.create(ctx, e, d, p, key)
		if err != nil {
			var pe *domain.ProviderError
			if errors.As(err, &pe) && pe.Class == domain.Terminal {
				// Nothing was recorded, so once the cause is fixed the dead-lettered event
				// can be replayed and the rollout is planned afresh.
				return step{reject: fmt.Errorf("rebuild policy %s: cannot list the desktops of %s: %w", p.Name, d.DestinationRegion, err)}
			}
			return step{retry: fmt.Errorf("rebuild policy %s: plan: %w", p.Name, err)}
		}
	} else if err != nil {
		return step{retry: err}
	}
	if ro.Phase == PhaseDone {
		return c.finishStep(ctx, e, ro, step{})
	}
	interval := p.CheckInterval
	if !created {
		won, got, err := c.takeStep(ctx, key, interval)
		if err != nil {
			return step{retry: err}
		}
		ro = got
		if !won {
			// Another delivery (a duplicated trigger, or a redelivery racing its original)
			// advanced the rollout moments ago: only repeat the recent events and look again
			// later. This chain ends when the rollout does.
			return c.finishStep(ctx, e, ro, step{pending: ro.Phase != PhaseDone, delay: interval})
		}
	}
	return c.advance(ctx, e, p, ro)
}

// create plans the rollout and stores it. When another delivery stored its plan first, that
// plan is returned and ours is dropped, so every delivery follows one plan.
func (c *Core) create(ctx context.Context, e event.Event, d *events.ReplicationSucceeded, p Policy, key []string) (Rollout, bool, error) {
	t := Target{Region: d.DestinationRegion, ImageID: d.DestinationImageID, VersionID: d.VersionID, OSType: d.OSType,
		GPU: strings.EqualFold(d.Tags[GPUTag], "true")}
	filter := serverFilter(p.Desktops)
	var hist History
	if p.Desktops.OlderVersionOfImage {
		older, err := c.olderImages(ctx, d)
		if err != nil {
			return Rollout{}, false, err
		}
		hist.OlderImageIDs = older
		// Only desktops on an older copy or on this image id can be selected: let the
		// service narrow the listing.
		filter.ImageIDs = append(filter.ImageIDs, t.ImageID)
		for id := range older {
			filter.ImageIDs = append(filter.ImageIDs, id)
		}
		slices.Sort(filter.ImageIDs)
	}
	listed, err := c.Fleet.ListDesktops(ctx, t.Region, filter)
	if err != nil {
		return Rollout{}, false, err
	}
	hist.Versions = map[string]string{}
	previous := map[string]string{}
	for _, dk := range listed {
		previous[dk.ID] = dk.ImageID
		if dk.ImageID != t.ImageID {
			continue
		}
		on, err := c.Store.OnImage.Get(ctx, OnImageKey(t.Region, dk.ID)...)
		if err == nil && on.ImageID == t.ImageID {
			hist.Versions[dk.ID] = on.VersionID
		} else if err != nil && !errors.Is(err, domain.ErrNotFound) {
			return Rollout{}, false, err
		}
	}
	plan := MakePlan(p, t, listed, hist)
	// Keep only the plan's desktops: the record must not grow with the whole region.
	prev := map[string]string{}
	for _, dec := range plan.Decisions {
		prev[dec.DesktopID] = previous[dec.DesktopID]
	}
	now := c.Now()
	ro := Rollout{
		Key: c.Store.Key(key...), Policy: p.Name, Replication: d.Replication, DestinationImageID: t.ImageID,
		CorrelationID: events.CorrelationID(e), DryRun: p.DryRun,
		Decisions: plan.Decisions, Batches: plan.Batches, Previous: prev, Skipped: plan.Skipped(),
		Phase: PhaseRollingOut, LastStepAt: now, CreatedAt: now, UpdatedAt: now,
		Outbox: []Emission{{Type: events.TypeRebuildPlanned, At: now}},
	}
	if p.DryRun {
		ro.Phase, ro.FinishedAt = PhaseDone, now
	}
	if err := c.Store.Rollouts.Create(ctx, ro, key...); errors.Is(err, domain.ErrExists) {
		got, err := c.Store.Rollouts.Get(ctx, key...)
		return got, false, err
	} else if err != nil {
		return Rollout{}, false, err
	}
	toRebuild := len(plan.Decisions) - ro.Skipped
	c.Log.Info("rebuild planned", "policy", p.Name, "region", t.Region, "image_id", t.ImageID, "dry_run", p.DryRun,
		"rebuild", toRebuild, "skip", ro.Skipped, "batches", len(plan.Batches), "correlation_id", ro.CorrelationID)
	return ro, true, nil
}

// olderImages returns the destination image ids of the earlier versions of the copy's source
// image that imagerelay replicated to the same region.
func (c *Core) olderImages(ctx context.Context, d *events.ReplicationSucceeded) (map[string]bool, error) {
	recs, err := c.Store.Copies.RecordsOf(ctx, domain.Image(d.Image))
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, r := range recs {
		if r.ImageID == d.ImageID && r.DestinationRegion == d.DestinationRegion && r.VersionID != d.VersionID &&
			r.State == domain.StateSucceeded && r.DestinationImageID != "" && r.DestinationImageID != d.DestinationImageID {
			out[r.DestinationImageID] = true
		}
	}
	return out, nil
}

// takeStep lets one delivery at a time advance a rollout: it wins when nobody advanced it in
// the last half interval.
func (c *Core) takeStep(ctx context.Context, key []string, interval time.Duration) (bool, Rollout, error) {
	won := false
	ro, err := c.Store.Rollouts.Update(ctx, func(r *Rollout) error {
		won = false
		if r.Phase == PhaseDone || !r.LastStepAt.IsZero() && c.Now().Sub(r.LastStepAt) < interval/2 {
			return domain.ErrNoChange
		}
		r.LastStepAt = c.Now()
		won = true
		return nil
	}, key...)
	return won, ro, err
}

// advance moves the rollout as far as it can go now: it starts the current batch (inside the
// maintenance window), follows it, and moves to the next batch or finishes.
func (c *Core) advance(ctx context.Context, e event.Event, p Policy, ro Rollout) step {
	s := step{pending: true, delay: p.CheckInterval}
	var pending []Emission
	fail := func(err error) step {
		// Keep what this step already did observable before retrying.
		if got, ferr := c.update(ctx, ro.key(), &pending, nil); ferr == nil {
			ro = got
		}
		return c.finishStep(ctx, e, ro, step{retry: err})
	}
	for guard := 0; guard <= len(ro.Batches)+1 && ro.Phase != PhaseDone; guard++ {
		idx := ro.Current
		if idx >= len(ro.Batches) {
			got, err := c.finish(ctx, ro.key(), &pending, false, "")
			if err != nil {
				return fail(err)
			}
			ro = got
			break
		}
		if len(ro.Batches[idx]) == 0 {
			got, err := c.settleBatch(ctx, ro.key(), idx, tally{}, p, &pending)
			if err != nil {
				return fail(err)
			}
			ro = got
			continue
		}
		if ro.BatchStartedAt.IsZero() {
			now := c.Now()
			if !p.Window.Open(now) {
				next := p.Window.NextOpen(now)
				if next.IsZero() {
					got, err := c.finish(ctx, ro.key(), &pending, true, "the maintenance window never opens; check its start, end, timeZone and days")
					if err != nil {
						return fail(err)
					}
					ro = got
					break
				}
				got, err := c.update(ctx, ro.key(), &pending, func(r *Rollout) error {
					if r.WaitingUntil.Equal(next) {
						return domain.ErrNoChange
					}
					r.WaitingUntil = next
					return nil
				})
				if err != nil {
					return fail(err)
				}
				ro = got
				c.Log.Info("rebuild waits for its maintenance window", "policy", p.Name, "rollout", ro.Key, "batch", idx, "opens", next)
				s.delay = min(max(next.Sub(now), time.Second), c.MaxWait)
				break
			}
			got, err := c.update(ctx, ro.key(), &pending, func(r *Rollout) error {
				if r.Current != idx || !r.BatchStartedAt.IsZero() {
					return domain.ErrNoChange
				}
				r.BatchStartedAt, r.WaitingUntil = now, time.Time{}
				return nil
			})
			if err != nil {
				return fail(err)
			}
			ro = got
			if ro.Current != idx {
				continue
			}
		}
		b := c.runBatch(ctx, ro, p)
		pending = append(pending, b.emits...)
		if b.err != nil {
			return fail(b.err)
		}
		if !b.settled {
			if b.delay > 0 {
				s.delay = b.delay
			}
			break
		}
		got, err := c.settleBatch(ctx, ro.key(), idx, b.tally, p, &pending)
		if err != nil {
			return fail(err)
		}
		ro = got
	}
	got, err := c.update(ctx, ro.key(), &pending, nil)
	if err != nil {
		return fail(err)
	}
	ro = got
	s.pending = ro.Phase != PhaseDone
	return c.finishStep(ctx, e, ro, s)
}

// update changes the rollout with compare-and-swap and stores the pending emissions in its
// outbox in the same write (then clears them). A nil change only flushes the emissions.
func (c *Core) update(ctx context.Context, key []string, pending *[]Emission, change func(*Rollout) error) (Rollout, error) {
	ro, err := c.Store.Rollouts.Update(ctx, func(r *Rollout) error {
		changed := false
		if change != nil {
			switch err := change(r); {
			case err == nil:
				changed = true
			case !errors.Is(err, domain.ErrNoChange):
				return err
			}
		}
		if len(*pending) > 0 {
			r.Outbox = c.addToOutbox(r.Outbox, *pending)
			changed = true
		}
		if !changed {
			return domain.ErrNoChange
		}
		r.UpdatedAt = c.Now()
		return nil
	}, key...)
	if err == nil {
		*pending = nil
	}
	return ro, err
}

// addToOutbox appends emissions (one per type and desktop). Without a Publisher it also drops
// those past the TTL; with one, an entry leaves the outbox only once the bus stored it.
func (c *Core) addToOutbox(box, add []Emission) []Emission {
	out := slices.Clone(box)
	if c.Publisher == nil {
		cutoff := c.Now().Add(-c.OutboxTTL)
		out = slices.DeleteFunc(out, func(em Emission) bool { return em.At.Before(cutoff) })
	}
	for _, em := range add {
		if !slices.ContainsFunc(out, func(o Emission) bool { return o.Type == em.Type && o.DesktopID == em.DesktopID }) {
			out = append(out, em)
		}
	}
	return out
}

// tally counts a settled batch.
type tally struct {
	succeeded, failed, skipped int
	// failures are "desktop: code" of the failed desktops, for the stop reason.
	failures []string
}

// settleBatch adds a settled batch to the totals, then stops the rollout (a failed canary, or
// more failures than the budget) or moves on to the next batch.
func (c *Core) settleBatch(ctx context.Context, key []string, idx int, t tally, p Policy, pending *[]Emission) (Rollout, error) {
	stopped := false
	ro, err := c.update(ctx, key, pending, func(r *Rollout) error {
		stopped = false
		if r.Phase == PhaseDone || r.Current != idx {
			return domain.ErrNoChange
		}
		r.Succeeded += t.succeeded
		r.Failed += t.failed
		r.Skipped += t.skipped
		r.Current++
		r.BatchStartedAt = time.Time{}
		left := 0
		for _, b := range r.Batches[r.Current:] {
			left += len(b)
		}
		reason := ""
		switch {
		case idx == 0 && t.failed > 0:
			reason = fmt.Sprintf("the canary failed (%s), so the rollout stopped; the other %d desktops were left as they are", summary(t.failures), left)
		case r.Failed > p.FailureBudget:
			reason = fmt.Sprintf("%d desktops failed (%s), more than the failure budget of %d, so the rollout stopped after batch %d of %d; %d desktops were left as they are",
				r.Failed, summary(t.failures), p.FailureBudget, idx, len(r.Batches)-1, left)
		}
		if reason != "" {
			stopped = true
			c.done(r, true, reason)
		}
		return nil
	})
	if err == nil && stopped && ro.Stopped {
		c.Log.Warn("rebuild rollout stopped", "policy", ro.Policy, "rollout", ro.Key, "reason", ro.Reason)
	}
	return ro, err
}

// finish ends the rollout and queues rebuild.completed.
func (c *Core) finish(ctx context.Context, key []string, pending *[]Emission, stopped bool, reason string) (Rollout, error) {
	ro, err := c.update(ctx, key, pending, func(r *Rollout) error {
		if r.Phase == PhaseDone {
			return domain.ErrNoChange
		}
		c.done(r, stopped, reason)
		return nil
	})
	if err == nil {
		c.Log.Info("rebuild rollout completed", "policy", ro.Policy, "rollout", ro.Key, "succeeded", ro.Succeeded,
			"failed", ro.Failed, "skipped", ro.Skipped, "stopped", ro.Stopped)
	}
	return ro, err
}

// done marks r finished and adds rebuild.completed to its outbox.
func (c *Core) done(r *Rollout, stopped bool, reason string) {
	now := c.Now()
	r.Phase, r.Stopped, r.Reason, r.FinishedAt, r.WaitingUntil = PhaseDone, stopped, reason, now, time.Time{}
	r.Outbox = c.addToOutbox(r.Outbox, []Emission{{Type: events.TypeRebuildCompleted, At: now}})
}

// summary lists up to three failures.
func summary(failures []string) string {
	if len(failures) <= 3 {
		return strings.Join(failures, ", ")
	}
	return strings.Join(failures[:3], ", ") + fmt.Sprintf(" and %d more", len(failures)-3)
}

// finishStep delivers the rollout's outbox. With a Publisher it publishes every entry and
// removes the ones the bus acknowledged; an entry that could not be stored stays and is
// published by the next delivery, which a failed publish always brings (a step that would
// have ended the chain asks to be retried instead). Without one, the fresh entries are added
// to s's emissions for the runtime to publish.
func (c *Core) finishStep(ctx context.Context, e event.Event, ro Rollout, s step) step {
	evs, err := c.events(e, ro)
	if err != nil {
		// An event that does not validate is a bug in this package; retrying cannot fix it.
		return step{reject: err}
	}
	if c.Publisher == nil {
		s.emit = append(s.emit, evs...)
		return s
	}
	if len(evs) == 0 {
		return s
	}
	if err := c.Publisher.Publish(ctx, evs...); err != nil {
		c.Log.Warn("could not publish the rollout's events; they stay in its outbox", "rollout", ro.Key, "events", len(evs), "error", err)
		if !s.pending && s.retry == nil {
			s.retry = fmt.Errorf("rebuild %s: publish %d events: %w", ro.Key, len(evs), err)
		}
		return s
	}
	if err := c.confirm(ctx, ro.key(), ro.Outbox); err != nil {
		// The events are stored; the next delivery publishes them once more and the bus
		// drops the copies as duplicates.
		c.Log.Warn("could not clear the rollout's outbox", "rollout", ro.Key, "error", err)
	}
	return s
}

// confirm removes the published entries from the rollout's outbox. Entries added meanwhile
// by another delivery stay for it (or the next one) to publish.
func (c *Core) confirm(ctx context.Context, key []string, published []Emission) error {
	_, err := c.Store.Rollouts.Update(ctx, func(r *Rollout) error {
		n := len(r.Outbox)
		r.Outbox = slices.DeleteFunc(r.Outbox, func(em Emission) bool {
			return slices.ContainsFunc(published, func(p Emission) bool {
				return p.Type == em.Type && p.DesktopID == em.DesktopID && p.At.Equal(em.At)
			})
		})
		if len(r.Outbox) == n {
			return domain.ErrNoChange
		}
		if len(r.Outbox) == 0 {
			r.Outbox = nil
		}
		return nil
	}, key...)
	return err
}

func errString(err error) string {
	if err == nil {
		return "no desktop client configured"
	}
	return err.Error()
}

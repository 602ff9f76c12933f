package rebuild

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// batchStep is what one delivery did to the current batch.
type batchStep struct {
	emits   []Emission
	settled bool
	tally   tally
	// delay, when set, is how long to wait before looking again (provider throttling).
	delay time.Duration
	err   error
}

// runBatch claims and rebuilds the batch's desktops that nobody named yet, recovers claims
// whose call may have been lost, follows the desktops in flight, and reports whether every
// desktop of the batch has settled.
func (c *Core) runBatch(ctx context.Context, ro Rollout, p Policy) batchStep {
	var b batchStep
	ids := ro.Batches[ro.Current]
	stepStart := c.Now()
	recs := map[string]DesktopRecord{}
	var fresh []string
	for _, id := range ids {
		rec, err := c.Store.Desktops.Get(ctx, DesktopKey(ro.Replication, id)...)
		switch {
		case errors.Is(err, domain.ErrNotFound):
			fresh = append(fresh, id)
		case err != nil:
			b.err = err
			return b
		default:
			recs[id] = rec
		}
	}
	var toCall []string
	if len(fresh) > 0 {
		called, delay, err := c.claim(ctx, ro, fresh, recs)
		if err != nil {
			b.err = err
			return b
		}
		b.delay = max(b.delay, delay)
		toCall = append(toCall, called...)
	}
	again, ems, delay, err := c.recoverClaims(ctx, ro, recs, toCall)
	b.emits = append(b.emits, ems...)
	b.delay = max(b.delay, delay)
	if err != nil {
		b.err = err
		return b
	}
	toCall = append(toCall, again...)
	if len(toCall) > 0 {
		ems, delay, err := c.call(ctx, ro, p, toCall, recs)
		b.emits = append(b.emits, ems...)
		b.delay = max(b.delay, delay)
		if err != nil {
			b.err = err
			return b
		}
	}
	ems, err = c.check(ctx, ro, p.Timeout, recs, stepStart)
	b.emits = append(b.emits, ems...)
	if err != nil {
		b.err = err
		return b
	}
	b.settled = true
	for _, id := range ids {
		rec, ok := recs[id]
		switch {
		case !ok:
			b.settled = false
		case rec.Rollout != ro.Key:
			// Another policy holds this desktop for the same copy: it is that rollout's.
			b.tally.skipped++
		case rec.State == DesktopSucceeded:
			b.tally.succeeded++
		case rec.State == DesktopFailed:
			b.tally.failed++
			b.tally.failures = append(b.tally.failures, id+": "+rec.Code)
		case rec.State == DesktopSkipped:
			b.tally.skipped++
		default:
			b.settled = false
		}
	}
	return b
}

// claim looks at desktops nobody has claimed yet once more, just before naming them, and
// creates their records: "starting" for those still fit to rebuild (returned, to be called),
// "skipped" for those whose status changed since the plan. A desktop someone else claimed
// in the meantime keeps that claim.
func (c *Core) claim(ctx context.Context, ro Rollout, ids []string, recs map[string]DesktopRecord) ([]string, time.Duration, error) {
	byID, wait := c.lookAt(ctx, ro, ids, "the batch before rebuilding it")
	if wait > 0 {
		return nil, wait, nil
	}
	now := c.Now()
	var toCall []string
	for _, id := range ids {
		rec := DesktopRecord{Rollout: ro.Key, Policy: ro.Policy, DesktopID: id, Region: ro.Replication.DestinationRegion,
			DestinationImageID: ro.DestinationImageID, Batch: ro.Current, State: DesktopStarting, Calls: 1,
			StartingSince: now, UpdatedAt: now}
		dk, found := byID[id]
		switch {
		case !found:
			rec.State, rec.Code, rec.Message = DesktopSkipped, "DesktopNotFound", "the desktop no longer exists"
		case dk.Status != StatusRunning && dk.Status != StatusStopped:
			rec.State, rec.Code, rec.Message = DesktopSkipped, "IncorrectDesktopStatus", fmt.Sprintf("status changed to %s since the plan; only Running or Stopped desktops can be rebuilt", dk.Status)
		case dk.ImageID == ro.DestinationImageID && ro.Previous[id] != ro.DestinationImageID:
			rec.State, rec.Code, rec.Message = DesktopSkipped, "AlreadyOnImage", "already on image "+ro.DestinationImageID
		}
		if rec.State == DesktopSkipped {
			rec.Calls, rec.StartingSince, rec.FinishedAt = 0, time.Time{}, now
		}
		if err := c.Store.Desktops.Create(ctx, rec, DesktopKey(ro.Replication, id)...); errors.Is(err, domain.ErrExists) {
			got, err := c.Store.Desktops.Get(ctx, DesktopKey(ro.Replication, id)...)
			if err != nil {
				return toCall, 0, err
			}
			recs[id] = got
			continue
		} else if err != nil {
			return toCall, 0, err
		}
		recs[id] = rec
		if rec.State == DesktopStarting {
			toCall = append(toCall, id)
		}
	}
	return toCall, 0, nil
}

// recoverClaims handles this rollout's desktops whose last call may not have reached the
// service (uncertain) or whose caller died mid-call (a starting claim older than the lease):
// a desktop found Rebuilding (or already on the image) is followed as started; the others
// are claimed again, to be called once more, until MaxCallAttempts.
func (c *Core) recoverClaims(ctx context.Context, ro Rollout, recs map[string]DesktopRecord, skip []string) ([]string, []Emission, time.Duration, error) {
	now := c.Now()
	var ids []string
	for id, rec := range recs {
		if rec.Rollout != ro.Key || slices.Contains(skip, id) {
			continue
		}
		if rec.State == DesktopUncertain || rec.State == DesktopStarting && now.Sub(rec.StartingSince) >= c.StartLease {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, nil, 0, nil
	}
	slices.Sort(ids)
	byID, wait := c.lookAt(ctx, ro, ids, "desktops whose rebuild call may have been lost")
	if wait > 0 {
		return nil, nil, wait, nil
	}
	recoverable := func(r *DesktopRecord) bool {
		return r.Rollout == ro.Key && (r.State == DesktopUncertain || r.State == DesktopStarting && c.Now().Sub(r.StartingSince) >= c.StartLease)
	}
	var again []string
	var ems []Emission
	for _, id := range ids {
		dk, found := byID[id]
		var (
			rec     DesktopRecord
			changed bool
			err     error
		)
		switch {
		case found && (dk.Status == StatusRebuilding || dk.ImageID == ro.DestinationImageID && ro.Previous[id] != ro.DestinationImageID):
			rec, changed, err = c.transition(ctx, ro, id, recoverable, func(r *DesktopRecord) {
				t := c.Now()
				r.State, r.StartedAt, r.Code, r.Message = DesktopRebuilding, t, "", ""
			})
			if changed {
				ems = append(ems, emission(events.TypeDesktopRebuildStarted, rec))
			}
		case recs[id].Calls >= c.MaxCallAttempts:
			rec, changed, err = c.transition(ctx, ro, id, recoverable, func(r *DesktopRecord) {
				t := c.Now()
				r.State, r.FinishedAt = DesktopFailed, t
				r.Message = fmt.Sprintf("gave up after %d RebuildDesktops calls: %s", r.Calls, r.Message)
				if r.Code == "" {
					r.Code = "CallFailed"
				}
			})
			if changed {
				ems = append(ems, emission(events.TypeDesktopRebuildFailed, rec))
			}
		default:
			rec, changed, err = c.transition(ctx, ro, id, recoverable, func(r *DesktopRecord) {
				r.State, r.StartingSince = DesktopStarting, c.Now()
				r.Calls++
			})
			if changed {
				again = append(again, id)
			}
		}
		if err != nil {
			return again, ems, 0, err
		}
		recs[id] = rec
	}
	return again, ems, 0, nil
}

// lookAt lists the given desktops of the rollout's region just before acting on them. When
// the listing fails, it says what it was for and returns how long to wait before looking
// again (at least a second, or what the service asked for); the caller acts on nothing.
func (c *Core) lookAt(ctx context.Context, ro Rollout, ids []string, what string) (map[string]Desktop, time.Duration) {
	listed, err := c.Fleet.ListDesktops(ctx, ro.Replication.DestinationRegion, DesktopFilter{DesktopIDs: ids})
	if err != nil {
		pe := domain.AsProviderError(events.ProviderAlibaba, "DescribeDesktops", err)
		c.Log.Warn("could not look at "+what+"; will try again", "rollout", ro.Key, "error", pe.Error())
		return nil, max(pe.RetryAfter, time.Second)
	}
	return index(listed), 0
}

// call names the claimed desktops in one RebuildDesktops call and records each desktop's
// answer. A refused desktop (IncorrectDesktopStatus, a GPU or OS mismatch, ...) fails on its
// own; a call the service refused as a whole fails every desktop it named (terminal) or
// leaves them uncertain, to be looked at and called again (retryable).
func (c *Core) call(ctx context.Context, ro Rollout, p Policy, ids []string, recs map[string]DesktopRecord) ([]Emission, time.Duration, error) {
	slices.Sort(ids)
	claimed := func(r *DesktopRecord) bool { return r.Rollout == ro.Key && r.State == DesktopStarting }
	results, err := c.Fleet.RebuildDesktops(ctx, ro.Replication.DestinationRegion, ids, ro.DestinationImageID,
		Options{OperateType: p.OperateType, Language: p.Language})
	var ems []Emission
	var delay time.Duration
	if err != nil {
		pe := domain.AsProviderError(events.ProviderAlibaba, "RebuildDesktops", err)
		retryable := pe.Class == domain.Retryable
		c.Log.Warn("RebuildDesktops call failed", "rollout", ro.Key, "desktops", len(ids), "retryable", retryable, "error", pe.Error())
		for _, id := range ids {
			rec, changed, err := c.transition(ctx, ro, id, claimed, func(r *DesktopRecord) {
				r.Code, r.Message = pe.Code, pe.Message
				if pe.Hint != "" {
					r.Message += "; " + pe.Hint
				}
				if retryable {
					r.State = DesktopUncertain
					return
				}
				r.State, r.FinishedAt = DesktopFailed, c.Now()
			})
			if err != nil {
				return ems, 0, err
			}
			recs[id] = rec
			if changed && !retryable {
				ems = append(ems, emission(events.TypeDesktopRebuildFailed, rec))
			}
		}
		if retryable {
			delay = max(pe.RetryAfter, time.Second)
		}
		return ems, delay, nil
	}
	byID := map[string]DesktopResult{}
	for _, r := range results {
		byID[r.DesktopID] = r
	}
	for _, id := range ids {
		res, ok := byID[id]
		rec, changed, err := c.transition(ctx, ro, id, claimed, func(r *DesktopRecord) {
			t := c.Now()
			switch {
			case !ok:
				r.State, r.FinishedAt, r.Code, r.Message = DesktopFailed, t, "MissingResult", "RebuildDesktops returned no result for this desktop"
			case res.OK:
				r.State, r.StartedAt, r.Code, r.Message = DesktopRebuilding, t, "", ""
			default:
				r.State, r.FinishedAt, r.Code, r.Message = DesktopFailed, t, res.Code, res.Message
				if r.Code == "" {
					r.Code = "RebuildRefused"
				}
			}
		})
		if err != nil {
			return ems, 0, err
		}
		recs[id] = rec
		if !changed {
			continue
		}
		if rec.State == DesktopRebuilding {
			ems = append(ems, emission(events.TypeDesktopRebuildStarted, rec))
		} else {
			ems = append(ems, emission(events.TypeDesktopRebuildFailed, rec))
		}
	}
	return ems, 0, nil
}

// check follows this rollout's desktops that were Rebuilding before this step, with one
// DescribeDesktops call filtered by their ids: out of Rebuilding on the new image is success,
// out of Rebuilding on another image is failure, and Rebuilding past timeout (the policy's)
// counts as failed.
func (c *Core) check(ctx context.Context, ro Rollout, timeout time.Duration, recs map[string]DesktopRecord, stepStart time.Time) ([]Emission, error) {
	var ids []string
	for id, rec := range recs {
		if rec.Rollout == ro.Key && rec.State == DesktopRebuilding && rec.StartedAt.Before(stepStart) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	slices.Sort(ids)
	listed, err := c.Fleet.ListDesktops(ctx, ro.Replication.DestinationRegion, DesktopFilter{DesktopIDs: ids})
	listedOK := err == nil
	if err != nil {
		c.Log.Warn("could not check desktops being rebuilt; will check again", "rollout", ro.Key, "error", err.Error())
	}
	byID := index(listed)
	inFlight := func(r *DesktopRecord) bool { return r.Rollout == ro.Key && r.State == DesktopRebuilding }
	var ems []Emission
	for _, id := range ids {
		dk, found := byID[id]
		now := c.Now()
		overdue := now.Sub(recs[id].StartedAt) > timeout
		var change func(*DesktopRecord)
		switch {
		case listedOK && found && dk.Status != StatusRebuilding && dk.ImageID == ro.DestinationImageID:
			change = func(r *DesktopRecord) { r.State, r.FinishedAt = DesktopSucceeded, c.Now() }
		case listedOK && found && dk.Status != StatusRebuilding:
			change = func(r *DesktopRecord) {
				r.State, r.FinishedAt, r.Code = DesktopFailed, c.Now(), "RebuildFailed"
				r.Message = fmt.Sprintf("the desktop left Rebuilding as %s on image %s, not on %s", dk.Status, dk.ImageID, ro.DestinationImageID)
			}
		case overdue:
			change = func(r *DesktopRecord) {
				r.State, r.FinishedAt, r.Code = DesktopFailed, c.Now(), "Timeout"
				r.Message = fmt.Sprintf("still %s after %s", orUnknown(dk.Status), timeout)
				if listedOK && !found {
					r.Message = fmt.Sprintf("DescribeDesktops has not listed the desktop for %s", timeout)
				}
			}
		default:
			continue
		}
		rec, changed, err := c.transition(ctx, ro, id, inFlight, change)
		if err != nil {
			return ems, err
		}
		recs[id] = rec
		if !changed {
			continue
		}
		if rec.State == DesktopSucceeded {
			if err := c.rememberImage(ctx, ro, id); err != nil {
				return ems, err
			}
			ems = append(ems, emission(events.TypeDesktopRebuildSucceeded, rec))
		} else {
			ems = append(ems, emission(events.TypeDesktopRebuildFailed, rec))
		}
	}
	return ems, nil
}

// rememberImage records the image version a desktop now runs (see OnImage).
func (c *Core) rememberImage(ctx context.Context, ro Rollout, id string) error {
	on := OnImage{DesktopID: id, ImageID: ro.DestinationImageID, VersionID: ro.Replication.VersionID, At: c.Now()}
	key := OnImageKey(ro.Replication.DestinationRegion, id)
	if err := c.Store.OnImage.Create(ctx, on, key...); !errors.Is(err, domain.ErrExists) {
		return err
	}
	_, err := c.Store.OnImage.Update(ctx, func(o *OnImage) error {
		*o = on
		return nil
	}, key...)
	return err
}

// transition changes a desktop record with compare-and-swap when allowed says the change
// still applies to what is stored, and reports whether this call made it.
func (c *Core) transition(ctx context.Context, ro Rollout, id string, allowed func(*DesktopRecord) bool, change func(*DesktopRecord)) (DesktopRecord, bool, error) {
	changed := false
	rec, err := c.Store.Desktops.Update(ctx, func(r *DesktopRecord) error {
		changed = false
		if !allowed(r) {
			return domain.ErrNoChange
		}
		change(r)
		r.UpdatedAt = c.Now()
		changed = true
		return nil
	}, DesktopKey(ro.Replication, id)...)
	return rec, changed, err
}

// emission is the outbox entry of a desktop event.
func emission(typ string, rec DesktopRecord) Emission {
	at := rec.UpdatedAt
	return Emission{Type: typ, DesktopID: rec.DesktopID, Batch: rec.Batch, Code: rec.Code, Message: rec.Message, At: at}
}

func index(ds []Desktop) map[string]Desktop {
	out := make(map[string]Desktop, len(ds))
	for _, d := range ds {
		out[d.ID] = d
	}
	return out
}

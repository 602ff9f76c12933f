// Package lifecycle builds the events of one replication's life (started, progressed,
// succeeded, failed, completed) for the replicate and poller cores. Their ids derive from the
// replication key, not from the delivery that caused them, so whichever worker or duplicate
// emits them, subscribers see each state change once.
package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// Emitter builds lifecycle events on behalf of one function.
type Emitter struct {
	// Function is the emitting function's name ("replicate", "poller").
	Function string
}

func (em Emitter) build(cause event.Event, typ string, r events.Replication, data any, parts ...string) (event.Event, error) {
	return events.New(typ, data, events.Meta{
		ID:            events.DeriveID(events.ReplicationKey(r), typ, parts...),
		Source:        events.SourceOf(em.Function),
		Provider:      r.Provider,
		Region:        r.DestinationRegion,
		ImageID:       r.ImageID,
		CorrelationID: events.CorrelationID(cause),
		CausationID:   cause.ID(),
		TraceParent:   events.StringExt(cause, events.ExtTraceParent),
		TraceState:    events.StringExt(cause, events.ExtTraceState),
	})
}

// Started builds replication.started from a record that has a task handle.
func (em Emitter) Started(cause event.Event, rec domain.Record) (event.Event, error) {
	r := ReplicationOf(rec.Copy)
	return em.build(cause, events.TypeReplicationStarted, r, events.ReplicationStarted{
		Replication:         r,
		TaskID:              rec.TaskID,
		DestinationImageID:  rec.DestinationImageID,
		StartedAt:           rec.StartedAt,
		Deadline:            rec.Deadline,
		PollIntervalSeconds: rec.PollIntervalSeconds,
	})
}

// Progressed builds replication.progressed for a percent and provider status.
func (em Emitter) Progressed(cause event.Event, rec domain.Record) (event.Event, error) {
	r := ReplicationOf(rec.Copy)
	return em.build(cause, events.TypeReplicationProgressed, r, events.ReplicationProgressed{
		Replication: r, TaskID: rec.TaskID, Percent: rec.Percent, Status: rec.ProviderStatus,
	}, strconv.Itoa(rec.Percent), rec.ProviderStatus)
}

// Succeeded builds replication.succeeded from a settled record.
func (em Emitter) Succeeded(cause event.Event, rec domain.Record) (event.Event, error) {
	r := ReplicationOf(rec.Copy)
	return em.build(cause, events.TypeReplicationSucceeded, r, events.ReplicationSucceeded{
		Replication:        r,
		TaskID:             rec.TaskID,
		DestinationImageID: rec.DestinationImageID,
		StartedAt:          rec.StartedAt,
		FinishedAt:         rec.FinishedAt,
		DurationSeconds:    duration(rec).Seconds(),
		OSType:             rec.OSType,
		Tags:               rec.Tags,
	})
}

// Failed builds replication.failed from a settled record.
func (em Emitter) Failed(cause event.Event, rec domain.Record, requestID string) (event.Event, error) {
	r := ReplicationOf(rec.Copy)
	return em.build(cause, events.TypeReplicationFailed, r, events.ReplicationFailed{
		Replication: r,
		TaskID:      rec.TaskID,
		Code:        rec.Code,
		Message:     rec.Message,
		Hint:        rec.Hint,
		RequestID:   requestID,
		FailedAt:    rec.FinishedAt,
	})
}

// Completed checks whether every planned region of rec's image has settled and, if so,
// returns replication.completed. Two workers settling the last two regions at once each write
// their record before reading the others, so at least one of them sees all settled; if both
// do, the event ids are equal and the bus keeps one.
func (em Emitter) Completed(ctx context.Context, store *state.Store, cause event.Event, img events.Image) (event.Event, bool, error) {
	plan, recs, all, err := store.Settled(ctx, img)
	if errors.Is(err, state.ErrNotFound) || err == nil && (!all || len(plan.Regions) == 0) {
		return event.Event{}, false, nil
	}
	if err != nil {
		return event.Event{}, false, err
	}
	data := events.ReplicationCompleted{Image: plan.Image}
	for _, r := range recs {
		data.Regions = append(data.Regions, events.RegionOutcome{
			Region: r.DestinationRegion, State: string(r.State), DestinationImageID: r.DestinationImageID, Code: r.Code, Message: r.Message,
		})
		if r.State == domain.StateSucceeded {
			data.Succeeded++
		} else {
			data.Failed++
		}
	}
	e, err := events.New(events.TypeReplicationCompleted, data, events.Meta{
		ID:            events.DeriveID(events.ImageKey(plan.Image), events.TypeReplicationCompleted, plan.CorrelationID),
		Source:        events.SourceOf(em.Function),
		Provider:      plan.Provider,
		Region:        plan.SourceRegion,
		ImageID:       plan.ImageID,
		CorrelationID: plan.CorrelationID,
		CausationID:   cause.ID(),
		TraceParent:   events.StringExt(cause, events.ExtTraceParent),
		TraceState:    events.StringExt(cause, events.ExtTraceState),
	})
	return e, err == nil, err
}

func duration(rec domain.Record) time.Duration {
	if rec.StartedAt.IsZero() || rec.FinishedAt.IsZero() {
		return 0
	}
	return rec.FinishedAt.Sub(rec.StartedAt)
}

// SlotName names the concurrency semaphore of a provider account (Huawei: 5 copies at once).
func SlotName(r events.Replication) string {
	account := r.Account
	if account == "" {
		account = "default"
	}
	return r.Provider + "/" + account
}

// SlotLease is how long a copy's slot is held without renewal: the poller renews it at every
// check, so it only lapses when nothing follows the copy any more.
func SlotLease(pollInterval time.Duration) time.Duration {
	return 3*pollInterval + 2*time.Minute
}

// SlotWaitFunction is the function whose requests wait for a concurrency slot.
const SlotWaitFunction = "replicate"

// SlotWaitKey is the schedule key of a request waiting for a concurrency slot; holder is the
// semaphore holder it will be (events.ReplicationKey of the copy). Whoever frees a slot wakes
// the oldest waiter's schedule under this key, so a free slot is taken at once rather than at
// the waiter's next back-off.
func SlotWaitKey(holder string) string { return "slot-wait:" + holder }

// Waker makes a pending schedule due now; the bus implements it.
type Waker interface {
	Wake(ctx context.Context, function, key string) error
}

// ReleaseSlot frees r's concurrency slot and wakes the oldest request waiting for one. A
// failure is logged, not returned: the slot's lease runs out by itself and a waiter asks
// again after its back-off, so nothing is lost, only delayed.
func ReleaseSlot(ctx context.Context, store *state.Store, waker Waker, r events.Replication, log *slog.Logger) {
	next, err := store.Release(ctx, SlotName(r), events.ReplicationKey(r))
	if err != nil {
		log.Warn("could not release the copy's concurrency slot; it frees when its lease ends", "key", events.ReplicationKey(r), "error", err)
		return
	}
	if next == "" || waker == nil {
		return
	}
	if err := waker.Wake(ctx, SlotWaitFunction, SlotWaitKey(next)); err != nil {
		log.Warn("could not wake the next request waiting for a copy slot; it asks again after its back-off", "waiter", next, "error", err)
	}
}

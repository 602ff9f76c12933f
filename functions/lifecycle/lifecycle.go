// Package lifecycle builds the events of one replication's life (started, progressed,
// succeeded, failed, completed) for the replicate and poller cores. Their ids derive from the
// replication key, not from the delivery that caused them, so whichever worker or duplicate
// emits them, subscribers see each state change once.
package lifecycle

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// Emitter builds lifecycle events on behalf of one function.
type Emitter struct {
	// Function is the emitting function's name ("replicate", "poller").
	Function string
}

func (em Emitter) build(cause event.Event, typ string, c domain.Copy, data any, parts ...string) (event.Event, error) {
	return events.New(typ, data, events.Meta{
		ID:       events.DeriveID(c.Key(), typ, parts...),
		Source:   events.SourceOf(em.Function),
		Provider: c.Provider,
		Region:   c.DestinationRegion,
		ImageID:  c.ImageID,
	}.CausedBy(cause))
}

// Started builds replication.started from a record that has a task handle.
func (em Emitter) Started(cause event.Event, rec domain.Record) (event.Event, error) {
	r := ReplicationOf(rec.Copy)
	return em.build(cause, events.TypeReplicationStarted, rec.Copy, events.ReplicationStarted{
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
	return em.build(cause, events.TypeReplicationProgressed, rec.Copy, events.ReplicationProgressed{
		Replication: r, TaskID: rec.TaskID, Percent: rec.Percent, Status: rec.ProviderStatus,
	}, strconv.Itoa(rec.Percent), rec.ProviderStatus)
}

// Succeeded builds replication.succeeded from a settled record.
func (em Emitter) Succeeded(cause event.Event, rec domain.Record) (event.Event, error) {
	r := ReplicationOf(rec.Copy)
	return em.build(cause, events.TypeReplicationSucceeded, rec.Copy, events.ReplicationSucceeded{
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
	return em.build(cause, events.TypeReplicationFailed, rec.Copy, events.ReplicationFailed{
		Replication: r,
		TaskID:      rec.TaskID,
		Code:        rec.Code,
		Message:     rec.Message,
		Hint:        rec.Hint,
		RequestID:   requestID,
		FailedAt:    rec.FinishedAt,
	})
}

// Settlements keeps, in each image's plan, which planned regions have settled; the state
// store implements it.
type Settlements interface {
	// Settle records that the settled records recs (regions of img) have settled, and
	// returns img's plan, with how each settled region ended, and whether every planned
	// region has now settled. Recording a region twice changes nothing, so a redelivered
	// settle reports the same completion again. domain.ErrNotFound when img has no plan.
	Settle(ctx context.Context, img domain.Image, recs ...domain.Record) (domain.Plan, bool, error)
}

// Completed records in img's plan that recs have settled and, when every planned region of
// img has settled, returns replication.completed. The plan is changed with compare-and-swap,
// so when two workers settle the last two regions at once, one of them sees the other's
// region and announces; a redelivered settle announces again, and the event id (derived
// from the image and the plan's correlation id) is the same, so the bus keeps one.
func (em Emitter) Completed(ctx context.Context, plans Settlements, cause event.Event, img domain.Image, recs ...domain.Record) (event.Event, bool, error) {
	plan, all, err := plans.Settle(ctx, img, recs...)
	if errors.Is(err, domain.ErrNotFound) || err == nil && !all {
		return event.Event{}, false, nil
	}
	if err != nil {
		return event.Event{}, false, err
	}
	data := events.ReplicationCompleted{Image: events.Image(plan.Image)}
	for _, region := range plan.Regions {
		r := plan.Settled[region]
		data.Regions = append(data.Regions, events.RegionOutcome{
			Region: region, State: string(r.State), DestinationImageID: r.DestinationImageID, Code: r.Code, Message: r.Message,
		})
		if r.State == domain.StateSucceeded {
			data.Succeeded++
		} else {
			data.Failed++
		}
	}
	e, err := events.New(events.TypeReplicationCompleted, data, events.Meta{
		ID:            events.DeriveID(plan.Image.Key(), events.TypeReplicationCompleted, plan.CorrelationID),
		Source:        events.SourceOf(em.Function),
		Provider:      plan.Provider,
		Region:        plan.SourceRegion,
		ImageID:       plan.ImageID,
		CorrelationID: plan.CorrelationID,
	}.CausedBy(cause))
	return e, err == nil, err
}

func duration(rec domain.Record) time.Duration {
	if rec.StartedAt.IsZero() || rec.FinishedAt.IsZero() {
		return 0
	}
	return rec.FinishedAt.Sub(rec.StartedAt)
}

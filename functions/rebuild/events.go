package rebuild

import (
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
)

// events builds the rollout's outbox entries as CloudEvents (without a Publisher, only the
// fresh ones). Ids derive from the rollout key, the type and the desktop, never from the
// delivery, so a duplicated trigger or a repeated publish yields the same ids and the bus
// keeps one of each.
func (c *Core) events(cause event.Event, ro Rollout) ([]event.Event, error) {
	cutoff := c.Now().Add(-c.OutboxTTL)
	var out []event.Event
	for _, em := range ro.Outbox {
		if c.Publisher == nil && em.At.Before(cutoff) {
			continue
		}
		var data any
		base := events.DesktopRebuild{Replication: ro.Replication, DestinationImageID: ro.DestinationImageID, Policy: ro.Policy,
			DesktopID: em.DesktopID, Batch: em.Batch, Code: em.Code, Message: em.Message}
		switch em.Type {
		case events.TypeRebuildPlanned:
			data = events.RebuildPlanned{Replication: ro.Replication, DestinationImageID: ro.DestinationImageID, Policy: ro.Policy,
				DryRun: ro.DryRun, Decisions: ro.Decisions}
		case events.TypeDesktopRebuildStarted, events.TypeDesktopRebuildSucceeded:
			base.Code, base.Message = "", ""
			data = base
		case events.TypeDesktopRebuildFailed:
			data = base
		case events.TypeRebuildCompleted:
			data = events.RebuildCompleted{Replication: ro.Replication, DestinationImageID: ro.DestinationImageID, Policy: ro.Policy,
				Succeeded: ro.Succeeded, Failed: ro.Failed, Skipped: ro.Skipped, Stopped: ro.Stopped, Reason: ro.Reason}
		default:
			return nil, fmt.Errorf("rebuild: unknown outbox entry %q in %s", em.Type, ro.Key)
		}
		var parts []string
		if em.DesktopID != "" {
			parts = append(parts, em.DesktopID)
		}
		e, err := events.New(em.Type, data, events.Meta{
			ID:            events.DeriveID(ro.Key, em.Type, parts...),
			Source:        events.SourceOf(Name),
			Provider:      ro.Replication.Provider,
			Region:        ro.Replication.DestinationRegion,
			ImageID:       ro.Replication.ImageID,
			CorrelationID: ro.CorrelationID,
			Time:          em.At,
		}.CausedBy(cause))
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

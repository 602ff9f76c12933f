package lifecycle

import (
	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// The cores speak the event contract on the bus and the domain's types to providers and
// records; these functions are where one becomes the other, so a change of either side is
// made here once.

// CopyOf is the domain copy an event's replication names.
func CopyOf(r events.Replication) domain.Copy {
	return domain.Copy{Image: domain.Image(r.Image), DestinationRegion: r.DestinationRegion}
}

// ReplicationOf is the event contract's replication of a domain copy.
func ReplicationOf(c domain.Copy) events.Replication {
	return events.Replication{Image: events.Image(c.Image), DestinationRegion: c.DestinationRegion}
}

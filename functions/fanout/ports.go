package fanout

import "github.com/imagerelay/imagerelay/events"

// ConstraintChecker knows a provider's documented limits, so fanout can skip a region with a
// reason before any API call is made.
type ConstraintChecker interface {
	// CheckCopy returns "" when img may be copied to region, else the reason in plain words
	// (unknown region, same as source, too large, encrypted, made from an ISO file, ...).
	CheckCopy(img events.ImagePublished, region string) string
}

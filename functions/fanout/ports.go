package fanout

import "github.com/imagerelay/imagerelay/shared/domain"

// ConstraintChecker knows a provider's documented limits, so fanout can skip a region with a
// reason before any API call is made. Implementations need no cloud SDK (see
// shared/adapters/<cloud>/constraints).
type ConstraintChecker interface {
	// CheckCopy returns "" when src may be copied to region, else the reason in plain words
	// (unknown region, same as source, too large, encrypted, made from an ISO file, ...).
	CheckCopy(src domain.Source, region string) string
}

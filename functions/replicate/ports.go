package replicate

import (
	"context"
	"time"

	"github.com/imagerelay/imagerelay/functions/lifecycle"

	"github.com/imagerelay/imagerelay/shared/domain"
)

// Copier starts copies at one provider. Implementations classify every failure as a
// *domain.ProviderError (retryable or terminal) and must be safe for concurrent use.
type Copier interface {
	// StartCopy starts copying req's image to req.Regions and returns one handle per region.
	// A region that already holds the image comes back with AlreadyPresent.
	StartCopy(ctx context.Context, req domain.StartRequest) ([]domain.Handle, error)
	// FindCopy looks for a copy of req to req.Regions[0] that an interrupted earlier attempt
	// may have started, so a crash between the claim and the provider call never causes a
	// second copy.
	FindCopy(ctx context.Context, req domain.StartRequest) (domain.Handle, bool, error)
}

// MultiRegionCopier is implemented by copiers whose API starts many regions in one call
// (Alibaba StartTaskForDistributeImage).
type MultiRegionCopier interface {
	Copier
	MultiRegion() bool
}

// BoundedCopier is implemented by copiers that know the longest a call can take, because
// their calls wait for the provider's answer or their own timeout and never outlive it
// (Huawei: the rate limiter's bounded wait plus the SDK's HTTP timeout). replicate trusts a
// "starting" claim at least that long, so a slow call is never taken for a crashed worker
// whose copy must be looked for, and then started a second time.
type BoundedCopier interface {
	Copier
	MaxCallDuration() time.Duration
}

// Records are the plans and replication records replicate checks, claims and advances; the
// state store implements them.
type Records interface {
	// Plan returns the plan fanout stored for img; domain.ErrNotFound when there is none.
	Plan(ctx context.Context, img domain.Image) (domain.Plan, error)
	// RecentPlan returns img's plan as last read or written by this process, without a
	// read, when it has one. It may be older than the stored plan, which only grows.
	RecentPlan(img domain.Image) (domain.Plan, bool)
	// Record returns c's record; domain.ErrNotFound when there is none.
	Record(ctx context.Context, c domain.Copy) (domain.Record, error)
	// CreateRecord stores a new record; domain.ErrExists when c has one.
	CreateRecord(ctx context.Context, rec domain.Record) error
	// UpdateRecord changes c's record with compare-and-swap; change may return
	// domain.ErrNoChange.
	UpdateRecord(ctx context.Context, c domain.Copy, change func(*domain.Record) error) (domain.Record, error)
	// CreateRecordRevision stores a new record and returns its revision; domain.ErrExists
	// when c has one. A record created claimed is a claim won by the write that creates it.
	CreateRecordRevision(ctx context.Context, rec domain.Record) (uint64, error)
	// UpdateRecordFrom changes rec, created or read at revision rev, with compare-and-swap
	// without reading it first; when it changed since, change is applied to it as it is now.
	UpdateRecordFrom(ctx context.Context, rec domain.Record, rev uint64, change func(*domain.Record) error) (domain.Record, uint64, error)
	lifecycle.Settlements
}

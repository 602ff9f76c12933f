package poller

import (
	"context"

	"github.com/imagerelay/imagerelay/functions/lifecycle"

	"github.com/imagerelay/imagerelay/shared/domain"
)

// StatusReader reads the status of in-flight copies at one provider.
type StatusReader interface {
	// CopyStatus returns the status of each task, in the order given. All tasks share one
	// provider, account and destination region, and there are at most BatchSize of them.
	// An error fails the whole batch (it is retried); a task the provider does not know is
	// reported as PhaseNotFound, not as an error.
	CopyStatus(ctx context.Context, tasks []domain.Task) ([]domain.CopyStatus, error)
	// BatchSize is the most tasks one CopyStatus call may carry (Tencent DescribeImages: 100).
	BatchSize() int
}

// Records are the replication records the poller reads and advances; the state store
// implements them.
type Records interface {
	// RecordRevision reads c's record and its revision; domain.ErrNotFound when c has no
	// record.
	RecordRevision(ctx context.Context, c domain.Copy) (domain.Record, uint64, error)
	// UpdateRecordFrom changes rec, read at revision rev, with compare-and-swap without
	// reading it again; when it changed since, change is applied to it as it is now. change
	// may return domain.ErrNoChange.
	UpdateRecordFrom(ctx context.Context, rec domain.Record, rev uint64, change func(*domain.Record) error) (domain.Record, uint64, error)
	// Records returns every replication record, for the sweep over copies in flight.
	Records(ctx context.Context) ([]domain.Record, error)
	lifecycle.Settlements
}

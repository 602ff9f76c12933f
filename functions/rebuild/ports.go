package rebuild

import (
	"context"

	"github.com/imagerelay/imagerelay/shared/domain"
)

// Table holds records of one type under keys given as parts; the store encodes the parts into
// its own key (one '.'-separated token per part), so the core never builds a key string. The
// composition root adapts the KV store to it; the core's tests use an in-memory one.
// Implementations must be safe for concurrent use.
type Table[T any] interface {
	// Get reads the record at key; [domain.ErrNotFound] when there is none.
	Get(ctx context.Context, key ...string) (T, error)
	// Create stores v at key if nothing is there yet; [domain.ErrExists] otherwise.
	Create(ctx context.Context, v T, key ...string) error
	// Update reads the record at key, applies change and writes the result back with
	// compare-and-swap, applying change again to the latest value when another writer got
	// there first. change may return [domain.ErrNoChange] to leave the record as it is; any
	// other error is returned. Update returns the record as stored (or as read, after
	// ErrNoChange), and [domain.ErrNotFound] when there is none.
	Update(ctx context.Context, change func(*T) error, key ...string) (T, error)
}

// Copies reads the replication records the other functions keep: rebuild acts only on copies
// imagerelay made and saw succeed, and looks up the earlier versions of an image.
type Copies interface {
	// Record returns the replication record of one copy; [domain.ErrNotFound] when there is
	// none.
	Record(ctx context.Context, c domain.Copy) (domain.Record, error)
	// RecordsOf returns the replication records of every version of the image, in every
	// region, from a listing the store filters by key prefix (not a scan of every record).
	RecordsOf(ctx context.Context, img domain.Image) ([]domain.Record, error)
}

// Store is the storage the rebuild core needs, as ports the composition root fills.
type Store struct {
	// Rollouts holds one record per policy and copy, under [RolloutKey].
	Rollouts Table[Rollout]
	// Desktops holds one record per desktop and copy, under [DesktopKey].
	Desktops Table[DesktopRecord]
	// OnImage holds the image version each desktop was last rebuilt onto, under [OnImageKey].
	OnImage Table[OnImage]
	// Copies reads the replication records.
	Copies Copies
	// Key encodes key parts the way the tables do (state.Key in production). A rollout is
	// named by its encoded key: the name is stored in the rollout and in its desktops'
	// records, and every event id of the rollout derives from it, so it must be the store's
	// encoding and must not change between releases.
	Key func(parts ...string) string
}

// Fleet lists and rebuilds the cloud desktops of one provider (Alibaba Cloud Elastic Desktop
// Service). The core owns this port; shared/compose adapts the Alibaba client to it.
// Implementations classify failures as *domain.ProviderError (retryable or terminal)
// and must be safe for concurrent use.
type Fleet interface {
	// ListDesktops returns every desktop of region that matches filter, across all pages.
	ListDesktops(ctx context.Context, region string, filter DesktopFilter) ([]Desktop, error)
	// RebuildDesktops asks for 1–20 desktops of region to be rebuilt onto imageID in one call.
	// A desktop the service refuses comes back with OK false and the service's code; that is
	// not an error. An error means the whole call was refused (or its answer was lost).
	RebuildDesktops(ctx context.Context, region string, ids []string, imageID string, opts Options) ([]DesktopResult, error)
}

// Desktop is one cloud desktop as the fleet lists it.
type Desktop struct {
	ID string
	// Status is the provider's status word: Pending, Starting, Running, Stopping, Stopped,
	// Rebuilding, Expired, Deleted.
	Status  string
	ImageID string
	// OSType is Windows or Linux.
	OSType string
	// GPU is true for graphics desktops, which take GPU images only.
	GPU bool
	// DataDisk is true when the desktop has a data disk besides its system disk.
	DataDisk bool
	GroupID  string
	Tags     map[string]string
}

// DesktopFilter narrows ListDesktops on the provider's side; empty fields do not filter. The
// core checks every selection rule again on what comes back.
type DesktopFilter struct {
	DesktopIDs []string
	ImageIDs   []string
	GroupID    string
	// Tags must all match.
	Tags map[string]string
}

// Options are the RebuildDesktops parameters a policy sets.
type Options struct {
	// OperateType is "" (keep the data disk when the OS is unchanged) or "replace".
	OperateType string
	// Language is en-US, zh-HK, zh-CN, ja-JP or "" (keep the image's).
	Language string
}

// DesktopResult is one desktop's answer to RebuildDesktops.
type DesktopResult struct {
	DesktopID string
	// Code is "success" when the rebuild started, else the service's reason
	// (IncorrectDesktopStatus, ...).
	Code    string
	Message string
	// OK is true when the rebuild was accepted (Code "success" in any letter case).
	OK bool
}

// Desktop statuses the core acts on.
const (
	StatusRunning    = "Running"
	StatusStopped    = "Stopped"
	StatusRebuilding = "Rebuilding"
)

package rebuild

import "context"

// Fleet lists and rebuilds the cloud desktops of one provider (Alibaba Cloud Elastic Desktop
// Service). The core owns this port; shared/compose adapts the Alibaba client to it.
// Implementations classify failures as *replication.ProviderError (retryable or terminal)
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

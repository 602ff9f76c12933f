package domain

// StartRequest asks a provider to start copying one image to one or more regions, or to look
// for a copy that an earlier, interrupted attempt may have started.
type StartRequest struct {
	Source
	// Regions are the regions to start in this call (or, for a lookup, the one region to look
	// in). Providers that copy one region per call (Tencent, Huawei) receive exactly one;
	// Alibaba may receive several.
	Regions []string
	// Name is the deterministic name of the copy (see CopyName), so a restarted worker can
	// find a copy it started before crashing.
	Name string
}

// Handle is what a provider returns when it accepted a copy to one region.
type Handle struct {
	Region string
	// TaskID follows the copy: Alibaba task id, Huawei job id, Tencent destination image id.
	TaskID string
	// DestinationImageID is the copy's image id when known at start.
	DestinationImageID string
	// AlreadyPresent is true when the region already had the image (nothing was started).
	AlreadyPresent bool
}

// Task is an in-flight copy the poller asks a provider about.
type Task struct {
	Copy
	// TaskID is the handle the provider returned at start.
	TaskID string
	// DestinationImageID is the copy's image id, when known.
	DestinationImageID string
}

// Phase is the coarse state of a copy at the provider.
type Phase string

// Phases of a copy as the poller sees them.
const (
	PhaseInProgress Phase = "in-progress"
	PhaseSucceeded  Phase = "succeeded"
	PhaseFailed     Phase = "failed"
	// PhaseNotFound means the provider has no trace of the task (yet, or any more).
	PhaseNotFound Phase = "not-found"
)

// CopyStatus is the provider's view of one task.
type CopyStatus struct {
	Phase Phase
	// Percent is 0–100.
	Percent int
	// ProviderStatus is the provider's own status word.
	ProviderStatus     string
	DestinationImageID string
	// Code and Message explain a failure.
	Code, Message string
}

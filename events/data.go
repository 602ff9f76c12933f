package events

import "time"

// Image identifies one image version at its source, the part every replication event carries.
type Image struct {
	// Provider is one of [Providers].
	Provider string `json:"provider"`
	// Account names the cloud account (tenant) the image belongs to. It is a label chosen by
	// the operator, never a credential; "default" when there is one account per provider.
	Account string `json:"account,omitempty"`
	// ImageID is the provider's id of the source image.
	ImageID string `json:"imageId"`
	// VersionID is the image version (Alibaba App Streaming "iv-..."); empty where the provider
	// has no versions.
	VersionID string `json:"versionId,omitempty"`
	// ImageName is the source image's display name.
	ImageName string `json:"imageName,omitempty"`
	// SourceRegion is the region that holds the source image.
	SourceRegion string `json:"sourceRegion"`
	// ProductType is Alibaba's product type (CloudDesktop, CloudApp, WuyingServer).
	ProductType string `json:"productType,omitempty"`
}

// ImagePublished is the data of io.imagerelay.image.published: a new image (or version) exists
// and may need to be copied to other regions.
type ImagePublished struct {
	Image
	// SizeGB is the image size in GiB, used to check provider limits before any call.
	SizeGB int `json:"sizeGB,omitempty"`
	// Encrypted is true for an encrypted image; most providers refuse to copy those.
	Encrypted bool `json:"encrypted,omitempty"`
	// FromISO is true for an image created from an ISO file (Huawei refuses those).
	FromISO bool `json:"fromISO,omitempty"`
	// OSType is the operating system family (Windows, Linux), used by rebuild compatibility.
	OSType string `json:"osType,omitempty"`
	// Tags are the image's labels; replication and rebuild policies can match on them.
	Tags map[string]string `json:"tags,omitempty"`
	// Regions, when set, asks for exactly these destinations instead of the policy's list
	// (the policy still has to allow them).
	Regions []string `json:"regions,omitempty"`
}

// SkippedRegion is a destination that the plan left out, with the reason in plain words.
type SkippedRegion struct {
	Region string `json:"region"`
	Reason string `json:"reason"`
}

// ReplicationPlanned is the data of io.imagerelay.replication.planned: the destinations fanout
// chose for one image and why any were skipped.
type ReplicationPlanned struct {
	Image
	// Policy is the name of the replication policy that matched, empty if none did.
	Policy  string          `json:"policy,omitempty"`
	Regions []string        `json:"regions"`
	Skipped []SkippedRegion `json:"skipped,omitempty"`
}

// Replication names one copy: a source image version to one destination region.
type Replication struct {
	Image
	// DestinationRegion is where the copy goes.
	DestinationRegion string `json:"destinationRegion"`
}

// ReplicationRequested is the data of io.imagerelay.replication.requested: copy the image to
// one destination region.
type ReplicationRequested struct {
	Replication
	// SizeGB, Encrypted and FromISO are carried from the published event for provider checks.
	SizeGB    int  `json:"sizeGB,omitempty"`
	Encrypted bool `json:"encrypted,omitempty"`
	FromISO   bool `json:"fromISO,omitempty"`
	// Regions is the full destination list of the plan, so a provider that copies to many
	// regions in one call (Alibaba) can do so safely.
	Regions []string `json:"regions,omitempty"`
	// TimeoutSeconds bounds the whole copy; past it the poller reports Timeout.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
	// PollIntervalSeconds is how often the poller checks this copy.
	PollIntervalSeconds int `json:"pollIntervalSeconds,omitempty"`
	// OSType and Tags are carried from the published image for rebuild policies.
	OSType string            `json:"osType,omitempty"`
	Tags   map[string]string `json:"tags,omitempty"`
}

// ReplicationStarted is the data of io.imagerelay.replication.started: the provider accepted the
// copy and returned a handle to follow it.
type ReplicationStarted struct {
	Replication
	// TaskID is the provider's handle: Alibaba task id, Huawei job id, Tencent destination image id.
	TaskID string `json:"taskId"`
	// DestinationImageID is the id of the copy, when the provider tells it at start (Tencent).
	DestinationImageID string    `json:"destinationImageId,omitempty"`
	StartedAt          time.Time `json:"startedAt"`
	// Deadline is when the copy times out.
	Deadline            time.Time `json:"deadline"`
	PollIntervalSeconds int       `json:"pollIntervalSeconds,omitempty"`
}

// ReplicationProgressed is the data of io.imagerelay.replication.progressed, emitted when a
// copy's progress or provider status changes.
type ReplicationProgressed struct {
	Replication
	TaskID string `json:"taskId"`
	// Percent is 0–100.
	Percent int `json:"percent"`
	// Status is the provider's own status word (SYNCING, RUNNING, INIT, ...).
	Status string `json:"status"`
}

// ReplicationSucceeded is the data of io.imagerelay.replication.succeeded: the copy exists and is
// usable in the destination region.
type ReplicationSucceeded struct {
	Replication
	TaskID             string    `json:"taskId,omitempty"`
	DestinationImageID string    `json:"destinationImageId"`
	StartedAt          time.Time `json:"startedAt,omitzero"`
	FinishedAt         time.Time `json:"finishedAt"`
	DurationSeconds    float64   `json:"durationSeconds"`
	// OSType and Tags are carried from the published image for rebuild policies.
	OSType string            `json:"osType,omitempty"`
	Tags   map[string]string `json:"tags,omitempty"`
}

// ReplicationFailed is the data of io.imagerelay.replication.failed: the copy will not happen
// (a terminal provider refusal, a failed task, or a timeout).
type ReplicationFailed struct {
	Replication
	TaskID string `json:"taskId,omitempty"`
	// Code is the provider's error code, or Timeout / TaskFailed.
	Code string `json:"code"`
	// Message is the provider's message.
	Message string `json:"message"`
	// Hint tells the operator what to do about it.
	Hint string `json:"hint,omitempty"`
	// RequestID is the provider's request id, for a support ticket.
	RequestID string    `json:"requestId,omitempty"`
	FailedAt  time.Time `json:"failedAt"`
}

// RegionOutcome is one destination's final state inside a completed event.
type RegionOutcome struct {
	Region             string `json:"region"`
	State              string `json:"state"`
	DestinationImageID string `json:"destinationImageId,omitempty"`
	Code               string `json:"code,omitempty"`
	Message            string `json:"message,omitempty"`
}

// ReplicationCompleted is the data of io.imagerelay.replication.completed: every destination of
// one image has settled.
type ReplicationCompleted struct {
	Image
	Succeeded int             `json:"succeeded"`
	Failed    int             `json:"failed"`
	Regions   []RegionOutcome `json:"regions"`
}

// RebuildDecision is what the rebuild plan decided for one desktop.
type RebuildDecision struct {
	DesktopID string `json:"desktopId"`
	// Action is "rebuild" or "skip".
	Action string `json:"action"`
	Reason string `json:"reason,omitempty"`
	// Batch is the rollout batch (0 = canary) for desktops to rebuild.
	Batch int `json:"batch,omitempty"`
}

// RebuildPlanned is the data of io.imagerelay.rebuild.planned.
type RebuildPlanned struct {
	Replication
	DestinationImageID string            `json:"destinationImageId"`
	Policy             string            `json:"policy"`
	DryRun             bool              `json:"dryRun"`
	Decisions          []RebuildDecision `json:"decisions"`
}

// DesktopRebuild is the data of io.imagerelay.desktop.rebuild.started, .succeeded and .failed.
type DesktopRebuild struct {
	Replication
	DestinationImageID string `json:"destinationImageId"`
	Policy             string `json:"policy"`
	DesktopID          string `json:"desktopId"`
	Batch              int    `json:"batch"`
	Code               string `json:"code,omitempty"`
	Message            string `json:"message,omitempty"`
}

// RebuildCompleted is the data of io.imagerelay.rebuild.completed.
type RebuildCompleted struct {
	Replication
	DestinationImageID string `json:"destinationImageId"`
	Policy             string `json:"policy"`
	Succeeded          int    `json:"succeeded"`
	Failed             int    `json:"failed"`
	Skipped            int    `json:"skipped"`
	// Stopped is true when the rollout stopped early (failure budget spent).
	Stopped bool   `json:"stopped"`
	Reason  string `json:"reason,omitempty"`
}

package rebuild

import (
	"time"

	"github.com/imagerelay/imagerelay/events"
)

// Phase is where a rollout stands.
type Phase string

// Rollout phases.
const (
	// PhaseRollingOut means batches remain (or one is in flight, or the rollout waits for its
	// maintenance window).
	PhaseRollingOut Phase = "rolling-out"
	// PhaseDone means the rollout finished, stopped early, or was a dry run.
	PhaseDone Phase = "done"
)

// Rollout is the KV record of one policy's rollout onto one replicated copy. It is created
// once (the plan is computed before and stored with it, so every redelivery follows the same
// plan) and advanced with compare-and-swap.
type Rollout struct {
	Key                string             `json:"key"`
	Policy             string             `json:"policy"`
	Replication        events.Replication `json:"replication"`
	DestinationImageID string             `json:"destinationImageId"`
	CorrelationID      string             `json:"correlationId,omitempty"`
	DryRun             bool               `json:"dryRun,omitempty"`
	// Decisions and Batches are the plan (see Plan).
	Decisions []events.RebuildDecision `json:"decisions"`
	Batches   [][]string               `json:"batches"`
	// Previous is each desktop's image id when the plan was made.
	Previous map[string]string `json:"previous,omitempty"`
	Phase    Phase             `json:"phase"`
	// Current is the batch being rolled out; BatchStartedAt is zero until its first desktop
	// is claimed.
	Current        int       `json:"current"`
	BatchStartedAt time.Time `json:"batchStartedAt,omitzero"`
	// WaitingUntil is when the maintenance window opens, while the rollout waits for it.
	WaitingUntil time.Time `json:"waitingUntil,omitzero"`
	Succeeded    int       `json:"succeeded"`
	Failed       int       `json:"failed"`
	// Skipped counts the plan's skips and desktops another policy rebuilt for the same copy.
	Skipped int    `json:"skipped"`
	Stopped bool   `json:"stopped,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// LastStepAt is when a delivery last advanced the rollout; a second chain of deliveries
	// (a duplicated trigger) that finds it recent does no work.
	LastStepAt time.Time `json:"lastStepAt"`
	CreatedAt  time.Time `json:"createdAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// Outbox holds the events of steps that the bus has not yet acknowledged. A step adds
	// its events in the same write as its state change, so they survive a failed publish or
	// a crash before the publish; they leave once stored (see Core.Publisher).
	Outbox []Emission `json:"outbox,omitempty"`
}

// Emission is an event a rollout step produced, kept in the outbox.
type Emission struct {
	Type      string    `json:"type"`
	DesktopID string    `json:"desktopId,omitempty"`
	Batch     int       `json:"batch,omitempty"`
	Code      string    `json:"code,omitempty"`
	Message   string    `json:"message,omitempty"`
	At        time.Time `json:"at"`
}

// DesktopState is where one desktop's rebuild stands.
type DesktopState string

// Desktop rebuild states.
const (
	// DesktopStarting is the claim taken before RebuildDesktops is called.
	DesktopStarting DesktopState = "starting"
	// DesktopUncertain means the call failed in a way that may or may not have reached the
	// service; the desktop is looked at before it is named again.
	DesktopUncertain DesktopState = "uncertain"
	// DesktopRebuilding means the service accepted the rebuild.
	DesktopRebuilding DesktopState = "rebuilding"
	DesktopSucceeded  DesktopState = "succeeded"
	DesktopFailed     DesktopState = "failed"
	// DesktopSkipped means the desktop was no longer rebuildable when its batch came.
	DesktopSkipped DesktopState = "skipped"
)

// Settled reports whether the state is final.
func (s DesktopState) Settled() bool {
	return s == DesktopSucceeded || s == DesktopFailed || s == DesktopSkipped
}

// DesktopRecord is the KV record of one desktop's rebuild for one replicated copy. It is
// keyed by the copy and the desktop, not by the policy, so two policies never rebuild the
// same desktop for the same copy, and it is created before RebuildDesktops names the
// desktop, so no redelivery names it twice.
type DesktopRecord struct {
	Rollout            string       `json:"rollout"`
	Policy             string       `json:"policy"`
	DesktopID          string       `json:"desktopId"`
	Region             string       `json:"region"`
	DestinationImageID string       `json:"destinationImageId"`
	Batch              int          `json:"batch"`
	State              DesktopState `json:"state"`
	Code               string       `json:"code,omitempty"`
	Message            string       `json:"message,omitempty"`
	// Calls counts the RebuildDesktops calls that named this desktop.
	Calls         int       `json:"calls"`
	StartingSince time.Time `json:"startingSince,omitzero"`
	StartedAt     time.Time `json:"startedAt,omitzero"`
	FinishedAt    time.Time `json:"finishedAt,omitzero"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

// OnImage records the image version imagerelay last rebuilt a desktop onto, so a later
// version with the same image id (App Streaming) can tell "already on it" from "on an older
// version".
type OnImage struct {
	DesktopID string    `json:"desktopId"`
	ImageID   string    `json:"imageId"`
	VersionID string    `json:"versionId,omitempty"`
	At        time.Time `json:"at"`
}

// RolloutKey is the key, as parts (see [Table]), of a policy's rollout onto one copy.
func RolloutKey(policy string, r events.Replication) []string {
	return []string{"rebuild", "rollout", policy, events.ReplicationKey(r)}
}

// DesktopKey is the key, as parts, of one desktop's rebuild for one copy.
func DesktopKey(r events.Replication, desktopID string) []string {
	return []string{"rebuild", "desktop", events.ReplicationKey(r), desktopID}
}

// OnImageKey is the key, as parts, of the image version a desktop was last rebuilt onto.
func OnImageKey(region, desktopID string) []string {
	return []string{"rebuild", "on", region, desktopID}
}

// key returns the rollout's key as parts (its Key field is their encoding).
func (ro Rollout) key() []string { return RolloutKey(ro.Policy, ro.Replication) }

// RolloutPrefix returns the key prefix, as parts, of every rollout record, for status
// listings.
func RolloutPrefix() []string { return []string{"rebuild", "rollout"} }

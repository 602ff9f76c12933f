// Package domain is the domain model shared by the function cores and the provider
// adapters: the request to start a copy, the status of a copy, the record that tracks one copy
// through its life, and the classified error every provider returns.
package domain

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/imagerelay/imagerelay/events"
)

// CopyRequest asks a provider to copy one image version to one or more destination regions.
type CopyRequest struct {
	events.ReplicationRequested
	// DestinationRegions are the regions to start in this call. Providers that copy one
	// region per call receive exactly one; Alibaba may receive several.
	DestinationRegions []string
	// Name is the deterministic name of the copy, so a restarted worker can find a copy it
	// started before crashing.
	Name string
}

// CopyHandle is what a provider returns when it accepted a copy to one region.
type CopyHandle struct {
	Region string
	// TaskID follows the copy: Alibaba task id, Huawei job id, Tencent destination image id.
	TaskID string
	// DestinationImageID is the copy's image id when known at start.
	DestinationImageID string
	// AlreadyPresent is true when the region already had the image (nothing was started).
	AlreadyPresent bool
}

// Task is an in-flight copy the poller asks about.
type Task struct {
	events.Replication
	TaskID             string
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

// Class says what to do about a provider error.
type Class int

const (
	// Terminal errors will not go away by retrying: report replication.failed.
	Terminal Class = iota
	// Retryable errors are throttling, 5xx and transient states: try again later.
	Retryable
)

// ErrRetryable is matched (with errors.Is) by retryable provider errors.
var ErrRetryable = errors.New("retryable provider error")

// ErrTerminal is matched (with errors.Is) by terminal provider errors.
var ErrTerminal = errors.New("terminal provider error")

// ProviderError is a classified error from a cloud API, carrying the provider's own code and
// message and a hint for the operator. Secrets never appear in it.
type ProviderError struct {
	Provider   string
	Action     string
	Code       string
	Message    string
	RequestID  string
	HTTPStatus int
	Class      Class
	// RetryAfter is the provider's requested wait, when it said one.
	RetryAfter time.Duration
	// Hint tells the operator what to do.
	Hint string
	// NotExecuted is set by a provider that knows the request did nothing: it never left
	// this process (the context ended while waiting for the rate limiter, say), or the
	// provider answered that it refused it. See [MaybeStarted].
	NotExecuted bool
}

// Error implements error.
func (e *ProviderError) Error() string {
	s := fmt.Sprintf("%s %s: %s: %s", e.Provider, e.Action, e.Code, e.Message)
	if e.RequestID != "" {
		s += " (request id " + e.RequestID + ")"
	}
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// Is matches ErrRetryable or ErrTerminal by class.
func (e *ProviderError) Is(target error) bool {
	return (target == ErrRetryable && e.Class == Retryable) || (target == ErrTerminal && e.Class == Terminal)
}

// AsProviderError returns err as a *ProviderError, classifying anything else (network
// failures, context deadlines) as retryable.
func AsProviderError(provider, action string, err error) *ProviderError {
	var pe *ProviderError
	if errors.As(err, &pe) {
		return pe
	}
	return &ProviderError{Provider: provider, Action: action, Code: "NetworkError", Message: err.Error(), Class: Retryable,
		Hint: "the provider could not be reached; imagerelay will retry"}
}

// MaybeStarted reports whether a start call that failed with err may nonetheless have
// started the copy: the request may have reached the provider, and the answer was lost or
// was a server error (a timeout, a dropped connection, a 5xx). The next attempt must then look
// for the copy before it calls again, or a provider without a duplicate check (Huawei IMS)
// makes a second copy.
//
// It is false for answers that say the request was refused, not executed: any terminal
// error, throttling that the provider documents as not executed (Tencent
// RequestLimitExceeded, Alibaba Throttling.*, Huawei APIGW.0308 or HTTP 429), Huawei's
// refusal for too many copies in flight (IMG.0457), and errors marked NotExecuted.
// Anything it does not recognise counts as maybe started: a needless lookup costs one
// read, a missed one a duplicate copy.
func MaybeStarted(err error) bool {
	var pe *ProviderError
	if !errors.As(err, &pe) {
		return true
	}
	switch {
	case pe.Class == Terminal, pe.NotExecuted, pe.HTTPStatus == http.StatusTooManyRequests:
		return false
	case pe.Code == "RequestLimitExceeded", strings.HasPrefix(pe.Code, "RequestLimitExceeded."): // Tencent
		return false
	case strings.HasPrefix(pe.Code, "Throttling"): // Alibaba: Throttling, Throttling.User, Throttling.Api
		return false
	case pe.Code == "RateLimitWait": // Alibaba: the rate limiter's wait ended; nothing was sent
		return false
	case pe.Code == "APIGW.0308", pe.Code == "IMG.0457": // Huawei: throttled; too many copies at once
		return false
	}
	return true
}

// State is the lifecycle of a replication record.
type State string

// States of a replication record. Settled states are Succeeded and Failed.
const (
	StateRequested  State = "requested"
	StateStarting   State = "starting" // claimed by replicate; the provider call may be in flight
	StateWaiting    State = "waiting"  // waiting for a concurrency slot (Huawei) or throttling
	StateInProgress State = "in-progress"
	StateSucceeded  State = "succeeded"
	StateFailed     State = "failed"
	StateSkipped    State = "skipped"
)

// Settled reports whether s is final.
func (s State) Settled() bool { return s == StateSucceeded || s == StateFailed || s == StateSkipped }

// Record tracks one copy in the KV store; it is what `imagerelay status` shows.
type Record struct {
	Key string `json:"key"`
	events.Replication
	State              State  `json:"state"`
	TaskID             string `json:"taskId,omitempty"`
	DestinationImageID string `json:"destinationImageId,omitempty"`
	Percent            int    `json:"percent"`
	ProviderStatus     string `json:"providerStatus,omitempty"`
	Code               string `json:"code,omitempty"`
	Message            string `json:"message,omitempty"`
	Hint               string `json:"hint,omitempty"`
	StartCalls         int    `json:"startCalls"`
	Polls              int    `json:"polls"`
	// NotFound counts consecutive checks the provider did not know the task.
	NotFound      int       `json:"notFound,omitempty"`
	CorrelationID string    `json:"correlationId,omitempty"`
	RequestedAt   time.Time `json:"requestedAt,omitzero"`
	StartedAt     time.Time `json:"startedAt,omitzero"`
	FinishedAt    time.Time `json:"finishedAt,omitzero"`
	Deadline      time.Time `json:"deadline,omitzero"`
	UpdatedAt     time.Time `json:"updatedAt,omitzero"`
	// LastPolledAt is when the poller last asked the provider; it keeps a duplicated poll
	// chain from polling the same copy twice.
	LastPolledAt        time.Time `json:"lastPolledAt,omitzero"`
	PollIntervalSeconds int       `json:"pollIntervalSeconds,omitempty"`
	// StartingSince is when a worker claimed the record to call the provider.
	StartingSince time.Time         `json:"startingSince,omitzero"`
	OSType        string            `json:"osType,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
	// Holder is who claimed the record (worker id + event id), for crash recovery.
	Holder string `json:"holder,omitempty"`
	// AmbiguousAt, when set, is when a start call ended without a clear answer (a timeout, a
	// dropped connection, a 5xx: see MaybeStarted): the copy may exist, so the next attempt
	// looks for it before it calls the provider again. A clear answer clears it.
	AmbiguousAt time.Time `json:"ambiguousAt,omitzero"`
	// SlotWaits counts the times in a row this copy found every concurrency slot taken
	// (Huawei: 5 per tenant); the wait before asking again doubles with it.
	SlotWaits int `json:"slotWaits,omitempty"`
}

// Ambiguous reports whether an earlier start call may have started the copy without saying
// so (see AmbiguousAt).
func (r Record) Ambiguous() bool { return !r.AmbiguousAt.IsZero() }

// CopyName returns the deterministic name of a copy: the same request always names its copy
// the same way, so a restarted worker can find it at the provider. The name is valid UTF-8
// and at most MaxCopyNameLen characters: a long image name is cut by characters, never inside
// one, so the name sent at the start and the name looked for after a crash are the same
// string (a name cut inside a character was mangled on the wire and never found again).
func CopyName(r events.Replication) string {
	base := r.ImageName
	if base == "" {
		base = r.ImageID
	}
	// An invalid byte would be replaced by each JSON encoder on its way; replace it here,
	// deterministically, so every call site sends and looks for the same name.
	base = strings.ToValidUTF8(base, "-")
	suffix := "-ir-" + events.DeriveID(events.ReplicationKey(r), "copy")[:8]
	// The suffix must survive truncation: it is what makes the name unique per replication.
	if keep := MaxCopyNameLen - utf8.RuneCountInString(suffix); utf8.RuneCountInString(base) > keep {
		base = string([]rune(base)[:keep])
	}
	return base + suffix
}

// MaxCopyNameLen is the longest name CopyName returns, in characters: Tencent's ImageName
// limit (60 characters), the strictest of the providers that name copies (Huawei IMS allows
// 128; Alibaba's distribution keeps the image's own name).
const MaxCopyNameLen = 60

package domain

import "time"

// State is the lifecycle of a replication record.
type State string

// States of a replication record. Settled states are Succeeded, Failed and Skipped.
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

// Record tracks one copy in the KV store; `imagerelay status` shows it.
//
// Records persist across upgrades: the JSON names of its fields (and of the embedded Copy,
// whose fields sit at the top level) never change.
type Record struct {
	Key string `json:"key"`
	Copy
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

// Plan is the stored list of destinations fanout chose for one image; replication.completed
// is emitted when every one of them has settled.
//
// It is also the authority replicate checks every replication.requested against: a request
// for a region the plan does not name, or for an image other than the planned one, was not
// emitted by fanout and is refused. Plans persist: the JSON names never change.
type Plan struct {
	Image
	Regions       []string `json:"regions"`
	CorrelationID string   `json:"correlationId"`
	// Attributes are the published image's attributes the plan's constraints were checked
	// against. Plans stored by earlier versions have none; their requests are checked on the
	// image and regions only.
	Attributes *ImageAttributes `json:"attributes,omitempty"`
	// Settled holds how each planned region that has settled ended, by region. Every settle
	// adds its region with one compare-and-swap on the plan, and the one that completes the
	// set announces replication.completed, so completion costs one write per region rather
	// than a read of every sibling's record at every settle.
	Settled map[string]Settlement `json:"settled,omitempty"`
	// TracksSettled says that every settle of this plan's regions is recorded in Settled:
	// plans stored by earlier versions lack it, and their completion is judged from the
	// records, as those versions did.
	TracksSettled bool `json:"tracksSettled,omitempty"`
}

// Settlement is how one planned region of an image ended, as the plan keeps it for
// replication.completed.
type Settlement struct {
	State              State  `json:"state"`
	DestinationImageID string `json:"destinationImageId,omitempty"`
	Code               string `json:"code,omitempty"`
	Message            string `json:"message,omitempty"`
}

// SettlementOf is what the plan keeps of a settled record.
func SettlementOf(r Record) Settlement {
	return Settlement{State: r.State, DestinationImageID: r.DestinationImageID, Code: r.Code, Message: r.Message}
}

// Complete reports whether every planned region has a settlement.
func (p Plan) Complete() bool {
	for _, r := range p.Regions {
		if _, ok := p.Settled[r]; !ok {
			return false
		}
	}
	return len(p.Regions) > 0
}

// ImageAttributes are the attributes of a published image that decide whether a provider
// may copy it (size, encryption, ISO origin): a request must carry the planned ones.
type ImageAttributes struct {
	SizeGB    int  `json:"sizeGB"`
	Encrypted bool `json:"encrypted"`
	FromISO   bool `json:"fromISO"`
}

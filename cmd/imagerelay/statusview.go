package main

import (
	"cmp"
	"time"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/rebuild"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// statusReport is what `imagerelay status --json` prints: a documented view of every copy
// and every desktop rollout (see the README's "status --json" section). It is not the KV
// records: their bookkeeping (claims, leases, slot waits, the rollout outbox) is how
// imagerelay keeps its promises and changes with it, while this view is kept stable for
// scripts. Field names are those the records had, so scripts written against earlier
// output keep working for every field shown.
type statusReport struct {
	Replications []replicationView `json:"replications"`
	Rollouts     []rolloutView     `json:"rollouts"`
}

// replicationView is one copy of one image version to one region.
type replicationView struct {
	// Key is provider/account/image/version/region, the copy's identity in events and logs.
	Key      string `json:"key"`
	Provider string `json:"provider"`
	// Account is the operator's label of the cloud account; "default" when none is set.
	Account      string `json:"account"`
	ImageID      string `json:"imageId"`
	VersionID    string `json:"versionId,omitempty"`
	ImageName    string `json:"imageName,omitempty"`
	SourceRegion string `json:"sourceRegion"`
	ProductType  string `json:"productType,omitempty"`
	// DestinationRegion is where the copy goes.
	DestinationRegion string `json:"destinationRegion"`
	// State is requested, starting, waiting, in-progress, succeeded, failed or skipped.
	State string `json:"state"`
	// TaskID is the provider's handle: Alibaba task id, Huawei job id, Tencent image id.
	TaskID             string `json:"taskId,omitempty"`
	DestinationImageID string `json:"destinationImageId,omitempty"`
	Percent            int    `json:"percent"`
	// ProviderStatus is the provider's own word for the copy's state.
	ProviderStatus string `json:"providerStatus,omitempty"`
	// Code, Message and Hint explain a failure (or, while waiting, what is waited for).
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	Hint    string `json:"hint,omitempty"`
	// StartCalls counts the calls made to start the copy; Polls the status checks.
	StartCalls    int       `json:"startCalls"`
	Polls         int       `json:"polls"`
	CorrelationID string    `json:"correlationId,omitempty"`
	RequestedAt   time.Time `json:"requestedAt,omitzero"`
	StartedAt     time.Time `json:"startedAt,omitzero"`
	FinishedAt    time.Time `json:"finishedAt,omitzero"`
	// Deadline is when an unfinished copy is reported failed with Timeout.
	Deadline  time.Time `json:"deadline,omitzero"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
}

// rolloutView is one rebuild policy's rollout onto one replicated copy.
type rolloutView struct {
	Key               string `json:"key"`
	Policy            string `json:"policy"`
	Provider          string `json:"provider"`
	Account           string `json:"account"`
	ImageID           string `json:"imageId"`
	VersionID         string `json:"versionId,omitempty"`
	DestinationRegion string `json:"destinationRegion"`
	// DestinationImageID is the copy the desktops are rebuilt onto.
	DestinationImageID string `json:"destinationImageId"`
	// Phase is rolling-out or done.
	Phase   string `json:"phase"`
	DryRun  bool   `json:"dryRun"`
	Stopped bool   `json:"stopped"`
	// Reason says why a rollout stopped or waits.
	Reason string `json:"reason,omitempty"`
	// Batch is the batch being rolled out, counted from 1 (the canary); Batches how many
	// there are.
	Batch     int `json:"batch"`
	Batches   int `json:"batches"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Skipped   int `json:"skipped"`
	// Decisions are the plan: each desktop, rebuilt (in which batch) or skipped (and why).
	Decisions []events.RebuildDecision `json:"decisions"`
	// WaitingUntil is when the maintenance window opens, while the rollout waits for it.
	WaitingUntil  time.Time `json:"waitingUntil,omitzero"`
	CorrelationID string    `json:"correlationId,omitempty"`
	CreatedAt     time.Time `json:"createdAt,omitzero"`
	UpdatedAt     time.Time `json:"updatedAt,omitzero"`
	FinishedAt    time.Time `json:"finishedAt,omitzero"`
}

// newStatusReport builds the view of recs and rollouts; it is never nil-valued, so a script
// always finds two lists.
func newStatusReport(recs []domain.Record, rollouts []rebuild.Rollout) statusReport {
	out := statusReport{Replications: []replicationView{}, Rollouts: []rolloutView{}}
	for _, r := range recs {
		out.Replications = append(out.Replications, replicationView{
			Key: cmp.Or(r.Key, r.Copy.Key()), Provider: r.Provider, Account: accountOf(r.Account), ImageID: r.ImageID, VersionID: r.VersionID,
			ImageName: r.ImageName, SourceRegion: r.SourceRegion, ProductType: r.ProductType, DestinationRegion: r.DestinationRegion,
			State: string(r.State), TaskID: r.TaskID, DestinationImageID: r.DestinationImageID, Percent: r.Percent,
			ProviderStatus: r.ProviderStatus, Code: r.Code, Message: r.Message, Hint: r.Hint, StartCalls: r.StartCalls, Polls: r.Polls,
			CorrelationID: r.CorrelationID, RequestedAt: r.RequestedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
			Deadline: r.Deadline, UpdatedAt: r.UpdatedAt,
		})
	}
	for _, r := range rollouts {
		rep := r.Replication
		v := rolloutView{
			Key: r.Key, Policy: r.Policy, Provider: rep.Provider, Account: accountOf(rep.Account), ImageID: rep.ImageID,
			VersionID: rep.VersionID, DestinationRegion: rep.DestinationRegion, DestinationImageID: r.DestinationImageID,
			Phase: string(r.Phase), DryRun: r.DryRun, Stopped: r.Stopped, Reason: r.Reason, Batches: len(r.Batches),
			Succeeded: r.Succeeded, Failed: r.Failed, Skipped: r.Skipped, Decisions: r.Decisions, WaitingUntil: r.WaitingUntil,
			CorrelationID: r.CorrelationID, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, FinishedAt: r.FinishedAt,
		}
		if len(r.Batches) > 0 {
			v.Batch = min(r.Current+1, len(r.Batches))
		}
		if v.Decisions == nil {
			v.Decisions = []events.RebuildDecision{}
		}
		out.Rollouts = append(out.Rollouts, v)
	}
	return out
}

// accountOf is the account label as keys and events name it.
func accountOf(account string) string {
	if account == "" {
		return "default"
	}
	return account
}

package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/rebuild"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// statusFixture is a record and a rollout with every field set, internal ones included.
func statusFixture() ([]domain.Record, []rebuild.Rollout) {
	t0 := time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)
	c := domain.Copy{Image: domain.Image{Provider: "huawei", ImageID: "h-1", ImageName: "golden", SourceRegion: "cn-north-4"}, DestinationRegion: "cn-east-3"}
	rec := domain.Record{Key: c.Key(), Copy: c, State: domain.StateWaiting, TaskID: "job-1", DestinationImageID: "h-2", Percent: 40,
		ProviderStatus: "RUNNING", Code: "IMG.0457", Message: "waiting for one of 5 copy slots", Hint: "h", StartCalls: 2, Polls: 3, NotFound: 1,
		CorrelationID: "corr", RequestedAt: t0, StartedAt: t0.Add(time.Second), Deadline: t0.Add(time.Hour), UpdatedAt: t0.Add(2 * time.Second),
		LastPolledAt: t0, PollIntervalSeconds: 30, StartingSince: t0, OSType: "Linux", Tags: map[string]string{"a": "b"}, Holder: "w1",
		AmbiguousAt: t0, SlotWaits: 4}
	ro := rebuild.Rollout{Key: "rebuild.rollout.office.x", Policy: "office", CorrelationID: "corr",
		Replication:        events.Replication{Image: events.Image{Provider: "alibaba", Account: "acme", ImageID: "imgc-1", VersionID: "iv-1"}, DestinationRegion: "cn-hangzhou"},
		DestinationImageID: "imgc-1", DryRun: true, Decisions: []events.RebuildDecision{{DesktopID: "ecd-1", Action: "rebuild", Batch: 1}},
		Batches: [][]string{{"ecd-0"}, {"ecd-1"}}, Previous: map[string]string{"ecd-1": "old"}, Phase: rebuild.PhaseRollingOut, Current: 1,
		BatchStartedAt: t0, Succeeded: 1, LastStepAt: t0, CreatedAt: t0, UpdatedAt: t0,
		Outbox: []rebuild.Emission{{Type: events.TypeDesktopRebuildSucceeded, DesktopID: "ecd-0", At: t0}}}
	return []domain.Record{rec}, []rebuild.Rollout{ro}
}

// status --json prints the documented view: the fields the README lists, and none of the
// records' internal bookkeeping.
func TestStatusJSONIsTheDocumentedView(t *testing.T) {
	recs, rollouts := statusFixture()
	var buf bytes.Buffer
	if err := writeJSON(&buf, newStatusReport(recs, rollouts)); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Replications []map[string]any `json:"replications"`
		Rollouts     []map[string]any `json:"rollouts"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Replications) != 1 || len(got.Rollouts) != 1 {
		t.Fatalf("output %s", buf.String())
	}
	wantRepl := []string{"account", "code", "correlationId", "deadline", "destinationImageId", "destinationRegion", "hint", "imageId",
		"imageName", "key", "message", "percent", "polls", "provider", "providerStatus", "requestedAt", "sourceRegion", "startCalls",
		"startedAt", "state", "taskId", "updatedAt"}
	if keys := slices.Sorted(maps.Keys(got.Replications[0])); !slices.Equal(keys, wantRepl) {
		t.Errorf("replication fields %v\nwant %v", keys, wantRepl)
	}
	wantRoll := []string{"account", "batch", "batches", "correlationId", "createdAt", "decisions", "destinationImageId", "destinationRegion",
		"dryRun", "failed", "imageId", "key", "phase", "policy", "provider", "skipped", "stopped", "succeeded", "updatedAt", "versionId"}
	if keys := slices.Sorted(maps.Keys(got.Rollouts[0])); !slices.Equal(keys, wantRoll) {
		t.Errorf("rollout fields %v\nwant %v", keys, wantRoll)
	}
	for _, internal := range []string{"holder", "startingSince", "ambiguousAt", "slotWaits", "lastPolledAt", "notFound", "outbox",
		"previous", "batchStartedAt", "lastStepAt", "replication"} {
		if strings.Contains(buf.String(), `"`+internal+`"`) {
			t.Errorf("status --json shows the internal field %q", internal)
		}
	}
	r := got.Replications[0]
	if r["key"] != "huawei/default/h-1/-/cn-east-3" || r["account"] != "default" || r["state"] != "waiting" || r["percent"] != 40.0 {
		t.Errorf("replication %v", r)
	}
	ro := got.Rollouts[0]
	if ro["batch"] != 2.0 || ro["batches"] != 2.0 || ro["account"] != "acme" || ro["dryRun"] != true || ro["destinationRegion"] != "cn-hangzhou" {
		t.Errorf("rollout %v", ro)
	}
}

// Scripts written against the records status --json used to print (the chaos harness among
// them) read the same names from the view.
func TestStatusJSONKeepsTheNamesScriptsRead(t *testing.T) {
	recs, rollouts := statusFixture()
	b, err := json.Marshal(newStatusReport(recs, rollouts))
	if err != nil {
		t.Fatal(err)
	}
	var old struct {
		Replications []struct {
			Provider          string `json:"provider"`
			ImageID           string `json:"imageId"`
			DestinationRegion string `json:"destinationRegion"`
			State             string `json:"state"`
			Code              string `json:"code"`
			Percent           int    `json:"percent"`
		} `json:"replications"`
	}
	if err := json.Unmarshal(b, &old); err != nil {
		t.Fatal(err)
	}
	r := old.Replications[0]
	if r.Provider != "huawei" || r.ImageID != "h-1" || r.DestinationRegion != "cn-east-3" || r.State != "waiting" || r.Code != "IMG.0457" || r.Percent != 40 {
		t.Errorf("read back %+v", r)
	}
}

// With nothing stored, both lists are empty lists, never null.
func TestStatusJSONEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, newStatusReport(nil, nil)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(strings.Fields(buf.String()), ""); got != `{"replications":[],"rollouts":[]}` {
		t.Errorf("empty status: %s", got)
	}
}

package events_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
)

// Shared sample values; they follow the pipeline's shape (Alibaba image copied from
// cn-shanghai to cn-hangzhou) so that every payload below is what a function would emit.
var (
	sampleTime  = time.Date(2025, 11, 22, 8, 30, 0, 0, time.UTC)
	sampleImage = events.Image{
		Provider:     events.ProviderAlibaba,
		Account:      "default",
		ImageID:      "img-0a1b2c3d4e5f",
		VersionID:    "iv-7g8h9i0j1k2l",
		ImageName:    "desk-base",
		SourceRegion: "cn-shanghai",
		ProductType:  "CloudDesktop",
	}
	sampleRepl = events.Replication{Image: sampleImage, DestinationRegion: "cn-hangzhou"}
)

// validData returns one valid payload (as its Go struct) for every registered type.
func validData() map[string]any {
	return map[string]any{
		events.TypeImagePublished: events.ImagePublished{
			Image: sampleImage, SizeGB: 40, OSType: "Windows",
			Tags: map[string]string{"team": "vdi"}, Regions: []string{"cn-hangzhou"},
		},
		events.TypeReplicationPlanned: events.ReplicationPlanned{
			Image: sampleImage, Policy: "desktops-cn", Regions: []string{"cn-hangzhou"},
			Skipped: []events.SkippedRegion{{Region: "cn-shanghai", Reason: "destination is the source region"}},
		},
		events.TypeReplicationRequested: events.ReplicationRequested{
			Replication: sampleRepl, SizeGB: 40, Regions: []string{"cn-hangzhou"},
			TimeoutSeconds: 3600, PollIntervalSeconds: 30, OSType: "Windows", Tags: map[string]string{"team": "vdi"},
		},
		events.TypeReplicationStarted: events.ReplicationStarted{
			Replication: sampleRepl, TaskID: "t-1", StartedAt: sampleTime, Deadline: sampleTime.Add(time.Hour),
		},
		events.TypeReplicationProgressed: events.ReplicationProgressed{
			Replication: sampleRepl, TaskID: "t-1", Percent: 45, Status: "SYNCING",
		},
		events.TypeReplicationSucceeded: events.ReplicationSucceeded{
			Replication: sampleRepl, TaskID: "t-1", DestinationImageID: "img-0a1b2c3d4e5f",
			FinishedAt: sampleTime, DurationSeconds: 12.5,
		},
		events.TypeReplicationFailed: events.ReplicationFailed{
			Replication: sampleRepl, Code: "Timeout", Message: "copy did not finish in time", FailedAt: sampleTime,
		},
		events.TypeReplicationCompleted: events.ReplicationCompleted{
			Image: sampleImage, Succeeded: 1,
			Regions: []events.RegionOutcome{{Region: "cn-hangzhou", State: "succeeded", DestinationImageID: "img-0a1b2c3d4e5f"}},
		},
		events.TypeRebuildPlanned: events.RebuildPlanned{
			Replication: sampleRepl, DestinationImageID: "img-0a1b2c3d4e5f", Policy: "canary",
			Decisions: []events.RebuildDecision{{DesktopID: "ecd-1", Action: "rebuild"}, {DesktopID: "ecd-2", Action: "skip", Reason: "GPU"}},
		},
		events.TypeDesktopRebuildStarted: events.DesktopRebuild{
			Replication: sampleRepl, DestinationImageID: "img-0a1b2c3d4e5f", Policy: "canary", DesktopID: "ecd-1",
		},
		events.TypeDesktopRebuildSucceeded: events.DesktopRebuild{
			Replication: sampleRepl, DestinationImageID: "img-0a1b2c3d4e5f", Policy: "canary", DesktopID: "ecd-1", Batch: 1,
		},
		events.TypeDesktopRebuildFailed: events.DesktopRebuild{
			Replication: sampleRepl, DestinationImageID: "img-0a1b2c3d4e5f", Policy: "canary", DesktopID: "ecd-1",
			Code: "InvalidDesktop.StatusNotSupport", Message: "desktop is busy",
		},
		events.TypeRebuildCompleted: events.RebuildCompleted{
			Replication: sampleRepl, DestinationImageID: "img-0a1b2c3d4e5f", Policy: "canary", Succeeded: 1, Skipped: 1,
		},
	}
}

// sampleMeta is the Meta of a first event in its chain.
func sampleMeta() events.Meta {
	return events.Meta{
		ID:          "0f9d3c1e-2b7a-4c55-9e1a-6d2f8b3a7c10",
		Source:      events.SourceOf("publisher"),
		Provider:    events.ProviderAlibaba,
		Region:      "cn-shanghai",
		ImageID:     sampleImage.ImageID,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		TraceState:  "vendor=1",
		Time:        sampleTime,
	}
}

// mustNew builds an event or fails the test.
func mustNew(t testing.TB, typ string, data any, m events.Meta) event.Event {
	t.Helper()
	e, err := events.New(typ, data, m)
	if err != nil {
		t.Fatalf("New(%s): %v", typ, err)
	}
	return e
}

// decodeErr asserts that err is a *events.DecodeError matching ErrMalformed and returns it.
func decodeErr(t *testing.T, err error) *events.DecodeError {
	t.Helper()
	if err == nil {
		t.Fatal("got nil error, want a *events.DecodeError")
	}
	var de *events.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *events.DecodeError", err, err)
	}
	if !errors.Is(err, events.ErrMalformed) {
		t.Fatalf("errors.Is(%v, ErrMalformed) = false", err)
	}
	return de
}

// fixturePath is where the structured-mode example of a type lives.
func fixturePath(typ string) string {
	return filepath.Join("testdata", events.ShortName(typ)+".json")
}

func readFixture(t testing.TB, typ string) []byte {
	t.Helper()
	raw, err := os.ReadFile(fixturePath(typ))
	if err != nil {
		t.Fatalf("fixture for %s: %v", typ, err)
	}
	return raw
}

// headerGetter adapts a header map to FromBinary's arguments.
func headerGetter(h map[string]string) ([]string, func(string) string) {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	return names, func(k string) string { return h[k] }
}

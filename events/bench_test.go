package events_test

import (
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/events"
)

func benchStarted(b *testing.B) events.ReplicationStarted {
	b.Helper()
	return events.ReplicationStarted{
		Replication: events.Replication{Image: events.Image{Provider: "tencent", ImageID: "img-bench001", ImageName: "bench",
			SourceRegion: "ap-guangzhou"}, DestinationRegion: "ap-shanghai"},
		TaskID: "img-dest0001", StartedAt: time.Now().UTC(), Deadline: time.Now().Add(time.Hour).UTC(), PollIntervalSeconds: 30,
	}
}

// BenchmarkNew measures building and validating one event (attributes + JSON Schema).
func BenchmarkNew(b *testing.B) {
	data := benchStarted(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := events.New(events.TypeReplicationStarted, data, events.Meta{ID: "id-1", Source: "/imagerelay/bench",
			Provider: "tencent", Region: "ap-shanghai", ImageID: "img-bench001"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFromBinary measures what every worker does per delivery: read the ce- headers,
// validate the attributes and the data against its schema.
func BenchmarkFromBinary(b *testing.B) {
	e, err := events.New(events.TypeReplicationStarted, benchStarted(b), events.Meta{ID: "id-1", Source: "/imagerelay/bench",
		Provider: "tencent", Region: "ap-shanghai", ImageID: "img-bench001", CorrelationID: "c-1", CausationID: "c-0"})
	if err != nil {
		b.Fatal(err)
	}
	h := events.ToHeaders(e)
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	get := func(k string) string { return h[k] }
	b.ReportAllocs()
	b.SetBytes(int64(len(e.Data())))
	for b.Loop() {
		if _, err := events.FromBinary(names, get, e.Data()); err != nil {
			b.Fatal(err)
		}
	}
}

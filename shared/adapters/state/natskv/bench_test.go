package natskv_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/adapters/state/natskv"
	"github.com/imagerelay/imagerelay/shared/dev/natsembed"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// BenchmarkStatusListings measures what `imagerelay status` reads on a bucket of
// IMAGERELAY_BENCH_RECORDS replication records (default 100,000, three regions per image):
// every record (one watch), and one image's (`status --image`, a watch filtered on the
// image's key token). Run: go test -run x -bench StatusListings ./shared/adapters/state/natskv/
func BenchmarkStatusListings(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("IMAGERELAY_BENCH_RECORDS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	srv, err := natsembed.Start(natsembed.Options{StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	nc, err := srv.Connect()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close(); srv.Shutdown() })
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	store, err := natskv.Open(ctx, js, "bench", 1)
	if err != nil {
		b.Fatal(err)
	}
	// Filled with asynchronous puts on the bucket's subjects: the listing is measured, not
	// the filling.
	start := time.Now()
	for i := range n {
		img := domain.Image{Provider: "tencent", ImageID: fmt.Sprintf("img-%07d", i/3), VersionID: "v1", SourceRegion: "ap-guangzhou"}
		c := domain.Copy{Image: img, DestinationRegion: fmt.Sprintf("region-%d", i%3)}
		raw, err := json.Marshal(domain.Record{Key: c.Key(), Copy: c, State: domain.StateInProgress, TaskID: "img-task", PollIntervalSeconds: 30})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.PublishAsync("$KV.bench."+state.RecordKey(c), raw); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		b.Fatal("filling the bucket did not finish")
	}
	b.Logf("%d records stored in %v", n, time.Since(start).Round(time.Millisecond))
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			recs, err := store.Records(ctx)
			if err != nil || len(recs) != n {
				b.Fatalf("%d records (%v), want %d", len(recs), err, n)
			}
		}
	})
	b.Run("one-image", func(b *testing.B) {
		id := fmt.Sprintf("img-%07d", n/6)
		for b.Loop() {
			recs, err := store.RecordsOfImageID(ctx, id)
			if err != nil || len(recs) != 3 {
				b.Fatalf("%d records (%v), want 3", len(recs), err)
			}
		}
	})
}

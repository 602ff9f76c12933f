package main

import (
	"context"
	"testing"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/rebuild"
	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/adapters/state/memkv"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// countingBucket counts the reads status makes.
type countingBucket struct {
	state.Bucket
	gets, lists int
}

func (b *countingBucket) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	b.gets++
	return b.Bucket.Get(ctx, key)
}

func (b *countingBucket) List(ctx context.Context, filter string, fn func(string, []byte) error) error {
	b.lists++
	return b.Bucket.List(ctx, filter, fn)
}

// status reads with listings, never one read per key; --image lists only that image's
// records (and its rollouts), whatever its provider, account and version.
func TestStatusReadsListingsOnly(t *testing.T) {
	ctx := context.Background()
	b := &countingBucket{Bucket: memkv.New()}
	store := state.New(b)
	imgs := []domain.Image{
		{Provider: "tencent", ImageID: "img-x", VersionID: "v1"},
		{Provider: "alibaba", Account: "acme", ImageID: "img-x"},
		{Provider: "tencent", ImageID: "img-y"},
	}
	for _, img := range imgs {
		for _, region := range []string{"r1", "r2"} {
			c := domain.Copy{Image: img, DestinationRegion: region}
			if err := store.CreateRecord(ctx, domain.Record{Key: c.Key(), Copy: c, State: domain.StateInProgress}); err != nil {
				t.Fatal(err)
			}
		}
		ro := rebuild.Rollout{Policy: "office", Replication: events.Replication{Image: events.Image(img), DestinationRegion: "r1"}}
		if _, err := state.Create(ctx, store, state.Key(rebuild.RolloutKey(ro.Policy, ro.Replication)...), ro); err != nil {
			t.Fatal(err)
		}
	}
	recs, rollouts, err := readStatus(ctx, store, "")
	if err != nil || len(recs) != 6 || len(rollouts) != 3 {
		t.Fatalf("status: %d records, %d rollouts (%v), want 6 and 3", len(recs), len(rollouts), err)
	}
	recs, rollouts, err = readStatus(ctx, store, "img-x")
	if err != nil || len(recs) != 4 || len(rollouts) != 2 {
		t.Fatalf("status --image img-x: %d records, %d rollouts (%v), want 4 and 2", len(recs), len(rollouts), err)
	}
	for _, r := range recs {
		if r.ImageID != "img-x" {
			t.Errorf("status --image img-x shows %s", r.Key)
		}
	}
	if b.gets != 0 || b.lists != 4 {
		t.Errorf("status made %d reads and %d listings, want no read per key and two listings a run", b.gets, b.lists)
	}
}

package rebuild_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/core/fn"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// A replication.succeeded that no replication record backs (published by someone other than
// the poller, or for another destination image) must not rebuild a single desktop.
func TestForgedSucceededRebuildsNothing(t *testing.T) {
	st := newStore()
	clk := newClock()
	f := newFleet(clk, fleetOf(3)...)
	c := newCore(st, f, clk, policyFor("guard", nil))
	forged := func(id string, r events.Replication, dest string) fn.Result {
		e, err := events.New(events.TypeReplicationSucceeded, events.ReplicationSucceeded{Replication: r, DestinationImageID: dest,
			FinishedAt: time.Now(), OSType: "Windows"}, events.Meta{ID: id, Source: "/forger", Provider: r.Provider,
			Region: r.DestinationRegion, ImageID: r.ImageID})
		if err != nil {
			t.Fatal(err)
		}
		return c.Handle(context.Background(), e)
	}
	unknown := copyOf("imgc-forged001")
	failed := copyOf("imgc-forged002")
	st.putCopy(domain.Record{Copy: domain.Copy{Image: domain.Image(failed.Image), DestinationRegion: failed.DestinationRegion}, State: domain.StateFailed})
	other := copyOf("imgc-forged003")
	succeeded(t, st, "ev-real", other, "Windows", nil) // records the copy with its real image id
	for _, tt := range []struct {
		name string
		res  fn.Result
		want string
	}{
		{"unknown copy", forged("ev-f1", unknown, unknown.ImageID), "no replication record"},
		{"failed copy", forged("ev-f2", failed, failed.ImageID), "is failed, not succeeded"},
		{"other destination image", forged("ev-f3", other, "imgc-evil00001"), "does not match"},
	} {
		if tt.res.Outcome.Kind != fn.KindReject || !strings.Contains(tt.res.Outcome.Err.Error(), tt.want) {
			t.Errorf("%s: %s %v, want reject with %q", tt.name, tt.res.Outcome.Kind, tt.res.Outcome.Err, tt.want)
		}
	}
	if len(f.callLog()) != 0 || f.lists != 0 {
		t.Fatalf("forged events reached the fleet: %d rebuild calls, %d listings", len(f.callLog()), f.lists)
	}
}

package bus_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/core/fn"
	"github.com/imagerelay/imagerelay/shared/dev/testenv"
)

// groupCore records each batch it is handed, as the regions of its events.
type groupCore struct {
	mu      sync.Mutex
	batches [][]string
	total   int
}

func (g *groupCore) Handle(ctx context.Context, e event.Event) fn.Result {
	return g.HandleBatch(ctx, []event.Event{e})[0]
}

func (g *groupCore) HandleBatch(_ context.Context, evs []event.Event) []fn.Result {
	g.mu.Lock()
	defer g.mu.Unlock()
	regions := make([]string, len(evs))
	for i, e := range evs {
		regions[i] = events.StringExt(e, events.ExtRegion)
	}
	g.batches = append(g.batches, regions)
	g.total += len(evs)
	return make([]fn.Result, len(evs))
}

func (g *groupCore) handled() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}

func inRegion(t *testing.T, id, region string) event.Event {
	t.Helper()
	e, err := events.New(events.TypeImagePublished, events.ImagePublished{Image: events.Image{
		Provider: events.ProviderTencent, ImageID: "img-" + id, SourceRegion: region}}, events.Meta{
		ID: id, Source: "/test", Provider: events.ProviderTencent, Region: region, ImageID: "img-" + id})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func waitHandled(t *testing.T, g *groupCore, n int) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		if got := g.handled(); got < n {
			return fmt.Errorf("handled %d of %d", got, n)
		}
		return nil
	})
}

// A batch core in the poller's shape (batches of 100, default concurrency) gets full batches
// of the messages that are there, at once. Before, its consumer allowed 64 messages
// unacknowledged against batches of 100, so every fetch waited out its one-second timeout and
// the poller settled at most 64 checks a second. BatchWait is an hour here: only a batch that
// is full can be handed over at all, so the test counts batches, not time.
func TestBatchCoreGetsFullBatchesWithoutWaiting(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	var evs []event.Event
	for i := range 300 {
		evs = append(evs, inRegion(t, fmt.Sprintf("full-%d", i), "ap-guangzhou"))
	}
	if err := env.Bus.Publish(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	core := &groupCore{}
	s := bus.Spec{Function: "fullfn", Types: []string{events.TypeImagePublished}, Handler: core, BatchSize: 100, BatchWait: time.Hour}
	env.Run(t, s)
	waitHandled(t, core, 300)
	core.mu.Lock()
	defer core.mu.Unlock()
	if len(core.batches) != 3 {
		t.Errorf("batch sizes: got %d batches, want 3 full ones", len(core.batches))
	}
	for _, b := range core.batches {
		if len(b) != 100 {
			t.Errorf("a batch of %d, want 100", len(b))
		}
	}
	c, err := env.Bus.JetStream().Consumer(ctx, env.Bus.Config().Stream, "fullfn")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CachedInfo().Config.MaxAckPending; got < 4*100 {
		t.Errorf("MaxAckPending %d; want at least four batches of 100", got)
	}
}

// Messages of different groups never share a batch, and a partial batch is handled after
// BatchWait without waiting for more messages.
func TestBatchesHoldOneGroupAndPartialOnesAreHandled(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	var evs []event.Event
	for i := range 50 {
		region := "ap-guangzhou"
		if i%5 == 0 {
			region = "ap-beijing"
		}
		evs = append(evs, inRegion(t, fmt.Sprintf("grp-%d", i), region))
	}
	if err := env.Bus.Publish(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	core := &groupCore{}
	env.Run(t, bus.Spec{Function: "grpfn", Types: []string{events.TypeImagePublished}, Handler: core, BatchSize: 100,
		BatchWait: 20 * time.Millisecond, BatchKey: bus.BySubjectTail})
	waitHandled(t, core, 50)
	core.mu.Lock()
	defer core.mu.Unlock()
	for _, b := range core.batches {
		for _, r := range b {
			if r != b[0] {
				t.Fatalf("a batch mixes groups: %v", b)
			}
		}
	}
	if core.total != 50 {
		t.Errorf("handled %d, want 50", core.total)
	}
}

func TestBySubjectTail(t *testing.T) {
	for subject, want := range map[string]string{
		"imagerelay.replication_started.tencent.ap-guangzhou": "tencent.ap-guangzhou",
		"imagerelay.defer.poller.huawei.cn-north-4":           "huawei.cn-north-4",
		"plain": "plain",
	} {
		if got := bus.BySubjectTail(subject); got != want {
			t.Errorf("BySubjectTail(%q) = %q, want %q", subject, got, want)
		}
	}
}

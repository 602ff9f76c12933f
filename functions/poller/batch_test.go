package poller_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/adapters/state/memkv"
	"github.com/imagerelay/imagerelay/shared/core/fn"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// meetingReader answers a status call only once `want` calls are in flight together (or its
// deadline passes), and records the most calls it saw at once.
type meetingReader struct {
	mu      sync.Mutex
	cond    *sync.Cond
	in      int
	most    int
	want    int
	panicIn string // a destination region whose call panics
}

func newMeetingReader(want int) *meetingReader {
	r := &meetingReader{want: want}
	r.cond = sync.NewCond(&r.mu)
	return r
}

func (r *meetingReader) CopyStatus(_ context.Context, tasks []domain.Task) ([]domain.CopyStatus, error) {
	if tasks[0].DestinationRegion == r.panicIn {
		panic("reader bug")
	}
	r.mu.Lock()
	r.in++
	r.most = max(r.most, r.in)
	r.cond.Broadcast()
	deadline := time.AfterFunc(10*time.Second, func() { r.mu.Lock(); r.want = 0; r.cond.Broadcast(); r.mu.Unlock() })
	for r.in < r.want {
		r.cond.Wait()
	}
	deadline.Stop()
	r.mu.Unlock()
	out := make([]domain.CopyStatus, len(tasks))
	for i := range out {
		out[i] = inProgress(10, "SYNCING")
	}
	return out, nil
}

func (r *meetingReader) BatchSize() int { return 100 }

// The status calls of different provider/account/region groups run side by side: before,
// one batch made them one after another, so a slow region held up every other.
func TestStatusCallsOfGroupsOverlap(t *testing.T) {
	t.Parallel()
	store := memkv.NewStore()
	clk := newClock()
	reader := newMeetingReader(3)
	core := newCore(store, clk, events.ProviderTencent, reader)
	img := image(events.ProviderTencent, "img-overlap")
	var evs []event.Event
	for i, reg := range []string{"ap-guangzhou", "ap-beijing", "ap-chengdu"} {
		evs = append(evs, inFlight(t, store, clk, replicationOf(img, reg), fmt.Sprintf("task-%d", i), copyOpts{}))
	}
	results := core.HandleBatch(context.Background(), evs)
	reader.mu.Lock()
	most := reader.most
	reader.mu.Unlock()
	if most != 3 {
		t.Errorf("at most %d status calls were in flight at once, want the 3 groups' calls together", most)
	}
	for _, res := range results {
		wantOutcome(t, res, fn.KindDefer, interval)
	}
}

// A status call that panics on its own goroutine makes its group's events Retry and leaves
// the other groups' results alone, instead of taking the process down.
func TestPanickingStatusCallRetriesItsGroupOnly(t *testing.T) {
	t.Parallel()
	store := memkv.NewStore()
	clk := newClock()
	reader := newMeetingReader(1)
	reader.panicIn = "ap-beijing"
	core := newCore(store, clk, events.ProviderTencent, reader)
	img := image(events.ProviderTencent, "img-panic")
	evs := []event.Event{
		inFlight(t, store, clk, replicationOf(img, "ap-guangzhou"), "task-gz", copyOpts{}),
		inFlight(t, store, clk, replicationOf(img, "ap-beijing"), "task-bj", copyOpts{}),
	}
	results := core.HandleBatch(context.Background(), evs)
	wantOutcome(t, results[0], fn.KindDefer, interval)
	if res := results[1]; res.Outcome.Kind != fn.KindRetry || res.Outcome.Err == nil || !strings.Contains(res.Outcome.Err.Error(), "reader bug") {
		t.Fatalf("the panicking group: %v (%v), want retry", results[1].Outcome.Kind, results[1].Outcome.Err)
	}
}

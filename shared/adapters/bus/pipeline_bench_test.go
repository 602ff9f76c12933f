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

// countingBatchCore is a batch core that settles every event at once and counts the batches
// it was handed, so the benchmark can report how full they were.
type countingBatchCore struct {
	mu      sync.Mutex
	batches int
	total   int
	done    chan struct{}
	want    int
}

func (c *countingBatchCore) Handle(ctx context.Context, e event.Event) fn.Result {
	return c.HandleBatch(ctx, []event.Event{e})[0]
}

func (c *countingBatchCore) HandleBatch(_ context.Context, evs []event.Event) []fn.Result {
	c.mu.Lock()
	c.batches++
	c.total += len(evs)
	if c.total >= c.want && c.done != nil {
		close(c.done)
		c.done = nil
	}
	c.mu.Unlock()
	return make([]fn.Result, len(evs))
}

// BenchmarkBatchPipeline measures a batch core in the poller's shape (pollerwire's spec:
// batches of 100, the default concurrency) on the worker: 2,000 events, either all waiting
// in the stream (backlog) or arriving while the worker runs (trickle, as fired checks do),
// settled through Run. It reports events/s and the mean batch.
func BenchmarkBatchPipeline(b *testing.B) {
	for _, mode := range []string{"backlog", "trickle"} {
		b.Run(mode, func(b *testing.B) {
			const n = 2000
			for b.Loop() {
				b.StopTimer()
				env := testenv.Start(b)
				ctx := context.Background()
				evs := make([]event.Event, n)
				for i := range evs {
					evs[i] = publishedTB(b, fmt.Sprintf("bp-%d", i), fmt.Sprintf("img-%08d", i))
				}
				publish := func() {
					for chunk := 0; chunk < n; chunk += 10 {
						if err := env.Bus.Publish(ctx, evs[chunk:chunk+10]...); err != nil {
							b.Error(err)
							return
						}
					}
				}
				if mode == "backlog" {
					publish()
				}
				core := &countingBatchCore{done: make(chan struct{}), want: n}
				done := core.done
				s := bus.Spec{Function: "pipefn", Types: []string{events.TypeImagePublished}, Handler: core, BatchSize: 100}
				b.StartTimer()
				start := time.Now()
				env.Run(b, s)
				if mode == "trickle" {
					go publish()
				}
				select {
				case <-done:
				case <-time.After(5 * time.Minute):
					b.Fatalf("settled %d of %d", core.total, n)
				}
				waitAcked(b, env, "pipefn")
				el := time.Since(start)
				b.ReportMetric(float64(n)/el.Seconds(), "events/s")
				core.mu.Lock()
				b.ReportMetric(float64(core.total)/float64(core.batches), "events/batch")
				core.mu.Unlock()
			}
		})
	}
}

// waitAcked waits until function's consumer has nothing pending and nothing unacknowledged.
func waitAcked(b *testing.B, env *testenv.Env, function string) {
	b.Helper()
	testenv.Eventually(b, time.Minute, func() error {
		c, err := env.Bus.JetStream().Consumer(context.Background(), env.Bus.Config().Stream, function)
		if err != nil {
			return err
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("%d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
		}
		return nil
	})
}

// BenchmarkPublishFour measures one Publish call carrying four events (what a core that
// emits several events hands the worker), per call.
func BenchmarkPublishFour(b *testing.B) {
	env := testenv.Start(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		evs := make([]event.Event, 4)
		for j := range evs {
			evs[j] = publishedB(b, fmt.Sprintf("p4-%d-%d", i, j))
		}
		if err := env.Bus.Publish(ctx, evs...); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/shared/core/fn"
)

// A batch core (the poller) runs as a pipeline: a Consume subscription keeps a buffer of
// messages flowing, a batcher sorts them into open batches by [Spec.BatchKey], and up to
// Concurrency workers handle the batches that are ready. A batch is ready when it holds
// BatchSize messages or when its first message has waited [Spec.BatchWait]: a batch never
// waits out a fixed fetch timeout while messages are there (the earlier Fetch with a one-second
// max wait and an ack-pending limit below the batch size handed the poller at most 64 checks a
// second on any hardware), and at high rates each batch is full, so a status call carries as
// many copies as the provider's API takes.

// Defaults of the batch pipeline.
const (
	// DefaultBatchSize is how many events a BatchHandler gets at most when Spec.BatchSize is 0.
	DefaultBatchSize = 100
	// DefaultBatchWait is how long a partial batch waits for more messages of its group when
	// Spec.BatchWait is 0: short next to a poll interval, long enough for a group that receives
	// a few hundred checks a second to fill a batch of 100.
	DefaultBatchWait = 250 * time.Millisecond
	// batchesInFlight is how many batches per worker the consumer may hold unacknowledged:
	// one being handled, one filling and some slack for the groups that fill at once.
	batchesInFlight = 4
)

func (s Spec) batchSize() int {
	if s.BatchSize <= 0 {
		return DefaultBatchSize
	}
	return s.BatchSize
}

func (s Spec) batchWait() time.Duration {
	if s.BatchWait <= 0 {
		return DefaultBatchWait
	}
	return s.BatchWait
}

// maxAckPending is the consumer's MaxAckPending: for a batch core several full batches per
// worker, so a batch never waits for acknowledgements to make room for it; for the others 64
// messages per worker.
func (s Spec) maxAckPending() int {
	workers := max(s.Concurrency, 1)
	if _, ok := s.Handler.(fn.BatchHandler); ok {
		return max(workers*s.batchSize()*batchesInFlight, workers*64)
	}
	return workers * 64
}

// BySubjectTail groups messages by the last two tokens of their subject: provider and region
// on every event subject (imagerelay.<type>.<provider>.<region>) and defer subject
// (imagerelay.defer.<function>.<provider>.<region>). The poller's status calls are made per
// provider, account and region, so a batch of one group needs as few calls as its API
// allows.
func BySubjectTail(subject string) string {
	i := strings.LastIndexByte(subject, '.')
	if i <= 0 {
		return subject
	}
	j := strings.LastIndexByte(subject[:i], '.')
	return subject[j+1:]
}

// batcher sorts delivered messages into open batches by key and hands out the ready ones.
// It never blocks the subscription that feeds it, so every message delivered to the worker is
// in its hands and heartbeated until a worker takes it.
type batcher struct {
	size int
	wait time.Duration
	key  func(string) string

	mu     sync.Mutex
	open   map[string]*openBatch
	ready  [][]jetstream.Msg
	held   map[jetstream.Msg]struct{}
	closed bool
	signal chan struct{}
}

type openBatch struct {
	msgs  []jetstream.Msg
	timer *time.Timer
}

func newBatcher(s Spec) *batcher {
	return &batcher{size: s.batchSize(), wait: s.batchWait(), key: s.BatchKey,
		open: map[string]*openBatch{}, held: map[jetstream.Msg]struct{}{}, signal: make(chan struct{}, 1)}
}

// add puts m into its group's open batch; a full batch is ready at once, a new one after wait.
func (bt *batcher) add(m jetstream.Msg) {
	k := ""
	if bt.key != nil {
		k = bt.key(m.Subject())
	}
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if bt.closed {
		return // not acknowledged: JetStream delivers it again after AckWait
	}
	bt.held[m] = struct{}{}
	ob := bt.open[k]
	if ob == nil {
		ob = &openBatch{}
		bt.open[k] = ob
		ob.timer = time.AfterFunc(bt.wait, func() { bt.flush(k, ob) })
	}
	ob.msgs = append(ob.msgs, m)
	if len(ob.msgs) >= bt.size {
		ob.timer.Stop()
		bt.readyLocked(k, ob)
	}
}

// flush makes ob ready if it is still k's open batch.
func (bt *batcher) flush(k string, ob *openBatch) {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if bt.open[k] == ob {
		bt.readyLocked(k, ob)
	}
}

func (bt *batcher) readyLocked(k string, ob *openBatch) {
	delete(bt.open, k)
	bt.ready = append(bt.ready, ob.msgs)
	select {
	case bt.signal <- struct{}{}:
	default:
	}
}

// next returns a ready batch, waiting for one until ctx ends (then nil). The batch's messages
// are no longer heartbeated by the batcher: the worker that takes them does.
func (bt *batcher) next(ctx context.Context) []jetstream.Msg {
	for {
		bt.mu.Lock()
		if len(bt.ready) > 0 {
			batch := bt.ready[0]
			bt.ready[0] = nil
			bt.ready = bt.ready[1:]
			for _, m := range batch {
				delete(bt.held, m)
			}
			more := len(bt.ready) > 0
			bt.mu.Unlock()
			if more {
				select { // wake the next worker for the rest
				case bt.signal <- struct{}{}:
				default:
				}
			}
			return batch
		}
		bt.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-bt.signal:
		}
	}
}

// heartbeat tells the server that every message the batcher holds is still being worked on,
// so a message waiting for a free worker is not delivered to another worker meanwhile.
func (bt *batcher) heartbeat() {
	bt.mu.Lock()
	msgs := make([]jetstream.Msg, 0, len(bt.held))
	for m := range bt.held {
		msgs = append(msgs, m)
	}
	bt.mu.Unlock()
	for _, m := range msgs {
		_ = m.InProgress()
	}
}

// close stops the batcher: the messages it still holds are left unacknowledged, and
// JetStream delivers them again after AckWait.
func (bt *batcher) close() {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	bt.closed = true
	for _, ob := range bt.open {
		ob.timer.Stop()
	}
	bt.open, bt.ready, bt.held = map[string]*openBatch{}, nil, map[jetstream.Msg]struct{}{}
}

// runBatches runs a batch core on cons as the pipeline described above until ctx ends.
func (b *Bus) runBatches(ctx context.Context, cons jetstream.Consumer, s Spec) error {
	bt := newBatcher(s)
	workers := max(s.Concurrency, 1)
	cc, err := cons.Consume(bt.add,
		// The buffer is what the consumer may hand this worker: every batch it may hold.
		jetstream.PullMaxMessages(s.maxAckPending()),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if ctx.Err() == nil && !errors.Is(err, jetstream.ErrNoHeartbeat) {
				b.log.Debug("consume", "function", s.Function, "error", err)
			}
		}))
	if err != nil {
		return fmt.Errorf("bus: consume %s: %w", s.Function, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { b.keepAlive(ctx.Done(), bt.heartbeat) })
	for range workers {
		wg.Go(func() {
			for {
				batch := bt.next(ctx)
				if batch == nil {
					return
				}
				b.process(ctx, s, batch)
			}
		})
	}
	<-ctx.Done()
	cc.Stop()
	bt.close()
	wg.Wait()
	return nil
}

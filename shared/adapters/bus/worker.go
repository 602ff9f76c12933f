package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/core/fn"
)

// Spec describes one function to run on the bus.
type Spec struct {
	// Function names the function: the durable consumer, the dead-letter and defer subjects.
	Function string
	// Types are the event types the function consumes.
	Types []string
	// Handler is the function's core.
	Handler fn.Handler
	// Concurrency is how many events are handled at once (default 1); for a BatchHandler,
	// how many batches.
	Concurrency int
	// BatchSize is how many events a BatchHandler gets at most at once (default 100).
	BatchSize int
	// BatchWait is how long a BatchHandler's partial batch waits for more events of its
	// group before it is handled (default [DefaultBatchWait]); a full batch is handled at once.
	BatchWait time.Duration
	// BatchKey, when set, groups a BatchHandler's messages by subject: one batch holds
	// messages of one key only (see [BySubjectTail]). Nil puts every message in one group.
	BatchKey func(subject string) string
	// SweepEvery is how often a worker runs the core's sweep, when the core is an
	// [fn.Sweeper] (default 30 seconds).
	SweepEvery time.Duration
}

func (s Spec) filters() []string {
	out := make([]string, 0, len(s.Types)+1)
	for _, t := range s.Types {
		out = append(out, events.NATSFilter(t))
	}
	return append(out, DeferPrefix+s.Function+".>")
}

// Consumer creates or updates the function's durable pull consumer.
func (b *Bus) Consumer(ctx context.Context, s Spec) (jetstream.Consumer, error) {
	if s.Function == "" || len(s.Types) == 0 || s.Handler == nil {
		return nil, fmt.Errorf("%w: a worker needs a function name, event types and a handler", ErrInvalidConfig)
	}
	c, err := b.js.CreateOrUpdateConsumer(ctx, b.cfg.Stream, jetstream.ConsumerConfig{
		Durable:        s.Function,
		Description:    "imagerelay " + s.Function,
		FilterSubjects: s.filters(),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        b.cfg.AckWait,
		// MaxDeliver bounds JetStream's own redeliveries: of a message a worker took and never
		// answered (it crashed or hung), and of one whose results could not be stored. Failed
		// attempts the core reports come back through schedules and are counted in
		// HeaderAttempt. No BackOff: nats-server takes a consumer's first BackOff value as
		// its ack wait, which would redeliver every message held longer than that to a second
		// worker while the first still works on it.
		MaxDeliver: b.cfg.MaxDeliver,
		// Several batches per worker for a batch core: with fewer than one batch allowed
		// unacknowledged (once 64 against batches of 100), every fetch waited out its timeout.
		MaxAckPending: s.maxAckPending(),
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("bus: consumer %s: %w", s.Function, err)
	}
	return c, nil
}

// Run handles the function's events until ctx ends. It returns nil on a clean stop.
func (b *Bus) Run(ctx context.Context, s Spec) error {
	cons, err := b.consumerWhenReady(ctx, s)
	if err != nil || cons == nil {
		return err
	}
	stopWatch, err := b.WatchExhausted(ctx, s)
	if err != nil {
		return err
	}
	defer stopWatch()
	if sw, ok := s.Handler.(fn.Sweeper); ok {
		go b.sweepEvery(ctx, s, sw)
	}
	if _, ok := s.Handler.(fn.BatchHandler); ok {
		return b.runBatches(ctx, cons, s)
	}
	workers := max(s.Concurrency, 1)
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	cc, err := cons.Consume(func(m jetstream.Msg) {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			b.process(ctx, s, []jetstream.Msg{m})
		}()
	}, jetstream.PullMaxMessages(workers*2), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if ctx.Err() == nil && !errors.Is(err, jetstream.ErrNoHeartbeat) {
			b.log.Debug("consume", "function", s.Function, "error", err)
		}
	}))
	if err != nil {
		return fmt.Errorf("bus: consume %s: %w", s.Function, err)
	}
	<-ctx.Done()
	cc.Stop()
	wg.Wait()
	return nil
}

// consumerWhenReady creates or updates the function's consumer, trying again while JetStream
// cannot answer (a cluster electing a leader after a node restart): a worker waits for the
// bus rather than stopping. It returns a nil consumer when ctx ends first, and an error only
// for a spec that can never work.
func (b *Bus) consumerWhenReady(ctx context.Context, s Spec) (jetstream.Consumer, error) {
	wait := time.Second
	for {
		cons, err := b.Consumer(ctx, s)
		if err == nil || errors.Is(err, ErrInvalidConfig) {
			return cons, err
		}
		b.log.Warn("cannot create the function's consumer yet; trying again", "function", s.Function, "error", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(wait):
		}
		wait = min(2*wait, 15*time.Second)
	}
}

// sweepEvery runs the core's sweep at start and then every s.SweepEvery until ctx ends.
func (b *Bus) sweepEvery(ctx context.Context, s Spec, sw fn.Sweeper) {
	every := s.SweepEvery
	if every <= 0 {
		every = 30 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := b.Sweep(ctx, s.Function, sw); err != nil && ctx.Err() == nil {
			b.log.Warn("sweep failed; will sweep again", "function", s.Function, "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep runs sw once and schedules each wakeup it returns for now, under its key, and returns
// how many it scheduled. Every worker may sweep at once: a wakeup replaces the pending
// schedule of its key.
func (b *Bus) Sweep(ctx context.Context, function string, sw fn.Sweeper) (int, error) {
	wakeups, err := sw.Sweep(ctx)
	n := 0
	for _, w := range wakeups {
		if serr := b.Schedule(ctx, Deferral{Function: function, Event: w.Event, Key: w.Key, At: time.Now(), TTL: w.TTL}); serr != nil {
			return n, errors.Join(err, serr)
		}
		n++
	}
	return n, err
}

// Drain pulls the function's pending events for at most budget and handles them, then returns
// how many it handled. The scheduled serverless poller uses it: each tick works in bounded
// time and leaves the rest for the next tick.
func (b *Bus) Drain(ctx context.Context, s Spec, budget time.Duration) (int, error) {
	cons, err := b.Consumer(ctx, s)
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(budget)
	total := 0
	for time.Until(deadline) > 0 && ctx.Err() == nil {
		wait := min(time.Until(deadline), time.Second)
		var n int
		if bh, ok := s.Handler.(fn.BatchHandler); ok {
			n, err = b.pullBatch(ctx, cons, s, bh, wait)
		} else {
			n, err = b.pullBatch(ctx, cons, s, nil, wait)
		}
		total += n
		if err != nil {
			return total, err
		}
		if n == 0 {
			break // nothing due now; the rest waits for the next tick
		}
	}
	return total, nil
}

// pullBatch fetches up to BatchSize of the messages available now and handles them (with bh
// if not nil). When none is available it waits up to wait for one, then takes what else is
// there: it never waits for a batch to fill.
func (b *Bus) pullBatch(ctx context.Context, cons jetstream.Consumer, s Spec, bh fn.BatchHandler, wait time.Duration) (int, error) {
	size := s.batchSize()
	msgs, err := fetch(cons.FetchNoWait(size))
	if err == nil && len(msgs) == 0 && wait > 0 {
		msgs, err = fetch(cons.Fetch(1, jetstream.FetchMaxWait(max(wait, 100*time.Millisecond))))
		if err == nil && len(msgs) == 1 && size > 1 {
			var more []jetstream.Msg
			more, err = fetch(cons.FetchNoWait(size - 1))
			msgs = append(msgs, more...)
		}
	}
	if err != nil && len(msgs) == 0 {
		return 0, err
	}
	if bh == nil {
		for _, m := range msgs {
			b.process(ctx, s, []jetstream.Msg{m})
		}
	} else if len(msgs) > 0 {
		b.process(ctx, s, msgs)
	}
	return len(msgs), nil
}

// fetch collects a fetch's messages; running out of messages or of time is not an error.
func fetch(batch jetstream.MessageBatch, err error) ([]jetstream.Msg, error) {
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) && len(msgs) == 0 {
		return nil, err
	}
	return msgs, nil
}

// inbound is one delivered message on its way through a core.
type inbound struct {
	msg jetstream.Msg
	ev  event.Event
	// deliveries counts this message's deliveries by JetStream plus the failed attempts
	// behind it (HeaderAttempt): the number MaxDeliver bounds.
	deliveries uint64
	attempt    int
	deferrals  int
}

// process decodes msgs, runs the core on the valid ones and settles each message through
// [fn.Settle], the outcome mapping the worker shares with the serverless runtimes.
func (b *Bus) process(ctx context.Context, s Spec, msgs []jetstream.Msg) {
	var ready []inbound
	for _, m := range msgs {
		in := inbound{msg: m, deliveries: 1}
		if md, err := m.Metadata(); err == nil {
			in.deliveries = md.NumDelivered
		}
		if isDeferSubject(s.Function, m.Subject()) {
			if !fromScheduler(s.Function, m.Headers()) {
				b.reject(ctx, s, in, fmt.Errorf("%s was published by a client, not fired by imagerelay's scheduler; "+
					"deferred events are written only by imagerelay (publish on the event's own subject instead)", m.Subject()))
				continue
			}
			in.attempt, _ = strconv.Atoi(m.Headers().Get(HeaderAttempt))
			in.deferrals, _ = strconv.Atoi(m.Headers().Get(HeaderDeferrals))
			in.deliveries += uint64(max(in.attempt, 0))
		}
		ev, err := decodeMsg(m.Headers(), m.Data())
		if err != nil {
			b.reject(ctx, s, in, err)
			continue
		}
		in.ev = ev
		ready = append(ready, in)
	}
	if len(ready) == 0 {
		return
	}
	stop := b.heartbeat(ready)
	defer stop()
	var results []fn.Result
	if bh, ok := s.Handler.(fn.BatchHandler); ok && len(ready) > 1 {
		evs := make([]event.Event, len(ready))
		for i, in := range ready {
			evs[i] = in.ev
		}
		results = fn.SafeHandleBatch(ctx, bh, evs, b.log)
	} else {
		for _, in := range ready {
			results = append(results, fn.SafeHandle(ctx, s.Handler, in.ev, b.log))
		}
	}
	b.settleAll(ctx, s, ready, results)
}

// settleParallel bounds how many messages of one batch are settled at once: each settle is a
// few round trips (publish, schedule, ack), which overlap instead of adding up.
const settleParallel = 16

// settleAll settles each message with its result; the messages of a batch are independent,
// so they are settled side by side.
func (b *Bus) settleAll(ctx context.Context, s Spec, ready []inbound, results []fn.Result) {
	if len(ready) == 1 {
		b.settle(ctx, s, ready[0], results[0])
		return
	}
	sem := make(chan struct{}, settleParallel)
	var wg sync.WaitGroup
	for i, in := range ready {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			b.settle(ctx, s, in, results[i])
		})
	}
	wg.Wait()
}

// heartbeat tells the server, every half AckWait, that the messages are still being worked
// on, so a slow provider call does not make them redeliver to another worker meanwhile.
func (b *Bus) heartbeat(msgs []inbound) (stop func()) {
	done := make(chan struct{})
	go b.keepAlive(done, func() {
		for _, in := range msgs {
			_ = in.msg.InProgress()
		}
	})
	return func() { close(done) }
}

// keepAlive calls beat every half AckWait until stop closes: the one clock of every "still
// working on it" the worker sends.
func (b *Bus) keepAlive(stop <-chan struct{}, beat func()) {
	every := b.cfg.AckWait / 2
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			beat()
		}
	}
}

// settlement is one JetStream message in the worker's hands after its core ran: the worker's
// side of [fn.Settle], which decides what becomes of it.
type settlement struct {
	b   *Bus
	s   Spec
	in  inbound
	log *slog.Logger
}

// settle hands the message and the core's result to [fn.Settle], the one outcome mapping
// every runtime shares, and logs what became of it.
func (b *Bus) settle(ctx context.Context, s Spec, in inbound, r fn.Result) {
	log := b.log.With("function", s.Function, "event_id", in.ev.ID(), "event_type", in.ev.Type(),
		"correlation_id", events.CorrelationID(in.ev), "event_subject", in.ev.Subject(), "delivery", in.deliveries)
	got := fn.Settle(ctx, settlement{b: b, s: s, in: in, log: log}, r)
	if got.Kind == fn.KindDone || got.Kind == fn.KindDefer {
		log.Debug("settled", "status", got.Kind.String(), "delay", got.Delay.String(), "emitted", len(r.Emit))
	}
}

// reject dead-letters a message the core never saw (undecodable, or a stranger's message on
// a defer subject), through the same mapping as the core's own rejections.
func (b *Bus) reject(ctx context.Context, s Spec, in inbound, reason error) {
	fn.Settle(ctx, settlement{b: b, s: s, in: in, log: b.log.With("function", s.Function, "subject", in.msg.Subject())}, fn.Reject(reason))
}

// Publish implements fn.Settlement.
func (m settlement) Publish(ctx context.Context, evs ...event.Event) error {
	return m.b.Publish(ctx, evs...)
}

// Ack implements fn.Settlement: it acknowledges the message without waiting for the server
// to confirm. A confirmation would change nothing: an ack that is lost (the connection drops)
// brings the message back after AckWait, well inside the duplicate window, whether or not the
// worker learnt of the loss; the core runs again, finds its work done or writes the same
// schedule under the same key, and emits events with the same ids, which the stream drops.
// Everything the ack stands for (emitted events, the schedule) was stored before it.
func (m settlement) Ack(context.Context) {
	if err := m.in.msg.Ack(); err != nil {
		m.log.Warn("ack failed", "error", err)
	}
}

// Schedule implements fn.Settlement: a failed attempt carries the delivery count in
// HeaderAttempt, so that it keeps counting towards MaxDeliver when it comes back.
func (m settlement) Schedule(ctx context.Context, sc fn.Schedule) error {
	d := Deferral{Function: m.s.Function, Event: m.in.ev, Key: sc.Key, At: time.Now().Add(sc.Delay), TTL: sc.TTL,
		Attempt: m.in.attempt, Deferrals: m.in.deferrals + 1}
	if sc.Failure != nil {
		d.Attempt, d.Deferrals = int(m.in.deliveries), m.in.deferrals
		m.log.Info("retry later", "delay", sc.Delay.String(), "error", sc.Failure.Error())
	}
	return m.b.Schedule(ctx, d)
}

// Redeliver implements fn.Settlement with a nak: JetStream delivers the message again after
// delay. Nothing is lost: the core runs again, and the events it emits have the same ids.
func (m settlement) Redeliver(_ context.Context, delay time.Duration, cause error) {
	m.log.Warn("not settled; will retry", "delay", delay.String(), "error", cause.Error())
	_ = m.in.msg.NakWithDelay(delay)
}

// DeadLetter implements fn.Settlement: a copy of the message, unchanged, goes to the
// dead-letter subject with the reason, then the message is terminated.
func (m settlement) DeadLetter(ctx context.Context, reason error) error {
	msg, text := m.in.msg, reason.Error()
	m.log.Warn("dead-lettered", "function", m.s.Function, "event_id", m.in.ev.ID(), "correlation_id", events.StringExt(m.in.ev, events.ExtCorrelationID),
		"subject", msg.Subject(), "reason", text)
	if err := m.b.DeadLetter(ctx, m.s.Function, msg.Subject(), msg.Headers(), msg.Data(), m.in.deliveries, text); err != nil {
		return err
	}
	_ = msg.TermWithReason(asciiHeader(text))
	return nil
}

// Redelivery implements fn.Settlement: the worker enforces MaxDeliver itself, counting the
// failed attempts that came back through schedules.
func (m settlement) Redelivery() fn.Redelivery {
	return fn.Redelivery{Count: m.in.deliveries, Limit: uint64(max(m.b.cfg.MaxDeliver, 1)), Backoff: m.b.retryDelay(m.in.deliveries)}
}

// Permanent implements fn.Settlement: a message larger than the server takes can never be
// stored.
func (m settlement) Permanent(err error) bool { return tooLarge(err) }

// retryDelay grows with the delivery count along the configured back-off.
func (b *Bus) retryDelay(deliveries uint64) time.Duration {
	if len(b.cfg.Backoff) == 0 {
		return time.Second
	}
	i := min(int(deliveries)-1, len(b.cfg.Backoff)-1)
	return b.cfg.Backoff[max(i, 0)]
}

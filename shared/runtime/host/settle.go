package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/core/fn"
)

// Status is what became of one input: the name of the outcome the runtime applied, in the
// words of [fn.Kind.String].
type Status string

// The statuses of an input. Only StatusRetry asks the platform to deliver it again.
const (
	// StatusDone means the core handled it and its events are stored.
	StatusDone Status = "done"
	// StatusRetry means it could not be handled now: the platform should deliver it again.
	StatusRetry Status = "retry"
	// StatusDefer means it was handed to JetStream, to come back on the function's defer
	// subject after a delay (picked up by the NATS worker or the next scheduled drain).
	StatusDefer Status = "defer"
	// StatusReject means it can never be handled and a copy is stored on
	// imagerelay.dlq.<function> with the reason.
	StatusReject Status = "reject"
)

// statusOf names the outcome [fn.Settle] applied.
func statusOf(k fn.Kind) Status { return Status(k.String()) }

// Settled is what became of one input.
type Settled struct {
	Status Status
	// EventID is the input event's id, when it could be decoded.
	EventID string
	// Emitted is how many events the core emitted and were stored.
	Emitted int
	// Err is the *RetryError of StatusRetry, or the dead-letter reason of StatusReject.
	Err error
}

// ErrRetry is matched by every *RetryError.
var ErrRetry = errors.New("deliver again later")

// RetryError asks the platform to deliver an input again: the core returned Retry, or its
// results, deferral or dead letter could not be stored. Its type name is what Lambda reports
// as errorType.
type RetryError struct {
	Function string
	EventID  string
	// Delay is what the core asked for; the platform's retry policy decides the real delay.
	Delay time.Duration
	Err   error
}

// Error implements error.
func (e *RetryError) Error() string {
	msg := e.Function + ": retry"
	if e.EventID != "" {
		msg += " event " + e.EventID
	}
	if e.Delay > 0 {
		msg += " after " + e.Delay.String()
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *RetryError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrRetry) true.
func (e *RetryError) Is(target error) bool { return target == ErrRetry }

// Handle runs the function's core on ins and settles each one through [fn.Settle], the one
// outcome mapping every runtime shares; on a serverless platform it means:
//   - Done: the emitted events are published, success.
//   - Defer: emitted events published, the input scheduled on JetStream to come back on the
//     function's defer subject (the NATS worker or the next scheduled drain handles it),
//     success.
//   - Retry: StatusRetry, for the platform to deliver again (Lambda error or SQS batch
//     item failure, Function Compute error).
//   - Reject, an undecodable input, or an event of a type the function does not take: a copy
//     goes to imagerelay.dlq.<function> with the reason, success — poison is never retried
//     and never lost.
//
// Whenever something cannot be stored (results, deferral, dead letter), the input gets
// StatusRetry, so nothing is acknowledged that is not safe on the bus. Results are in the
// order of ins. Handle is safe for concurrent use.
func (s *Session) Handle(ctx context.Context, ins []Input) []Settled {
	results := make([]Settled, len(ins))
	var ready []int
	for i, in := range ins {
		switch {
		case in.Err != nil:
			results[i] = s.settle(ctx, in, fn.Reject(in.Err))
		case !slices.Contains(s.Spec.Types, in.Event.Type()):
			results[i] = s.settle(ctx, in, fn.Reject(fmt.Errorf("%s handles %v, not %s", s.Function, s.Spec.Types, in.Event.Type())))
		default:
			ready = append(ready, i)
		}
	}
	if len(ready) == 0 {
		return results
	}
	outs := s.run(ctx, ins, ready)
	for j, i := range ready {
		results[i] = s.settle(ctx, ins[i], outs[j])
	}
	return results
}

// run calls the core on the ready inputs: in one batch for a batch handler, otherwise
// concurrently up to the spec's concurrency.
func (s *Session) run(ctx context.Context, ins []Input, ready []int) []fn.Result {
	if bh, ok := s.Spec.Handler.(fn.BatchHandler); ok && len(ready) > 1 {
		evs := make([]event.Event, len(ready))
		for j, i := range ready {
			evs[j] = ins[i].Event
		}
		return fn.SafeHandleBatch(ctx, bh, evs, slog.Default())
	}
	outs := make([]fn.Result, len(ready))
	sem := make(chan struct{}, max(s.Spec.Concurrency, 1))
	var wg sync.WaitGroup
	for j, i := range ready {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			outs[j] = fn.SafeHandle(ctx, s.Spec.Handler, ins[i].Event, slog.Default())
		}()
	}
	wg.Wait()
	return outs
}

// settle hands one input and its core's result to [fn.Settle] and reports what became of it.
func (s *Session) settle(ctx context.Context, in Input, r fn.Result) Settled {
	st := &settlement{sess: s, in: in}
	got := fn.Settle(ctx, st, r)
	res := Settled{Status: statusOf(got.Kind), Emitted: st.emitted, Err: got.Err}
	if in.Err == nil {
		res.EventID = in.Event.ID()
	}
	if got.Kind == fn.KindRetry {
		res.Err = &RetryError{Function: s.Function, EventID: res.EventID, Delay: got.Delay, Err: got.Err}
	}
	return res
}

// settlement is one input of an invocation: the serverless side of [fn.Settle]. The platform
// redelivers and counts failed attempts itself, so Redeliver only lets the invocation (or its
// SQS item) fail, and a failed attempt is never scheduled.
type settlement struct {
	sess    *Session
	in      Input
	emitted int
}

// Publish implements fn.Settlement.
func (st *settlement) Publish(ctx context.Context, evs ...event.Event) error {
	if err := st.sess.Bus.Publish(ctx, evs...); err != nil {
		return err
	}
	st.emitted = len(evs)
	return nil
}

// Ack implements fn.Settlement: the invocation succeeds for this input.
func (st *settlement) Ack(context.Context) {}

// Schedule implements fn.Settlement.
func (st *settlement) Schedule(ctx context.Context, sc fn.Schedule) error {
	// Only deferrals come here (the platform retries failed attempts); this is the first one
	// the bus sees, and later ones are counted by the worker or drain that handles it.
	return st.sess.Bus.Schedule(ctx, bus.Deferral{Function: st.sess.Function, Event: st.in.Event, Key: sc.Key,
		At: time.Now().Add(sc.Delay), Deferrals: 1, TTL: sc.TTL})
}

// Redeliver implements fn.Settlement: the StatusRetry that [Session.settle] reports fails
// the invocation or its SQS item.
func (st *settlement) Redeliver(context.Context, time.Duration, error) {}

// DeadLetter implements fn.Settlement: it stores a copy of the input on
// imagerelay.dlq.<function>, the event in binary mode when it could be decoded, else the
// payload as it was delivered.
func (st *settlement) DeadLetter(ctx context.Context, reason error) error {
	in := st.in
	header := nats.Header{}
	var data []byte
	if in.Err == nil {
		for k, v := range events.ToHeaders(in.Event) {
			header.Set(k, v)
		}
		data = in.Event.Data()
		header.Set(jetstream.MsgIDHeader, bus.MsgID(in.Event))
	} else {
		header.Set("Content-Type", "application/json")
		data = in.Raw
		// The message id makes the platform's retries of the same delivery (FC retries a
		// whole array when one item fails) store one dead letter, not one per retry.
		sum := sha256.Sum256(in.Raw)
		header.Set(jetstream.MsgIDHeader, bus.MsgIDOf("raw", in.Origin, hex.EncodeToString(sum[:])))
	}
	return st.sess.Bus.DeadLetter(ctx, st.sess.Function, in.Origin, header, data, max(in.Deliveries, 1), reason.Error())
}

// Redelivery implements fn.Settlement: the platform bounds redeliveries (Limit 0).
func (st *settlement) Redelivery() fn.Redelivery {
	return fn.Redelivery{Count: max(st.in.Deliveries, 1)}
}

// Permanent implements fn.Settlement: every storage failure is left to the platform's retry
// policy, which ends in the platform's own dead-letter queue.
func (st *settlement) Permanent(error) bool { return false }

// Budget returns how long a scheduled invocation may pull work: the time left before ctx's
// deadline minus a margin (2s plus a tenth of it) for settling the last batch and answering,
// at most limit when limit > 0. Without a deadline it is limit, or a minute.
func Budget(ctx context.Context, limit time.Duration) time.Duration {
	deadline, ok := ctx.Deadline()
	if !ok {
		if limit > 0 {
			return limit
		}
		return time.Minute
	}
	left := time.Until(deadline)
	b := left - 2*time.Second - left/10
	if limit > 0 && b > limit {
		b = limit
	}
	return max(b, 0)
}

// Drain pulls the function's pending work from its JetStream consumer (its own event types
// and its deferred events) for at most budget and handles it with the NATS runtime's ack
// logic, then returns how many messages it handled. The rest waits for the next tick.
func (s *Session) Drain(ctx context.Context, budget time.Duration) (int, error) {
	spec := s.Spec
	if _, ok := spec.Handler.(fn.BatchHandler); !ok && spec.BatchSize == 0 {
		// Messages of one fetch are handled one after another: keep the fetch small so that
		// none waits past its ack deadline.
		spec.BatchSize = 2 * max(spec.Concurrency, 1)
	}
	if budget <= 0 {
		return 0, nil
	}
	if sw, ok := spec.Handler.(fn.Sweeper); ok {
		// Scheduled invocations are the serverless worker's only heartbeat: each one also
		// re-arms work whose schedule was lost.
		if _, err := s.Bus.Sweep(ctx, s.Function, sw); err != nil {
			slog.Default().Warn("sweep failed; the next tick sweeps again", "function", s.Function, "error", err)
		}
	}
	return s.Bus.Drain(ctx, spec, budget)
}

// Response is what a Lambda or Function Compute invocation returns (other than an SQS batch,
// which answers with its batch item failures).
type Response struct {
	Function string `json:"function"`
	Trigger  string `json:"trigger"`
	// Handled counts the inputs settled (for a scheduled drain: the messages drained).
	Handled int `json:"handled"`
	// Results says what became of each input (not for a scheduled drain).
	Results []Item `json:"results,omitempty"`
}

// Item is what became of one input.
type Item struct {
	EventID string `json:"eventId,omitempty"`
	Status  Status `json:"status"`
	Emitted int    `json:"emitted,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// Item reports r for an invocation response.
func (r Settled) Item() Item {
	it := Item{EventID: r.EventID, Status: r.Status, Emitted: r.Emitted}
	if r.Err != nil {
		it.Reason = r.Err.Error()
	}
	return it
}

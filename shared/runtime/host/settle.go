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

// Status is what became of one input.
type Status string

// The statuses of an input. Only StatusRetry asks the platform to deliver it again.
const (
	// StatusDone means the core handled it and its events are stored.
	StatusDone Status = "done"
	// StatusDeferred means it was handed to JetStream, to come back on the function's defer
	// subject after a delay (picked up by the NATS worker or the next scheduled drain).
	StatusDeferred Status = "deferred"
	// StatusDeadLettered means it can never be handled and a copy is stored on
	// imagerelay.dlq.<function> with the reason.
	StatusDeadLettered Status = "dead-lettered"
	// StatusRetry means it could not be handled now: the platform should deliver it again.
	StatusRetry Status = "retry"
)

// Result is the fate of one input.
type Result struct {
	Status Status
	// EventID is the input event's id, when it could be decoded.
	EventID string
	// Emitted is how many events the core emitted (and were stored).
	Emitted int
	// Err is the *RetryError of StatusRetry, or the dead-letter reason.
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

// Handle runs the function's core on ins and settles each one. This is the one place where a
// serverless runtime decides what an outcome means:
//   - Done: the emitted events are published, success.
//   - Defer: emitted events published, the input re-published on the function's defer
//     subject with its delay (JetStream keeps it; the NATS worker or the next scheduled
//     drain handles it), success.
//   - Retry: StatusRetry, for the platform to deliver again (Lambda error or SQS batch
//     item failure, Function Compute error).
//   - Reject, an undecodable input, or an event of a type the function does not take: a copy
//     goes to imagerelay.dlq.<function> with the reason, success — poison is never retried
//     and never lost.
//
// Whenever something cannot be stored (results, deferral, dead letter), the input gets
// StatusRetry, so nothing is acknowledged that is not safe on the bus. Results are in the
// order of ins. Handle is safe for concurrent use.
func (s *Session) Handle(ctx context.Context, ins []Input) []Result {
	results := make([]Result, len(ins))
	var ready []int
	for i, in := range ins {
		switch {
		case in.Err != nil:
			results[i] = s.deadLetter(ctx, in, in.Err)
		case !slices.Contains(s.Spec.Types, in.Event.Type()):
			results[i] = s.deadLetter(ctx, in, fmt.Errorf("%s handles %v, not %s", s.Function, s.Spec.Types, in.Event.Type()))
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

// settle stores what the core emitted and maps its outcome.
func (s *Session) settle(ctx context.Context, in Input, r fn.Result) Result {
	id := in.Event.ID()
	if err := s.Bus.Publish(ctx, r.Emit...); err != nil {
		// The input comes back and the core runs again; the events it emits have the same
		// ids, so whatever was stored already is dropped as a duplicate.
		return s.retry(id, 0, fmt.Errorf("store emitted events: %w", err))
	}
	o := r.Outcome
	switch o.Kind {
	case fn.KindDone:
		return Result{Status: StatusDone, EventID: id, Emitted: len(r.Emit)}
	case fn.KindDefer:
		// A repeated deferral of the same input (after a redelivery) writes the same
		// schedule key, so it replaces the pending schedule rather than adding one.
		if err := s.Bus.Schedule(ctx, bus.Deferral{Function: s.Function, Event: in.Event, Key: o.Key,
			At: time.Now().Add(o.Delay), Deferrals: 1, TTL: o.TTL}); err != nil {
			return s.retry(id, 0, fmt.Errorf("defer: %w", err))
		}
		return Result{Status: StatusDeferred, EventID: id, Emitted: len(r.Emit)}
	case fn.KindReject:
		res := s.deadLetter(ctx, in, o.Err)
		res.Emitted = len(r.Emit)
		return res
	default: // fn.KindRetry
		res := s.retry(id, o.Delay, o.Err)
		res.Emitted = len(r.Emit)
		return res
	}
}

func (s *Session) retry(eventID string, delay time.Duration, err error) Result {
	if err == nil {
		err = errors.New("no reason given")
	}
	return Result{Status: StatusRetry, EventID: eventID, Err: &RetryError{Function: s.Function, EventID: eventID, Delay: delay, Err: err}}
}

// deadLetter stores a copy of the input on imagerelay.dlq.<function>: the event in binary
// mode when it could be decoded, else the payload as it was delivered.
func (s *Session) deadLetter(ctx context.Context, in Input, reason error) Result {
	if reason == nil {
		reason = errors.New("rejected without a reason")
	}
	header := nats.Header{}
	var data []byte
	id := ""
	if in.Err == nil {
		id = in.Event.ID()
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
	deliveries := max(in.Deliveries, 1)
	if err := s.Bus.DeadLetter(ctx, s.Function, in.Origin, header, data, deliveries, reason.Error()); err != nil {
		return s.retry(id, 0, fmt.Errorf("store dead letter: %w", err))
	}
	return Result{Status: StatusDeadLettered, EventID: id, Err: reason}
}

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
func (r Result) Item() Item {
	it := Item{EventID: r.EventID, Status: r.Status, Emitted: r.Emitted}
	if r.Err != nil {
		it.Reason = r.Err.Error()
	}
	return it
}

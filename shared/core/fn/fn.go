// Package fn is the contract between a function's pure core and the runtime that hosts it
// (NATS worker, AWS Lambda, Alibaba Function Compute): a core takes one event and returns the
// events to emit and an [Outcome]; every runtime maps the outcome onto its own mechanism
// (JetStream Ack / schedule / Term, a Lambda batch item failure, an FC error) through one
// mapping, [Settle].
package fn

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
)

// Kind tells a runtime what to do with the input event after the core ran.
type Kind int

const (
	// KindDone means the event was handled: acknowledge it after publishing the emitted events.
	KindDone Kind = iota
	// KindRetry means the event could not be handled now (throttled, provider unavailable,
	// waiting for a slot or a due time): deliver it again after Outcome.Delay.
	KindRetry
	// KindDefer means the event is fine but its time has not come (a copy still in flight, a
	// concurrency slot or a maintenance window to wait for): hand it back after Outcome.Delay.
	// Unlike KindRetry, deferring is not a failure and never counts towards a delivery limit,
	// so a copy that takes hours can be followed without running into MaxDeliver.
	KindDefer
	// KindReject means the event can never be handled (malformed, unknown region in a request,
	// impossible state): stop redelivery and copy it to the dead-letter subject with the reason.
	KindReject
)

// String names the kind for logs.
func (k Kind) String() string {
	switch k {
	case KindDone:
		return "done"
	case KindRetry:
		return "retry"
	case KindDefer:
		return "defer"
	case KindReject:
		return "reject"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Outcome is what a core decided about its input event.
type Outcome struct {
	Kind Kind
	// Delay is how long to wait before the event comes back, for KindRetry and KindDefer.
	Delay time.Duration
	// Err explains a KindRetry or KindReject; it becomes the dead-letter reason.
	Err error
	// Key names the schedule a KindDefer or KindRetry writes: schedules with the same key
	// replace each other, so at most one is pending. Empty means the input's identity. The
	// poller keys by replication, so that however many copies of a check run, one check of
	// each copy stays scheduled.
	Key string
	// TTL, when set, lets the bus drop the fired event from the stream that long after it
	// came back (for high-volume deferrals whose loss a sweeper repairs).
	TTL time.Duration
}

// Result is a core's answer for one event.
type Result struct {
	// Emit are the events to publish before the input is acknowledged. Their ids are derived
	// from the input, so publishing them again after a redelivery is harmless.
	Emit    []event.Event
	Outcome Outcome
}

// Done returns a KindDone result that emits evs.
func Done(evs ...event.Event) Result { return Result{Emit: evs} }

// Retry returns a KindRetry result.
func Retry(delay time.Duration, err error, evs ...event.Event) Result {
	return Result{Emit: evs, Outcome: Outcome{Kind: KindRetry, Delay: delay, Err: err}}
}

// Defer returns a KindDefer result: handle the same event again after delay.
func Defer(delay time.Duration, evs ...event.Event) Result {
	return Result{Emit: evs, Outcome: Outcome{Kind: KindDefer, Delay: delay}}
}

// Reject returns a KindReject result.
func Reject(err error) Result { return Result{Outcome: Outcome{Kind: KindReject, Err: err}} }

// Handler is a function core: it handles one decoded, validated event.
// Implementations must be safe for concurrent use: every runtime may call them in parallel.
type Handler interface {
	Handle(ctx context.Context, e event.Event) Result
}

// BatchHandler is implemented by cores that work better on several events at once (the poller
// batches status calls). Results are in the order of the input.
type BatchHandler interface {
	Handler
	HandleBatch(ctx context.Context, evs []event.Event) []Result
}

// SafeHandle runs h on e and turns a panic into a KindRetry result, so one bad event cannot
// take the worker down; if it keeps panicking, the runtime's delivery limit dead-letters it
// with the panic as the reason.
func SafeHandle(ctx context.Context, h Handler, e event.Event, log *slog.Logger) (r Result) {
	defer func() {
		if p := recover(); p != nil {
			r = panicked(p, log, e.ID())
		}
	}()
	return h.Handle(ctx, e)
}

// SafeHandleBatch is SafeHandle for a batch: a panic makes every event of the batch
// KindRetry.
func SafeHandleBatch(ctx context.Context, h BatchHandler, evs []event.Event, log *slog.Logger) (rs []Result) {
	defer func() {
		if p := recover(); p != nil {
			rs = make([]Result, len(evs))
			for i, e := range evs {
				rs[i] = panicked(p, log, e.ID())
			}
		}
	}()
	rs = h.HandleBatch(ctx, evs)
	if len(rs) != len(evs) {
		panic(fmt.Sprintf("fn: HandleBatch returned %d results for %d events", len(rs), len(evs)))
	}
	return rs
}

func panicked(p any, log *slog.Logger, eventID string) Result {
	if log != nil {
		log.Error("function core panicked", "event_id", eventID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	}
	return Retry(0, fmt.Errorf("the function core panicked: %v", p))
}

// HandlerFunc adapts a function to [Handler].
type HandlerFunc func(ctx context.Context, e event.Event) Result

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, e event.Event) Result { return f(ctx, e) }

// Publisher publishes events on the bus. Publishing an event whose id was already published
// (inside the bus's dedupe window) is not an error and stores nothing new.
type Publisher interface {
	Publish(ctx context.Context, evs ...event.Event) error
}

// Wakeup is an event a sweeper wants handled again now, under a schedule key (see
// Outcome.Key): it replaces whatever is pending under that key.
type Wakeup struct {
	Event event.Event
	Key   string
	TTL   time.Duration
}

// Sweeper is implemented by cores whose work waits on schedules (the poller): Sweep finds
// the work whose schedule was lost (a message that expired or was purged, a crash between
// two steps) so that the runtime can schedule it again. It must be safe to run in every worker
// at once: a wakeup replaces the pending schedule of its key, it never adds a second one.
type Sweeper interface {
	Sweep(ctx context.Context) ([]Wakeup, error)
}

// Decode returns e's data as T, the data of the one event type typ that function takes. When
// e is another type, or its data does not decode, ok is false and res rejects e with the
// reason: the prologue every core's Handle shares.
func Decode[T any](function, typ string, e event.Event) (data *T, res Result, ok bool) {
	if e.Type() != typ {
		return nil, Reject(fmt.Errorf("%s handles %s, not %s", function, typ, e.Type())), false
	}
	d, err := events.DataAs[T](e)
	if err != nil {
		return nil, Reject(err), false
	}
	return d, Result{}, true
}

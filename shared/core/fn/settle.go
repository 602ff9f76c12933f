package fn

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Settlement is one input in a runtime's hands after its core has run: the few things a
// runtime can do with it. [Settle] decides which; each runtime does them with its own
// mechanism (a JetStream message for the NATS worker, an invocation for AWS Lambda and
// Alibaba Function Compute).
type Settlement interface {
	// Publish stores the events the core emitted. Their ids are derived from the input, so
	// storing them again after a redelivery stores nothing new.
	Publish(ctx context.Context, evs ...event.Event) error
	// Ack tells the platform the input is settled (the worker acknowledges the message; a
	// serverless invocation succeeds).
	Ack(ctx context.Context)
	// Schedule hands the input to the bus, to come back on the function's defer subject
	// after s.Delay. The input is not settled until Ack.
	Schedule(ctx context.Context, s Schedule) error
	// Redeliver leaves the input unsettled so that the platform delivers it again: after
	// delay where the platform can wait (the worker naks with that delay), else when the
	// platform's retry policy says (a serverless invocation fails).
	Redeliver(ctx context.Context, delay time.Duration, cause error)
	// DeadLetter stores a copy of the input on imagerelay.dlq.<function> with the reason and
	// ends its deliveries.
	DeadLetter(ctx context.Context, reason error) error
	// Redelivery returns what the runtime knows about this input's deliveries.
	Redelivery() Redelivery
	// Permanent reports whether an error from Publish or Schedule can never go away by
	// trying again (the NATS worker: a message larger than the server's max_payload).
	Permanent(err error) bool
}

// Redelivery is what a runtime knows about one input's deliveries.
type Redelivery struct {
	// Count is how often the input has been delivered, failed attempts behind it included;
	// 1 the first time.
	Count uint64
	// Limit, when above zero, is the delivery limit the runtime enforces itself (JetStream's
	// MaxDeliver for the NATS worker): a failed attempt is scheduled again and counted, and
	// dead-lettered once Count reaches Limit. Zero means the platform redelivers failed
	// attempts and bounds them (AWS Lambda, Function Compute).
	Limit uint64
	// Backoff is how long to wait before a redelivery that the outcome gives no delay for.
	Backoff time.Duration
}

// exhausted reports whether another failure must end in the dead-letter subject.
func (r Redelivery) exhausted() bool { return r.Limit > 0 && r.Count >= r.Limit }

// Schedule is an input handed back to the bus by [Settle].
type Schedule struct {
	// Delay is how long until the input comes back.
	Delay time.Duration
	// Key names the schedule (see Outcome.Key); empty means the input's identity.
	Key string
	// TTL is Outcome.TTL.
	TTL time.Duration
	// Failure is the cause of a failed attempt (KindRetry) that comes back through a schedule
	// and counts towards the delivery limit; nil for a deferral (KindDefer), which never
	// counts.
	Failure error
}

// Settle maps a core's result for one input onto what the runtime does with it, and returns
// what became of the input: KindDone (handled), KindDefer (scheduled to come back),
// KindRetry (to be delivered again, with Delay and the cause in Err) or KindReject
// (dead-lettered, with the reason in Err). This is the one place every runtime — the NATS
// worker, AWS Lambda, Alibaba Function Compute — decides what an outcome means:
//
//	result                  NATS worker (Limit > 0)                        Lambda / FC (Limit = 0)
//	Done                    publish, ack                                   publish, succeed
//	Defer                   publish, schedule after Delay, ack             publish, schedule after Delay, succeed
//	Retry                   publish; at Limit: dead letter; else           publish, fail: the platform delivers again
//	                        schedule after Delay (or Backoff), ack
//	Reject                  publish, dead letter (Term)                    publish, dead letter, succeed
//	publish fails           permanent or at Limit: dead letter;            fail: delivered again
//	                        else redeliver after Backoff (nak)
//	schedule fails          permanent: dead letter; else redeliver         fail: delivered again
//	dead letter fails       redeliver after Backoff                        fail: delivered again
//
// Emitted events are stored before anything else, so nothing is acknowledged that is not
// safe on the bus; an input whose results or schedule cannot be stored comes back, and its
// events keep their ids. Waiting work (Defer) and failed attempts on the worker (Retry) come
// back through a schedule, so neither holds a consumer's ack-pending slot while it waits.
// Poison (Reject, an undecodable input: pass Reject(reason)) is never retried and never
// lost. An unknown kind is dead-lettered: it is a bug in the core, and retrying it would
// only repeat it.
func Settle(ctx context.Context, s Settlement, r Result) Outcome {
	d := s.Redelivery()
	if err := s.Publish(ctx, r.Emit...); err != nil {
		if s.Permanent(err) || d.exhausted() {
			// Retrying can never store an event that is too large; and past the limit the
			// dead letter says what failed rather than leaving the message to JetStream's
			// max-deliveries advisory, which can only guess.
			return deadLetter(ctx, s, d, fmt.Errorf("its results could not be stored: %w", err))
		}
		return redeliver(ctx, s, d.Backoff, fmt.Errorf("store emitted events: %w", err))
	}
	o := r.Outcome
	switch o.Kind {
	case KindDone:
		s.Ack(ctx)
		return Outcome{Kind: KindDone}
	case KindDefer:
		// A repeated deferral of the same input (after a redelivery) writes the same
		// schedule key, so it replaces the pending schedule rather than adding one.
		return schedule(ctx, s, d, Schedule{Delay: o.Delay, Key: o.Key, TTL: o.TTL})
	case KindRetry:
		cause := o.Err
		if cause == nil {
			cause = errors.New("no reason given")
		}
		if d.Limit == 0 {
			return redeliver(ctx, s, o.Delay, cause)
		}
		if d.exhausted() {
			return deadLetter(ctx, s, d, fmt.Errorf("gave up after %d deliveries: %w", d.Count, cause))
		}
		delay := o.Delay
		if delay <= 0 {
			delay = d.Backoff
		}
		return schedule(ctx, s, d, Schedule{Delay: delay, Key: o.Key, TTL: o.TTL, Failure: cause})
	case KindReject:
		reason := o.Err
		if reason == nil {
			reason = errors.New("rejected without a reason")
		}
		return deadLetter(ctx, s, d, reason)
	}
	return deadLetter(ctx, s, d, fmt.Errorf("the core returned an unknown outcome %s", o.Kind))
}

// schedule writes sc and acknowledges the input. If the schedule cannot be written the input
// is not acknowledged, so it comes back: it is never lost between the two.
func schedule(ctx context.Context, s Settlement, d Redelivery, sc Schedule) Outcome {
	if err := s.Schedule(ctx, sc); err != nil {
		if s.Permanent(err) {
			return deadLetter(ctx, s, d, fmt.Errorf("it cannot be scheduled again: %w", err))
		}
		return redeliver(ctx, s, d.Backoff, fmt.Errorf("schedule: %w", err))
	}
	// The schedule is written; a redelivery after a failed ack writes it again under the
	// same key.
	s.Ack(ctx)
	if sc.Failure != nil {
		return Outcome{Kind: KindRetry, Delay: sc.Delay, Key: sc.Key, TTL: sc.TTL, Err: sc.Failure}
	}
	return Outcome{Kind: KindDefer, Delay: sc.Delay, Key: sc.Key, TTL: sc.TTL}
}

// deadLetter stores the input's dead letter. If it cannot be stored the input is not ended,
// so it comes back: poison is never lost.
func deadLetter(ctx context.Context, s Settlement, d Redelivery, reason error) Outcome {
	if err := s.DeadLetter(ctx, reason); err != nil {
		return redeliver(ctx, s, d.Backoff, fmt.Errorf("store dead letter: %w", err))
	}
	return Outcome{Kind: KindReject, Err: reason}
}

func redeliver(ctx context.Context, s Settlement, delay time.Duration, cause error) Outcome {
	s.Redeliver(ctx, delay, cause)
	return Outcome{Kind: KindRetry, Delay: delay, Err: cause}
}

package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/events"
)

// Waiting work (a copy still in flight, a slot or a window to wait for, a retry after a
// provider's throttling) is held by the server, not by a consumer: imagerelay writes a
// JetStream message schedule (nats-server 2.12+) on imagerelay.schedule.<function>.<key>,
// and the server publishes the event on imagerelay.defer.<function>.<provider>.<region> when
// it is due. Three properties follow from that, and the design relies on each:
//
//   - A waiting event holds no ack-pending slot, so nothing can park a worker: there is no
//     "not before" header for a stranger to set.
//   - A schedule subject holds at most one schedule (the server rolls the subject up), so a
//     chain of deferrals with one key cannot fork: a redelivered copy that defers again
//     replaces the pending schedule instead of adding a second one.
//   - The server marks what it fires with Nats-Scheduler, which a client may only set
//     together with a purge of a real schedule; the worker accepts its defer subject only
//     from the scheduler (see [fromScheduler]).
//
// Granularity: "@at" carries nanoseconds and the server keeps them, but nats-server (2.12 to
// 2.15) re-arms its schedule timer no sooner than 250 ms after it last fired, so a deferral
// comes back at its time or up to about 250 ms after it; that is the floor of any delay below
// it. The bus adds no floor of its own. (Poll intervals also have a floor of one second,
// elsewhere: records and replication events carry them in whole seconds.)

// Header names of scheduled (deferred) events.
const (
	// HeaderDeferrals counts how often an event was deferred (for logs and tests).
	HeaderDeferrals = "Imagerelay-Deferrals"
	// HeaderAttempt counts the failed attempts (Retry) of an event that comes back from
	// a schedule; with JetStream's own redeliveries it makes the delivery count that ends in
	// the dead-letter subject.
	HeaderAttempt = "Imagerelay-Attempt"

	headerSchedule       = "Nats-Schedule"
	headerScheduleTarget = "Nats-Schedule-Target"
	headerScheduleTTL    = "Nats-Schedule-TTL"
	headerScheduler      = "Nats-Scheduler"
)

// SchedulePrefix starts the subjects of pending schedules: imagerelay.schedule.<function>.<key>.
const SchedulePrefix = events.SubjectPrefix + "schedule."

// DeferPrefix starts the internal subjects deferred events come back on:
// imagerelay.defer.<function>.<provider>.<region>.
const DeferPrefix = events.SubjectPrefix + "defer."

// Deferral is one event scheduled to come back to a function.
type Deferral struct {
	// Function is the function the event comes back to.
	Function string
	// Event is what comes back, unchanged.
	Event event.Event
	// Key names the schedule: deferrals with the same key replace each other, so at most one
	// is pending. Empty means the event's identity (source and id).
	Key string
	// At is when the event is due.
	At time.Time
	// Attempt is how many failed attempts (Retry) the event has behind it.
	Attempt int
	// Deferrals is how many times the event has been deferred, this one included.
	Deferrals int
	// TTL, when set, removes the fired message from the stream that long after it fired.
	// Only deferrals whose loss a sweeper repairs (the poller's checks) set it.
	TTL time.Duration
}

// ScheduleSubject returns the subject of function's schedule for key.
func ScheduleSubject(function, key string) string {
	sum := sha256.Sum256([]byte(key))
	return SchedulePrefix + function + "." + hex.EncodeToString(sum[:16])
}

// DeferSubject returns the subject on which a function's deferred event comes back.
func DeferSubject(function string, e event.Event) string {
	return DeferPrefix + function + "." + subjectTail(e)
}

// Schedule writes d as a JetStream message schedule. The server publishes the event on the
// function's defer subject at d.At, replacing any schedule pending for the same key.
func (b *Bus) Schedule(ctx context.Context, d Deferral) error {
	key := d.Key
	if key == "" {
		key = events.Identity(d.Event)
	}
	msg := toMsg(d.Event, ScheduleSubject(d.Function, key))
	// "@at" takes RFC 3339; a time already past fires at once.
	msg.Header.Set(headerSchedule, "@at "+d.At.UTC().Format(time.RFC3339Nano))
	msg.Header.Set(headerScheduleTarget, DeferSubject(d.Function, d.Event))
	if d.TTL > 0 {
		msg.Header.Set(headerScheduleTTL, strconv.Itoa(int(d.TTL.Seconds()))+"s")
	}
	msg.Header.Set(HeaderDeferrals, strconv.Itoa(d.Deferrals))
	if d.Attempt > 0 {
		msg.Header.Set(HeaderAttempt, strconv.Itoa(d.Attempt))
	}
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("bus: schedule %s %s for %s: %w", d.Event.Type(), d.Event.ID(), d.Function, err)
	}
	return nil
}

// fromScheduler reports whether a message on function's defer subject was fired by the
// server from one of function's schedules. Anything else on a defer subject was published
// by someone else and is refused: only imagerelay decides when its work comes back.
func fromScheduler(function string, h nats.Header) bool {
	return strings.HasPrefix(h.Get(headerScheduler), SchedulePrefix+function+".")
}

// isDeferSubject reports whether subject is one of function's defer subjects.
func isDeferSubject(function, subject string) bool {
	return strings.HasPrefix(subject, DeferPrefix+function+".")
}

// MsgID returns the Nats-Msg-Id of an event: a hash of its identity, so JetStream's dedupe
// drops a re-published event and never a different producer's event with the same id.
func MsgID(e event.Event) string {
	sum := sha256.Sum256([]byte(events.Identity(e)))
	return hex.EncodeToString(sum[:16])
}

// Wake makes function's pending schedule under key due now, unchanged otherwise: whoever
// frees what a deferral waits for (a concurrency slot) hands it over at once instead of at the
// waiter's next back-off. Nothing pending under key is not an error. If the schedule fires
// while it is being woken, the event comes back twice; the functions are idempotent, and the
// second delivery finds the work done or waits again under the same key.
func (b *Bus) Wake(ctx context.Context, function, key string) error {
	subject := ScheduleSubject(function, key)
	s, err := b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		return fmt.Errorf("bus: wake %s: %w", subject, err)
	}
	raw, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bus: wake %s: %w", subject, err)
	}
	msg := nats.NewMsg(subject)
	for k, v := range raw.Header {
		msg.Header[k] = v
	}
	msg.Header.Set(headerSchedule, "@at "+time.Now().UTC().Format(time.RFC3339Nano))
	msg.Data = raw.Data
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("bus: wake %s: %w", subject, err)
	}
	return nil
}

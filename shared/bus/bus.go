package bus

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/events"
)

// Header names imagerelay adds to NATS messages next to the ce- attributes.
const (
	// HeaderNotBefore holds the earliest time (RFC 3339) a deferred event may be handled.
	HeaderNotBefore = "Imagerelay-Not-Before"
	// HeaderDeferrals counts how often an event was deferred; it keeps re-publications apart
	// in the dedupe window.
	HeaderDeferrals = "Imagerelay-Deferrals"
	// HeaderDeadLetterReason says why an event went to the dead-letter subject.
	HeaderDeadLetterReason = "Imagerelay-Dlq-Reason"
	// HeaderDeadLetterFunction names the function that gave up on it.
	HeaderDeadLetterFunction = "Imagerelay-Dlq-Function"
	// HeaderDeadLetterSubject is the subject the event was read from.
	HeaderDeadLetterSubject = "Imagerelay-Dlq-Subject"
	// HeaderDeadLetterMsgID is the original Nats-Msg-Id (the dead letter cannot reuse it: the
	// stream would drop it as a duplicate of the original).
	HeaderDeadLetterMsgID = "Imagerelay-Dlq-Msg-Id"
	// HeaderDeadLetterDeliveries is how many times it was delivered.
	HeaderDeadLetterDeliveries = "Imagerelay-Dlq-Deliveries"
)

// DeferPrefix starts the internal subjects deferred events come back on:
// imagerelay.defer.<function>.<provider>.<region>.
const DeferPrefix = events.SubjectPrefix + "defer."

// Bus is a JetStream connection set up for imagerelay: the stream exists, and events can be
// published and consumed. It is safe for concurrent use.
type Bus struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	cfg Config
	log *slog.Logger
}

// Open sets up the stream (idempotently) on nc and returns the bus.
func Open(ctx context.Context, nc *nats.Conn, cfg Config, log *slog.Logger) (*Bus, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "imagerelay events (CloudEvents, binary mode)",
		Subjects:    []string{events.SubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Replicas:    max(cfg.Replicas, 1),
		Duplicates:  cfg.DuplicateWindow,
		MaxAge:      cfg.MaxAge,
	})
	if err != nil {
		return nil, fmt.Errorf("bus: create stream %s: %w", cfg.Stream, err)
	}
	return &Bus{nc: nc, js: js, cfg: cfg, log: log}, nil
}

// JetStream returns the underlying JetStream handle (for the KV store).
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Config returns the bus configuration.
func (b *Bus) Config() Config { return b.cfg }

// Publish stores events on their subjects. It implements fn.Publisher. An event already
// stored inside the dedupe window is acknowledged as a duplicate and not stored again.
func (b *Bus) Publish(ctx context.Context, evs ...event.Event) error {
	for _, e := range evs {
		msg := toMsg(e, Subject(e))
		if _, err := b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(e.ID())); err != nil {
			return fmt.Errorf("bus: publish %s %s: %w", e.Type(), e.ID(), err)
		}
	}
	return nil
}

// Subject returns the NATS subject of an event, from its type and extensions.
func Subject(e event.Event) string {
	return events.NATSSubject(e.Type(), events.StringExt(e, events.ExtProvider), events.StringExt(e, events.ExtRegion))
}

// DeferSubject returns the subject on which a function's deferred event comes back.
func DeferSubject(function string, e event.Event) string {
	return DeferPrefix + function + "." + subjectTail(e)
}

// subjectTail is "<provider>.<region>" of an event, as NATSSubject writes it.
func subjectTail(e event.Event) string {
	full := Subject(e)
	prefix := events.SubjectPrefix + events.ShortName(e.Type()) + "."
	return full[len(prefix):]
}

// Defer publishes e again on the function's defer subject, to be handled after delay. The
// deferrals count makes the message id unique per deferral while the event id stays the
// same, so ids derived from it downstream do not change.
func (b *Bus) Defer(ctx context.Context, function string, e event.Event, delay time.Duration, deferrals int) error {
	msg := toMsg(e, DeferSubject(function, e))
	msg.Header.Set(HeaderNotBefore, time.Now().Add(delay).UTC().Format(time.RFC3339Nano))
	msg.Header.Set(HeaderDeferrals, strconv.Itoa(deferrals))
	id := e.ID() + "~defer~" + function + "~" + strconv.Itoa(deferrals)
	if _, err := b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("bus: defer %s %s: %w", e.Type(), e.ID(), err)
	}
	return nil
}

// DeadLetter stores a message that function gave up on under imagerelay.dlq.<function>,
// unchanged, with the reason and origin in headers.
func (b *Bus) DeadLetter(ctx context.Context, function string, subject string, header nats.Header, data []byte, deliveries uint64, reason string) error {
	msg := nats.NewMsg(events.DeadLetterSubject(function))
	for k, v := range header {
		if k == jetstream.MsgIDHeader || k == HeaderNotBefore {
			continue
		}
		msg.Header[k] = v
	}
	msg.Header.Set(HeaderDeadLetterReason, asciiHeader(reason))
	msg.Header.Set(HeaderDeadLetterFunction, function)
	msg.Header.Set(HeaderDeadLetterSubject, subject)
	msg.Header.Set(HeaderDeadLetterDeliveries, strconv.FormatUint(deliveries, 10))
	if id := header.Get(jetstream.MsgIDHeader); id != "" {
		msg.Header.Set(HeaderDeadLetterMsgID, id)
	}
	msg.Data = data
	var opts []jetstream.PublishOpt
	if id := header.Get(jetstream.MsgIDHeader); id != "" {
		// One dead letter per message, however many workers or deliveries give up on it.
		opts = append(opts, jetstream.WithMsgID("dlq~"+function+"~"+id))
	}
	if _, err := b.js.PublishMsg(ctx, msg, opts...); err != nil {
		return fmt.Errorf("bus: dead-letter to %s: %w", msg.Subject, err)
	}
	return nil
}

// toMsg writes e in binary content mode.
func toMsg(e event.Event, subject string) *nats.Msg {
	msg := nats.NewMsg(subject)
	for k, v := range events.ToHeaders(e) {
		msg.Header.Set(k, v)
	}
	msg.Data = e.Data()
	return msg
}

// decodeMsg reads a binary-mode event, or a structured-mode one (a JSON CloudEvent published
// by any NATS client without ce- headers).
func decodeMsg(header nats.Header, data []byte) (event.Event, error) {
	if header.Get("ce-specversion") != "" {
		return events.FromHeader(header, data)
	}
	return events.Decode(data)
}

// asciiHeader keeps header values to printable ASCII on one line, as NATS headers need.
func asciiHeader(s string) string {
	out := []byte(s)
	for i, c := range out {
		if c < ' ' || c > '~' {
			out[i] = ' '
		}
	}
	if len(out) > 1024 {
		out = append(out[:1021], "..."...)
	}
	return string(out)
}

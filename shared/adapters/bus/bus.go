package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/events"
)

// Header names imagerelay adds to dead letters next to the original headers.
const (
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
	// HeaderDeadLetterTruncated says that the original did not fit in a dead letter with the
	// reason added, and what was left out.
	HeaderDeadLetterTruncated = "Imagerelay-Dlq-Truncated"
)

// Bus is a JetStream connection set up for imagerelay: the stream exists, and events can be
// published and consumed. It is safe for concurrent use.
type Bus struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	cfg Config
	log *slog.Logger
}

// JetStream returns the underlying JetStream handle (for the KV store).
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Config returns the bus configuration.
func (b *Bus) Config() Config { return b.cfg }

// publishTimeout bounds the wait for the acknowledgements of asynchronous publishes when
// the caller's context sets no deadline, as the synchronous publish's default timeout does.
const publishTimeout = 5 * time.Second

// Publish stores events on their subjects and returns once the stream has acknowledged every
// one; an error means that some may not be stored. It implements fn.Publisher. An event
// already stored inside the dedupe window is acknowledged as a duplicate and not stored again,
// so publishing the same events again after an error stores each of them once.
//
// Several events are published asynchronously and their acknowledgements awaited together:
// one round trip for all of them instead of one per event.
func (b *Bus) Publish(ctx context.Context, evs ...event.Event) error {
	if len(evs) == 1 {
		e := evs[0]
		if _, err := b.js.PublishMsg(ctx, toMsg(e, Subject(e)), jetstream.WithMsgID(MsgID(e))); err != nil {
			return fmt.Errorf("bus: publish %s %s: %w", e.Type(), e.ID(), err)
		}
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, publishTimeout)
		defer cancel()
	}
	acks := make([]jetstream.PubAckFuture, 0, len(evs))
	for _, e := range evs {
		f, err := b.js.PublishMsgAsync(toMsg(e, Subject(e)), jetstream.WithMsgID(MsgID(e)))
		if err != nil {
			return fmt.Errorf("bus: publish %s %s: %w", e.Type(), e.ID(), err)
		}
		acks = append(acks, f)
	}
	for i, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("bus: publish %s %s: %w", evs[i].Type(), evs[i].ID(), err)
		case <-ctx.Done():
			return fmt.Errorf("bus: publish %s %s: no acknowledgement: %w", evs[i].Type(), evs[i].ID(), ctx.Err())
		}
	}
	return nil
}

// Subject returns the NATS subject of an event, from its type and extensions.
func Subject(e event.Event) string {
	return events.NATSSubject(e.Type(), events.StringExt(e, events.ExtProvider), events.StringExt(e, events.ExtRegion))
}

// subjectTail is "<provider>.<region>" of an event, as NATSSubject writes it.
func subjectTail(e event.Event) string {
	full := Subject(e)
	prefix := events.SubjectPrefix + events.ShortName(e.Type()) + "."
	return full[len(prefix):]
}

// DeadLetter stores a message that function gave up on under imagerelay.dlq.<function>,
// unchanged, with the reason and origin in headers. A message too large to carry the added
// headers (a near-limit payload, oversized headers) is stored without its payload and with
// only the headers that identify it, marked with [HeaderDeadLetterTruncated]: the reason is
// never lost because the original was too big.
func (b *Bus) DeadLetter(ctx context.Context, function string, subject string, header nats.Header, data []byte, deliveries uint64, reason string) error {
	msg := nats.NewMsg(events.DeadLetterSubject(function))
	for k, v := range header {
		if k == jetstream.MsgIDHeader || strings.HasPrefix(k, "Nats-") {
			continue // server-interpreted headers (schedules, TTLs, rollups) must not act again
		}
		msg.Header[k] = v
	}
	msg.Header.Set(HeaderDeadLetterReason, asciiHeader(reason))
	msg.Header.Set(HeaderDeadLetterFunction, function)
	msg.Header.Set(HeaderDeadLetterSubject, asciiHeader(subject))
	msg.Header.Set(HeaderDeadLetterDeliveries, strconv.FormatUint(deliveries, 10))
	origID := header.Get(jetstream.MsgIDHeader)
	if origID != "" {
		msg.Header.Set(HeaderDeadLetterMsgID, asciiHeader(origID))
	}
	msg.Data = data
	var opts []jetstream.PublishOpt
	if origID != "" {
		// One dead letter per message, however many workers or deliveries give up on it.
		opts = append(opts, jetstream.WithMsgID(MsgIDOf("dlq", function, origID)))
	}
	_, err := b.js.PublishMsg(ctx, msg, opts...)
	if tooLarge(err) {
		small := nats.NewMsg(msg.Subject)
		for _, k := range []string{HeaderDeadLetterReason, HeaderDeadLetterFunction, HeaderDeadLetterSubject, HeaderDeadLetterDeliveries, HeaderDeadLetterMsgID} {
			if v := msg.Header.Get(k); v != "" {
				small.Header.Set(k, v)
			}
		}
		for _, k := range []string{"ce-id", "ce-source", "ce-type", "ce-subject", "ce-correlationid"} {
			if v := header.Get(k); v != "" {
				small.Header.Set(k, asciiHeader(clip(v, 256)))
			}
		}
		headerBytes := 0
		for k, vs := range header {
			for _, v := range vs {
				headerBytes += len(k) + len(v) + 4
			}
		}
		small.Header.Set(HeaderDeadLetterTruncated, fmt.Sprintf("the original (%d bytes of payload, %d bytes of headers) does not fit in a dead letter; payload and other headers left out", len(data), headerBytes))
		_, err = b.js.PublishMsg(ctx, small, opts...)
	}
	if err != nil {
		return fmt.Errorf("bus: dead-letter to %s: %w", msg.Subject, err)
	}
	return nil
}

// tooLarge reports whether a publish failed because the message is larger than the server
// or the stream accepts. Retrying such a publish can never succeed.
func tooLarge(err error) bool {
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum)
}

// MsgIDOf builds a Nats-Msg-Id from parts, injectively (a hash of the parts, each
// length-prefixed), for messages that are not events themselves.
func MsgIDOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
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

package bus

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
)

// maxDeliveriesAdvisory is the part of JetStream's MAX_DELIVERIES advisory imagerelay reads.
type maxDeliveriesAdvisory struct {
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// WatchExhausted dead-letters the messages JetStream gives up on after MaxDeliver unanswered
// deliveries — a worker that crashed or hung every time, so no outcome was ever recorded. The
// server only announces those in an advisory; without this they would sit in the stream
// unseen. [Bus.Run] watches while it runs; every worker of the function does, and the dead
// letters' message ids keep one copy. Stop the watch with the returned function.
func (b *Bus) WatchExhausted(ctx context.Context, s Spec) (stop func(), err error) {
	subject := "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + b.cfg.Stream + "." + s.Function
	sub, err := b.nc.Subscribe(subject, func(m *nats.Msg) {
		var adv maxDeliveriesAdvisory
		if err := json.Unmarshal(m.Data, &adv); err != nil || adv.StreamSeq == 0 {
			b.log.Warn("unreadable max-deliveries advisory", "function", s.Function, "error", err)
			return
		}
		if err := b.deadLetterSeq(ctx, s.Function, adv); err != nil {
			b.log.Error("could not dead-letter an exhausted message", "function", s.Function, "stream_seq", adv.StreamSeq, "error", err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("bus: watch max deliveries of %s: %w", s.Function, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// deadLetterSeq copies the stream message at the advisory's sequence to the dead-letter
// subject.
func (b *Bus) deadLetterSeq(ctx context.Context, function string, adv maxDeliveriesAdvisory) error {
	stream, err := b.js.Stream(ctx, b.cfg.Stream)
	if err != nil {
		return err
	}
	raw, err := stream.GetMsg(ctx, adv.StreamSeq)
	if err != nil {
		return err
	}
	reason := fmt.Sprintf("delivered %d times without an answer: the %s worker crashed or hung on it each time (see its logs); "+
		"republish it from here once that is fixed", adv.Deliveries, function)
	return b.DeadLetter(ctx, function, raw.Subject, raw.Header, raw.Data, adv.Deliveries, reason)
}

package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// RawResult is one raw JetStream run: n messages of size bytes published and consumed with an
// ack each, on a stream with imagerelay's settings.
type RawResult struct {
	Messages int
	Size     int
	Elapsed  time.Duration
}

// PerSecond is messages published, stored, delivered and acked per second.
func (r RawResult) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Messages) / r.Elapsed.Seconds()
}

// rawStream is the raw run's stream: imagerelay's stream settings (file storage, one replica,
// the configured duplicate window and max age, message schedules, roll-ups and TTLs allowed)
// on a subject of its own, so it never touches imagerelay's events.
func rawStream(dupWindow, maxAge time.Duration) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name: "BENCH_RAW", Subjects: []string{"benchraw.>"}, Storage: jetstream.FileStorage, Replicas: 1,
		Duplicates: dupWindow, MaxAge: maxAge, AllowMsgSchedules: true, AllowRollup: true, AllowMsgTTL: true,
	}
}

// rawWindow is how many asynchronous publishes may await their ack at once.
const rawWindow = 4096

// runRaw measures the engine's ceiling on this machine: one publisher (asynchronous, with a
// Nats-Msg-Id, like imagerelay's publishes) and one pull consumer (explicit acks) run at the
// same time; the time is from the first publish until the consumer has acked the last message
// and the server has no ack pending. The stream is deleted afterwards.
func runRaw(ctx context.Context, nc *nats.Conn, n, size int, dupWindow, maxAge time.Duration) (RawResult, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(rawWindow))
	if err != nil {
		return RawResult{}, err
	}
	scfg := rawStream(dupWindow, maxAge)
	st, err := js.CreateStream(ctx, scfg)
	if err != nil {
		return RawResult{}, fmt.Errorf("raw stream: %w", err)
	}
	defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), scfg.Name) }()
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 10000})
	if err != nil {
		return RawResult{}, err
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	var acked atomic.Int64
	done := make(chan struct{})
	start := time.Now()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if err := m.Ack(); err == nil && acked.Add(1) == int64(n) {
			close(done)
		}
	}, jetstream.PullMaxMessages(1000))
	if err != nil {
		return RawResult{}, err
	}
	defer cc.Stop()
	for i := range n {
		msg := &nats.Msg{Subject: "benchraw.m", Data: payload, Header: nats.Header{}}
		if _, err := js.PublishMsgAsync(msg, jetstream.WithMsgID("raw-"+strconv.Itoa(i))); err != nil {
			return RawResult{}, fmt.Errorf("raw publish %d: %w", i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return RawResult{}, ctx.Err()
	}
	select {
	case <-done:
	case <-ctx.Done():
		return RawResult{}, fmt.Errorf("raw consumer acked %d of %d: %w", acked.Load(), n, ctx.Err())
	}
	// Acks are fire-and-forget: the run ends when the server has processed all of them.
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			return RawResult{}, err
		}
		if info.NumAckPending == 0 && info.AckFloor.Stream >= uint64(n) {
			break
		}
		select {
		case <-ctx.Done():
			return RawResult{}, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return RawResult{Messages: n, Size: size, Elapsed: time.Since(start)}, nil
}

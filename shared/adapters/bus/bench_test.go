package bus_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/shared/core/fn"
	"github.com/imagerelay/imagerelay/shared/dev/testenv"
)

// BenchmarkPublish measures one synchronous publish (binary mode, Nats-Msg-Id) to the
// embedded server's file store.
func BenchmarkPublish(b *testing.B) {
	env := testenv.Start(b)
	ctx := context.Background()
	evs := make([]event.Event, 0, 1024)
	for i := range 1024 {
		evs = append(evs, publishedB(b, fmt.Sprintf("bench-%d", i)))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e := evs[i%len(evs)].Clone()
		e.SetID(fmt.Sprintf("p-%d", i))
		if err := env.Bus.Publish(ctx, e); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkHandleAndAck measures the worker path per event: fetch, decode and validate,
// run a core that emits one event, publish it, double-ack the input.
func BenchmarkHandleAndAck(b *testing.B) {
	env := testenv.Start(b)
	ctx := context.Background()
	var handled atomic.Int64
	env.Run(b, spec(fn.HandlerFunc(func(_ context.Context, e event.Event) fn.Result {
		handled.Add(1)
		return fn.Done()
	})))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := env.Bus.Publish(ctx, publishedB(b, fmt.Sprintf("h-%d", i))); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for handled.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("handled %d of %d", handled.Load(), b.N)
		}
		time.Sleep(time.Millisecond) // polling interval of a deadline wait
	}
}

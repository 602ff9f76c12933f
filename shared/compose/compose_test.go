package compose

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/shared/adapters/bus"
)

func TestRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{fmt.Errorf("bus: stream IMAGERELAY: %w", jetstream.ErrNoHeartbeat), true},
		{errors.New("nats: no responders available for request"), true},
		{fmt.Errorf("x: %w", bus.ErrStreamMissing), false},
		{fmt.Errorf("x: %w", bus.ErrStreamUnfit), false},
		{fmt.Errorf("state: bucket imagerelay: %w", jetstream.ErrBucketNotFound), false},
		{jetstream.ErrJetStreamNotEnabled, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := Retryable(tt.err); got != tt.want {
			t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// A worker started while a JetStream cluster elects a leader waits for it; one pointed at a
// NATS where setup never ran stops at once with that error. Found by the chaos test: a worker
// restarted while a cluster node was down exited.
func TestRetryWaitsOutTransientErrorsOnly(t *testing.T) {
	firstRetryWait = time.Millisecond
	log := slog.New(slog.DiscardHandler)
	calls := 0
	err := Retry(context.Background(), log, "binding", func(context.Context) error {
		calls++
		if calls < 3 {
			return context.DeadlineExceeded
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("transient: %v after %d tries, want success on the third", err, calls)
	}
	calls = 0
	err = Retry(context.Background(), log, "binding", func(context.Context) error {
		calls++
		return fmt.Errorf("no stream: %w", bus.ErrStreamMissing)
	})
	if !errors.Is(err, bus.ErrStreamMissing) || calls != 1 {
		t.Fatalf("permanent: %v after %d tries, want the error at once", err, calls)
	}
}

package runtime_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/compose"
	"github.com/imagerelay/imagerelay/shared/config"
)

// TestWorker runs fanout as a NATS worker (no runtime API in the environment): it takes an
// image published straight to JetStream, and stops cleanly on SIGTERM.
func TestWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a function process")
	}
	s := startStack(t)
	ready := make(chan struct{})
	close(ready) // a worker asks no runtime API for work
	p := s.start(t, ready, "fanout")
	cfg, err := config.Load(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The worker creates the stream; publish once it is there.
	var b *bus.Bus
	eventually(t, func() error {
		var err error
		b, err = bus.Setup(ctx, s.env.Conn, compose.BusConfig(cfg), nil)
		return err
	})
	if err := b.Publish(ctx, publishedEvent(t, "nats-w1", tencentImage("img-demo0001"))); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, events.TypeReplicationRequested, "img-demo0001", "nats-w1")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not stop after SIGTERM")
	}
	if p.err != nil {
		t.Errorf("worker exit: %v\n%s", p.err, p.out)
	}
	if !p.out.Contains("worker running") {
		t.Errorf("no start log line:\n%s", p.out)
	}
}

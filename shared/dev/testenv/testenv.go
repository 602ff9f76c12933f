// Package testenv starts real infrastructure for tests: an embedded nats-server with
// JetStream file storage in the test's temporary directory, the bus and the state store on it,
// and helpers that wait for a condition with a deadline instead of sleeping.
package testenv

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/adapters/state/natskv"
	"github.com/imagerelay/imagerelay/shared/dev/natsembed"
)

// Env is a running embedded JetStream with imagerelay's stream and bucket.
type Env struct {
	Server *natsembed.Server
	Conn   *nats.Conn
	Bus    *bus.Bus
	Store  *state.Store
}

// Options tune the environment.
type Options struct {
	// Bus overrides the bus configuration (zero value: bus.DefaultConfig with short delays).
	Bus *bus.Config
}

// Start starts an environment that is torn down when the test ends.
func Start(t testing.TB, opts ...Options) *Env {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	nc, err := srv.Connect()
	if err != nil {
		srv.Shutdown()
		t.Fatalf("connect nats: %v", err)
	}
	cfg := bus.DefaultConfig()
	cfg.AckWait = 2 * time.Second
	cfg.Backoff = []time.Duration{200 * time.Millisecond, 500 * time.Millisecond}
	cfg.MaxDeliver = 4
	if len(opts) > 0 && opts[0].Bus != nil {
		cfg = *opts[0].Bus
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := bus.Setup(ctx, nc, cfg, Logger(t))
	if err != nil {
		t.Fatalf("open bus: %v", err)
	}
	store, err := natskv.Open(ctx, b.JetStream(), cfg.KVBucket, 1)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		nc.Close()
		srv.Shutdown()
	})
	return &Env{Server: srv, Conn: nc, Bus: b, Store: store}
}

// Logger returns a JSON logger that writes to the test log only when -v or on failure is not
// needed: it writes to stderr at warn level so failures stay readable.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// Run runs a worker for spec until the test ends.
func (e *Env) Run(t testing.TB, spec bus.Spec) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if _, err := e.Bus.Consumer(ctx, spec); err != nil {
		cancel()
		t.Fatalf("consumer %s: %v", spec.Function, err)
	}
	go func() {
		defer close(done)
		if err := e.Bus.Run(ctx, spec); err != nil {
			t.Errorf("worker %s: %v", spec.Function, err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// Eventually polls cond every 20 ms until it returns nil or the deadline passes, then fails
// the test with cond's last error.
func Eventually(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval of a deadline wait, not synchronisation
	}
}

// SubjectCount returns how many messages b's stream holds on the subjects filter matches.
func SubjectCount(t testing.TB, b *bus.Bus, filter string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := b.JetStream().Stream(ctx, b.Config().Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

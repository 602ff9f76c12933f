// Package host is what the serverless runtimes (AWS Lambda and Alibaba Function Compute)
// share: one NATS connection per process, opened lazily and safely from concurrent
// invocations; the decoding of the JSON shapes the platforms deliver into CloudEvents; and the
// serverless side of the one outcome mapping ([fn.Settle]): "success" or "deliver again" for
// the platform, deferrals handed to JetStream, poison events copied to
// imagerelay.dlq.<function>. It builds nothing: the function's main hands it a [Function].
//
// It never imports the embedded nats-server: function binaries connect to an external NATS.
package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/imagerelay/imagerelay/shared/adapters/bus"
)

// Session is an open connection to the bus with one function set up on it. It is safe for
// concurrent use.
type Session struct {
	// Function is the function's name.
	Function string
	// Bus is the JetStream binding.
	Bus *bus.Bus
	// Spec is the function's consumer and core.
	Spec bus.Spec
	// Conn is the NATS connection; Close flushes and closes it.
	Conn *nats.Conn
	// DrainCap bounds the time budget of one scheduled drain (0: no cap beyond the
	// invocation deadline).
	DrainCap time.Duration
}

// Opener connects to the bus and sets up one function. It is called again after a failure,
// so it must not keep state between calls.
type Opener func(ctx context.Context) (*Session, error)

// Host holds a process's session: opened on first use, shared by every invocation, closed by
// the platform's shutdown hook. It is safe for concurrent use.
type Host struct {
	function string
	open     Opener
	log      *slog.Logger

	mu   sync.Mutex
	sess *Session
}

// New returns a host for function that opens its session with open.
func New(function string, open Opener, log *slog.Logger) *Host {
	if log == nil {
		log = slog.Default()
	}
	return &Host{function: function, open: open, log: log}
}

// Function returns the function's name.
func (h *Host) Function() string { return h.function }

// LogSettled logs what became of one input: a warning with the reason when it is to be
// retried or was dead-lettered, info otherwise. attrs are added to the record (the trigger, a
// message id).
func (h *Host) LogSettled(ctx context.Context, res Settled, attrs ...any) {
	attrs = append(attrs, "function", h.function, "event_id", res.EventID, "status", string(res.Status), "emitted", res.Emitted)
	switch res.Status {
	case StatusRetry, StatusReject:
		h.log.WarnContext(ctx, "not handled", append(attrs, "reason", res.Err.Error())...)
	default:
		h.log.InfoContext(ctx, "handled", attrs...)
	}
}

// Log returns the host's logger.
func (h *Host) Log() *slog.Logger { return h.log }

// ErrUnavailable is matched by the error Session returns when the bus cannot be reached or
// set up; the invocation should fail so that the platform delivers the input again.
var ErrUnavailable = errors.New("runtime: bus unavailable")

// Session returns the open session, opening it if needed. Concurrent callers wait for one
// opening; a failed opening is retried by the next call.
func (h *Host) Session(ctx context.Context) (*Session, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sess != nil && !h.sess.Conn.IsClosed() {
		return h.sess, nil
	}
	h.sess = nil
	s, err := h.open(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	h.sess = s
	return s, nil
}

// Warm opens the session in the background, so that the first invocation finds it ready
// while the platform already counts the process as started. A failure is only logged: the
// first invocation tries again.
func (h *Host) Warm(timeout time.Duration) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if _, err := h.Session(ctx); err != nil {
			h.log.Warn("bus not ready yet; the first invocation will try again", "function", h.function, "error", err)
		}
	}()
}

// Close flushes what is still buffered on the connection (acknowledgements, naks) within
// ctx's deadline, then closes it. The next Session call opens a new one.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	s := h.sess
	h.sess = nil
	h.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.close(ctx)
}

// close flushes and closes the session's connection.
func (s *Session) close(ctx context.Context) error {
	var err error
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
	}
	if s.Conn != nil && !s.Conn.IsClosed() {
		if ferr := s.Conn.FlushWithContext(ctx); ferr != nil && !errors.Is(ferr, nats.ErrConnectionClosed) {
			err = fmt.Errorf("runtime: flush before close: %w", ferr)
		}
		s.Conn.Close()
	}
	return err
}

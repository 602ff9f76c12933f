// Package rtapi implements, on loopback, the two platform APIs a function process talks to:
// the AWS Lambda Runtime API (with the Extensions API registration aws-lambda-go makes for
// its SIGTERM hook) and Alibaba Cloud Function Compute's runtime API (what fc-runtime-go-sdk
// polls). Tests and benchmarks start a real function binary against them and invoke it as the
// platform would. Only tests import it.
package rtapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Answer is what the function answered to one invocation.
type Answer struct {
	// Body is the response payload, or the error document for a failed invocation.
	Body []byte
	// Failed is true when the function reported an error.
	Failed bool
}

// ErrorType returns the errorType of a failed Lambda invocation (the Go type name of the
// returned error) or the errorType of a failed FC invocation.
func (r Answer) ErrorType() string {
	var e struct {
		ErrorType string `json:"errorType"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.ErrorType
}

// ErrorMessage returns the errorMessage of a failed invocation.
func (r Answer) ErrorMessage() string {
	var e struct {
		ErrorMessage string `json:"errorMessage"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.ErrorMessage
}

// invocation is one queued invocation.
type invocation struct {
	id      string
	payload []byte
	header  http.Header
	done    chan Answer
}

// server is what both APIs share: a queue of invocations handed to long-polling /next calls.
type server struct {
	srv     *http.Server
	ln      net.Listener
	queue   chan *invocation
	stop    chan struct{}
	seq     atomic.Int64
	mu      sync.Mutex
	pending map[string]*invocation
	// ready is closed at the first /next: the process is ready for its first invocation.
	ready     chan struct{}
	readyOnce sync.Once
	readyAt   atomic.Int64
}

func newServer() *server {
	return &server{queue: make(chan *invocation, 64), stop: make(chan struct{}), pending: map[string]*invocation{}, ready: make(chan struct{})}
}

// serve starts answering with mux on a loopback port.
func (s *server) serve(mux *http.ServeMux) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.ln = ln
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return nil
}

// Addr is the host:port to put in AWS_LAMBDA_RUNTIME_API or FC_RUNTIME_API.
func (s *server) Addr() string { return s.ln.Addr().String() }

// Ready is closed when the process first asks for an invocation.
func (s *server) Ready() <-chan struct{} { return s.ready }

// ReadyAt is when the process first asked for an invocation.
func (s *server) ReadyAt() time.Time { return time.Unix(0, s.readyAt.Load()) }

// Close stops answering; blocked /next calls return.
func (s *server) Close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// next hands the next invocation to a polling process, with header set by the caller.
func (s *server) next(w http.ResponseWriter, r *http.Request) {
	s.readyOnce.Do(func() {
		s.readyAt.Store(time.Now().UnixNano())
		close(s.ready)
	})
	select {
	case inv := <-s.queue:
		s.mu.Lock()
		s.pending[inv.id] = inv
		s.mu.Unlock()
		for k, vs := range inv.header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(inv.payload)
	case <-r.Context().Done():
	case <-s.stop:
		http.Error(w, "shutting down", http.StatusGone)
	}
}

// finish delivers the function's answer for id.
func (s *server) finish(w http.ResponseWriter, r *http.Request, id string, failed bool, status int) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	inv, ok := s.pending[id]
	delete(s.pending, id)
	s.mu.Unlock()
	if !ok {
		http.Error(w, "unknown request id "+id, http.StatusBadRequest)
		return
	}
	inv.done <- Answer{Body: body, Failed: failed}
	w.WriteHeader(status)
}

// invoke queues an invocation and waits for its answer.
func (s *server) invoke(ctx context.Context, id string, payload []byte, header http.Header) (Answer, error) {
	inv := &invocation{id: id, payload: payload, header: header, done: make(chan Answer, 1)}
	select {
	case s.queue <- inv:
	case <-ctx.Done():
		return Answer{}, ctx.Err()
	}
	select {
	case res := <-inv.done:
		return res, nil
	case <-ctx.Done():
		return Answer{}, fmt.Errorf("invocation %s: %w", id, ctx.Err())
	}
}

// Lambda is a local AWS Lambda Runtime API (2018-06-01) with the Extensions API
// registration (2020-01-01) that aws-lambda-go's SIGTERM support makes.
type Lambda struct {
	*server
	// InitErrors are the bodies posted to /runtime/init/error.
	initErrors atomic.Int64
	// Extensions counts extension registrations.
	extensions atomic.Int64
}

// NewLambda starts a Lambda Runtime API on loopback.
func NewLambda() (*Lambda, error) {
	l := &Lambda{server: newServer()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) { l.next(w, r) })
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, r *http.Request) {
		l.finish(w, r, r.PathValue("id"), false, http.StatusAccepted)
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", func(w http.ResponseWriter, r *http.Request) {
		l.finish(w, r, r.PathValue("id"), true, http.StatusAccepted)
	})
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", func(w http.ResponseWriter, _ *http.Request) {
		l.initErrors.Add(1)
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("POST /2020-01-01/extension/register", func(w http.ResponseWriter, r *http.Request) {
		l.extensions.Add(1)
		w.Header().Set("Lambda-Extension-Identifier", "ext-"+r.Header.Get("Lambda-Extension-Name"))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"functionName":"imagerelay","functionVersion":"$LATEST","handler":"bootstrap"}`))
	})
	mux.HandleFunc("GET /2020-01-01/extension/event/next", func(w http.ResponseWriter, r *http.Request) {
		// An extension registered for no events waits here until the process ends.
		select {
		case <-r.Context().Done():
		case <-l.stop:
		}
	})
	if err := l.serve(mux); err != nil {
		return nil, err
	}
	return l, nil
}

// Extensions returns how many extensions registered (1 when the SIGTERM hook is enabled).
func (l *Lambda) Extensions() int64 { return l.extensions.Load() }

// InitErrors returns how many init errors the process reported.
func (l *Lambda) InitErrors() int64 { return l.initErrors.Load() }

// Invoke invokes the function with payload and a deadline timeout from now, and waits for
// its answer.
func (l *Lambda) Invoke(ctx context.Context, payload []byte, timeout time.Duration) (Answer, error) {
	id := fmt.Sprintf("req-%d", l.seq.Add(1))
	h := http.Header{}
	h.Set("Lambda-Runtime-Aws-Request-Id", id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(timeout).UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-1:123456789012:function:imagerelay")
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
	h.Set("Content-Type", "application/json")
	return l.invoke(ctx, id, payload, h)
}

// FC is a local Function Compute runtime API (2020-11-11).
type FC struct {
	*server
}

// NewFC starts a Function Compute runtime API on loopback.
func NewFC() (*FC, error) {
	f := &FC{server: newServer()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2020-11-11/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) { f.next(w, r) })
	mux.HandleFunc("POST /2020-11-11/runtime/invocation/{id}/response", func(w http.ResponseWriter, r *http.Request) {
		f.finish(w, r, r.PathValue("id"), false, http.StatusOK)
	})
	mux.HandleFunc("POST /2020-11-11/runtime/invocation/{id}/error", func(w http.ResponseWriter, r *http.Request) {
		f.finish(w, r, r.PathValue("id"), true, http.StatusOK)
	})
	if err := f.serve(mux); err != nil {
		return nil, err
	}
	return f, nil
}

// STS are the temporary keys Function Compute hands the function role with each invocation.
type STS struct {
	AccessKeyID, AccessKeySecret, SecurityToken string
}

// FCInvocation describes one Function Compute invocation.
type FCInvocation struct {
	// Timeout is the function timeout; the deadline is now plus Timeout.
	Timeout time.Duration
	// Credentials are the function role's STS keys for this invocation.
	Credentials STS
	// RetryCount is how often Function Compute retried the invocation.
	RetryCount int
	// PreStop makes this the PreStop lifecycle invocation instead of an event.
	PreStop bool
}

// Invoke invokes the function with payload and waits for its answer.
func (f *FC) Invoke(ctx context.Context, payload []byte, o FCInvocation) (Answer, error) {
	id := fmt.Sprintf("fc-req-%d", f.seq.Add(1))
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	h := http.Header{}
	h.Set("x-fc-request-id", id)
	h.Set("x-fc-function-deadline", strconv.FormatInt(time.Now().Add(o.Timeout).UnixMilli(), 10))
	h.Set("x-fc-function-timeout", strconv.Itoa(int(o.Timeout/time.Second)))
	h.Set("x-fc-function-name", "imagerelay")
	h.Set("x-fc-function-handler", "main")
	h.Set("x-fc-function-memory", "256")
	h.Set("x-fc-region", "cn-hangzhou")
	h.Set("x-fc-account-id", "1234567890")
	h.Set("x-fc-retry-count", strconv.Itoa(o.RetryCount))
	if o.Credentials.AccessKeyID != "" {
		h.Set("x-fc-access-key-id", o.Credentials.AccessKeyID)
		h.Set("x-fc-access-key-secret", o.Credentials.AccessKeySecret)
		h.Set("x-fc-security-token", o.Credentials.SecurityToken)
	}
	if o.PreStop {
		h.Set("x-fc-function-type", "2")
	} else {
		h.Set("x-fc-function-type", "0")
	}
	h.Set("Content-Type", "application/json")
	return f.invoke(ctx, id, payload, h)
}

// Output is a goroutine-safe buffer for a process's output.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Contains reports whether the output contains s.
func (o *Output) Contains(s string) bool { return strings.Contains(o.String(), s) }

// ErrNotReady is returned when a process did not ask for an invocation in time.
var ErrNotReady = errors.New("rtapi: the function did not ask for an invocation in time")

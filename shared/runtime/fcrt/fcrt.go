// Package fcrt runs a function on Alibaba Cloud Function Compute 3.0 (fc-runtime-go-sdk, the
// go1 runtime). One handler takes both triggers the deployment uses:
//   - EventBridge: structured CloudEvents, delivered as one object, as a JSON array of them, or
//     as a JSON array of JSON strings that each hold one (streaming sources); an element that
//     is not an imagerelay CloudEvent has its data taken as an image.published payload;
//   - the timer: pulls the function's in-flight work from JetStream for a bounded time.
//
// Every invocation carries the function role's STS keys; they are put on that invocation's
// context by the credentials hook the function's main hands over (host.Function's
// WithCredentials: the Alibaba Cloud adapters read them there) and never kept beyond it, so
// an expired key is never used. Outcomes are settled by [host.Session.Handle];
// an input to deliver again fails the invocation, which EventBridge retries.
package fcrt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/aliyun/fc-runtime-go-sdk/fc"
	"github.com/aliyun/fc-runtime-go-sdk/fccontext"

	"github.com/imagerelay/imagerelay/shared/runtime/host"
)

// Trigger names, as reported in responses and logs.
const (
	TriggerEventBridge = "eventbridge"
	TriggerTimer       = "timer"
)

// Handler is the Function Compute handler of one function. It is safe for concurrent use:
// the runtime runs every invocation in its own goroutine.
type Handler struct {
	host            *host.Host
	withCredentials func(context.Context, host.Credentials) context.Context
}

// New returns the handler of h's function. withCredentials puts an invocation's STS keys on
// its context for the cloud adapters; nil drops them.
func New(h *host.Host, withCredentials func(context.Context, host.Credentials) context.Context) *Handler {
	return &Handler{host: h, withCredentials: withCredentials}
}

// Response is what an invocation returns.
type Response = host.Response

// Item is what became of one input.
type Item = host.Item

// Invocation is what the handler takes from the invocation context.
type Invocation struct {
	RequestID string
	// Credentials are the function role's STS keys for this invocation (empty without a role).
	Credentials host.Credentials
	// RetryCount is how often Function Compute has retried this invocation.
	RetryCount int
}

// FromContext reads the invocation's metadata. fccontext.FromContext writes to the shared
// context value, so it is called once per invocation, here, before any goroutine starts.
func FromContext(ctx context.Context) Invocation {
	fctx, ok := fccontext.FromContext(ctx)
	if !ok {
		return Invocation{}
	}
	return Invocation{
		RequestID: fctx.RequestID,
		Credentials: host.Credentials{
			AccessKeyID:     fctx.Credentials.AccessKeyId,
			AccessKeySecret: fctx.Credentials.AccessKeySecret,
			SecurityToken:   fctx.Credentials.SecurityToken,
		},
		RetryCount: fctx.RetryCount,
	}
}

// Invoke handles one invocation. It takes the payload as bytes, so that the runtime hands it
// over unparsed and a payload that is not JSON is dead-lettered instead of failing (and being
// retried) forever.
func (h *Handler) Invoke(ctx context.Context, payload []byte) (any, error) {
	inv := FromContext(ctx)
	ctx = WithRequestID(ctx, inv.RequestID)
	if inv.Credentials.AccessKeyID != "" && h.withCredentials != nil {
		ctx = h.withCredentials(ctx, inv.Credentials)
	}
	raw := bytes.TrimSpace(payload)
	if isTimer(raw) {
		return h.drain(ctx)
	}
	ins := Inputs(raw, inv.RequestID)
	for i := range ins {
		ins[i].Deliveries = uint64(inv.RetryCount) + 1
	}
	sess, err := h.host.Session(ctx)
	if err != nil {
		return nil, err
	}
	results := sess.Handle(ctx, ins)
	resp := Response{Function: sess.Function, Trigger: TriggerEventBridge, Handled: len(results)}
	var retry []error
	for _, res := range results {
		h.host.LogSettled(ctx, res, "trigger", TriggerEventBridge)
		resp.Results = append(resp.Results, res.Item())
		if res.Status == host.StatusRetry {
			retry = append(retry, res.Err)
		}
	}
	if len(retry) > 0 {
		// Function Compute retries the whole invocation; the inputs that were settled are
		// handled again harmlessly (same derived ids, idempotent cores).
		return nil, &RetryError{Retry: len(retry), Of: len(results), Err: errors.Join(retry...)}
	}
	return resp, nil
}

// RetryError fails an invocation in which some inputs must be delivered again.
type RetryError struct {
	Retry, Of int
	Err       error
}

// Error implements error.
func (e *RetryError) Error() string {
	return fmt.Sprintf("%d of %d events to deliver again: %v", e.Retry, e.Of, e.Err)
}

// Unwrap returns the causes, each a *host.RetryError.
func (e *RetryError) Unwrap() error { return e.Err }

// Inputs reads an EventBridge delivery: one CloudEvent object, a JSON array of them, or a
// JSON array of JSON strings each holding one. A bare payload (RawData delivery) gets the id
// "<request id>-<index>". What cannot be read becomes an input that is dead-lettered.
func Inputs(raw []byte, requestID string) []host.Input {
	const origin = "fc:eventbridge"
	fallback := func(i int) host.Fallback {
		return host.Fallback{ID: requestID + "-" + strconv.Itoa(i), Source: "/imagerelay/fc"}
	}
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) > 0 && raw[0] == '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return []host.Input{{Raw: raw, Origin: origin, Deliveries: 1, Err: fmt.Errorf("%w: not a JSON array of events: %w", host.ErrUndecodable, err)}}
		}
		ins := make([]host.Input, len(elems))
		for i, el := range elems {
			ins[i] = host.Decode(host.Unquote(el), fallback(i), origin)
		}
		return ins
	default:
		return []host.Input{host.Decode(host.Unquote(raw), fallback(0), origin)}
	}
}

// isTimer reports whether raw is a timer trigger's event ({"triggerTime", "triggerName",
// "payload"}).
func isTimer(raw []byte) bool {
	if len(raw) == 0 || raw[0] != '{' {
		return false
	}
	var t struct {
		TriggerTime *string `json:"triggerTime"`
		TriggerName *string `json:"triggerName"`
	}
	return json.Unmarshal(raw, &t) == nil && t.TriggerTime != nil && t.TriggerName != nil
}

// drain pulls in-flight work from JetStream within the invocation's time budget.
func (h *Handler) drain(ctx context.Context) (any, error) {
	sess, err := h.host.Session(ctx)
	if err != nil {
		return nil, err
	}
	budget := host.Budget(ctx, sess.DrainCap)
	start := time.Now()
	n, err := sess.Drain(ctx, budget)
	h.host.Log().InfoContext(ctx, "drained", "function", sess.Function, "handled", n, "budget", budget.String(), "took", time.Since(start).String())
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("drain %s: %w", sess.Function, err)
	}
	return Response{Function: sess.Function, Trigger: TriggerTimer, Handled: n}, nil
}

// requestIDKey keys the request id on a context, for the logger.
type requestIDKey struct{}

// WithRequestID returns ctx carrying the invocation's request id for [NewLogger]'s records.
func WithRequestID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, requestIDKey{}, id)
}

// NewLogger returns a JSON logger on w that adds the request id of every record logged with
// an invocation's context.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(logHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})})
}

// logHandler adds requestId from the context.
type logHandler struct{ slog.Handler }

// Handle implements slog.Handler.
func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		r.AddAttrs(slog.String("requestId", id))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(attrs)}
}

// WithGroup implements slog.Handler.
func (h logHandler) WithGroup(name string) slog.Handler { return logHandler{h.Handler.WithGroup(name)} }

// Start hands h to the Function Compute runtime loop, with onStop as the PreStop hook. It
// never returns.
func Start(h *Handler, onStop func(ctx context.Context)) {
	fc.RegisterPreStopFunction(onStop)
	fc.Start(h.Invoke)
}

// Main runs f on Function Compute: the bus connection is opened in the background at start
// (and by the first invocation if that failed), and flushed and closed by the PreStop hook.
// It never returns.
func Main(f host.Function) {
	function := f.Name
	var level slog.Level
	if err := level.UnmarshalText([]byte(os.Getenv("IMAGERELAY_LOG_LEVEL"))); err != nil {
		level = slog.LevelInfo
	}
	log := NewLogger(os.Stdout, level)
	slog.SetDefault(log)
	hst := host.New(function, f.Open(log), log)
	hst.Warm(30 * time.Second)
	Start(New(hst, f.WithCredentials), func(ctx context.Context) {
		if err := hst.Close(ctx); err != nil {
			log.WarnContext(ctx, "closing the bus connection", "function", function, "error", err)
		}
		log.InfoContext(ctx, "PreStop: bus connection flushed and closed", "function", function)
	})
}

// Package lambdart runs a function on AWS Lambda (aws-lambda-go, provided.al2023). One handler
// takes every trigger the deployment uses and tells them apart by shape:
//   - an EventBridge event whose detail is an imagerelay CloudEvent, or a bare image.published
//     payload (wrapped into an image.published event whose id is the EventBridge event id);
//   - a CloudEvent on its own (structured JSON, e.g. from an input transformer or a direct
//     invocation);
//   - an SQS batch (bodies are CloudEvents, EventBridge envelopes or image.published
//     payloads), answered with the batch item failures (ReportBatchItemFailures) so a failing
//     message is retried alone;
//   - the schedule (an EventBridge "Scheduled Event", or a payload with a "drain" key), which
//     pulls the function's in-flight work from JetStream for a bounded time.
//
// Outcomes are settled by [host.Session.Handle]: only a Retry (or a bus that cannot store
// the result) fails the invocation or the SQS item.
package lambdart

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	awsevents "github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/imagerelay/imagerelay/shared/runtime/host"
)

// Trigger names, as reported in responses and logs.
const (
	TriggerEventBridge = "eventbridge"
	TriggerCloudEvent  = "cloudevent"
	TriggerSQS         = "sqs"
	TriggerSchedule    = "schedule"
	TriggerInvoke      = "invoke"
)

// Handler is the Lambda handler of one function. It is safe for concurrent use (Lambda
// managed instances invoke it concurrently in one process).
type Handler struct {
	host *host.Host
}

// New returns the handler of h's function.
func New(h *host.Host) *Handler { return &Handler{host: h} }

// Response is what an invocation returns.
type Response = host.Response

// Item is what became of one input.
type Item = host.Item

// probe finds out which trigger a payload comes from.
type probe struct {
	Records    []struct{ EventSource string } `json:"Records"`
	DetailType *string                        `json:"detail-type"`
	Source     string                         `json:"source"`
	Spec       *string                        `json:"specversion"`
	Drain      json.RawMessage                `json:"drain"`
}

// Invoke handles one invocation.
func (h *Handler) Invoke(ctx context.Context, payload json.RawMessage) (any, error) {
	requestID := ""
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		requestID = lc.AwsRequestID
	}
	var p probe
	if err := json.Unmarshal(payload, &p); err != nil {
		// Not a JSON object: nothing can ever handle it.
		in := host.Input{Raw: payload, Origin: "aws:lambda:invoke", Deliveries: 1, Err: fmt.Errorf("%w: not a JSON object", host.ErrUndecodable)}
		return h.single(ctx, TriggerInvoke, in)
	}
	switch {
	case len(p.Records) > 0:
		if p.Records[0].EventSource != "aws:sqs" {
			in := host.Input{Raw: payload, Origin: "aws:lambda:" + p.Records[0].EventSource, Deliveries: 1,
				Err: fmt.Errorf("%w: records from %q are not handled; imagerelay takes SQS batches", host.ErrUndecodable, p.Records[0].EventSource)}
			return h.single(ctx, TriggerInvoke, in)
		}
		return h.sqs(ctx, payload)
	case p.DetailType != nil:
		var eb awsevents.EventBridgeEvent
		if err := json.Unmarshal(payload, &eb); err != nil {
			in := host.Input{Raw: payload, Origin: "aws:events", Deliveries: 1, Err: fmt.Errorf("%w: EventBridge envelope: %w", host.ErrUndecodable, err)}
			return h.single(ctx, TriggerEventBridge, in)
		}
		if scheduled(eb) {
			return h.drain(ctx)
		}
		return h.single(ctx, TriggerEventBridge, fromEventBridge(eb, payload))
	case p.Spec != nil:
		return h.single(ctx, TriggerCloudEvent, host.Decode(payload, host.Fallback{ID: requestID}, "aws:lambda:invoke"))
	case p.Drain != nil:
		return h.drain(ctx)
	default:
		return h.single(ctx, TriggerInvoke, host.Decode(payload, host.Fallback{ID: requestID, Source: "/imagerelay/lambda"}, "aws:lambda:invoke"))
	}
}

// scheduled reports whether eb is the tick of an EventBridge schedule rule.
func scheduled(eb awsevents.EventBridgeEvent) bool {
	return eb.Source == "aws.events" && eb.DetailType == "Scheduled Event"
}

// fromEventBridge reads the event in an EventBridge envelope: its detail is a CloudEvent or
// an image.published payload, which gets the envelope's id, source and time.
func fromEventBridge(eb awsevents.EventBridgeEvent, raw []byte) host.Input {
	origin := "aws:events:" + eb.Source
	detail := bytes.TrimSpace(eb.Detail)
	if len(detail) == 0 || string(detail) == "null" {
		return host.Input{Raw: raw, Origin: origin, Deliveries: 1, Err: fmt.Errorf("%w: EventBridge event %s has no detail", host.ErrUndecodable, eb.ID)}
	}
	in := host.Decode(detail, host.Fallback{ID: eb.ID, Source: eb.Source, Time: eb.Time}, origin)
	if in.Err != nil {
		in.Raw = raw // keep the whole envelope in the dead letter
	}
	return in
}

// single settles one input and answers for it: an error only when it must be delivered again.
func (h *Handler) single(ctx context.Context, trigger string, in host.Input) (any, error) {
	sess, err := h.host.Session(ctx)
	if err != nil {
		return nil, err
	}
	res := sess.Handle(ctx, []host.Input{in})[0]
	h.host.LogSettled(ctx, res, "trigger", trigger)
	if res.Status == host.StatusRetry {
		return nil, res.Err
	}
	return Response{Function: sess.Function, Trigger: trigger, Handled: 1, Results: []Item{res.Item()}}, nil
}

// sqs settles an SQS batch and reports the messages to deliver again.
func (h *Handler) sqs(ctx context.Context, payload json.RawMessage) (any, error) {
	var batch awsevents.SQSEvent
	if err := json.Unmarshal(payload, &batch); err != nil {
		// The envelope is Lambda's own; if it cannot be read, fail the whole batch.
		return nil, fmt.Errorf("read SQS batch: %w", err)
	}
	sess, err := h.host.Session(ctx)
	if err != nil {
		return nil, err // every message comes back
	}
	ins := make([]host.Input, len(batch.Records))
	for i, m := range batch.Records {
		ins[i] = fromSQS(m)
	}
	results := sess.Handle(ctx, ins)
	resp := awsevents.SQSEventResponse{BatchItemFailures: []awsevents.SQSBatchItemFailure{}}
	for i, res := range results {
		h.host.LogSettled(ctx, res, "trigger", TriggerSQS, "message_id", batch.Records[i].MessageId)
		if res.Status == host.StatusRetry {
			resp.BatchItemFailures = append(resp.BatchItemFailures, awsevents.SQSBatchItemFailure{ItemIdentifier: batch.Records[i].MessageId})
		}
	}
	return resp, nil
}

// fromSQS reads one message: its body is an EventBridge envelope (an EventBridge rule with
// an SQS target), a CloudEvent, or an image.published payload (id: the message id).
func fromSQS(m awsevents.SQSMessage) host.Input {
	origin := "aws:sqs:" + m.EventSourceARN
	deliveries := uint64(1)
	if n, err := strconv.ParseUint(m.Attributes["ApproximateReceiveCount"], 10, 64); err == nil && n > 0 {
		deliveries = n
	}
	body := []byte(m.Body)
	var p probe
	var in host.Input
	if err := json.Unmarshal(body, &p); err == nil && p.DetailType != nil && p.Spec == nil {
		var eb awsevents.EventBridgeEvent
		if err := json.Unmarshal(body, &eb); err != nil {
			in = host.Input{Raw: body, Err: fmt.Errorf("%w: EventBridge envelope: %w", host.ErrUndecodable, err)}
		} else if scheduled(eb) {
			in = host.Input{Raw: body, Err: fmt.Errorf("%w: a scheduled event in a queue; schedule the function itself instead", host.ErrUndecodable)}
		} else {
			in = fromEventBridge(eb, body)
		}
	} else {
		in = host.Decode(body, host.Fallback{ID: m.MessageId, Source: "/imagerelay/sqs"}, origin)
	}
	in.Origin, in.Deliveries = origin, deliveries
	return in
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
	return Response{Function: sess.Function, Trigger: TriggerSchedule, Handled: n}, nil
}

// Start hands h to the Lambda runtime loop; onStop runs when Lambda sends SIGTERM before it
// stops the process. It never returns.
func Start(h *Handler, onStop func()) {
	lambda.StartWithOptions(h.Invoke, lambda.WithEnableSIGTERM(onStop))
}

// NewLogger returns the Lambda logger: JSON or text as AWS_LAMBDA_LOG_FORMAT says, at
// AWS_LAMBDA_LOG_LEVEL, with the request id of every record logged with a context.
func NewLogger() *slog.Logger { return lambdacontext.NewLogger() }

// ShutdownGrace bounds the SIGTERM hook: Lambda sends SIGKILL about 500 ms after SIGTERM.
const ShutdownGrace = 400 * time.Millisecond

// Main runs f on Lambda: the bus connection is opened in the background at start (and by the
// first invocation if that failed), flushed and closed on SIGTERM, after which the process
// exits. It never returns. Lambda hands no per-invocation credentials: the cloud adapters use
// the function's environment.
func Main(f host.Function) {
	function := f.Name
	log := NewLogger()
	slog.SetDefault(log)
	hst := host.New(function, f.Open(log), log)
	hst.Warm(30 * time.Second)
	Start(New(hst), func() {
		ctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
		defer cancel()
		if err := hst.Close(ctx); err != nil {
			log.Warn("closing the bus connection", "function", function, "error", err)
		}
		log.Info("SIGTERM: bus connection flushed and closed", "function", function)
		os.Exit(0)
	})
}

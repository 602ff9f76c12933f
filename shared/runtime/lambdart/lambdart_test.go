package lambdart_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	awsevents "github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/runtime/host"
	"github.com/imagerelay/imagerelay/shared/runtime/internal/rttest"
	"github.com/imagerelay/imagerelay/shared/runtime/lambdart"
)

// invoke runs payload through aws-lambda-go's handler machinery (JSON in, JSON out), as the
// runtime loop does.
func invoke(t *testing.T, h lambda.Handler, requestID string, payload []byte) ([]byte, error) {
	t.Helper()
	return invokeWithin(t, h, requestID, payload, 10*time.Second)
}

func invokeWithin(t *testing.T, h lambda.Handler, requestID string, payload []byte, timeout time.Duration) ([]byte, error) {
	t.Helper()
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: requestID})
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return h.Invoke(ctx, payload)
}

func eventBridge(t *testing.T, id, detailType string, detail []byte) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"version": "0", "id": id, "detail-type": detailType, "source": "builder.example",
		"account": "123456789012", "time": "2026-07-01T10:00:00Z", "region": "eu-west-1", "resources": []string{},
		"detail": json.RawMessage(detail)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func scheduledEvent() []byte {
	return []byte(`{"version":"0","id":"53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa","detail-type":"Scheduled Event","source":"aws.events",` +
		`"account":"123456789012","time":"2026-07-01T10:00:00Z","region":"eu-west-1","resources":["arn:aws:events:eu-west-1:123456789012:rule/tick"],"detail":{}}`)
}

func TestInvokeShapes(t *testing.T) {
	env := rttest.Start(t)
	h := lambda.NewHandler(lambdart.New(env.Host).Invoke)
	ce := rttest.Published(t, "ce-direct", "img-a")
	ceDetail := rttest.Published(t, "ce-in-detail", "img-b")
	tests := []struct {
		name       string
		payload    []byte
		wantErr    bool
		trigger    string
		status     host.Status
		plannedBy  string // the causation id of the replication.planned that must appear
		deadOrigin string
	}{
		{name: "EventBridge with a bare payload", payload: eventBridge(t, "eb-1", "io.imagerelay.image.published", rttest.PayloadJSON(t, "img-c")),
			trigger: "eventbridge", status: host.StatusDone, plannedBy: "eb-1"},
		{name: "EventBridge with a CloudEvent detail", payload: eventBridge(t, "eb-2", "io.imagerelay.image.published", rttest.JSON(t, ceDetail)),
			trigger: "eventbridge", status: host.StatusDone, plannedBy: "ce-in-detail"},
		{name: "CloudEvent", payload: rttest.JSON(t, ce), trigger: "cloudevent", status: host.StatusDone, plannedBy: "ce-direct"},
		{name: "bare payload takes the request id", payload: rttest.PayloadJSON(t, "img-d"), trigger: "invoke", status: host.StatusDone, plannedBy: "req-bare"},
		{name: "Retry fails the invocation", payload: eventBridge(t, "eb-3", "x", rttest.PayloadJSON(t, "img-retry1")), wantErr: true},
		{name: "Reject is dead-lettered", payload: eventBridge(t, "eb-4", "x", rttest.PayloadJSON(t, "img-reject1")),
			trigger: "eventbridge", status: host.StatusReject, deadOrigin: "aws:events:builder.example"},
		{name: "Defer goes to JetStream", payload: eventBridge(t, "eb-5", "x", rttest.PayloadJSON(t, "img-defer1")),
			trigger: "eventbridge", status: host.StatusDefer},
		{name: "detail that is not an event", payload: eventBridge(t, "eb-6", "x", []byte(`{"foo":1}`)),
			trigger: "eventbridge", status: host.StatusReject, deadOrigin: "aws:events:builder.example"},
		{name: "not an object", payload: []byte(`"hello"`), trigger: "invoke", status: host.StatusReject, deadOrigin: "aws:lambda:invoke"},
		{name: "records of another service", payload: []byte(`{"Records":[{"eventSource":"aws:s3"}]}`), trigger: "invoke",
			status: host.StatusReject, deadOrigin: "aws:lambda:aws:s3"},
		{name: "schedule", payload: scheduledEvent(), trigger: "schedule"},
		{name: "drain request", payload: []byte(`{"drain":true}`), trigger: "schedule"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dead := len(env.Rec.DeadLetters())
			timeout := 10 * time.Second
			if tt.trigger == "schedule" {
				timeout = 3 * time.Second // the drain uses what is left minus a margin
			}
			out, err := invokeWithin(t, h, "req-bare", tt.payload, timeout)
			if tt.wantErr {
				var re *host.RetryError
				if !errors.As(err, &re) {
					t.Fatalf("err = %v (out %s), want a retry error", err, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("invoke: %v", err)
			}
			var resp lambdart.Response
			if err := json.Unmarshal(out, &resp); err != nil {
				t.Fatalf("response %s: %v", out, err)
			}
			if resp.Trigger != tt.trigger || resp.Function != rttest.Function {
				t.Errorf("response %s: trigger/function wrong", out)
			}
			if tt.status != "" && (len(resp.Results) != 1 || resp.Results[0].Status != tt.status) {
				t.Errorf("response %s: want status %s", out, tt.status)
			}
			if tt.plannedBy != "" {
				env.WaitPlanned(t, tt.plannedBy)
			}
			if tt.deadOrigin != "" {
				d := env.WaitDead(t, dead+1)[dead]
				if d.Origin != tt.deadOrigin || d.Reason == "" {
					t.Errorf("dead letter origin %q reason %q, want origin %q", d.Origin, d.Reason, tt.deadOrigin)
				}
			}
		})
	}
}

func TestRetryErrorTypeReachesLambda(t *testing.T) {
	env := rttest.Start(t)
	_, err := lambdart.New(env.Host).Invoke(context.Background(), eventBridge(t, "eb-r", "x", rttest.PayloadJSON(t, "img-retry2")))
	var re *host.RetryError
	if !errors.As(err, &re) || re.EventID != "eb-r" || re.Function != rttest.Function {
		t.Fatalf("err = %#v, want *host.RetryError for eb-r", err)
	}
}

func TestSQSPartialBatchFailure(t *testing.T) {
	env := rttest.Start(t)
	h := lambda.NewHandler(lambdart.New(env.Host).Invoke)
	ce := rttest.Published(t, "ce-sqs", "img-ok")
	msg := func(id, body string, receives int) awsevents.SQSMessage {
		return awsevents.SQSMessage{MessageId: id, ReceiptHandle: "rh-" + id, Body: body, EventSource: "aws:sqs",
			EventSourceARN: "arn:aws:sqs:eu-west-1:123456789012:imagerelay-intake", AWSRegion: "eu-west-1",
			Attributes: map[string]string{"ApproximateReceiveCount": fmt.Sprint(receives)}}
	}
	batch := awsevents.SQSEvent{Records: []awsevents.SQSMessage{
		msg("m-ce", string(rttest.JSON(t, ce)), 1),
		msg("m-poison", "{this is not json", 2),
		msg("m-eb", string(eventBridge(t, "eb-sqs", "io.imagerelay.image.published", rttest.PayloadJSON(t, "img-eb"))), 1),
		msg("m-retry", string(rttest.PayloadJSON(t, "img-retry3")), 1),
		msg("m-reject", string(rttest.PayloadJSON(t, "img-reject3")), 4),
		msg("m-defer", string(rttest.PayloadJSON(t, "img-defer3")), 1),
		msg("m-bare", string(rttest.PayloadJSON(t, "img-bare")), 1),
	}}
	payload, _ := json.Marshal(batch)
	out, err := invoke(t, h, "req-sqs", payload)
	if err != nil {
		t.Fatal(err)
	}
	var resp awsevents.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "m-retry" {
		t.Fatalf("batch item failures = %+v, want only m-retry", resp.BatchItemFailures)
	}
	env.WaitPlanned(t, "ce-sqs")
	env.WaitPlanned(t, "eb-sqs")
	env.WaitPlanned(t, "m-bare") // a bare body takes the message id, stable across redeliveries
	dead := env.WaitDead(t, 2)
	reasons := map[string]rttest.DeadLetter{}
	for _, d := range dead {
		reasons[d.EventID] = d
		if d.Origin != "aws:sqs:arn:aws:sqs:eu-west-1:123456789012:imagerelay-intake" {
			t.Errorf("dead letter origin = %q", d.Origin)
		}
	}
	if d, ok := reasons[""]; !ok || string(d.Data) != "{this is not json" {
		t.Errorf("poison message not dead-lettered as delivered: %+v", reasons)
	}
	if d, ok := reasons["m-reject"]; !ok || !strings.Contains(d.Reason, "reject img-reject3") {
		t.Errorf("rejected message not dead-lettered with its reason: %+v", reasons)
	}
	msgs := env.Rec.DeadLetters()
	for _, m := range msgs {
		if m.Header.Get("ce-id") == "m-reject" && m.Header.Get(bus.HeaderDeadLetterDeliveries) != "4" {
			t.Errorf("deliveries header = %q, want the SQS receive count 4", m.Header.Get(bus.HeaderDeadLetterDeliveries))
		}
	}
}

func TestConcurrentInvocations(t *testing.T) {
	env := rttest.Start(t)
	h := lambda.NewHandler(lambdart.New(env.Host).Invoke)
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			id := fmt.Sprintf("eb-c%d", i)
			if _, err := invoke(t, h, "req", eventBridge(t, id, "x", rttest.PayloadJSON(t, "img-slow"+fmt.Sprint(i)))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range 12 {
		env.WaitPlanned(t, fmt.Sprintf("eb-c%d", i))
	}
	if env.Core.MaxFlight.Load() < 2 {
		t.Errorf("invocations did not overlap (max in flight %d)", env.Core.MaxFlight.Load())
	}
}

func TestScheduleIsBoundedAndDrainsDeferredWork(t *testing.T) {
	env := rttest.Start(t)
	h := lambda.NewHandler(lambdart.New(env.Host).Invoke)
	// An event that defers itself again at every look keeps the consumer busy forever: the
	// scheduled invocation must still return within its deadline.
	if _, err := invoke(t, h, "r1", eventBridge(t, "eb-loop", "x", rttest.PayloadJSON(t, "img-defer-loop"))); err != nil {
		t.Fatal(err)
	}
	// And an image published straight to NATS is picked up by the drain.
	if err := env.Bus.Publish(context.Background(), rttest.Published(t, "nats-pub", "img-nats")); err != nil {
		t.Fatal(err)
	}
	const timeout = 4 * time.Second
	start := time.Now()
	out, err := invokeWithin(t, h, "tick", scheduledEvent(), timeout)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	var resp lambdart.Response
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	if took >= timeout {
		t.Errorf("scheduled invocation took %v, past its %v deadline", took, timeout)
	}
	if resp.Handled < 2 {
		t.Errorf("drained %d messages, want the published event and the deferred one (again and again)", resp.Handled)
	}
	env.WaitPlanned(t, "nats-pub")
}

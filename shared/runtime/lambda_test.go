package runtime_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/runtime/internal/rttest"
)

// TestLambda runs fanout, replicate and poller as Lambda processes (aws-lambda-go's runtime
// loop against a local Runtime API) on one bus, and drives an image from EventBridge to a
// finished copy: EventBridge and SQS into fanout, SQS and a CloudEvent into replicate, the
// schedule into the poller.
func TestLambda(t *testing.T) {
	if testing.Short() {
		t.Skip("starts function processes")
	}
	s := startStack(t)
	// Managed-instance concurrency: the runtime loop runs four pollers, so the handler is
	// called concurrently in one process.
	fanout, fanoutProc := startLambda(t, s, "fanout", "AWS_LAMBDA_MAX_CONCURRENCY=4")

	t.Run("EventBridge detail is an image.published payload", func(t *testing.T) {
		res := decode[response](t, lambdaInvoke(t, fanout, eventBridge(t, "eb-0001", tencentImage("img-demo0001")), 10*time.Second))
		if res.Function != "fanout" || res.Trigger != "eventbridge" || len(res.Results) != 1 || res.Results[0].Status != "done" {
			t.Fatalf("response %+v", res)
		}
		// The event built around the detail has the EventBridge id, so its derived ids are
		// stable across EventBridge retries.
		if res.Results[0].EventID != "eb-0001" {
			t.Errorf("event id = %q, want the EventBridge id", res.Results[0].EventID)
		}
		s.waitFor(t, events.TypeReplicationPlanned, "img-demo0001", "eb-0001")
		req := s.waitFor(t, events.TypeReplicationRequested, "img-demo0001", "eb-0001")
		if events.StringExt(req, events.ExtRegion) != "ap-singapore" || events.CorrelationID(req) != "eb-0001" {
			t.Errorf("request %s", req)
		}
	})
	t.Run("EventBridge detail is a CloudEvent", func(t *testing.T) {
		ce := publishedEvent(t, "ce-desk-1", alibabaImage("imgc-demodesk0001", "iv-demodesk0001"))
		res := decode[response](t, lambdaInvoke(t, fanout, eventBridge(t, "eb-0002", ce), 10*time.Second))
		if res.Results[0].EventID != "ce-desk-1" {
			t.Errorf("event id = %q, want the CloudEvent's", res.Results[0].EventID)
		}
		s.waitFor(t, events.TypeReplicationRequested, "imgc-demodesk0001", "ce-desk-1")
	})
	t.Run("SQS batch with a poison message", func(t *testing.T) {
		bodies := map[string][]byte{
			"m-ce":     mustJSON(t, publishedEvent(t, "ce-0002", tencentImage("img-demo0002"))),
			"m-poison": []byte(`{"specversion":"1.0","id":"p","type":"io.imagerelay.image.published"`),
			"m-eb":     eventBridge(t, "eb-0003", tencentImage("img-demo0003")),
		}
		res := decode[sqsResponse](t, lambdaInvoke(t, fanout, sqsBatch(t, bodies, []string{"m-ce", "m-poison", "m-eb"}), 10*time.Second))
		if len(res.BatchItemFailures) != 0 {
			t.Errorf("batch item failures %+v: a poison message is dead-lettered, not retried", res.BatchItemFailures)
		}
		s.waitFor(t, events.TypeReplicationRequested, "img-demo0002", "ce-0002")
		s.waitFor(t, events.TypeReplicationRequested, "img-demo0003", "eb-0003")
		eventually(t, func() error {
			d := s.dead("fanout")
			if len(d) != 1 || string(d[0].Body) != string(bodies["m-poison"]) {
				return fmt.Errorf("dead letters of fanout: %d", len(d))
			}
			return nil
		})
	})
	t.Run("concurrent invocations", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				id := fmt.Sprintf("eb-conc-%d", i)
				res := lambdaInvoke(t, fanout, eventBridge(t, id, tencentImage("img-demo0001")), 10*time.Second)
				if res.Failed {
					t.Errorf("%s failed: %s", id, res.Body)
				}
			})
		}
		wg.Wait()
		for i := range 8 {
			s.waitFor(t, events.TypeReplicationPlanned, "img-demo0001", fmt.Sprintf("eb-conc-%d", i))
		}
	})

	replicate, _ := startLambda(t, s, "replicate")
	t.Run("replicate from SQS and from a CloudEvent", func(t *testing.T) {
		tReq := s.waitFor(t, events.TypeReplicationRequested, "img-demo0001", "eb-0001")
		aReq := s.waitFor(t, events.TypeReplicationRequested, "imgc-demodesk0001", "ce-desk-1")
		res := decode[sqsResponse](t, lambdaInvoke(t, replicate, sqsBatch(t, map[string][]byte{"r1": mustJSON(t, tReq)}, []string{"r1"}), 10*time.Second))
		if len(res.BatchItemFailures) != 0 {
			t.Errorf("batch item failures %+v", res.BatchItemFailures)
		}
		decode[response](t, lambdaInvoke(t, replicate, mustJSON(t, aReq), 10*time.Second))
		s.waitFor(t, events.TypeReplicationStarted, "img-demo0001", tReq.ID())
		s.waitFor(t, events.TypeReplicationStarted, "imgc-demodesk0001", aReq.ID())
	})

	poller, _ := startLambda(t, s, "poller")
	t.Run("scheduled poller drains in bounded time", func(t *testing.T) {
		eventually(t, func() error {
			const timeout = 4 * time.Second
			start := time.Now()
			res := decode[response](t, lambdaInvoke(t, poller, scheduledEvent(), timeout))
			if took := time.Since(start); took > timeout {
				t.Errorf("scheduled invocation took %v, past its %v deadline", took, timeout)
			}
			if res.Trigger != "schedule" {
				t.Errorf("response %+v", res)
			}
			for _, id := range []string{"img-demo0001", "imgc-demodesk0001"} {
				if !slices.ContainsFunc(s.rec.OfType(events.TypeReplicationSucceeded), func(e event.Event) bool { return events.StringExt(e, events.ExtImageID) == id }) {
					return fmt.Errorf("%s has not succeeded yet", id)
				}
			}
			return nil
		})
	})

	rebuild, _ := startLambda(t, s, "rebuild")
	t.Run("scheduled rebuild drains the copies that landed", func(t *testing.T) {
		// No rebuild policy is configured: the landed copies are looked at and left alone,
		// which keeps the consumer's place for a policy added later.
		handled := 0
		eventually(t, func() error {
			res := decode[response](t, lambdaInvoke(t, rebuild, scheduledEvent(), 4*time.Second))
			handled += res.Handled
			if handled < 2 {
				return fmt.Errorf("rebuild drained %d replication.succeeded events, want 2", handled)
			}
			return nil
		})
		if d := s.dead("rebuild"); len(d) != 0 {
			t.Errorf("rebuild dead-lettered %d events", len(d))
		}
	})

	scriptedAPI, _ := startLambda(t, s, scripted)
	t.Run("SQS outcomes through the runtime loop", func(t *testing.T) {
		bodies := map[string][]byte{
			"ok":     rttest.PayloadJSON(t, "img-ok"),
			"retry":  rttest.PayloadJSON(t, "img-retry"),
			"reject": rttest.PayloadJSON(t, "img-reject"),
			"defer":  rttest.PayloadJSON(t, "img-defer"),
			"poison": []byte("not json at all"),
		}
		res := decode[sqsResponse](t, lambdaInvoke(t, scriptedAPI, sqsBatch(t, bodies, []string{"ok", "retry", "reject", "defer", "poison"}), 10*time.Second))
		if len(res.BatchItemFailures) != 1 || res.BatchItemFailures[0].ItemIdentifier != "retry" {
			t.Errorf("batch item failures %+v, want only the Retry message", res.BatchItemFailures)
		}
		eventually(t, func() error {
			if d := s.dead(scripted); len(d) != 2 {
				return fmt.Errorf("%d dead letters of %s, want 2 (reject, poison)", len(d), scripted)
			}
			return nil
		})
	})
	t.Run("Retry fails an EventBridge invocation", func(t *testing.T) {
		res := lambdaInvoke(t, scriptedAPI, eventBridge(t, "eb-retry", rttest.Image("img-retry")), 10*time.Second)
		if !res.Failed || res.ErrorType() != "RetryError" || !strings.Contains(res.ErrorMessage(), "eb-retry") {
			t.Errorf("result %s (type %q), want a RetryError for eb-retry", res.Body, res.ErrorType())
		}
	})

	t.Run("SIGTERM flushes and closes NATS", func(t *testing.T) {
		if fanout.Extensions() != 1 {
			t.Errorf("%d extensions registered, want 1 (aws-lambda-go's SIGTERM hook)", fanout.Extensions())
		}
		if err := fanoutProc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-fanoutProc.exited:
		case <-time.After(2 * time.Second):
			t.Fatal("fanout did not exit after SIGTERM")
		}
		if fanoutProc.err != nil {
			t.Errorf("exit: %v", fanoutProc.err)
		}
		if !fanoutProc.out.Contains("SIGTERM: bus connection flushed and closed") {
			t.Errorf("no shutdown log line in:\n%s", fanoutProc.out)
		}
	})
	s.checkEvents(t)
}

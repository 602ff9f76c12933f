package runtime_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/runtime/internal/rtapi"
)

// aliEvent is a CloudEvent as Alibaba Cloud EventBridge delivers it to Function Compute:
// structured, with its aliyun* extensions, the custom event's payload as data.
func aliEvent(t *testing.T, id string, data any) []byte {
	t.Helper()
	return mustJSON(t, map[string]any{"specversion": "1.0", "id": id, "source": "imagerelay.pipeline", "type": "imagerelay:image.published",
		"subject": "acs:eventbridge:cn-hangzhou:1234567890:eventbus/default/eventsource/imagerelay.pipeline",
		"time":    "2026-07-01T10:00:00Z", "datacontenttype": "application/json;charset=utf-8",
		"aliyunaccountid": "1234567890", "aliyunpublishtime": "2026-07-01T10:00:00.123Z", "aliyuneventbusname": "default",
		"aliyunregionid": "cn-hangzhou", "aliyunpublishaddr": "10.0.0.1", "aliyunoriginalaccountid": "1234567890", "data": data})
}

func jsonArray(elems ...[]byte) []byte {
	return append(append([]byte("["), bytes.Join(elems, []byte(","))...), ']')
}

func jsonString(t *testing.T, b []byte) []byte {
	t.Helper()
	return mustJSON(t, string(b))
}

func timerEvent() []byte {
	return []byte(`{"triggerTime":"2026-07-01T10:01:00Z","triggerName":"imagerelay-tick","payload":"{}"}`)
}

// TestFunctionCompute runs fanout, replicate and poller as Function Compute processes
// (fc-runtime-go-sdk's runtime loop against a local runtime API) with the Alibaba Cloud keys
// handed over per invocation, and drives images from EventBridge deliveries of every shape to
// finished copies.
func TestFunctionCompute(t *testing.T) {
	if testing.Short() {
		t.Skip("starts function processes")
	}
	s := startStack(t)
	appImage := alibabaImage("imgc-demoapp00001", "iv-demoapp00001")
	appImage.ProductType = "CloudApp"
	fanout, _ := startFC(t, s, "fanout")
	t.Run("EventBridge single event", func(t *testing.T) {
		res := decode[response](t, fcInvoke(t, fanout, aliEvent(t, "ali-desk", alibabaImage("imgc-demodesk0001", "iv-demodesk0001")), rtapi.FCInvocation{Credentials: stsOne}))
		if res.Function != "fanout" || len(res.Results) != 1 || res.Results[0].Status != "done" || res.Results[0].EventID != "ali-desk" {
			t.Fatalf("response %+v", res)
		}
		s.waitFor(t, events.TypeReplicationRequested, "imgc-demodesk0001", "ali-desk")
	})
	t.Run("EventBridge array", func(t *testing.T) {
		payload := jsonArray(
			aliEvent(t, "ali-lnx", alibabaImage("imgc-demolnx00001", "iv-demolnx00001")),
			mustJSON(t, publishedEvent(t, "ce-t1", tencentImage("img-demo0001"))))
		res := decode[response](t, fcInvoke(t, fanout, payload, rtapi.FCInvocation{Credentials: stsOne}))
		if len(res.Results) != 2 {
			t.Fatalf("response %+v", res)
		}
		s.waitFor(t, events.TypeReplicationRequested, "imgc-demolnx00001", "ali-lnx")
		s.waitFor(t, events.TypeReplicationRequested, "img-demo0001", "ce-t1")
	})
	t.Run("EventBridge array of strings with a poison element", func(t *testing.T) {
		payload := jsonArray(
			jsonString(t, aliEvent(t, "ali-app", appImage)),
			jsonString(t, []byte(`{"specversion":"1.0","id":"bad"`)),
			jsonString(t, aliEvent(t, "ali-t2", tencentImage("img-demo0002"))))
		res := decode[response](t, fcInvoke(t, fanout, payload, rtapi.FCInvocation{Credentials: stsOne}))
		want := []string{"done", "reject", "done"}
		for i, r := range res.Results {
			if string(r.Status) != want[i] {
				t.Errorf("element %d: %s (%s), want %s", i, r.Status, r.Reason, want[i])
			}
		}
		s.waitFor(t, events.TypeReplicationRequested, "imgc-demoapp00001", "ali-app")
		s.waitFor(t, events.TypeReplicationRequested, "img-demo0002", "ali-t2")
		eventually(t, func() error {
			if d := s.dead("fanout"); len(d) != 1 || !bytes.Contains(d[0].Body, []byte(`"id":"bad"`)) {
				return fmt.Errorf("%d dead letters of fanout, want the poison element", len(d))
			}
			return nil
		})
	})

	replicate, _ := startFC(t, s, "replicate")
	t.Run("STS keys come with each invocation", func(t *testing.T) {
		desk := s.waitFor(t, events.TypeReplicationRequested, "imgc-demodesk0001", "ali-desk")
		lnx := s.waitFor(t, events.TypeReplicationRequested, "imgc-demolnx00001", "ali-lnx")
		app := s.waitFor(t, events.TypeReplicationRequested, "imgc-demoapp00001", "ali-app")
		tencent := s.waitFor(t, events.TypeReplicationRequested, "img-demo0001", "ce-t1")
		// First invocation: valid keys.
		decode[response](t, fcInvoke(t, replicate, jsonArray(mustJSON(t, desk), mustJSON(t, tencent)), rtapi.FCInvocation{Credentials: stsOne}))
		s.waitFor(t, events.TypeReplicationStarted, "imgc-demodesk0001", desk.ID())
		s.waitFor(t, events.TypeReplicationStarted, "img-demo0001", tencent.ID())
		// Second: the keys have expired. Had the first invocation's keys been kept, this copy
		// would start; it must not.
		fcInvoke(t, replicate, mustJSON(t, lnx), rtapi.FCInvocation{Credentials: stsOld})
		eventually(t, func() error {
			for _, c := range s.emus.Calls.Calls("alibaba", "StartTaskForDistributeImage") {
				if c.Outcome != "ok" {
					return nil
				}
			}
			return fmt.Errorf("no refused StartTaskForDistributeImage call yet")
		})
		s.none(t, events.TypeReplicationStarted, "imgc-demolnx00001")
		// Third: fresh keys work at once.
		decode[response](t, fcInvoke(t, replicate, jsonString(t, mustJSON(t, app)), rtapi.FCInvocation{Credentials: stsTwo}))
		s.waitFor(t, events.TypeReplicationStarted, "imgc-demoapp00001", app.ID())
		ok := 0
		for _, c := range s.emus.Calls.Calls("alibaba", "StartTaskForDistributeImage") {
			if c.Outcome == "ok" {
				ok++
			}
		}
		if ok != 2 {
			t.Errorf("%d successful StartTaskForDistributeImage calls, want 2 (desk with STS.one, app with STS.two)", ok)
		}
	})

	poller, pollerProc := startFC(t, s, "poller")
	t.Run("timer drains in bounded time", func(t *testing.T) {
		eventually(t, func() error {
			const timeout = 4 * time.Second
			start := time.Now()
			res := decode[response](t, fcInvoke(t, poller, timerEvent(), rtapi.FCInvocation{Credentials: stsTwo, Timeout: timeout}))
			if took := time.Since(start); took > timeout {
				t.Errorf("timer invocation took %v, past its %v deadline", took, timeout)
			}
			if res.Trigger != "timer" {
				t.Errorf("response %+v", res)
			}
			for _, id := range []string{"imgc-demodesk0001", "imgc-demoapp00001", "img-demo0001"} {
				found := false
				for _, e := range s.rec.OfType(events.TypeReplicationSucceeded) {
					found = found || events.StringExt(e, events.ExtImageID) == id
				}
				if !found {
					return fmt.Errorf("%s has not succeeded yet", id)
				}
			}
			return nil
		})
		// The poller's status calls used the timer invocations' keys.
		for _, c := range s.emus.Calls.Calls("alibaba", "ListImage") {
			if c.Outcome != "ok" {
				t.Errorf("ListImage %v: %s", c.Params, c.Outcome)
			}
		}
	})
	t.Run("PreStop flushes and closes NATS", func(t *testing.T) {
		res := fcInvoke(t, poller, nil, rtapi.FCInvocation{PreStop: true})
		if res.Failed {
			t.Fatalf("PreStop failed: %s", res.Body)
		}
		eventually(t, func() error {
			if !pollerProc.out.Contains("PreStop: bus connection flushed and closed") {
				return fmt.Errorf("no PreStop log line yet")
			}
			return nil
		})
		// An instance that is not stopped after all reconnects on the next invocation.
		decode[response](t, fcInvoke(t, poller, timerEvent(), rtapi.FCInvocation{Credentials: stsTwo, Timeout: 3 * time.Second}))
	})
	t.Run("request id in every log record", func(t *testing.T) {
		var rec map[string]any
		for _, line := range bytes.Split([]byte(pollerProc.out.String()), []byte("\n")) {
			if bytes.Contains(line, []byte(`"msg":"drained"`)) {
				if err := json.Unmarshal(line, &rec); err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		if id, _ := rec["requestId"].(string); id == "" {
			t.Errorf("drained record without requestId: %v", rec)
		}
	})
	s.checkEvents(t)
}

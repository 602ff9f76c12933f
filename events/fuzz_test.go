package events_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
)

// FuzzDecode feeds arbitrary bytes to the structured-mode decoder. It must never panic, must
// reject only with ErrMalformed, and whatever it accepts must survive a re-encode in both
// content modes.
func FuzzDecode(f *testing.F) {
	for _, typ := range events.Types() {
		f.Add(readFixture(f, typ))
	}
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"/s","type":"io.imagerelay.image.published","data":{}}`))
	f.Add([]byte(`{"specversion":"0.3","id":"x","source":"/s","type":"io.imagerelay.image.published","datacontenttype":"application/json","data":{"provider":"huawei","imageId":"i","sourceRegion":"cn-north-4"}}`))
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"/s","type":"io.imagerelay.image.published","data_base64":"eyJwcm92aWRlciI6Imh1YXdlaSIsImltYWdlSWQiOiJpIiwic291cmNlUmVnaW9uIjoiY24ifQ=="}`))
	f.Add([]byte(`[]`))
	// Shapes sdk-go treats specially: non-string extensions, 0.3 base64 data, odd times.
	const ok = `"type":"io.imagerelay.image.published","source":"/s","data":{"provider":"huawei","imageId":"i","sourceRegion":"cn-north-4"}`
	for _, extra := range []string{
		`"specversion":"1.0","id":"x","provider":5,"region":true,"imageid":1.5`,
		`"specversion":"1.0","id":"x","correlationid":{"a":1}`,
		`"specversion":"1.0","id":" x ","subject":""`,
		`"specversion":"1.0","id":"x","time":"2025-11-22T08:00:00+08:00"`,
		`"specversion":"1.0","id":"x","time":"0001-01-01T00:00:00Z"`,
		`"specversion":"1.0","id":"x","dataschema":"not a uri"`,
		`"specversion":"1.0","id":"x","Provider":"alibaba"`,
		`"specversion":"1.0","id":"x","datacontenttype":"application/json; charset=utf-8"`,
	} {
		f.Add([]byte("{" + extra + "," + ok + "}"))
	}
	// Numbers and timestamps at the edge of what the schema and the Go payloads accept.
	const started = `{"specversion":"1.0","id":"x","source":"/s","type":"io.imagerelay.replication.started","data":{"provider":"tencent","imageId":"i","sourceRegion":"ap-guangzhou","destinationRegion":"ap-beijing","taskId":"t",`
	for _, tail := range []string{
		`"startedAt":"2025-11-22T08:30:00.5+08:00","deadline":"2025-11-22T09:30:00Z","pollIntervalSeconds":6.0e1}}`,
		`"startedAt":"yesterday","deadline":"2025-11-22T09:30:00Z"}}`,
		`"startedAt":"2016-12-31T23:59:60Z","deadline":"2025-11-22t09:30:00z"}}`,
		`"startedAt":"2025-11-22T08:30:00Z","deadline":"2025-11-22T09:30:00Z","pollIntervalSeconds":1e19}}`,
	} {
		f.Add([]byte(started + tail))
	}
	f.Add([]byte(`{"specversion":"0.3","id":"x","source":"/s","type":"io.imagerelay.image.published","datacontenttype":"application/json","datacontentencoding":"base64","data":"eyJwcm92aWRlciI6Imh1YXdlaSIsImltYWdlSWQiOiJpIiwic291cmNlUmVnaW9uIjoiY24ifQ=="}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := events.Decode(raw)
		if err != nil {
			if !errors.Is(err, events.ErrMalformed) {
				t.Fatalf("Decode rejected with %T %v, want ErrMalformed", err, err)
			}
			return
		}
		checkReencodes(t, e)
	})
}

// FuzzFromBinary feeds arbitrary headers ("name: value" lines) and payloads to the binary-mode
// decoder, with the same obligations as FuzzDecode.
func FuzzFromBinary(f *testing.F) {
	for _, typ := range events.Types() {
		e, err := events.Decode(readFixture(f, typ))
		if err != nil {
			f.Fatalf("fixture %s: %v", typ, err)
		}
		f.Add(formatHeaders(events.ToHeaders(e)), e.Data())
	}
	f.Add("ce-specversion: 2.0\nce-id: x", []byte(`{}`))
	f.Add("ce-specversion: 1.0\nce-id: x\nce-source: /s\nce-type: io.imagerelay.image.published\nce-: v\nce-Bad_Name: v", []byte(`{"provider":"tencent","imageId":"i","sourceRegion":"ap-beijing"}`))
	f.Fuzz(func(t *testing.T, headers string, payload []byte) {
		h := parseHeaders(headers)
		names, get := headerGetter(h)
		e, err := events.FromBinary(names, get, payload)
		if err != nil {
			if !errors.Is(err, events.ErrMalformed) {
				t.Fatalf("FromBinary rejected with %T %v, want ErrMalformed", err, err)
			}
			return
		}
		checkReencodes(t, e)
	})
}

// checkReencodes asserts that an accepted event comes back, with the same id, type and data,
// through structured mode and through binary mode.
func checkReencodes(t *testing.T, e event.Event) {
	t.Helper()
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatalf("accepted event does not encode: %v", err)
	}
	s, err := events.Decode(raw)
	if err != nil {
		t.Fatalf("structured re-decode of an accepted event failed: %v\n%s", err, raw)
	}
	names, get := headerGetter(events.ToHeaders(e))
	b, err := events.FromBinary(names, get, e.Data())
	if err != nil {
		t.Fatalf("binary re-decode of an accepted event failed: %v\nheaders %v", err, events.ToHeaders(e))
	}
	for _, got := range []event.Event{s, b} {
		if got.ID() != e.ID() || got.Type() != e.Type() {
			t.Fatalf("re-decoded id/type %q/%q, want %q/%q", got.ID(), got.Type(), e.ID(), e.Type())
		}
		if !jsonEqual(got.Data(), e.Data()) {
			t.Fatalf("re-decoded data %s, want %s", got.Data(), e.Data())
		}
	}
}

func formatHeaders(h map[string]string) string {
	lines := make([]string, 0, len(h))
	for k, v := range h {
		lines = append(lines, k+": "+v)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func parseHeaders(s string) map[string]string {
	h := map[string]string{}
	for line := range strings.SplitSeq(s, "\n") {
		k, v, _ := strings.Cut(line, ":")
		h[k] = strings.TrimPrefix(v, " ")
	}
	return h
}

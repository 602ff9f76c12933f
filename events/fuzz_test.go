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

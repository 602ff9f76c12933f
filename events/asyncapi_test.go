package events_test

import (
	"encoding/json"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/imagerelay/imagerelay/events"
)

// loadAsyncAPI reads events/asyncapi.yaml as generic maps.
func loadAsyncAPI(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile("asyncapi.yaml")
	if err != nil {
		t.Fatalf("asyncapi.yaml: %v", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("asyncapi.yaml: %v", err)
	}
	return doc
}

// resolve follows a local JSON pointer ("#/components/messages/x") inside doc.
func resolve(doc map[string]any, ref string) (any, bool) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, false
	}
	var cur any = doc
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[tok]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// deref returns the object a {$ref: ...} points to, or v itself.
func deref(t *testing.T, doc map[string]any, v any) map[string]any {
	t.Helper()
	m, _ := v.(map[string]any)
	if ref, ok := m["$ref"].(string); ok {
		target, ok := resolve(doc, ref)
		if !ok {
			t.Fatalf("dangling $ref %q", ref)
		}
		return deref(t, doc, target)
	}
	return m
}

func TestAsyncAPIRefsResolve(t *testing.T) {
	doc := loadAsyncAPI(t)
	if doc["asyncapi"] != "3.0.0" {
		t.Errorf("asyncapi = %v, want 3.0.0", doc["asyncapi"])
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if strings.HasPrefix(ref, "#/") {
					if _, ok := resolve(doc, ref); !ok {
						t.Errorf("dangling $ref %q", ref)
					}
				} else if _, err := os.Stat(path.Clean(ref)); err != nil {
					t.Errorf("$ref %q: %v", ref, err)
				}
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)
}

func TestAsyncAPIDescribesEveryType(t *testing.T) {
	doc := loadAsyncAPI(t)
	channels, _ := doc["channels"].(map[string]any)
	byType := map[string]map[string]any{} // event type -> channel
	var deadLetter map[string]any
	for _, c := range channels {
		ch := c.(map[string]any)
		if ch["address"] == events.DeadLetterPrefix+"{function}" {
			deadLetter = ch
		}
		for _, m := range ch["messages"].(map[string]any) {
			if name, ok := deref(t, doc, m)["name"].(string); ok && events.Known(name) {
				byType[name] = ch
			}
		}
	}
	for _, typ := range events.Types() {
		t.Run(events.ShortName(typ), func(t *testing.T) {
			ch, ok := byType[typ]
			if !ok {
				t.Fatalf("no channel carries %s", typ)
			}
			addr, _ := ch["address"].(string)
			got := strings.NewReplacer("{provider}", "tencent", "{region}", "ap-guangzhou").Replace(addr)
			if want := events.NATSSubject(typ, "tencent", "ap-guangzhou"); got != want {
				t.Errorf("address %q gives %q, NATSSubject gives %q", addr, got, want)
			}
			params, _ := ch["parameters"].(map[string]any)
			for _, p := range []string{"provider", "region"} {
				if _, ok := params[p]; !ok {
					t.Errorf("channel lacks parameter %s", p)
				}
			}
			var msg map[string]any
			for _, m := range ch["messages"].(map[string]any) {
				msg = deref(t, doc, m)
			}
			if msg["contentType"] != events.ContentTypeJSON {
				t.Errorf("contentType = %v", msg["contentType"])
			}
			payload, _ := msg["payload"].(map[string]any)
			schema, _ := payload["schema"].(map[string]any)
			if want := "./" + events.SchemaFile(typ); schema["$ref"] != want {
				t.Errorf("payload $ref = %v, want %s", schema["$ref"], want)
			}
			if !strings.Contains(payload["schemaFormat"].(string), "2020-12") {
				t.Errorf("schemaFormat = %v, want JSON Schema 2020-12", payload["schemaFormat"])
			}
			checkExamples(t, typ, msg)
		})
	}
	if deadLetter == nil {
		t.Fatal("no dead-letter channel imagerelay.dlq.{function}")
	}
	if got := strings.Replace(deadLetter["address"].(string), "{function}", "replicate", 1); got != events.DeadLetterSubject("replicate") {
		t.Errorf("dead-letter address gives %q, DeadLetterSubject gives %q", got, events.DeadLetterSubject("replicate"))
	}
}

// checkExamples decodes each message example as a binary-mode event: the documented headers
// and payload must be an event the events package accepts.
func checkExamples(t *testing.T, typ string, msg map[string]any) {
	t.Helper()
	examples, _ := msg["examples"].([]any)
	if len(examples) == 0 {
		t.Errorf("message has no example")
	}
	for _, ex := range examples {
		ex := ex.(map[string]any)
		h := map[string]string{}
		for k, v := range ex["headers"].(map[string]any) {
			h[k], _ = v.(string)
		}
		if h["Nats-Msg-Id"] != h["ce-id"] {
			t.Errorf("example Nats-Msg-Id %q != ce-id %q", h["Nats-Msg-Id"], h["ce-id"])
		}
		payload, err := json.Marshal(ex["payload"])
		if err != nil {
			t.Fatal(err)
		}
		names, get := headerGetter(h)
		e, err := events.FromBinary(names, get, payload)
		if err != nil {
			t.Errorf("example %v: %v", ex["name"], err)
			continue
		}
		if e.Type() != typ {
			t.Errorf("example type %q, want %q", e.Type(), typ)
		}
	}
}

func TestAsyncAPIDocumentsHeaders(t *testing.T) {
	doc := loadAsyncAPI(t)
	hdr, ok := resolve(doc, "#/components/schemas/cloudEventHeaders/properties")
	if !ok {
		t.Fatal("no #/components/schemas/cloudEventHeaders")
	}
	props := hdr.(map[string]any)
	want := []string{"ce-specversion", "ce-id", "ce-source", "ce-type", "ce-subject", "ce-time", "ce-dataschema", "content-type", "Nats-Msg-Id"}
	for _, ext := range []string{events.ExtProvider, events.ExtRegion, events.ExtImageID, events.ExtCorrelationID,
		events.ExtCausationID, events.ExtTraceParent, events.ExtTraceState} {
		want = append(want, events.HeaderPrefix+ext)
	}
	for _, h := range want {
		p, ok := props[h].(map[string]any)
		if !ok {
			t.Errorf("header %s is not documented", h)
			continue
		}
		if d, _ := p["description"].(string); d == "" {
			t.Errorf("header %s has no description", h)
		}
	}
	// Every header ToHeaders writes is documented.
	e, err := events.Decode(readFixture(t, events.TypeReplicationStarted))
	if err != nil {
		t.Fatal(err)
	}
	for h := range events.ToHeaders(e) {
		if _, ok := props[h]; !ok {
			t.Errorf("ToHeaders writes %s, which the AsyncAPI document does not describe", h)
		}
	}
}

// TestAsyncAPINoStaleTypes: a channel or message named after an imagerelay type the events
// package no longer has (io.imagerelay.poll.scheduled was one) must not linger in the document.
func TestAsyncAPINoStaleTypes(t *testing.T) {
	doc := loadAsyncAPI(t)
	for _, section := range []string{"channels", "operations"} {
		for key, v := range doc[section].(map[string]any) {
			title, _ := v.(map[string]any)["title"].(string)
			for _, word := range strings.Fields(title) {
				if strings.HasPrefix(word, events.TypePrefix) && !events.Known(word) {
					t.Errorf("%s.%s names unknown type %s", section, key, word)
				}
			}
		}
	}
	messages, _ := resolve(doc, "#/components/messages")
	for key, m := range messages.(map[string]any) {
		name, _ := m.(map[string]any)["name"].(string)
		if strings.HasPrefix(name, events.TypePrefix) && !events.Known(name) {
			t.Errorf("components.messages.%s is unknown type %s", key, name)
		}
	}
	raw, err := os.ReadFile("asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"poll.scheduled", "rebuild.check.scheduled"} {
		if strings.Contains(string(raw), gone) {
			t.Errorf("asyncapi.yaml still mentions %s", gone)
		}
	}
}

// TestAsyncAPIDeferredChannel checks the internal defer channel against what the bus does
// (shared/adapters/bus Defer): the same CloudEvent, Nats-Msg-Id <event id>~defer~<function>~<n>, and
// the Imagerelay-Not-Before / Imagerelay-Deferrals headers.
func TestAsyncAPIDeferredChannel(t *testing.T) {
	doc := loadAsyncAPI(t)
	var ch map[string]any
	for _, c := range doc["channels"].(map[string]any) {
		if c.(map[string]any)["address"] == events.SubjectPrefix+"defer.{function}.{provider}.{region}" {
			ch = c.(map[string]any)
		}
	}
	if ch == nil {
		t.Fatal("no channel imagerelay.defer.{function}.{provider}.{region}")
	}
	params, _ := ch["parameters"].(map[string]any)
	for _, p := range []string{"function", "provider", "region"} {
		if _, ok := params[p]; !ok {
			t.Errorf("defer channel lacks parameter %s", p)
		}
	}
	functions, _ := deref(t, doc, params["function"])["enum"].([]any)
	var msg map[string]any
	for _, m := range ch["messages"].(map[string]any) {
		msg = deref(t, doc, m)
	}
	hdrs, _ := msg["headers"].(map[string]any)
	all, _ := hdrs["allOf"].([]any)
	if len(all) != 2 || all[0].(map[string]any)["$ref"] != "#/components/schemas/cloudEventHeaders" {
		t.Fatalf("deferred headers must be allOf [cloudEventHeaders, deferral headers], got %v", all)
	}
	own := all[1].(map[string]any)
	props, _ := own["properties"].(map[string]any)
	required, _ := own["required"].([]any)
	for _, h := range []string{"Imagerelay-Not-Before", "Imagerelay-Deferrals"} {
		if _, ok := props[h]; !ok {
			t.Errorf("deferral header %s is not documented", h)
		}
		found := false
		for _, r := range required {
			found = found || r == h
		}
		if !found {
			t.Errorf("deferral header %s is not required", h)
		}
	}
	if d, _ := props["Nats-Msg-Id"].(map[string]any)["description"].(string); !strings.Contains(d, "<event id>~defer~<function>~<n>") {
		t.Errorf("deferred Nats-Msg-Id description %q does not give its form", d)
	}
	examples, _ := msg["examples"].([]any)
	if len(examples) == 0 {
		t.Fatal("deferred message has no example")
	}
	for _, ex := range examples {
		ex := ex.(map[string]any)
		h := map[string]string{}
		for k, v := range ex["headers"].(map[string]any) {
			h[k], _ = v.(string)
		}
		id, rest, ok := strings.Cut(h["Nats-Msg-Id"], "~defer~")
		function, n, _ := strings.Cut(rest, "~")
		if !ok || id != h["ce-id"] || n != h["Imagerelay-Deferrals"] {
			t.Errorf("example Nats-Msg-Id %q is not <ce-id %s>~defer~<function>~<Imagerelay-Deferrals %s>",
				h["Nats-Msg-Id"], h["ce-id"], h["Imagerelay-Deferrals"])
		}
		known := false
		for _, f := range functions {
			known = known || f == function
		}
		if !known {
			t.Errorf("example defers for function %q, not one of %v", function, functions)
		}
		if _, err := time.Parse(time.RFC3339Nano, h["Imagerelay-Not-Before"]); err != nil {
			t.Errorf("example Imagerelay-Not-Before: %v", err)
		}
		payload, err := json.Marshal(ex["payload"])
		if err != nil {
			t.Fatal(err)
		}
		names, get := headerGetter(h)
		e, err := events.FromBinary(names, get, payload)
		if err != nil {
			t.Errorf("example %v is not an imagerelay event: %v", ex["name"], err)
			continue
		}
		// The deferred copy is the event itself: here the type's fixture, unchanged.
		orig, err := events.Decode(readFixture(t, e.Type()))
		if err != nil {
			t.Fatalf("fixture: %v", err)
		}
		assertSameEvent(t, e, orig)
	}
}

// TestAsyncAPIDeadLetterHeaders checks the dead-letter message lists every Imagerelay-Dlq-*
// header the bus writes (shared/adapters/bus DeadLetter).
func TestAsyncAPIDeadLetterHeaders(t *testing.T) {
	doc := loadAsyncAPI(t)
	msg, ok := resolve(doc, "#/components/messages/deadLetter")
	if !ok {
		t.Fatal("no #/components/messages/deadLetter")
	}
	props, _ := msg.(map[string]any)["headers"].(map[string]any)["properties"].(map[string]any)
	for _, h := range []string{"Imagerelay-Dlq-Reason", "Imagerelay-Dlq-Function", "Imagerelay-Dlq-Subject",
		"Imagerelay-Dlq-Msg-Id", "Imagerelay-Dlq-Deliveries"} {
		p, ok := props[h].(map[string]any)
		if !ok {
			t.Errorf("dead-letter header %s is not documented", h)
			continue
		}
		if d, _ := p["description"].(string); d == "" {
			t.Errorf("dead-letter header %s has no description", h)
		}
	}
	if d, _ := props["Imagerelay-Dlq-Msg-Id"].(map[string]any)["description"].(string); !strings.Contains(d, "Nats-Msg-Id") {
		t.Errorf("Imagerelay-Dlq-Msg-Id description %q does not say it is the original Nats-Msg-Id", d)
	}
}

// TestAsyncAPIPollerConsumesStarted: the poller's input is replication.started and its
// deferred copies; no other channel feeds it.
func TestAsyncAPIPollerConsumesStarted(t *testing.T) {
	doc := loadAsyncAPI(t)
	var channels []string
	for _, o := range doc["operations"].(map[string]any) {
		op := o.(map[string]any)
		title, _ := op["title"].(string)
		if op["action"] != "receive" || !strings.HasPrefix(title, "poller ") {
			continue
		}
		ch := deref(t, doc, op["channel"])
		channels = append(channels, ch["address"].(string))
		if ch["address"] == events.SubjectPrefix+"replication.started.{provider}.{region}" {
			if d, _ := op["description"].(string); !strings.Contains(d, "imagerelay.defer.poller.") {
				t.Errorf("the poller's receive operation does not say it defers the started event: %q", d)
			}
		}
	}
	if len(channels) != 1 || channels[0] != events.SubjectPrefix+"replication.started.{provider}.{region}" {
		t.Errorf("poller receives from %v, want only imagerelay.replication.started.{provider}.{region}", channels)
	}
	recv, ok := resolve(doc, "#/operations/receiveDeferred")
	if !ok || recv.(map[string]any)["action"] != "receive" {
		t.Fatal("no receive operation on the defer channel")
	}
	if s, _ := recv.(map[string]any)["summary"].(string); !strings.Contains(s, events.TypeReplicationStarted) {
		t.Errorf("receiveDeferred summary %q does not name %s", s, events.TypeReplicationStarted)
	}
}

package events_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
)

func TestNewValidDataForEveryType(t *testing.T) {
	data := validData()
	for _, typ := range events.Types() {
		t.Run(events.ShortName(typ), func(t *testing.T) {
			d, ok := data[typ]
			if !ok {
				t.Fatalf("validData has no payload for %s", typ)
			}
			e := mustNew(t, typ, d, sampleMeta())
			if got, want := e.DataSchema(), events.SchemaURI(typ); got != want {
				t.Errorf("dataschema = %q, want %q", got, want)
			}
			if got := e.DataContentType(); got != events.ContentTypeJSON {
				t.Errorf("datacontenttype = %q, want %q", got, events.ContentTypeJSON)
			}
			if got, want := e.Subject(), "alibaba/cn-shanghai/img-0a1b2c3d4e5f"; got != want {
				t.Errorf("subject = %q, want %q", got, want)
			}
			if !e.Time().Equal(sampleTime) {
				t.Errorf("time = %v, want %v", e.Time(), sampleTime)
			}
			for name, want := range map[string]string{
				events.ExtProvider: "alibaba", events.ExtRegion: "cn-shanghai", events.ExtImageID: "img-0a1b2c3d4e5f",
			} {
				if got := events.StringExt(e, name); got != want {
					t.Errorf("extension %s = %q, want %q", name, got, want)
				}
			}
			// The payload must come back as the same Go value.
			back := reflect.New(reflect.TypeOf(d))
			if err := json.Unmarshal(e.Data(), back.Interface()); err != nil {
				t.Fatalf("unmarshal data: %v", err)
			}
			if !reflect.DeepEqual(back.Elem().Interface(), d) {
				t.Errorf("data round trip:\n got %+v\nwant %+v", back.Elem().Interface(), d)
			}
		})
	}
	if len(data) != len(events.Types()) {
		t.Errorf("validData has %d payloads for %d types", len(data), len(events.Types()))
	}
}

func TestNewRejectsBadData(t *testing.T) {
	withRepl := func(f func(r *events.Replication)) events.Replication {
		r := sampleRepl
		f(&r)
		return r
	}
	tests := []struct {
		name      string
		typ       string
		data      any
		wantField string
	}{
		{"missing destination region", events.TypeReplicationRequested,
			events.ReplicationRequested{Replication: withRepl(func(r *events.Replication) { r.DestinationRegion = "" })},
			"data.destinationRegion"},
		{"unknown provider", events.TypeImagePublished,
			events.ImagePublished{Image: func() events.Image { i := sampleImage; i.Provider = "aws"; return i }()},
			"data.provider"},
		{"ecd is not an image provider", events.TypeReplicationRequested,
			events.ReplicationRequested{Replication: withRepl(func(r *events.Replication) { r.Provider = events.ProviderEcd })},
			"data.provider"},
		{"empty image id", events.TypeReplicationRequested,
			events.ReplicationRequested{Replication: withRepl(func(r *events.Replication) { r.ImageID = "" })},
			"data.imageId"},
		{"source region with bad characters", events.TypeImagePublished,
			events.ImagePublished{Image: func() events.Image { i := sampleImage; i.SourceRegion = "CN_Shanghai"; return i }()},
			"data.sourceRegion"},
		{"empty region in list", events.TypeImagePublished,
			events.ImagePublished{Image: sampleImage, Regions: []string{"cn-hangzhou", ""}},
			"data.regions.1"},
		{"negative size", events.TypeImagePublished,
			events.ImagePublished{Image: sampleImage, SizeGB: -1},
			"data.sizeGB"},
		{"tag value not a string", events.TypeImagePublished,
			map[string]any{"provider": "alibaba", "imageId": "i-1", "sourceRegion": "cn-shanghai", "tags": map[string]any{"team": 7}},
			"data.tags.team"},
		{"started without task id", events.TypeReplicationStarted,
			events.ReplicationStarted{Replication: sampleRepl, StartedAt: sampleTime, Deadline: sampleTime},
			"data.taskId"},
		{"timestamp not a string", events.TypeReplicationStarted,
			map[string]any{"provider": "alibaba", "imageId": "i-1", "sourceRegion": "cn-shanghai", "destinationRegion": "cn-hangzhou",
				"taskId": "t-1", "startedAt": 12, "deadline": "2025-11-22T08:30:00Z"},
			"data.startedAt"},
		{"percent above 100", events.TypeReplicationProgressed,
			events.ReplicationProgressed{Replication: sampleRepl, TaskID: "t-1", Percent: 101},
			"data.percent"},
		{"percent below 0", events.TypeReplicationProgressed,
			events.ReplicationProgressed{Replication: sampleRepl, TaskID: "t-1", Percent: -1},
			"data.percent"},
		{"percent not an integer", events.TypeReplicationProgressed,
			map[string]any{"provider": "alibaba", "imageId": "i-1", "sourceRegion": "cn-shanghai", "destinationRegion": "cn-hangzhou",
				"taskId": "t-1", "percent": 4.5, "status": "SYNCING"},
			"data.percent"},
		{"succeeded without destination image", events.TypeReplicationSucceeded,
			events.ReplicationSucceeded{Replication: sampleRepl, FinishedAt: sampleTime},
			"data.destinationImageId"},
		{"failed without code", events.TypeReplicationFailed,
			events.ReplicationFailed{Replication: sampleRepl, Message: "boom", FailedAt: sampleTime},
			"data.code"},
		{"failed without message", events.TypeReplicationFailed,
			map[string]any{"provider": "alibaba", "imageId": "i-1", "sourceRegion": "cn-shanghai", "destinationRegion": "cn-hangzhou",
				"code": "Timeout", "failedAt": "2025-11-22T08:30:00Z"},
			"data.message"},
		{"completed with unsettled region", events.TypeReplicationCompleted,
			events.ReplicationCompleted{Image: sampleImage, Regions: []events.RegionOutcome{{Region: "cn-hangzhou", State: "in-progress"}}},
			"data.regions.0.state"},
		{"unknown decision action", events.TypeRebuildPlanned,
			events.RebuildPlanned{Replication: sampleRepl, DestinationImageID: "img-1", Policy: "p",
				Decisions: []events.RebuildDecision{{DesktopID: "ecd-1", Action: "rebuild"}, {DesktopID: "ecd-2", Action: "reboot"}}},
			"data.decisions.1.action"},
		{"desktop rebuild without desktop", events.TypeDesktopRebuildFailed,
			events.DesktopRebuild{Replication: sampleRepl, DestinationImageID: "img-1", Policy: "p"},
			"data.desktopId"},
		{"data not an object", events.TypeImagePublished, []string{"a"}, "data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := events.New(tt.typ, tt.data, sampleMeta())
			de := decodeErr(t, err)
			if de.Field != tt.wantField {
				t.Errorf("Field = %q, want %q (error: %v)", de.Field, tt.wantField, err)
			}
			if de.Reason == "" || strings.Contains(de.Reason, "jsonschema") {
				t.Errorf("Reason = %q, want a plain explanation", de.Reason)
			}
		})
	}
}

func TestNewRejectsUnknownType(t *testing.T) {
	if _, err := events.New("io.imagerelay.nope", struct{}{}, sampleMeta()); err == nil {
		t.Fatal("New accepted an unknown type")
	}
}

func TestValidateDataFieldIsStable(t *testing.T) {
	// Two faults at once: the reported field must not depend on map iteration order.
	raw := []byte(`{"provider":"aws","imageId":"","sourceRegion":"X","tags":{"a":1}}`)
	var first string
	for i := range 20 {
		err := events.ValidateData(events.TypeImagePublished, raw)
		de := decodeErr(t, err)
		if i == 0 {
			first = de.Field
			continue
		}
		if de.Field != first {
			t.Fatalf("run %d reported %q, run 0 reported %q", i, de.Field, first)
		}
	}
}

func TestDerive(t *testing.T) {
	root := mustNew(t, events.TypeImagePublished, validData()[events.TypeImagePublished], sampleMeta())
	reqData := func(region string) events.ReplicationRequested {
		r := sampleRepl
		r.DestinationRegion = region
		return events.ReplicationRequested{Replication: r}
	}
	derive := func(cause event.Event, region string) event.Event {
		t.Helper()
		e, err := events.Derive(cause, "fanout", events.TypeReplicationRequested, reqData(region),
			events.ProviderAlibaba, region, sampleImage.ImageID, region)
		if err != nil {
			t.Fatalf("Derive: %v", err)
		}
		return e
	}
	a, again, other := derive(root, "cn-hangzhou"), derive(root, "cn-hangzhou"), derive(root, "cn-beijing")

	tests := []struct {
		name      string
		got, want string
	}{
		{"same cause and parts give the same id", again.ID(), a.ID()},
		{"id is DeriveID of the cause's identity (source, id), type and parts", a.ID(), events.DeriveID(events.Identity(root), events.TypeReplicationRequested, "cn-hangzhou")},
		{"correlationid falls back to the cause id", events.StringExt(a, events.ExtCorrelationID), root.ID()},
		{"causationid is the cause id", events.StringExt(a, events.ExtCausationID), root.ID()},
		{"traceparent is carried", events.StringExt(a, events.ExtTraceParent), sampleMeta().TraceParent},
		{"tracestate is carried", events.StringExt(a, events.ExtTraceState), sampleMeta().TraceState},
		{"source names the function", a.Source(), "/imagerelay/fanout"},
		{"subject uses the destination", a.Subject(), "alibaba/cn-hangzhou/img-0a1b2c3d4e5f"},
		{"region extension", events.StringExt(a, events.ExtRegion), "cn-hangzhou"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if other.ID() == a.ID() {
		t.Errorf("different region gave the same id %s", a.ID())
	}
	if a.ID() == root.ID() {
		t.Errorf("derived id equals the cause id")
	}

	// One step further down the chain: correlation stays with the root, causation moves.
	started, err := events.Derive(a, "replicate", events.TypeReplicationStarted, events.ReplicationStarted{
		Replication: sampleRepl, TaskID: "t-1", StartedAt: sampleTime, Deadline: sampleTime,
	}, events.ProviderAlibaba, "cn-hangzhou", sampleImage.ImageID)
	if err != nil {
		t.Fatalf("Derive started: %v", err)
	}
	if got := events.StringExt(started, events.ExtCorrelationID); got != root.ID() {
		t.Errorf("grandchild correlationid = %q, want root id %q", got, root.ID())
	}
	if got := events.StringExt(started, events.ExtCausationID); got != a.ID() {
		t.Errorf("grandchild causationid = %q, want parent id %q", got, a.ID())
	}
	if got := events.StringExt(started, events.ExtTraceParent); got != sampleMeta().TraceParent {
		t.Errorf("grandchild traceparent = %q", got)
	}
}

func TestDeriveRejectsBadData(t *testing.T) {
	root := mustNew(t, events.TypeImagePublished, validData()[events.TypeImagePublished], sampleMeta())
	_, err := events.Derive(root, "fanout", events.TypeReplicationRequested, events.ReplicationRequested{Replication: events.Replication{Image: sampleImage}},
		events.ProviderAlibaba, "cn-hangzhou", sampleImage.ImageID, "cn-hangzhou")
	if de := decodeErr(t, err); de.Field != "data.destinationRegion" {
		t.Errorf("Field = %q, want data.destinationRegion", de.Field)
	}
}

func TestDeriveIDParts(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"deterministic", events.DeriveID("c", "t", "x"), events.DeriveID("c", "t", "x"), true},
		{"type matters", events.DeriveID("c", "t1", "x"), events.DeriveID("c", "t2", "x"), false},
		{"cause matters", events.DeriveID("c1", "t", "x"), events.DeriveID("c2", "t", "x"), false},
		{"part boundaries matter", events.DeriveID("c", "t", "ab", "c"), events.DeriveID("c", "t", "a", "bc"), false},
		{"no parts differs from one empty part", events.DeriveID("c", "t"), events.DeriveID("c", "t", ""), false},
	}
	for _, tt := range tests {
		if (tt.a == tt.b) != tt.same {
			t.Errorf("%s: %s vs %s, want same=%v", tt.name, tt.a, tt.b, tt.same)
		}
		if len(tt.a) != 32 {
			t.Errorf("%s: id %q is not 32 hex characters", tt.name, tt.a)
		}
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	data := validData()
	for _, typ := range events.Types() {
		t.Run(events.ShortName(typ), func(t *testing.T) {
			m := sampleMeta()
			m.CorrelationID, m.CausationID = "corr-1", "cause-1"
			e := mustNew(t, typ, data[typ], m)
			h := events.ToHeaders(e)
			for _, k := range []string{"ce-specversion", "ce-id", "ce-source", "ce-type", "ce-subject", "ce-time", "ce-dataschema",
				"ce-provider", "ce-region", "ce-imageid", "ce-correlationid", "ce-causationid", "ce-traceparent", "ce-tracestate"} {
				if h[k] == "" {
					t.Errorf("header %s missing", k)
				}
			}
			if h["content-type"] != events.ContentTypeJSON {
				t.Errorf("content-type = %q", h["content-type"])
			}
			names, get := headerGetter(h)
			back, err := events.FromBinary(names, get, e.Data())
			if err != nil {
				t.Fatalf("FromBinary: %v", err)
			}
			assertSameEvent(t, back, e)
		})
	}
}

func TestFromBinaryHeaderCase(t *testing.T) {
	e := mustNew(t, events.TypeImagePublished, validData()[events.TypeImagePublished], sampleMeta())
	h := events.ToHeaders(e)
	// NATS keeps header names as sent; another publisher may canonicalise them (Ce-Provider).
	// FromBinary lower-cases extension names; the getter resolves the name it was given.
	canon := maps.Clone(h)
	for _, ext := range []string{events.ExtProvider, events.ExtRegion, events.ExtImageID, events.ExtTraceParent} {
		delete(canon, "ce-"+ext)
		canon["Ce-"+strings.ToUpper(ext[:1])+ext[1:]] = h["ce-"+ext]
	}
	names, get := headerGetter(canon)
	back, err := events.FromBinary(names, get, e.Data())
	if err != nil {
		t.Fatalf("FromBinary: %v", err)
	}
	if got := events.StringExt(back, events.ExtProvider); got != "alibaba" {
		t.Errorf("provider extension = %q, want alibaba", got)
	}
}

func TestFromBinaryRejects(t *testing.T) {
	good := mustNew(t, events.TypeReplicationRequested, validData()[events.TypeReplicationRequested], sampleMeta())
	tests := []struct {
		name      string
		edit      func(h map[string]string)
		payload   []byte
		wantField string
	}{
		{"no specversion", func(h map[string]string) { delete(h, "ce-specversion") }, nil, "specversion"},
		{"unknown specversion", func(h map[string]string) { h["ce-specversion"] = "2.0" }, nil, "specversion"},
		{"no id", func(h map[string]string) { delete(h, "ce-id") }, nil, "id"},
		{"no source", func(h map[string]string) { delete(h, "ce-source") }, nil, "source"},
		{"no type", func(h map[string]string) { delete(h, "ce-type") }, nil, "type"},
		{"unknown type", func(h map[string]string) { h["ce-type"] = "com.example.other" }, nil, "type"},
		{"bad time", func(h map[string]string) { h["ce-time"] = "yesterday" }, nil, "time"},
		{"text content", func(h map[string]string) { h["content-type"] = "text/plain" }, nil, "datacontenttype"},
		{"empty payload", func(map[string]string) {}, []byte{}, "data"},
		{"payload not JSON", func(map[string]string) {}, []byte("{"), "data"},
		{"payload fails schema", func(map[string]string) {}, []byte(`{"provider":"alibaba","imageId":"i","sourceRegion":"cn-shanghai"}`), "data.destinationRegion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := events.ToHeaders(good)
			tt.edit(h)
			payload := good.Data()
			if tt.payload != nil {
				payload = tt.payload
			}
			names, get := headerGetter(h)
			_, err := events.FromBinary(names, get, payload)
			if de := decodeErr(t, err); de.Field != tt.wantField {
				t.Errorf("Field = %q, want %q (error: %v)", de.Field, tt.wantField, err)
			}
		})
	}
}

func TestDecodeStructured(t *testing.T) {
	data := validData()
	for _, typ := range events.Types() {
		t.Run(events.ShortName(typ), func(t *testing.T) {
			m := sampleMeta()
			m.CorrelationID = "corr-1"
			e := mustNew(t, typ, data[typ], m)
			raw, err := json.Marshal(e)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			back, err := events.Decode(raw)
			if err != nil {
				t.Fatalf("Decode: %v\n%s", err, raw)
			}
			assertSameEvent(t, back, e)
		})
	}
}

func TestDecodeAcceptsJSONWithParameters(t *testing.T) {
	raw := editFixture(t, events.TypeImagePublished, func(m map[string]any) {
		m["datacontenttype"] = "application/json; charset=utf-8"
	})
	if _, err := events.Decode(raw); err != nil {
		t.Fatalf("Decode: %v", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	del := func(k string) func(map[string]any) { return func(m map[string]any) { delete(m, k) } }
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	tests := []struct {
		name      string
		raw       []byte // used when set, else the edited fixture
		edit      func(map[string]any)
		wantField string
	}{
		{name: "invalid JSON", raw: []byte(`{"specversion":"1.0",`), wantField: ""},
		{name: "JSON array", raw: []byte(`[{"specversion":"1.0"}]`), wantField: ""},
		{name: "JSON null", raw: []byte(`null`), wantField: "specversion"},
		{name: "missing specversion", edit: del("specversion"), wantField: "specversion"},
		{name: "unknown specversion", edit: set("specversion", "2.0"), wantField: "specversion"},
		{name: "specversion not a string", edit: set("specversion", 1), wantField: "specversion"},
		{name: "missing id", edit: del("id"), wantField: "id"},
		{name: "empty id", edit: set("id", ""), wantField: "id"},
		{name: "missing source", edit: del("source"), wantField: "source"},
		{name: "missing type", edit: del("type"), wantField: "type"},
		{name: "missing id and type", edit: func(m map[string]any) { delete(m, "id"); delete(m, "type") }, wantField: "id"},
		{name: "unknown type", edit: set("type", "io.imagerelay.image.deleted"), wantField: "type"},
		{name: "foreign type", edit: set("type", "com.example.thing"), wantField: "type"},
		{name: "wrong datacontenttype", edit: set("datacontenttype", "application/xml"), wantField: "datacontenttype"},
		{name: "json-like datacontenttype", edit: set("datacontenttype", "application/jsonx"), wantField: "datacontenttype"},
		{name: "missing data", edit: del("data"), wantField: "data"},
		{name: "null data", edit: set("data", nil), wantField: "data"},
		{name: "data fails schema", edit: func(m map[string]any) {
			delete(m["data"].(map[string]any), "destinationRegion")
		}, wantField: "data.destinationRegion"},
		{name: "data with bad nested value", edit: func(m map[string]any) {
			m["data"].(map[string]any)["regions"] = []any{"cn-hangzhou", 5}
		}, wantField: "data.regions.1"},
		{name: "timestamp that is not a date-time", raw: editFixture(t, events.TypeReplicationStarted, func(m map[string]any) {
			m["data"].(map[string]any)["startedAt"] = "yesterday"
		}), wantField: "data.startedAt"},
		{name: "deadline with a leap second", raw: editFixture(t, events.TypeReplicationStarted, func(m map[string]any) {
			m["data"].(map[string]any)["deadline"] = "2016-12-31T23:59:60Z"
		}), wantField: "data.deadline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := tt.raw
			if raw == nil {
				raw = editFixture(t, events.TypeReplicationRequested, tt.edit)
			}
			_, err := events.Decode(raw)
			if de := decodeErr(t, err); de.Field != tt.wantField {
				t.Errorf("Field = %q, want %q (error: %v)", de.Field, tt.wantField, err)
			}
		})
	}
}

func TestDataAs(t *testing.T) {
	e, err := events.Decode(readFixture(t, events.TypeReplicationStarted))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	d, err := events.DataAs[events.ReplicationStarted](e)
	if err != nil {
		t.Fatalf("DataAs: %v", err)
	}
	if d.TaskID != "t-9f8e7d6c5b4a" || d.DestinationRegion != "cn-hangzhou" || d.Provider != "alibaba" {
		t.Errorf("DataAs = %+v", d)
	}
	if d.StartedAt.IsZero() || !d.Deadline.After(d.StartedAt) {
		t.Errorf("timestamps not decoded: %v %v", d.StartedAt, d.Deadline)
	}
}

// TestDataAsWholeNumbers: JSON Schema's "integer" accepts a whole number written with a
// fraction or an exponent, so DataAs must decode it into an int field too; and Check must
// refuse what the schema allows but the Go payload cannot hold.
func TestDataAsWholeNumbers(t *testing.T) {
	progressed := readFixture(t, events.TypeReplicationProgressed)
	withPercent := func(lit string) []byte {
		t.Helper()
		raw := bytes.Replace(progressed, []byte(`"percent": 45,`), []byte(`"percent": `+lit+`,`), 1)
		if bytes.Equal(raw, progressed) && lit != "45" {
			t.Fatal("the progressed fixture no longer has \"percent\": 45")
		}
		return raw
	}
	accepted := []struct {
		lit  string
		want int
	}{
		{"45", 45},
		{"45.0", 45},
		{"45.000000", 45},
		{"4.5e1", 45},
		{"4.50E+1", 45},
		{"450e-1", 45},
		{"0.0", 0},
		{"-0.0e0", 0}, // the schema's minimum 0 holds for -0
		{"1e2", 100},
	}
	for _, tt := range accepted {
		t.Run("percent "+tt.lit, func(t *testing.T) {
			e, err := events.Decode(withPercent(tt.lit))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			d, err := events.DataAs[events.ReplicationProgressed](e)
			if err != nil {
				t.Fatalf("DataAs: %v", err)
			}
			if d.Percent != tt.want || d.TaskID != "t-9f8e7d6c5b4a" || d.Status != "SYNCING" {
				t.Errorf("DataAs = percent %d task %q status %q, want %d t-9f8e7d6c5b4a SYNCING", d.Percent, d.TaskID, d.Status, tt.want)
			}
			// The binary mode, which NATS uses, reads the same payload.
			names, get := headerGetter(events.ToHeaders(e))
			b, err := events.FromBinary(names, get, e.Data())
			if err != nil {
				t.Fatalf("FromBinary: %v", err)
			}
			if d, err := events.DataAs[events.ReplicationProgressed](b); err != nil || d.Percent != tt.want {
				t.Errorf("binary DataAs = %+v, %v; want percent %d", d, err, tt.want)
			}
		})
	}
	for _, lit := range []string{"45.5", "45.0000000000000000001", "4.55e1", "101.0", "-1.0"} {
		t.Run("percent "+lit+" rejected", func(t *testing.T) {
			_, err := events.Decode(withPercent(lit))
			if de := decodeErr(t, err); de.Field != "data.percent" {
				t.Errorf("Field = %q, want data.percent (error: %v)", de.Field, err)
			}
		})
	}

	// Digits inside strings are text, not numbers: they come through unchanged.
	e, err := events.Decode(bytes.Replace(withPercent("4.5e1"), []byte(`"status": "SYNCING"`), []byte(`"status": "45.0 \"1e2\""`), 1))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if d, err := events.DataAs[events.ReplicationProgressed](e); err != nil || d.Status != `45.0 "1e2"` {
		t.Errorf("DataAs status = %+v, %v; want the string unchanged", d, err)
	}

	// A float field takes whole numbers as they are.
	e, err = events.Decode(editFixture(t, events.TypeReplicationSucceeded, func(m map[string]any) {
		m["data"].(map[string]any)["durationSeconds"] = json.Number("12.0")
	}))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if d, err := events.DataAs[events.ReplicationSucceeded](e); err != nil || d.DurationSeconds != 12 {
		t.Errorf("DataAs durationSeconds = %+v, %v; want 12", d, err)
	}
}

// TestCheckRejectsNumbersGoCannotHold: the schemas bound few numbers from above, so a value
// beyond an int or a float64 passes the schema; Check must refuse it, naming the field, rather
// than let it through to fail in a consumer's DataAs.
func TestCheckRejectsNumbersGoCannotHold(t *testing.T) {
	// The payloads go in binary mode, as on NATS: sdk-go's structured-mode parser itself
	// refuses some of these numbers (1e400) before Check sees them.
	binary := func(typ string, data []byte) (event.Event, error) {
		fixture, err := events.Decode(readFixture(t, typ))
		if err != nil {
			t.Fatalf("fixture: %v", err)
		}
		names, get := headerGetter(events.ToHeaders(fixture))
		return events.FromBinary(names, get, data)
	}
	editData := func(typ string, edit func(d map[string]any)) []byte {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(readFixture(t, typ), &m); err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(m["data"]))
		dec.UseNumber()
		var d map[string]any
		if err := dec.Decode(&d); err != nil {
			t.Fatal(err)
		}
		edit(d)
		raw, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	set := func(key, lit string) func(map[string]any) {
		return func(d map[string]any) { d[key] = json.Number(lit) }
	}
	tests := []struct {
		name      string
		typ       string
		edit      func(map[string]any)
		wantField string
	}{
		{"size beyond int64", events.TypeImagePublished, set("sizeGB", "1e30"), "data.sizeGB"},
		{"size just beyond int64", events.TypeImagePublished, set("sizeGB", "9223372036854775808"), "data.sizeGB"},
		{"whole size beyond int64", events.TypeImagePublished, set("sizeGB", "9223372036854775808.0"), "data.sizeGB"},
		{"duration beyond float64", events.TypeReplicationSucceeded, set("durationSeconds", "1e400"), "data.durationSeconds"},
		{"count beyond int64", events.TypeReplicationCompleted, set("succeeded", "1e19"), "data.succeeded"},
		{"batch in a list", events.TypeRebuildPlanned, func(d map[string]any) {
			list := d["decisions"].([]any)
			list[len(list)-1].(map[string]any)["batch"] = json.Number("1e30")
		}, "data.decisions.batch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := editData(tt.typ, tt.edit)
			if err := events.ValidateData(tt.typ, data); err != nil {
				t.Fatalf("the schema already refuses it (%v); the case tests nothing", err)
			}
			_, err := binary(tt.typ, data)
			de := decodeErr(t, err)
			if de.Field != tt.wantField {
				t.Errorf("Field = %q, want %q (error: %v)", de.Field, tt.wantField, err)
			}
			if strings.Contains(de.Reason, "json:") || strings.Contains(de.Reason, "Go struct") {
				t.Errorf("Reason = %q, want it without encoding/json's wording", de.Reason)
			}
		})
	}
	// The largest int64, written whole, still fits.
	e, err := binary(events.TypeImagePublished, editData(events.TypeImagePublished, set("sizeGB", "9223372036854775807.0")))
	if err != nil {
		t.Fatalf("FromBinary: %v", err)
	}
	if d, err := events.DataAs[events.ImagePublished](e); err != nil || d.SizeGB != math.MaxInt64 {
		t.Errorf("DataAs sizeGB = %+v, %v; want MaxInt64", d, err)
	}
}

// editFixture decodes a type's fixture into a map, applies edit and re-encodes it.
func editFixture(t *testing.T, typ string, edit func(map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readFixture(t, typ), &m); err != nil {
		t.Fatalf("fixture: %v", err)
	}
	edit(m)
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return raw
}

// assertSameEvent compares every attribute, extension and the data of two events.
func assertSameEvent(t *testing.T, got, want event.Event) {
	t.Helper()
	pairs := []struct{ name, got, want string }{
		{"specversion", got.SpecVersion(), want.SpecVersion()},
		{"id", got.ID(), want.ID()},
		{"source", got.Source(), want.Source()},
		{"type", got.Type(), want.Type()},
		{"subject", got.Subject(), want.Subject()},
		{"dataschema", got.DataSchema(), want.DataSchema()},
		{"datacontenttype", got.DataContentType(), want.DataContentType()},
	}
	for _, p := range pairs {
		if p.got != p.want {
			t.Errorf("%s = %q, want %q", p.name, p.got, p.want)
		}
	}
	if !got.Time().Equal(want.Time()) {
		t.Errorf("time = %v, want %v", got.Time(), want.Time())
	}
	gotExt, wantExt := map[string]string{}, map[string]string{}
	for k := range got.Extensions() {
		gotExt[k] = events.StringExt(got, k)
	}
	for k := range want.Extensions() {
		wantExt[k] = events.StringExt(want, k)
	}
	if !maps.Equal(gotExt, wantExt) {
		t.Errorf("extensions = %v, want %v", gotExt, wantExt)
	}
	if !jsonEqual(got.Data(), want.Data()) {
		t.Errorf("data = %s, want %s", got.Data(), want.Data())
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

func TestDecodeTrimsAttributesLikeBinaryMode(t *testing.T) {
	raw := editFixture(t, events.TypeImagePublished, func(m map[string]any) {
		m["id"] = "  evt-1 "
		m["type"] = events.TypeImagePublished + " "
	})
	s, err := events.Decode(raw)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	names, get := headerGetter(events.ToHeaders(s))
	b, err := events.FromBinary(names, get, s.Data())
	if err != nil {
		t.Fatalf("FromBinary: %v", err)
	}
	for _, e := range []event.Event{s, b} {
		if e.ID() != "evt-1" || e.Type() != events.TypeImagePublished {
			t.Errorf("id/type = %q/%q, want evt-1/%s", e.ID(), e.Type(), events.TypeImagePublished)
		}
	}
	// The same cause must derive the same ids whichever content mode carried it.
	if a, c := events.DeriveID(s.ID(), "t"), events.DeriveID(b.ID(), "t"); a != c {
		t.Errorf("derived ids differ by content mode: %s vs %s", a, c)
	}
	if _, err := events.Decode(editFixture(t, events.TypeImagePublished, func(m map[string]any) { m["id"] = "   " })); err == nil {
		t.Error("Decode accepted a blank id")
	} else if de := decodeErr(t, err); de.Field != "id" {
		t.Errorf("blank id: Field = %q, want id", de.Field)
	}
}

func TestCausedByKeepsANamedCorrelation(t *testing.T) {
	cause := mustNew(t, events.TypeImagePublished, validData()[events.TypeImagePublished], sampleMeta())
	tests := []struct {
		name string
		meta events.Meta
		want events.Meta
	}{
		{"correlation taken from the cause", events.Meta{ID: "x"},
			events.Meta{ID: "x", CorrelationID: events.CorrelationID(cause), CausationID: cause.ID(),
				TraceParent: sampleMeta().TraceParent, TraceState: sampleMeta().TraceState}},
		{"a named correlation is kept", events.Meta{ID: "y", CorrelationID: "plan-1"},
			events.Meta{ID: "y", CorrelationID: "plan-1", CausationID: cause.ID(),
				TraceParent: sampleMeta().TraceParent, TraceState: sampleMeta().TraceState}},
	}
	for _, tc := range tests {
		if got := tc.meta.CausedBy(cause); got != tc.want {
			t.Errorf("%s: CausedBy = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

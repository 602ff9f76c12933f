package events_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/imagerelay/imagerelay/events"
)

// dataTypes binds every registered type to its Go payload, the struct its schema describes.
var dataTypes = map[string]reflect.Type{
	events.TypeImagePublished:          reflect.TypeFor[events.ImagePublished](),
	events.TypeReplicationPlanned:      reflect.TypeFor[events.ReplicationPlanned](),
	events.TypeReplicationRequested:    reflect.TypeFor[events.ReplicationRequested](),
	events.TypeReplicationStarted:      reflect.TypeFor[events.ReplicationStarted](),
	events.TypeReplicationProgressed:   reflect.TypeFor[events.ReplicationProgressed](),
	events.TypeReplicationSucceeded:    reflect.TypeFor[events.ReplicationSucceeded](),
	events.TypeReplicationFailed:       reflect.TypeFor[events.ReplicationFailed](),
	events.TypeReplicationCompleted:    reflect.TypeFor[events.ReplicationCompleted](),
	events.TypeRebuildPlanned:          reflect.TypeFor[events.RebuildPlanned](),
	events.TypeDesktopRebuildStarted:   reflect.TypeFor[events.DesktopRebuild](),
	events.TypeDesktopRebuildSucceeded: reflect.TypeFor[events.DesktopRebuild](),
	events.TypeDesktopRebuildFailed:    reflect.TypeFor[events.DesktopRebuild](),
	events.TypeRebuildCompleted:        reflect.TypeFor[events.RebuildCompleted](),
}

func TestEveryTypeHasSchemaAndFixture(t *testing.T) {
	for _, typ := range events.Types() {
		t.Run(events.ShortName(typ), func(t *testing.T) {
			if _, ok := dataTypes[typ]; !ok {
				t.Errorf("the test's dataTypes table misses %s", typ)
			}
			if want := "schemas/" + events.ShortName(typ) + ".v1.json"; events.SchemaFile(typ) != want {
				t.Errorf("SchemaFile = %q, want %q", events.SchemaFile(typ), want)
			}
			onDisk, err := os.ReadFile(filepath.FromSlash(events.SchemaFile(typ)))
			if err != nil {
				t.Fatalf("schema file: %v", err)
			}
			embedded, err := events.SchemaJSON(typ)
			if err != nil {
				t.Fatalf("SchemaJSON: %v", err)
			}
			if !bytes.Equal(onDisk, embedded) {
				t.Errorf("embedded schema differs from %s", events.SchemaFile(typ))
			}
			if _, err := os.Stat(fixturePath(typ)); err != nil {
				t.Errorf("fixture: %v", err)
			}
		})
	}
	// No stray schema or fixture for a type that does not exist.
	known := map[string]bool{}
	for _, typ := range events.Types() {
		known[events.ShortName(typ)] = true
	}
	for _, pattern := range []string{"schemas/*.v1.json", "testdata/*.json"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".json"), ".v1")
			if !known[name] {
				t.Errorf("%s belongs to no registered type", f)
			}
		}
	}
}

func TestFixturesValidate(t *testing.T) {
	for _, typ := range events.Types() {
		t.Run(events.ShortName(typ), func(t *testing.T) {
			e, err := events.Decode(readFixture(t, typ))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if e.Type() != typ {
				t.Errorf("type = %q, want %q", e.Type(), typ)
			}
			if e.DataSchema() != events.SchemaURI(typ) {
				t.Errorf("dataschema = %q, want %q", e.DataSchema(), events.SchemaURI(typ))
			}
			for _, ext := range []string{events.ExtProvider, events.ExtRegion, events.ExtImageID} {
				if events.StringExt(e, ext) == "" {
					t.Errorf("extension %s missing", ext)
				}
			}
			// The data must decode into the Go payload without loss: re-encoding the
			// struct gives the same JSON as the fixture's data.
			v := reflect.New(dataTypes[typ])
			dec := json.NewDecoder(bytes.NewReader(e.Data()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(v.Interface()); err != nil {
				t.Fatalf("fixture data does not fit %s: %v", dataTypes[typ], err)
			}
			again, err := json.Marshal(v.Interface())
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(again, e.Data()) {
				t.Errorf("data changed through the Go struct:\n got %s\nwant %s", again, e.Data())
			}
		})
	}
}

// schemaDoc is the part of a schema document the consistency tests read.
type schemaDoc struct {
	Schema      string                     `json:"$schema"`
	ID          string                     `json:"$id"`
	Description string                     `json:"description"`
	Type        any                        `json:"type"`
	Required    []string                   `json:"required"`
	Properties  map[string]json.RawMessage `json:"properties"`
	Additional  *json.RawMessage           `json:"additionalProperties"`
}

func loadSchema(t *testing.T, typ string) (schemaDoc, map[string]any) {
	t.Helper()
	raw, err := events.SchemaJSON(typ)
	if err != nil {
		t.Fatalf("SchemaJSON: %v", err)
	}
	var doc schemaDoc
	var generic map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("schema: %v", err)
	}
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatalf("schema: %v", err)
	}
	return doc, generic
}

// jsonFields lists the JSON names of a struct's fields, embedded structs flattened, and
// whether each one is always written (no omitempty/omitzero).
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if f.Anonymous && tag == "" {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" {
			continue
		}
		out[name] = !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero")
	}
	return out
}

func TestSchemasDescribeTheGoStructs(t *testing.T) {
	for _, typ := range events.Types() {
		t.Run(events.ShortName(typ), func(t *testing.T) {
			doc, _ := loadSchema(t, typ)
			if doc.ID != events.SchemaURI(typ) {
				t.Errorf("$id = %q, want %q", doc.ID, events.SchemaURI(typ))
			}
			if doc.Schema != "https://json-schema.org/draft/2020-12/schema" {
				t.Errorf("$schema = %q, want draft 2020-12", doc.Schema)
			}
			if doc.Type != "object" {
				t.Errorf("type = %v, want object", doc.Type)
			}
			if doc.Additional != nil {
				t.Errorf("additionalProperties is set; unknown fields must stay allowed for forward compatibility")
			}
			fields := jsonFields(dataTypes[typ])
			var props []string
			for p := range doc.Properties {
				props = append(props, p)
				if _, ok := fields[p]; !ok {
					t.Errorf("schema property %q is not a field of %s", p, dataTypes[typ])
				}
			}
			for f, always := range fields {
				if _, ok := doc.Properties[f]; !ok {
					t.Errorf("field %q of %s is missing from the schema", f, dataTypes[typ])
				}
				// A field Go always writes is required; one Go may leave out must not be,
				// or a zero value would make New reject the pipeline's own event.
				if got := slices.Contains(doc.Required, f); got != always {
					t.Errorf("field %q: required=%v, but Go always writes it=%v", f, got, always)
				}
			}
			sort.Strings(props)
			for _, r := range []string{"provider", "imageId", "sourceRegion"} {
				if !slices.Contains(doc.Required, r) {
					t.Errorf("%q is not required", r)
				}
			}
		})
	}
}

func TestSchemaRequiredPerType(t *testing.T) {
	tests := map[string][]string{
		events.TypeReplicationRequested:  {"destinationRegion"},
		events.TypeReplicationStarted:    {"destinationRegion", "taskId", "startedAt", "deadline"},
		events.TypeReplicationProgressed: {"destinationRegion", "taskId", "percent"},
		events.TypeReplicationSucceeded:  {"destinationRegion", "destinationImageId", "finishedAt"},
		events.TypeReplicationFailed:     {"destinationRegion", "code", "message", "failedAt"},
		events.TypeRebuildPlanned:        {"destinationRegion", "destinationImageId", "decisions"},
		events.TypeDesktopRebuildFailed:  {"destinationRegion", "desktopId"},
	}
	for typ, want := range tests {
		doc, _ := loadSchema(t, typ)
		for _, f := range want {
			if !slices.Contains(doc.Required, f) {
				t.Errorf("%s: %q is not required", events.ShortName(typ), f)
			}
		}
	}
}

// TestSchemasAreDocumented walks every schema and sub-schema: each must carry a description,
// since the schemas are published as the events' reference documentation.
func TestSchemasAreDocumented(t *testing.T) {
	for _, typ := range events.Types() {
		_, generic := loadSchema(t, typ)
		var walk func(path string, node map[string]any)
		walk = func(path string, node map[string]any) {
			if d, _ := node["description"].(string); strings.TrimSpace(d) == "" {
				t.Errorf("%s: %s has no description", events.ShortName(typ), path)
			}
			for _, key := range []string{"properties", "$defs"} {
				if m, ok := node[key].(map[string]any); ok {
					for name, sub := range m {
						walk(path+"/"+key+"/"+name, sub.(map[string]any))
					}
				}
			}
			for _, key := range []string{"items", "additionalProperties"} {
				if sub, ok := node[key].(map[string]any); ok {
					walk(path+"/"+key, sub)
				}
			}
		}
		walk("#", generic)
	}
}

// TestSchemaConstraints checks the shared rules on a few representative values through
// ValidateData, the function every decode uses.
func TestSchemaConstraints(t *testing.T) {
	base := `"provider":"tencent","imageId":"img-1","sourceRegion":"ap-guangzhou"`
	tests := []struct {
		name, typ, data string
		wantField       string // "" means valid
	}{
		{"minimal image", events.TypeImagePublished, `{` + base + `}`, ""},
		{"unknown fields allowed", events.TypeImagePublished, `{` + base + `,"future":{"x":1}}`, ""},
		{"huawei region", events.TypeImagePublished, `{"provider":"huawei","imageId":"i","sourceRegion":"cn-north-4"}`, ""},
		{"upper-case region", events.TypeImagePublished, `{"provider":"huawei","imageId":"i","sourceRegion":"CN-NORTH-4"}`, "data.sourceRegion"},
		{"dotted region", events.TypeImagePublished, `{"provider":"huawei","imageId":"i","sourceRegion":"cn.north"}`, "data.sourceRegion"},
		{"empty account", events.TypeImagePublished, `{` + base + `,"account":""}`, "data.account"},
		{"tags of strings", events.TypeImagePublished, `{` + base + `,"tags":{"a":"b","c":""}}`, ""},
		{"tags not an object", events.TypeImagePublished, `{` + base + `,"tags":["a"]}`, "data.tags"},
		{"regions not an array", events.TypeImagePublished, `{` + base + `,"regions":"ap-beijing"}`, "data.regions"},
		{"planned with null regions", events.TypeReplicationPlanned, `{` + base + `,"regions":null}`, ""},
		{"planned without regions", events.TypeReplicationPlanned, `{` + base + `}`, "data.regions"},
		{"skipped unknown region name kept", events.TypeReplicationPlanned,
			`{` + base + `,"regions":[],"skipped":[{"region":"Mars_1","reason":"unknown region"}]}`, ""},
		{"skipped without reason", events.TypeReplicationPlanned,
			`{` + base + `,"regions":[],"skipped":[{"region":"ap-beijing"}]}`, "data.skipped.0.reason"},
		{"percent 0", events.TypeReplicationProgressed,
			`{` + base + `,"destinationRegion":"ap-beijing","taskId":"t","percent":0,"status":""}`, ""},
		{"percent 100", events.TypeReplicationProgressed,
			`{` + base + `,"destinationRegion":"ap-beijing","taskId":"t","percent":100,"status":"NORMAL"}`, ""},
		{"percent as string", events.TypeReplicationProgressed,
			`{` + base + `,"destinationRegion":"ap-beijing","taskId":"t","percent":"50","status":"NORMAL"}`, "data.percent"},
		{"decision skip", events.TypeRebuildPlanned,
			`{` + base + `,"destinationRegion":"ap-beijing","destinationImageId":"i","policy":"p","dryRun":true,"decisions":[{"desktopId":"d","action":"skip"}]}`, ""},
		{"decision without desktop", events.TypeRebuildPlanned,
			`{` + base + `,"destinationRegion":"ap-beijing","destinationImageId":"i","policy":"p","dryRun":true,"decisions":[{"action":"skip"}]}`, "data.decisions.0.desktopId"},
		{"data is an array", events.TypeImagePublished, `[]`, "data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := events.ValidateData(tt.typ, []byte(tt.data))
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("ValidateData: %v", err)
				}
				return
			}
			if de := decodeErr(t, err); de.Field != tt.wantField {
				t.Errorf("Field = %q, want %q (error: %v)", de.Field, tt.wantField, err)
			}
		})
	}
}

// TestSchemaDateTime checks that the date-time format is asserted, and that it accepts
// exactly timestamps the Go payloads can decode: whatever the schema lets through, DataAs
// must read.
func TestSchemaDateTime(t *testing.T) {
	started := func(startedAt string) string {
		return `{"provider":"tencent","imageId":"img-1","sourceRegion":"ap-guangzhou","destinationRegion":"ap-beijing",` +
			`"taskId":"t","startedAt":"` + startedAt + `","deadline":"2025-11-22T09:30:00Z"}`
	}
	tests := []struct {
		name, value string
		valid       bool
	}{
		{"UTC", "2025-11-22T08:30:00Z", true},
		{"offset", "2025-11-22T08:30:00+08:00", true},
		{"negative offset", "2025-11-22T08:30:00-03:30", true},
		{"fraction", "2025-11-22T08:30:01.5Z", true},
		{"nanoseconds and more", "2025-11-22T08:30:01.1234567891Z", true},
		{"leap day", "2024-02-29T00:00:00Z", true},
		{"a word", "yesterday", false},
		{"empty", "", false},
		{"date only", "2025-11-22", false},
		{"space instead of T", "2025-11-22 08:30:00Z", false},
		{"no zone", "2025-11-22T08:30:00", false},
		{"lower-case t and z (Go cannot decode them)", "2025-11-22t08:30:00z", false},
		{"leap second (Go cannot decode it)", "2016-12-31T23:59:60Z", false},
		{"comma before the fraction", "2025-11-22T08:30:00,5Z", false},
		{"one-digit hour", "2025-11-22T8:30:00Z", false},
		{"empty fraction", "2025-11-22T08:30:00.Z", false},
		{"hour 24", "2025-11-22T24:00:00Z", false},
		{"30 February", "2025-02-30T00:00:00Z", false},
		{"offset hour 24", "2025-11-22T08:30:00+24:00", false},
		{"offset without colon", "2025-11-22T08:30:00+0800", false},
		{"trailing newline", `2025-11-22T08:30:00Z\n`, false}, // JSON escape: the value ends in a newline
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := events.ValidateData(events.TypeReplicationStarted, []byte(started(tt.value)))
			if !tt.valid {
				de := decodeErr(t, err)
				if de.Field != "data.startedAt" {
					t.Errorf("Field = %q, want data.startedAt (error: %v)", de.Field, err)
				}
				if !strings.Contains(de.Reason, "date-time") {
					t.Errorf("Reason = %q, want it to name the date-time format", de.Reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("ValidateData: %v", err)
			}
			var d events.ReplicationStarted
			if err := json.Unmarshal([]byte(started(tt.value)), &d); err != nil {
				t.Errorf("the schema accepts %q but the Go payload cannot decode it: %v", tt.value, err)
			}
		})
	}
	// Every timestamp field of every schema is checked, not just startedAt.
	fields := []struct{ typ, data, field string }{
		{events.TypeReplicationStarted, strings.Replace(started("2025-11-22T08:30:00Z"), `"deadline":"2025-11-22T09:30:00Z"`, `"deadline":"soon"`, 1), "data.deadline"},
		{events.TypeReplicationSucceeded, `{"provider":"tencent","imageId":"img-1","sourceRegion":"ap-guangzhou","destinationRegion":"ap-beijing",` +
			`"destinationImageId":"img-2","finishedAt":"now","durationSeconds":1}`, "data.finishedAt"},
		{events.TypeReplicationSucceeded, `{"provider":"tencent","imageId":"img-1","sourceRegion":"ap-guangzhou","destinationRegion":"ap-beijing",` +
			`"destinationImageId":"img-2","startedAt":"then","finishedAt":"2025-11-22T08:30:00Z","durationSeconds":1}`, "data.startedAt"},
		{events.TypeReplicationFailed, `{"provider":"tencent","imageId":"img-1","sourceRegion":"ap-guangzhou","destinationRegion":"ap-beijing",` +
			`"code":"Timeout","message":"m","failedAt":"2025-13-01T00:00:00Z"}`, "data.failedAt"},
	}
	for _, f := range fields {
		err := events.ValidateData(f.typ, []byte(f.data))
		if de := decodeErr(t, err); de.Field != f.field {
			t.Errorf("%s: Field = %q, want %q (error: %v)", events.ShortName(f.typ), de.Field, f.field, err)
		}
	}
}

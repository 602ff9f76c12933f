package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"slices"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
)

// ErrMalformed is matched (with errors.Is) by every error that rejects outside input.
var ErrMalformed = errors.New("malformed event")

// DecodeError explains why an input is not a valid imagerelay event, naming the field.
type DecodeError struct {
	// Field is the attribute or data path at fault ("type", "data.destinationRegion").
	Field string
	// Reason says what is wrong with it.
	Reason string
}

// Error implements error.
func (e *DecodeError) Error() string {
	if e.Field == "" {
		return "malformed event: " + e.Reason
	}
	return fmt.Sprintf("malformed event: %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrMalformed) true.
func (e *DecodeError) Is(target error) bool { return target == ErrMalformed }

func malformed(field, format string, args ...any) error {
	return &DecodeError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// HeaderPrefix starts the header of every CloudEvent attribute in binary content mode.
const HeaderPrefix = "ce-"

// ToHeaders writes e in binary content mode: one ce-<attribute> header per attribute, the
// data content type as content-type. The data is the message payload.
func ToHeaders(e event.Event) map[string]string {
	h := map[string]string{
		"ce-specversion": e.SpecVersion(),
		"ce-id":          e.ID(),
		"ce-source":      e.Source(),
		"ce-type":        e.Type(),
	}
	if s := e.Subject(); s != "" {
		h["ce-subject"] = s
	}
	if !e.Time().IsZero() {
		h["ce-time"] = e.Time().UTC().Format(time.RFC3339Nano)
	}
	if s := e.DataSchema(); s != "" {
		h["ce-dataschema"] = s
	}
	if ct := e.DataContentType(); ct != "" {
		h["content-type"] = ct
	}
	for name := range e.Extensions() {
		h[HeaderPrefix+name] = StringExt(e, name)
	}
	return h
}

// FromBinary decodes a binary-mode message: get returns a header's value ("" if absent).
// The event is validated like [Decode].
func FromBinary(headerNames []string, get func(string) string, data []byte) (event.Event, error) {
	sv := get("ce-specversion")
	if sv == "" {
		return event.Event{}, malformed("specversion", "missing ce-specversion header (not a binary-mode CloudEvent)")
	}
	// sdk-go leaves the event without a context for an unknown version, and every setter
	// would then panic on the nil context.
	if !knownSpecVersion(sv) {
		return event.Event{}, malformed("specversion", "unsupported CloudEvents version %q", sv)
	}
	e := cloudevents.NewEvent(sv)
	e.SetID(get("ce-id"))
	e.SetSource(get("ce-source"))
	e.SetType(get("ce-type"))
	e.SetSubject(get("ce-subject"))
	e.SetDataSchema(get("ce-dataschema"))
	if t := get("ce-time"); t != "" {
		ts, err := time.Parse(time.RFC3339Nano, t)
		if err != nil {
			return event.Event{}, malformed("time", "not an RFC 3339 timestamp: %q", t)
		}
		e.SetTime(ts)
	}
	for _, name := range headerNames {
		lname := strings.ToLower(name)
		if !strings.HasPrefix(lname, HeaderPrefix) {
			continue
		}
		attr := strings.TrimPrefix(lname, HeaderPrefix)
		switch attr {
		case "specversion", "id", "source", "type", "subject", "dataschema", "time", "datacontenttype":
			continue
		}
		e.SetExtension(attr, get(name))
	}
	ct := get("content-type")
	if ct == "" {
		ct = get("ce-datacontenttype")
	}
	if ct != "" {
		e.SetDataContentType(ct)
	}
	if len(data) > 0 {
		e.DataEncoded = bytes.Clone(data)
	}
	return e, Check(e)
}

// Decode parses a structured-mode CloudEvent (application/cloudevents+json) and validates it.
func Decode(raw []byte) (event.Event, error) {
	var e event.Event
	if !json.Valid(raw) {
		return event.Event{}, malformed("", "not valid JSON")
	}
	// sdk-go reports a missing or unknown specversion as a bare parse error; name the field
	// so that the caller (and the dead-letter reason) can say what is wrong.
	var attrs map[string]json.RawMessage
	if err := json.Unmarshal(raw, &attrs); err != nil {
		return event.Event{}, malformed("", "not a JSON object")
	}
	sv, ok := attrs["specversion"]
	if !ok {
		return event.Event{}, malformed("specversion", "missing")
	}
	var svs string
	if err := json.Unmarshal(sv, &svs); err != nil || !knownSpecVersion(svs) {
		return event.Event{}, malformed("specversion", "unsupported CloudEvents version %s", sv)
	}
	// sdk-go parses data according to datacontenttype and fails with a parse error for a
	// foreign type; report the attribute instead.
	if ctRaw, ok := attrs["datacontenttype"]; ok {
		var ct string
		if err := json.Unmarshal(ctRaw, &ct); err != nil || !isJSON(ct) {
			return event.Event{}, malformed("datacontenttype", "must be %s, got %s", ContentTypeJSON, ctRaw)
		}
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return event.Event{}, malformed("", "not a CloudEvent: %v", err)
	}
	return e, Check(e)
}

// Check validates a decoded event: the CloudEvents attributes, an imagerelay type, the
// extensions every imagerelay event carries, and the data against the type's JSON Schema.
func Check(e event.Event) error {
	if err := e.Validate(); err != nil {
		field, reason := firstInvalid(err)
		return malformed(field, "%s", reason)
	}
	if !Known(e.Type()) {
		return malformed("type", "unknown event type %q (imagerelay types start with %q)", e.Type(), TypePrefix)
	}
	if ct := e.DataContentType(); ct != "" && !isJSON(ct) {
		return malformed("datacontenttype", "must be %s, got %q", ContentTypeJSON, ct)
	}
	if len(e.Data()) == 0 {
		return malformed("data", "missing")
	}
	return ValidateData(e.Type(), e.Data())
}

// DataAs decodes e's data into the payload struct of its type, after [Check].
func DataAs[T any](e event.Event) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(e.Data(), v); err != nil {
		return nil, malformed("data", "%v", err)
	}
	return v, nil
}

// attributeOrder ranks the CloudEvents attributes so that an event with several faults is
// always reported by the same, most fundamental one (sdk-go returns them in a map).
var attributeOrder = []string{"specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject", "time"}

// firstInvalid picks the field and reason to report from sdk-go's validation error.
func firstInvalid(err error) (field, reason string) {
	var ve event.ValidationError
	if !errors.As(err, &ve) || len(ve) == 0 {
		return "", strings.TrimSpace(err.Error())
	}
	keys := make([]string, 0, len(ve))
	for k := range ve {
		keys = append(keys, k)
	}
	rank := func(k string) int {
		if i := slices.Index(attributeOrder, k); i >= 0 {
			return i
		}
		return len(attributeOrder)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return keys[0], ve[keys[0]].Error()
}

func knownSpecVersion(v string) bool {
	return v == event.CloudEventsVersionV1 || v == event.CloudEventsVersionV03
}

// isJSON reports whether a datacontenttype is application/json, parameters (charset) allowed.
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == ContentTypeJSON
}

package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/big"
	"mime"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

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

// FromHeader decodes a binary-mode message whose headers are a map of names to values, as
// NATS headers are (names are matched exactly, as NATS does). See [FromBinary].
func FromHeader(h map[string][]string, data []byte) (event.Event, error) {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	get := func(k string) string {
		if v := h[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	return FromBinary(names, get, data)
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
	// sdk-go refuses some hostile values (a source with a line break) with a bare parse
	// error; check every string attribute first so the error names it.
	for _, name := range slices.Sorted(maps.Keys(attrs)) {
		var v string
		if name == "data" || name == "data_base64" || json.Unmarshal(attrs[name], &v) != nil {
			continue
		}
		limit := MaxAttributeLength
		if name == "id" || name == ExtImageID {
			limit = MaxIDLength
		}
		if err := checkText(name, v, limit); err != nil {
			return event.Event{}, err
		}
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return event.Event{}, malformed("", "not a CloudEvent: %v", err)
	}
	trimAttributes(&e)
	return e, Check(e)
}

// trimAttributes strips surrounding white space from the string attributes, as sdk-go's
// setters (and so [FromBinary], and NATS headers on the wire) do but its JSON decoding does
// not. Without it one event would have two ids, " x" structured and "x" in binary mode, and
// the ids derived from it would differ with the transport.
func trimAttributes(e *event.Event) {
	if v := e.ID(); strings.TrimSpace(v) != v {
		e.SetID(v)
	}
	if v := e.Type(); strings.TrimSpace(v) != v {
		e.SetType(v)
	}
	if v := e.Subject(); strings.TrimSpace(v) != v {
		e.SetSubject(v)
	}
	if v := e.DataSchema(); strings.TrimSpace(v) != v {
		e.SetDataSchema(v)
	}
}

// Check validates a decoded event: the CloudEvents attributes (extension names included), an
// imagerelay type, a JSON data content type, and the data against the type's JSON Schema and
// its Go payload, so that [DataAs] reads every event Check accepts.
func Check(e event.Event) error {
	if err := e.Validate(); err != nil {
		field, reason := firstInvalid(err)
		return malformed(field, "%s", reason)
	}
	if !Known(e.Type()) {
		return malformed("type", "unknown event type %q (imagerelay types start with %q)", e.Type(), TypePrefix)
	}
	if err := checkAttributes(e); err != nil {
		return err
	}
	if ct := e.DataContentType(); ct != "" && !isJSON(ct) {
		return malformed("datacontenttype", "must be %s, got %q", ContentTypeJSON, ct)
	}
	if len(e.Data()) == 0 {
		return malformed("data", "missing")
	}
	if err := ValidateData(e.Type(), e.Data()); err != nil {
		return err
	}
	// The schema cannot say everything the Go payload needs (a number beyond the range of
	// an int or a float64); decoding here makes every event Check accepts one that DataAs
	// can read, so a consumer never fails on an event the boundary let through.
	return decodeData(e.Data(), registry[e.Type()].newData())
}

// DataAs decodes e's data into the payload struct of its type, after [Check]. A whole number
// written with a fraction or an exponent (45.0, 4.5e1) decodes into an integer field, as the
// JSON Schema type "integer" accepts it.
func DataAs[T any](e event.Event) (*T, error) {
	v := new(T)
	if err := decodeData(e.Data(), v); err != nil {
		return nil, err
	}
	return v, nil
}

// decodeData unmarshals event data into v; the error names the field as "data.<path>".
func decodeData(data []byte, v any) error {
	err := json.Unmarshal(wholeNumbers(data), v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return malformed(dataField(te.Field), "%s does not fit a Go %s", te.Value, te.Type)
	}
	return malformed("data", "%v", err)
}

// dataField turns encoding/json's field path ("Replication.Image.sizeGB") into the JSON
// path the schema errors use ("data.sizeGB"): segments naming an embedded Go struct go, as
// every JSON name of the payloads starts in lower case. encoding/json does not report array
// indices, so an element of a list is named by the list.
func dataField(goPath string) string {
	field := "data"
	for seg := range strings.SplitSeq(goPath, ".") {
		if seg == "" || unicode.IsUpper(rune(seg[0])) {
			continue
		}
		field += "." + seg
	}
	return field
}

// wholeNumbers rewrites the whole numbers in valid JSON that are written with a fraction or
// an exponent (45.0, 4.5e1, 1E2) as plain integers and leaves every other byte as it is.
// JSON Schema counts such a number as an integer, encoding/json refuses it for an int field.
// Numbers outside the int64 range are left alone: no Go integer field could hold them.
func wholeNumbers(data []byte) []byte {
	if !bytes.ContainsAny(data, ".eE") || !json.Valid(data) {
		return data
	}
	var out []byte // nil until the first rewrite
	last := 0
	inString, escaped := false, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '-' || '0' <= c && c <= '9':
			// Outside strings, valid JSON has digits only in numbers; take the whole literal.
			j := i + 1
			for j < len(data) && strings.IndexByte("0123456789+-.eE", data[j]) >= 0 {
				j++
			}
			if n, ok := wholeNumber(string(data[i:j])); ok {
				out = append(append(out, data[last:i]...), n...)
				last = j
			}
			i = j - 1
		}
	}
	if out == nil {
		return data
	}
	return append(out, data[last:]...)
}

// wholeNumber returns a JSON number literal written with a fraction or an exponent as a plain
// integer, if it is a whole number within the int64 range.
func wholeNumber(lit string) (string, bool) {
	if !strings.ContainsAny(lit, ".eE") {
		return "", false
	}
	// The float parse is a cheap filter (any exponent, no allocation); the exact rational
	// below decides, since 45.0000000000000000001 is 45 as a float64 but not whole.
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<63 {
		return "", false
	}
	r, ok := new(big.Rat).SetString(lit)
	if !ok || !r.IsInt() || !r.Num().IsInt64() {
		return "", false
	}
	return r.Num().String(), true
}

// Limits on attribute values. An id, a region or an image id longer than this is not one
// any producer or provider makes, and every attribute travels in a NATS header.
const (
	// MaxIDLength bounds the id attribute and the imageid extension.
	MaxIDLength = 256
	// MaxAttributeLength bounds every other attribute and extension value.
	MaxAttributeLength = 1024
	// MaxDataSize bounds an event's data. Real payloads are a few KiB; the bound keeps
	// every accepted event well below the NATS message limit (1 MiB by default), so that
	// what a function emits or dead-letters about it, with headers added, still fits.
	MaxDataSize = 256 << 10
)

var (
	// regionToken is a region id as the schemas define it.
	regionToken = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)
	// providerToken is a provider name: alibaba, tencent, huawei (ecd on desktop events).
	providerToken = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	// idToken is an id as the schemas define it: printable ASCII without spaces or the NATS
	// wildcards * and >.
	idToken = regexp.MustCompile(`^[!-)+-=?-~]+$`)
)

// checkAttributes rejects attribute values that sdk-go accepts but that must not travel
// further: control characters (a CR LF would split a header line when the event is
// re-published in binary mode), Unicode format characters (bidi overrides and zero-width
// characters make two ids look alike in logs and the console), invalid UTF-8, oversized
// values, and extensions that name a provider, region or image in a shape no provider uses.
// The error names the attribute.
func checkAttributes(e event.Event) error {
	attrs := []struct{ name, value string }{
		{"id", e.ID()}, {"source", e.Source()}, {"type", e.Type()}, {"subject", e.Subject()}, {"dataschema", e.DataSchema()},
	}
	names := make([]string, 0, len(e.Extensions()))
	for name := range e.Extensions() {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		attrs = append(attrs, struct{ name, value string }{name, StringExt(e, name)})
	}
	for _, a := range attrs {
		limit := MaxAttributeLength
		if a.name == "id" || a.name == ExtImageID {
			limit = MaxIDLength
		}
		if err := checkText(a.name, a.value, limit); err != nil {
			return err
		}
	}
	if v := StringExt(e, ExtProvider); v != "" && !providerToken.MatchString(v) {
		return malformed(ExtProvider, "%q is not a provider name (alibaba, tencent, huawei)", v)
	}
	if v := StringExt(e, ExtRegion); v != "" && !regionToken.MatchString(v) {
		return malformed(ExtRegion, "%q is not a region id (lower-case letters, digits and hyphens, e.g. cn-shanghai)", v)
	}
	if v := StringExt(e, ExtImageID); v != "" && !idToken.MatchString(v) {
		return malformed(ExtImageID, "%q is not an image id (printable ASCII without spaces, * or >)", v)
	}
	if n := len(e.Data()); n > MaxDataSize {
		return malformed("data", "%d bytes, more than the %d an imagerelay event may carry", n, MaxDataSize)
	}
	return nil
}

// checkText rejects a value with invalid UTF-8, control or format characters, or more than
// limit bytes.
func checkText(field, v string, limit int) error {
	if len(v) > limit {
		return malformed(field, "%d bytes long, more than %d", len(v), limit)
	}
	if !utf8.ValidString(v) {
		return malformed(field, "not valid UTF-8")
	}
	for i, r := range v {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return malformed(field, "contains the control or format character %U at byte %d", r, i)
		}
	}
	return nil
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

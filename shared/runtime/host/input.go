package host

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
)

// ErrUndecodable is matched by the reason an input could not become an imagerelay event; such
// an input is dead-lettered, never retried.
var ErrUndecodable = errors.New("runtime: input is not an imagerelay event")

// Input is one event delivered by a serverless trigger, or the reason it could not be read.
type Input struct {
	// Event is the decoded, validated event; zero when Err is set.
	Event event.Event
	// Err says why Raw is not an event; the input is then dead-lettered with this reason.
	Err error
	// Raw is the payload as delivered, kept for the dead letter of an undecodable input.
	Raw []byte
	// Origin says where the input came from (e.g. "aws:sqs:<queue arn>"); it becomes the
	// dead letter's origin header.
	Origin string
	// Deliveries is how often the platform has delivered it, 1 the first time.
	Deliveries uint64
}

// Fallback supplies the attributes of the image.published event built around a bare payload
// (an EventBridge detail, a Function Compute RawData delivery, a foreign CloudEvent's data).
// ID must be stable across redeliveries (the platform's event or message id), so that the
// events derived from it keep their ids and JetStream drops repeats.
type Fallback struct {
	ID     string
	Source string
	Time   time.Time
}

// DefaultSource is the CloudEvent source of an image.published event wrapped around a bare
// payload that names no source of its own.
const DefaultSource = "/imagerelay/runtime"

// Decode turns one delivered JSON value into an Input:
//   - a structured CloudEvent of an imagerelay type is decoded and validated as it is;
//   - a CloudEvent of another type (say, one that Alibaba Cloud EventBridge built around a
//     custom event) has its data taken as an image.published payload, keeping its id, source
//     and time;
//   - any other JSON object is taken as an image.published payload with fb's attributes.
//
// Whatever cannot be read so has Err set (matching ErrUndecodable) and is dead-lettered.
func Decode(raw []byte, fb Fallback, origin string) Input {
	in := Input{Raw: raw, Origin: origin, Deliveries: 1}
	raw = bytes.TrimSpace(raw)
	var attrs map[string]json.RawMessage
	if err := json.Unmarshal(raw, &attrs); err != nil || attrs == nil {
		in.Err = fmt.Errorf("%w: not a JSON object", ErrUndecodable)
		return in
	}
	if _, ok := attrs["specversion"]; !ok {
		in.Event, in.Err = Wrap(raw, fb)
		return in
	}
	typ := jsonString(attrs["type"])
	if events.Known(typ) || strings.HasPrefix(typ, events.TypePrefix) {
		ev, err := events.Decode(raw)
		if err != nil {
			in.Err = fmt.Errorf("%w: %w", ErrUndecodable, err)
			return in
		}
		in.Event = ev
		return in
	}
	// A foreign CloudEvent: its data is the payload.
	data, ok := attrs["data"]
	if !ok {
		in.Err = fmt.Errorf("%w: CloudEvent of type %q has no data to read an image.published payload from", ErrUndecodable, typ)
		return in
	}
	if s, isString := unquote(data); isString {
		data = json.RawMessage(s) // some producers send the JSON payload as a string
	}
	ce := Fallback{ID: jsonString(attrs["id"]), Source: jsonString(attrs["source"]), Time: fb.Time}
	if t, err := time.Parse(time.RFC3339Nano, jsonString(attrs["time"])); err == nil {
		ce.Time = t
	}
	if ce.ID == "" {
		ce.ID = fb.ID
	}
	if ce.Source == "" {
		ce.Source = fb.Source
	}
	in.Event, in.Err = Wrap(data, ce)
	return in
}

// Wrap builds the image.published event whose data is payload, with fb's id, source and
// time. The payload is validated against the image.published schema.
func Wrap(payload []byte, fb Fallback) (event.Event, error) {
	if fb.ID == "" {
		return event.Event{}, fmt.Errorf("%w: a bare payload needs an event id from its envelope, and none was given", ErrUndecodable)
	}
	var img events.ImagePublished
	if err := json.Unmarshal(payload, &img); err != nil {
		return event.Event{}, fmt.Errorf("%w: not an image.published payload: %w", ErrUndecodable, err)
	}
	if img.ImageID == "" || img.Provider == "" {
		return event.Event{}, fmt.Errorf("%w: neither a CloudEvent nor an image.published payload (provider and imageId are required)", ErrUndecodable)
	}
	source := fb.Source
	if source == "" {
		source = DefaultSource
	}
	ev, err := events.New(events.TypeImagePublished, json.RawMessage(payload), events.Meta{
		ID: fb.ID, Source: source, Provider: img.Provider, Region: img.SourceRegion, ImageID: img.ImageID, Time: fb.Time,
	})
	if err != nil {
		return event.Event{}, fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	return ev, nil
}

// jsonString returns a JSON string's value, or "" for anything else.
func jsonString(raw json.RawMessage) string {
	s, _ := unquote(raw)
	return s
}

// unquote decodes raw if it is a JSON string.
func unquote(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// Unquote returns the JSON document inside raw when raw is a JSON string (a double-encoded
// event, as Function Compute's streaming EventBridge sources deliver them), else raw.
func Unquote(raw json.RawMessage) []byte {
	if s, ok := unquote(raw); ok {
		return []byte(s)
	}
	return raw
}

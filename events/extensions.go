package events

import (
	"fmt"
	"strconv"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// Extension attribute names (lower-case ASCII, as CloudEvents requires).
const (
	ExtProvider      = "provider"
	ExtRegion        = "region"
	ExtImageID       = "imageid"
	ExtCorrelationID = "correlationid"
	ExtCausationID   = "causationid"
	ExtTraceParent   = "traceparent"
	ExtTraceState    = "tracestate"
)

// ContentTypeJSON is the datacontenttype of every imagerelay event.
const ContentTypeJSON = "application/json"

// Meta carries the attributes of a new event that are not its data.
type Meta struct {
	// ID is the event id; leave empty to derive it from the cause.
	ID string
	// Source names the emitting function, e.g. "/imagerelay/replicate".
	Source string
	// Provider, Region and ImageID fill the extensions and the subject. Region is the
	// destination where there is one, else the source region.
	Provider, Region, ImageID string
	// CorrelationID is the id of the image.published event that started it all.
	CorrelationID string
	// CausationID is the id of the direct cause.
	CausationID string
	// TraceParent and TraceState are W3C trace context.
	TraceParent, TraceState string
	// Time of the occurrence; zero means now.
	Time time.Time
}

// SourceOf returns the source URI reference of an imagerelay function.
func SourceOf(function string) string { return "/imagerelay/" + function }

// New builds and validates an event of type typ with data and meta.
func New(typ string, data any, m Meta) (event.Event, error) {
	if !Known(typ) {
		return event.Event{}, fmt.Errorf("events: unknown type %q", typ)
	}
	e := cloudevents.NewEvent()
	e.SetID(m.ID)
	e.SetSource(m.Source)
	e.SetType(typ)
	e.SetSubject(CloudEventSubject(m.Provider, m.Region, m.ImageID))
	e.SetDataSchema(SchemaURI(typ))
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	e.SetTime(m.Time.UTC())
	setExt(&e, ExtProvider, m.Provider)
	setExt(&e, ExtRegion, m.Region)
	setExt(&e, ExtImageID, m.ImageID)
	setExt(&e, ExtCorrelationID, m.CorrelationID)
	setExt(&e, ExtCausationID, m.CausationID)
	setExt(&e, ExtTraceParent, m.TraceParent)
	setExt(&e, ExtTraceState, m.TraceState)
	if err := e.SetData(ContentTypeJSON, data); err != nil {
		return event.Event{}, fmt.Errorf("events: encode %s data: %w", typ, err)
	}
	if err := e.Validate(); err != nil {
		return event.Event{}, fmt.Errorf("events: invalid %s event: %w", typ, err)
	}
	if err := ValidateData(typ, e.Data()); err != nil {
		return event.Event{}, err
	}
	return e, nil
}

// Derive builds an event caused by cause: the id is derived from the cause's identity
// (source and id), typ and parts; correlation and trace context are carried over; causationid
// is the cause's id.
func Derive(cause event.Event, function, typ string, data any, provider, region, imageID string, parts ...string) (event.Event, error) {
	return New(typ, data, Meta{
		ID:       DeriveID(Identity(cause), typ, parts...),
		Source:   SourceOf(function),
		Provider: provider,
		Region:   region,
		ImageID:  imageID,
	}.CausedBy(cause))
}

// CausedBy returns m as the metadata of an event caused by cause: causationid is the cause's
// id, the W3C trace context is carried over, and correlationid is the cause's unless m
// already names one (a completion keeps its plan's). Every event a core emits goes through
// it, so a trace follows an image from publish to rebuild.
func (m Meta) CausedBy(cause event.Event) Meta {
	if m.CorrelationID == "" {
		m.CorrelationID = CorrelationID(cause)
	}
	m.CausationID = cause.ID()
	m.TraceParent = StringExt(cause, ExtTraceParent)
	m.TraceState = StringExt(cause, ExtTraceState)
	return m
}

// Identity is an event's identity as CloudEvents defines it, (source, id), in one string that
// no other pair maps to (the source is length-prefixed). Two producers may both send id "42":
// they are two events, and everything imagerelay derives from them stays apart.
func Identity(e event.Event) string {
	return strconv.Itoa(len(e.Source())) + ":" + e.Source() + e.ID()
}

// CorrelationID returns e's correlationid, or e's own id when it is the first of its chain.
func CorrelationID(e event.Event) string {
	if c := StringExt(e, ExtCorrelationID); c != "" {
		return c
	}
	return e.ID()
}

// StringExt returns a string extension of e, or "" when it is absent.
func StringExt(e event.Event, name string) string {
	v, ok := e.Extensions()[name]
	if !ok {
		return ""
	}
	s, err := types.ToString(v) // extensions read from headers may not be Go strings
	if err != nil {
		return fmt.Sprint(v)
	}
	return s
}

func setExt(e *event.Event, name, value string) {
	if value != "" {
		e.SetExtension(name, value)
	}
}

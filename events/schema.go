package events

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

//go:embed schemas/*.json
var schemaFS embed.FS

var (
	schemasOnce sync.Once
	schemas     map[string]*jsonschema.Schema
	schemasErr  error
)

// SchemaFile returns the repository path of a type's JSON Schema, e.g.
// "schemas/replication.started.v1.json".
func SchemaFile(typ string) string {
	return "schemas/" + ShortName(typ) + "." + SchemaVersion + ".json"
}

// SchemaJSON returns the raw JSON Schema document of an event type.
func SchemaJSON(typ string) ([]byte, error) { return schemaFS.ReadFile(SchemaFile(typ)) }

func compileSchemas() {
	c := jsonschema.NewCompiler()
	// Draft 2020-12 treats "format" as an annotation only; assert it, so that a timestamp such
	// as "startedAt":"yesterday" is rejected at the boundary, with its field named, instead of
	// failing later in a consumer's DataAs.
	c.AssertFormat()
	c.RegisterFormat(&jsonschema.Format{Name: "date-time", Validate: validateDateTime})
	schemas = map[string]*jsonschema.Schema{}
	for typ := range registry {
		raw, err := SchemaJSON(typ)
		if err != nil {
			schemasErr = fmt.Errorf("events: schema for %s: %w", typ, err)
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			schemasErr = fmt.Errorf("events: schema %s: %w", SchemaFile(typ), err)
			return
		}
		if err := c.AddResource(SchemaURI(typ), doc); err != nil {
			schemasErr = fmt.Errorf("events: schema %s: %w", SchemaFile(typ), err)
			return
		}
	}
	for typ := range registry {
		s, err := c.Compile(SchemaURI(typ))
		if err != nil {
			schemasErr = fmt.Errorf("events: compile schema %s: %w", SchemaFile(typ), err)
			return
		}
		schemas[typ] = s
	}
}

// rfc3339 is the shape of an RFC 3339 date-time, upper-case T and Z only.
var rfc3339 = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`)

// validateDateTime is the "date-time" format: an RFC 3339 timestamp that Go's time.Time also
// decodes. It replaces the library's check, which accepts what DataAs cannot read (a leap
// second, a lower-case t or z). The Go parse alone is not enough either: time.Parse is
// lenient (a comma before the fraction, a one-digit hour), hence the shape check first.
func validateDateTime(v any) error {
	s, ok := v.(string)
	if !ok {
		return nil // Not a string: the "type" keyword reports it.
	}
	if !rfc3339.MatchString(s) {
		return errors.New("not an RFC 3339 timestamp such as 2025-11-22T08:30:00Z")
	}
	var t time.Time
	if err := t.UnmarshalText([]byte(s)); err != nil {
		return errors.New("a date or time part is out of range (leap seconds are not supported)")
	}
	return nil
}

// ValidateData checks an event's data against the JSON Schema of its type; the error names the
// first failing field as "data.<path>".
func ValidateData(typ string, data []byte) error {
	schemasOnce.Do(compileSchemas)
	if schemasErr != nil {
		return schemasErr
	}
	s, ok := schemas[typ]
	if !ok {
		return malformed("type", "unknown event type %q", typ)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return malformed("data", "not valid JSON: %v", err)
	}
	if err := s.Validate(v); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			leaf := deepest(ve)
			path := slices.Clone(leaf.InstanceLocation)
			// A missing property fails on its parent object; name the property itself.
			if req, ok := leaf.ErrorKind.(*kind.Required); ok && len(req.Missing) > 0 {
				path = append(path, req.Missing[0])
			}
			field := "data"
			if len(path) > 0 {
				field += "." + strings.Join(path, ".")
			}
			return malformed(field, "%s", leaf.ErrorKind.LocalizedString(printer))
		}
		return malformed("data", "%v", err)
	}
	return nil
}

// printer renders the schema library's messages without their location prefix, which the
// field name already carries.
var printer = message.NewPrinter(language.English)

// deepest follows the cause chain down to the most specific failure. The library checks
// properties in map order, so among siblings it takes the one earliest in the instance to
// report the same field for the same input every time.
func deepest(ve *jsonschema.ValidationError) *jsonschema.ValidationError {
	for len(ve.Causes) > 0 {
		ve = slices.MinFunc(ve.Causes, func(a, b *jsonschema.ValidationError) int {
			return slices.Compare(a.InstanceLocation, b.InstanceLocation)
		})
	}
	return ve
}

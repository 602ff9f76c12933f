package events

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
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
			field := "data"
			if len(leaf.InstanceLocation) > 0 {
				field += "." + strings.Join(leaf.InstanceLocation, ".")
			}
			return malformed(field, "%s", leafMessage(leaf))
		}
		return malformed("data", "%v", err)
	}
	return nil
}

// deepest follows the first cause chain down to the most specific failure.
func deepest(ve *jsonschema.ValidationError) *jsonschema.ValidationError {
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	return ve
}

func leafMessage(ve *jsonschema.ValidationError) string {
	msg := ve.Error()
	// The library prefixes its output with the instance location and schema URL; keep the
	// sentence a person needs.
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.HasPrefix(msg, "jsonschema") {
		return strings.TrimSpace(msg[i+2:])
	}
	return strings.TrimSpace(msg)
}

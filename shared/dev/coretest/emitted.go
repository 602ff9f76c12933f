package coretest

import (
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/core/fn"
)

// Emitted checks every event a function's result emits against the contract and against
// the function's source, and groups the events by type.
func Emitted(t testing.TB, function string, res fn.Result) map[string][]event.Event {
	t.Helper()
	out := map[string][]event.Event{}
	for _, e := range res.Emit {
		if err := events.Check(e); err != nil {
			t.Fatalf("emitted %s %s fails events.Check: %v", e.Type(), e.ID(), err)
		}
		if e.Source() != events.SourceOf(function) {
			t.Errorf("emitted source %q, want %q", e.Source(), events.SourceOf(function))
		}
		out[e.Type()] = append(out[e.Type()], e)
	}
	return out
}

package testenv

import (
	"strings"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/imagerelay/imagerelay/events"
)

// Recorder collects every event and dead letter published on the bus, as a subscriber would
// see them.
type Recorder struct {
	mu      sync.Mutex
	Events  []event.Event
	Dead    []*nats.Msg
	Invalid []error
}

// Record subscribes to every imagerelay subject until the test ends. Events that fail to
// decode or validate are kept in Invalid, so a test can assert there are none.
func (e *Env) Record(t testing.TB) *Recorder {
	t.Helper()
	r := &Recorder{}
	sub, err := e.Conn.Subscribe(events.SubjectPrefix+">", func(m *nats.Msg) {
		r.mu.Lock()
		defer r.mu.Unlock()
		switch {
		case strings.HasPrefix(m.Subject, events.DeadLetterPrefix):
			r.Dead = append(r.Dead, m)
		case strings.HasPrefix(m.Subject, events.SubjectPrefix+"defer."):
		default:
			ev, err := events.FromHeader(m.Header, m.Data)
			if err != nil {
				r.Invalid = append(r.Invalid, err)
				return
			}
			r.Events = append(r.Events, ev)
		}
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if err := e.Conn.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return r
}

// OfType returns the recorded events of one type, without duplicates by id.
func (r *Recorder) OfType(typ string) []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var out []event.Event
	for _, e := range r.Events {
		if e.Type() == typ && !seen[e.ID()] {
			seen[e.ID()] = true
			out = append(out, e)
		}
	}
	return out
}

// All returns a copy of every recorded event.
func (r *Recorder) All() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.Events...)
}

// DeadLetters returns the recorded dead letters.
func (r *Recorder) DeadLetters() []*nats.Msg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*nats.Msg(nil), r.Dead...)
}

// InvalidEvents returns decode/validation errors of recorded messages.
func (r *Recorder) InvalidEvents() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.Invalid...)
}

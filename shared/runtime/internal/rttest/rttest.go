// Package rttest holds what the runtime tests share: events to feed, a scripted core whose
// outcome each test chooses, and a host on an embedded JetStream. Only tests import it.
package rttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/core/fn"
	"github.com/imagerelay/imagerelay/shared/dev/testenv"
	"github.com/imagerelay/imagerelay/shared/runtime/host"
)

// Function is the name the scripted core runs under.
const Function = "fanout"

// Image returns an image.published payload; the image id picks the scripted core's outcome
// (see Core).
func Image(imageID string) events.ImagePublished {
	return events.ImagePublished{Image: events.Image{Provider: events.ProviderTencent, ImageID: imageID,
		SourceRegion: "ap-guangzhou", ImageName: "web"}, SizeGB: 20}
}

// Published returns an image.published event with id.
func Published(t testing.TB, id, imageID string) event.Event {
	t.Helper()
	e, err := events.New(events.TypeImagePublished, Image(imageID), events.Meta{ID: id, Source: "/test",
		Provider: events.ProviderTencent, Region: "ap-guangzhou", ImageID: imageID})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// JSON returns e in structured mode.
func JSON(t testing.TB, e event.Event) []byte {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// PayloadJSON returns the image.published payload of imageID as JSON.
func PayloadJSON(t testing.TB, imageID string) []byte {
	t.Helper()
	b, err := json.Marshal(Image(imageID))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Core is a scripted fanout core: the image id's prefix says what it does.
//   - "img-retry…": Retry
//   - "img-defer…": Defer for 50ms
//   - "img-reject…": Reject
//   - "img-slow…": waits 100ms, then like any other
//   - anything else: Done, emitting one replication.planned
type Core struct {
	Calls     atomic.Int64
	InFlight  atomic.Int64
	MaxFlight atomic.Int64
}

// ErrScripted is the reason the scripted core gives.
var ErrScripted = errors.New("scripted outcome")

// Handle implements fn.Handler.
func (c *Core) Handle(ctx context.Context, e event.Event) fn.Result {
	c.Calls.Add(1)
	n := c.InFlight.Add(1)
	defer c.InFlight.Add(-1)
	for {
		m := c.MaxFlight.Load()
		if n <= m || c.MaxFlight.CompareAndSwap(m, n) {
			break
		}
	}
	img, err := events.DataAs[events.ImagePublished](e)
	if err != nil {
		return fn.Reject(err)
	}
	switch {
	case strings.HasPrefix(img.ImageID, "img-retry"):
		return fn.Retry(time.Second, fmt.Errorf("%w: retry %s", ErrScripted, img.ImageID))
	case strings.HasPrefix(img.ImageID, "img-defer"):
		return fn.Defer(50 * time.Millisecond)
	case strings.HasPrefix(img.ImageID, "img-reject"):
		return fn.Reject(fmt.Errorf("%w: reject %s", ErrScripted, img.ImageID))
	case strings.HasPrefix(img.ImageID, "img-slow"):
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	planned, err := events.Derive(e, Function, events.TypeReplicationPlanned,
		events.ReplicationPlanned{Image: img.Image, Regions: []string{"ap-singapore"}}, img.Provider, img.SourceRegion, img.ImageID)
	if err != nil {
		return fn.Reject(err)
	}
	return fn.Done(planned)
}

// Env is an embedded JetStream with the scripted core set up as a host.
type Env struct {
	*testenv.Env
	Core *Core
	Rec  *testenv.Recorder
	Host *host.Host
	Spec bus.Spec
}

// Start starts an environment for one test.
func Start(t testing.TB) *Env {
	t.Helper()
	env := testenv.Start(t)
	core := &Core{}
	spec := bus.Spec{Function: Function, Types: []string{events.TypeImagePublished}, Handler: core, Concurrency: 4}
	e := &Env{Env: env, Core: core, Rec: env.Record(t), Spec: spec}
	e.Host = host.New(Function, func(context.Context) (*host.Session, error) {
		return &host.Session{Function: Function, Bus: env.Bus, Spec: spec, Conn: env.Conn}, nil
	}, testenv.Logger(t))
	return e
}

// Planned returns the ids of the replication.planned events whose cause is causeID.
func (e *Env) Planned(causeID string) []event.Event {
	var out []event.Event
	for _, ev := range e.Rec.OfType(events.TypeReplicationPlanned) {
		if events.StringExt(ev, events.ExtCausationID) == causeID {
			out = append(out, ev)
		}
	}
	return out
}

// WaitPlanned waits until causeID's replication.planned event is on the bus.
func (e *Env) WaitPlanned(t testing.TB, causeID string) event.Event {
	t.Helper()
	var got event.Event
	testenv.Eventually(t, 5*time.Second, func() error {
		p := e.Planned(causeID)
		if len(p) == 0 {
			return fmt.Errorf("no replication.planned caused by %s", causeID)
		}
		got = p[0]
		return nil
	})
	return got
}

// WaitDead waits until n dead letters are recorded and returns them.
func (e *Env) WaitDead(t testing.TB, n int) []DeadLetter {
	t.Helper()
	var out []DeadLetter
	testenv.Eventually(t, 5*time.Second, func() error {
		msgs := e.Rec.DeadLetters()
		if len(msgs) < n {
			return fmt.Errorf("%d dead letters, want %d", len(msgs), n)
		}
		out = out[:0]
		for _, m := range msgs {
			out = append(out, DeadLetter{Subject: m.Subject, Reason: m.Header.Get(bus.HeaderDeadLetterReason),
				Origin: m.Header.Get(bus.HeaderDeadLetterSubject), EventID: m.Header.Get("ce-id"), Data: m.Data})
		}
		return nil
	})
	return out
}

// DeadLetter is one recorded dead letter.
type DeadLetter struct {
	Subject, Reason, Origin, EventID string
	Data                             []byte
}

// Deferred counts the messages on the function's defer subjects in the stream.
func (e *Env) Deferred(t testing.TB) uint64 {
	t.Helper()
	return testenv.SubjectCount(t, e.Bus, bus.DeferPrefix+Function+".>")
}

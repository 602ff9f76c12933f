// Package e2e_test runs the whole pipeline end to end on real parts: an embedded nats-server
// with JetStream file storage, the function cores on the NATS worker runtime, the official
// cloud SDKs, and the cloud emulators over HTTP on loopback.
package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/poller"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/compose"
	"github.com/imagerelay/imagerelay/shared/compose/catalog"
	"github.com/imagerelay/imagerelay/shared/config"
	"github.com/imagerelay/imagerelay/shared/dev/emulators"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
	"github.com/imagerelay/imagerelay/shared/dev/testenv"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// stack is a running pipeline for one test.
type stack struct {
	env  *testenv.Env
	emus *emulators.Set
	rt   *catalog.Runtime
	rec  *testenv.Recorder
	cfg  *config.Config
}

// stackOptions shape one test's pipeline.
type stackOptions struct {
	Policies []config.ReplicationPolicy
	Rebuilds []config.RebuildPolicy
	// Env overrides credentials (t.Setenv, so these tests do not run in parallel).
	Env map[string]string
	// SweepEvery, when set, makes the poller sweep that often, with a grace of the same length.
	SweepEvery time.Duration
}

// startStack starts emulators seeded by seed, and every function with the options' policies.
func startStack(t *testing.T, seed emulators.Seed, o stackOptions) *stack {
	t.Helper()
	for k, v := range emulators.DemoEnv() {
		t.Setenv(k, v)
	}
	for k, v := range o.Env {
		t.Setenv(k, v)
	}
	emus, cfg, bc := startEmulators(t, seed)
	cfg.Replication.Policies = o.Policies
	cfg.Rebuild.Policies = o.Rebuilds
	env2 := testenv.Start(t, testenv.Options{Bus: &bc})
	rt := &catalog.Runtime{Config: cfg, Bus: env2.Bus, Store: env2.Store, Providers: catalog.BuildProviders(cfg), Log: testenv.Logger(t)}
	for name, err := range rt.Providers.Unavailable {
		t.Fatalf("provider %s unavailable: %v", name, err)
	}
	if rt.Providers.DesktopsErr != nil {
		t.Fatalf("desktop client: %v", rt.Providers.DesktopsErr)
	}
	s := &stack{env: env2, emus: emus, rt: rt, rec: env2.Record(t), cfg: cfg}
	for _, name := range catalog.FunctionNames {
		spec, err := rt.Spec(name)
		if err != nil {
			t.Fatal(err)
		}
		if core, ok := spec.Handler.(*poller.Core); ok && o.SweepEvery > 0 {
			spec.SweepEvery, core.SweepGrace = o.SweepEvery, o.SweepEvery
		}
		env2.Run(t, spec)
	}
	return s
}

// startEmulators starts emulators seeded by seed and returns them with a configuration that
// points every provider at them, and the bus configuration of a test stack.
func startEmulators(t *testing.T, seed emulators.Seed) (*emulators.Set, *config.Config, bus.Config) {
	t.Helper()
	emus, err := emulators.Start(seed, emulators.Addrs{Tencent: "127.0.0.1:0", Alibaba: "127.0.0.1:0", Huawei: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emus.Close)
	cfg := config.Defaults()
	cfg.Providers.Tencent.Endpoint = emus.Addrs.Tencent
	cfg.Providers.Alibaba.Endpoint, cfg.Providers.Alibaba.EcdEndpoint = emus.Addrs.Alibaba, emus.Addrs.Alibaba
	cfg.Providers.Huawei.Endpoint = "http://" + emus.Addrs.Huawei
	cfg.Providers.Huawei.Agency = "ims_admin_agency"
	cfg.Providers.Huawei.Projects = seed.Huawei.Projects
	cfg.Replication.PollInterval = config.Duration(time.Second)
	cfg.Replication.Timeout = config.Duration(time.Minute)
	bc := compose.BusConfig(cfg)
	bc.AckWait = 5 * time.Second
	bc.Backoff = []time.Duration{200 * time.Millisecond, time.Second}
	return emus, cfg, bc
}

// publish publishes one image.published event and returns its id.
func (s *stack) publish(t *testing.T, img events.ImagePublished) string {
	t.Helper()
	e, err := events.New(events.TypeImagePublished, img, events.Meta{
		ID: fmt.Sprintf("pub-%s-%d", img.ImageID, time.Now().UnixNano()), Source: "/e2e",
		Provider: img.Provider, Region: img.SourceRegion, ImageID: img.ImageID})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.env.Bus.Publish(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	return e.ID()
}

// waitSettled waits until n replication records exist and all have settled.
func (s *stack) waitSettled(t *testing.T, n int, within time.Duration) []domain.Record {
	t.Helper()
	var recs []domain.Record
	testenv.Eventually(t, within, func() error {
		var err error
		recs, err = s.rt.Store.Records(context.Background())
		if err != nil {
			return err
		}
		if len(recs) < n {
			return fmt.Errorf("%d of %d replications recorded", len(recs), n)
		}
		for _, r := range recs {
			if !r.State.Settled() {
				return fmt.Errorf("%s is %s (%d%%)", r.Key, r.State, r.Percent)
			}
		}
		return nil
	})
	return recs
}

// waitEvents waits until exactly want distinct events of type typ are on the bus and returns
// them. Events of sibling copies are published by concurrent handlers, so one type's count
// is only final once it has been reached, not when another type's has.
func (s *stack) waitEvents(t *testing.T, typ string, want int, within time.Duration) []event.Event {
	t.Helper()
	var got []event.Event
	testenv.Eventually(t, within, func() error {
		if got = s.rec.OfType(typ); len(got) != want {
			return fmt.Errorf("%d distinct %s events, want %d", len(got), typ, want)
		}
		return nil
	})
	return got
}

// checkAllEventsValid asserts every event seen on the bus validates against its schema.
func (s *stack) checkAllEventsValid(t *testing.T) {
	t.Helper()
	if bad := s.rec.InvalidEvents(); len(bad) > 0 {
		t.Fatalf("%d invalid events on the bus, first: %v", len(bad), bad[0])
	}
	for _, e := range s.rec.All() {
		if err := events.Check(e); err != nil {
			t.Fatalf("event %s (%s) does not validate: %v", e.ID(), e.Type(), err)
		}
	}
}

// okCalls counts successful calls of one action per key ("image/region").
func okCalls(calls []emucore.Call, key func(emucore.Call) []string) map[string]int {
	out := map[string]int{}
	for _, c := range calls {
		if c.Outcome != "ok" {
			continue
		}
		for _, k := range key(c) {
			out[k]++
		}
	}
	return out
}

// duplicate sends every event of type typ to function twice more: a copy under a new id (a
// duplicate from an upstream retry) and, after redeliverAfter, a redelivery of the same event
// on the function's defer subject (how an event reaches its consumer again). It returns how
// many extra deliveries it has sent.
func (s *stack) duplicate(t *testing.T, typ, function string, redeliverAfter time.Duration) func() int {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]bool{}
	sent := 0
	stopped := false // set under mu by the cleanup, so no publish runs once the test has ended
	sub, err := s.env.Conn.Subscribe(events.NATSFilter(typ), func(m *nats.Msg) {
		id := m.Header.Get("ce-id")
		mu.Lock()
		defer mu.Unlock()
		if stopped || strings.HasSuffix(id, "-dup") || seen[id] {
			return // our own duplicate, or already duplicated
		}
		seen[id] = true
		e, err := events.FromHeader(m.Header, m.Data)
		if err != nil {
			t.Errorf("decode %s: %v", typ, err)
			return
		}
		dup := e.Clone()
		dup.SetID(e.ID() + "-dup")
		if err := s.env.Bus.Publish(context.Background(), dup); err != nil {
			t.Errorf("publish duplicate: %v", err)
		}
		// A schedule key of its own keeps this redelivery apart from the function's own
		// deferrals, as a second copy of the message would be.
		if err := s.env.Bus.Schedule(context.Background(), bus.Deferral{Function: function, Event: e, Key: "e2e-redelivery:" + e.ID(),
			At: time.Now().Add(redeliverAfter), Deferrals: 1000}); err != nil {
			t.Errorf("publish redelivery: %v", err)
		}
		sent += 2
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sub.Unsubscribe()
		mu.Lock()
		stopped = true
		mu.Unlock()
	})
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return sent
	}
}

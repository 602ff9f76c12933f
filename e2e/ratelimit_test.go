package e2e_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/fanout"
	"github.com/imagerelay/imagerelay/functions/poller"
	"github.com/imagerelay/imagerelay/functions/replicate"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/adapters/ratelimit"
	"github.com/imagerelay/imagerelay/shared/adapters/state/natskv"
	"github.com/imagerelay/imagerelay/shared/compose"
	"github.com/imagerelay/imagerelay/shared/compose/catalog"
	"github.com/imagerelay/imagerelay/shared/config"
	"github.com/imagerelay/imagerelay/shared/dev/emulators"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
	"github.com/imagerelay/imagerelay/shared/dev/testenv"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// sentLog records when the workers' limiters let each call go, per API, across workers.
type sentLog struct {
	mu   sync.Mutex
	sent map[string][]time.Time
}

func (l *sentLog) add(api string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sent == nil {
		l.sent = map[string][]time.Time{}
	}
	l.sent[api] = append(l.sent[api], at)
}

func (l *sentLog) times(api string) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sent[api])
}

// countingLimits wraps one worker's limits: it counts the worker's calls per API and logs
// the moment each was let go.
type countingLimits struct {
	inner ratelimit.Factory
	log   *sentLog
	mu    sync.Mutex
	waits map[string]*atomic.Int64
}

func (c *countingLimits) For(s ratelimit.Spec) ratelimit.Limiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waits == nil {
		c.waits = map[string]*atomic.Int64{}
	}
	n := c.waits[s.API]
	if n == nil {
		n = &atomic.Int64{}
		c.waits[s.API] = n
	}
	return countingLimiter{Limiter: c.inner.For(s), n: n, api: s.API, log: c.log}
}

func (c *countingLimits) count(api string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.waits[api]; n != nil {
		return n.Load()
	}
	return 0
}

type countingLimiter struct {
	ratelimit.Limiter
	n   *atomic.Int64
	api string
	log *sentLog
}

func (l countingLimiter) Wait(ctx context.Context) error {
	if err := l.Limiter.Wait(ctx); err != nil {
		return err
	}
	l.n.Add(1)
	l.log.add(l.api, time.Now())
	return nil
}

// callTimes returns the times the emulator logged calls.
func callTimes(calls []emucore.Call) []time.Time {
	ts := make([]time.Time, len(calls))
	for i, c := range calls {
		ts[i] = c.Time
	}
	return ts
}

// maxPerWindow returns the most times any half-open window [t, t+w) holds, and its start.
func maxPerWindow(ts []time.Time, w time.Duration) (int, time.Time) {
	ts = slices.Clone(ts)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	best, at, j := 0, time.Time{}, 0
	for i := range ts {
		for j < len(ts) && ts[j].Before(ts[i].Add(w)) {
			j++
		}
		if j-i > best {
			best, at = j-i, ts[i]
		}
	}
	return best, at
}

// startReplicateWorker runs one replicate worker as its own process would: its own NATS
// connection, bus, store, cluster-wide rate limits and providers, consuming the shared
// durable consumer.
func startReplicateWorker(t *testing.T, env *testenv.Env, cfg *config.Config, bc bus.Config, limits *countingLimits) {
	t.Helper()
	nc, err := env.Server.Connect()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; nc.Close() })
	octx, ocancel := context.WithTimeout(ctx, compose.Deadline)
	defer ocancel()
	log := testenv.Logger(t)
	b, err := bus.Bind(octx, nc, bc, log)
	if err != nil {
		t.Fatal(err)
	}
	store, err := natskv.Bind(octx, b.JetStream(), bc.KVBucket)
	if err != nil {
		t.Fatal(err)
	}
	shared, err := compose.OpenRateLimits(octx, cfg, b.JetStream(), log)
	if err != nil {
		t.Fatal(err)
	}
	limits.inner = shared
	rt := &catalog.Runtime{Config: cfg, Bus: b, Store: store, Providers: catalog.BuildProvidersWithLimits(cfg, limits), Log: log}
	// Warm the worker's client for the source region (its HTTP connection, the SDK's first
	// request) with one DescribeImages there, as a worker that has been running would be:
	// the limit spaces the calls as they leave, and a cold first request can take 100 ms
	// more than the next on this loaded test machine, enough to land two calls in one of
	// the emulator's seconds.
	if _, err := rt.Providers.ByName[events.ProviderTencent].CopyStatus(octx, []domain.Task{{
		Copy: domain.Copy{DestinationRegion: "ap-guangzhou"}, TaskID: "img-e2e00000"}}); err != nil {
		t.Fatal(err)
	}
	spec, err := rt.Spec(replicate.Name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Consumer(octx, spec); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(done)
		if err := b.Run(ctx, spec); err != nil {
			t.Errorf("replicate worker: %v", err)
		}
	}()
}

// TestRateLimitSharedByReplicateWorkers is the acceptance test of the per-account limits:
// three replicate workers (three connections on one durable consumer, each with its own
// providers) replicate 20 Tencent images to 3 regions, 60 SyncImages calls against the
// documented 10/s. With per-process limits they would send up to 30/s and the emulator would
// answer RequestLimitExceeded; with the shared limit the workers together send at most 10 in
// any second, and the emulator (with no injected faults) never throttles.
func TestRateLimitSharedByReplicateWorkers(t *testing.T) {
	const images, workers = 20, 3
	seed, imgs := tencentSeed(images, 300*time.Millisecond)
	seed.Tencent.RateLimits.SyncImages, seed.Tencent.RateLimits.DescribeImages = 10, 40
	for k, v := range emulators.DemoEnv() {
		t.Setenv(k, v)
	}
	emus, cfg, bc := startEmulators(t, seed)
	cfg.Replication.Policies = tencentPolicy
	if cfg.Providers.Tencent.SyncRate != 10 {
		t.Fatalf("the default SyncImages limit is %v, want the documented 10", cfg.Providers.Tencent.SyncRate)
	}
	env := testenv.Start(t, testenv.Options{Bus: &bc})

	// fanout and poller run once, on the environment's connection, with the shared limits too.
	octx, cancel := context.WithTimeout(context.Background(), compose.Deadline)
	defer cancel()
	limits, err := compose.OpenRateLimits(octx, cfg, env.Bus.JetStream(), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	rt := &catalog.Runtime{Config: cfg, Bus: env.Bus, Store: env.Store, Providers: catalog.BuildProvidersWithLimits(cfg, limits), Log: testenv.Logger(t)}
	for _, name := range []string{fanout.Name, poller.Name} {
		spec, err := rt.Spec(name)
		if err != nil {
			t.Fatal(err)
		}
		env.Run(t, spec)
	}
	// All the requests are planned before the workers start, so that they find 60 waiting
	// and run into the limit at once (and fanout's burst of work is over).
	s := &stack{env: env, emus: emus, rt: rt, rec: env.Record(t), cfg: cfg}
	for _, img := range imgs {
		s.publish(t, img)
	}
	s.waitEvents(t, events.TypeReplicationRequested, images*len(tencentRegions), 30*time.Second)
	sent := &sentLog{}
	counts := make([]*countingLimits, workers)
	for i := range counts {
		counts[i] = &countingLimits{log: sent}
		startReplicateWorker(t, env, cfg, bc, counts[i])
	}
	recs := s.waitSettled(t, images*len(tencentRegions), 90*time.Second)

	for _, r := range recs {
		if r.State != domain.StateSucceeded {
			t.Errorf("%s ended %s: %s %s", r.Key, r.State, r.Code, r.Message)
		}
	}
	for i, c := range counts {
		if c.count("SyncImages") == 0 {
			t.Errorf("worker %d made no SyncImages call: the test did not run %d workers", i, workers)
		}
	}
	// Where the limit is enforced: the three workers together let no more than 10
	// SyncImages go in any second.
	if n, at := maxPerWindow(sent.times("SyncImages"), time.Second); n > 10 {
		t.Errorf("the workers let %d SyncImages go in the second from %s, want at most 10", n, at.Format("15:04:05.000"))
	}
	// Where the provider counts: the emulator never throttled, and no second of its call log
	// holds more than the limit plus the burst of 1. (Calls leave at least 1/rate + MaxLate
	// apart; the rest of ratelimit.Slack absorbs differences in latency, but on a loaded
	// machine one call's latency can exceed the next one's by more than that.)
	for _, lim := range []struct {
		action string
		rate   int
	}{{"SyncImages", 10}, {"DescribeImages", 40}} {
		calls := emus.Calls.Calls("tencent", lim.action)
		var throttled []string
		for _, c := range calls {
			if c.Outcome == "RequestLimitExceeded" {
				throttled = append(throttled, c.Time.Format("15:04:05.000"))
			}
		}
		if len(throttled) > 0 {
			t.Errorf("the emulator throttled %d of %d %s calls (at %v): the workers together exceeded %d/s",
				len(throttled), len(calls), lim.action, throttled, lim.rate)
		}
		if n, at := maxPerWindow(callTimes(calls), time.Second); n > lim.rate+1 {
			t.Errorf("%d %s calls reached the emulator in the second from %s, want at most %d", n, lim.action, at.Format("15:04:05.000"), lim.rate+1)
		}
	}
	syncCalls := emus.Calls.Calls("tencent", "SyncImages")
	perKey := okCalls(syncCalls, syncKeys)
	if len(perKey) != images*len(tencentRegions) {
		t.Errorf("SyncImages reached %d (image, region) pairs, want %d", len(perKey), images*len(tencentRegions))
	}
	for k, n := range perKey {
		if n != 1 {
			t.Errorf("%s: %d accepted SyncImages calls, want exactly 1", k, n)
		}
	}
	if len(syncCalls) > 0 {
		n, _ := maxPerWindow(callTimes(syncCalls), time.Second)
		m, _ := maxPerWindow(sent.times("SyncImages"), time.Second)
		t.Logf("%d SyncImages calls over %v: at most %d sent and %d received in any second", len(syncCalls),
			syncCalls[len(syncCalls)-1].Time.Sub(syncCalls[0].Time).Round(time.Millisecond), m, n)
	}
}

package kvlimit

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/shared/adapters/ratelimit"
	"github.com/imagerelay/imagerelay/shared/dev/natsembed"
)

// server starts an embedded JetStream listening on a random loopback port.
func server(t testing.TB) *natsembed.Server {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// factory opens a new TCP connection to srv (as a separate worker would) and a factory on it.
func factory(t testing.TB, srv *natsembed.Server, o Options) (*Factory, *nats.Conn) {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if o.Bucket == "" {
		o.Bucket = "test-ratelimit"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := Open(ctx, js, o)
	if err != nil {
		t.Fatal(err)
	}
	return f, nc
}

var syncSpec = ratelimit.Spec{Provider: "tencent", API: "SyncImages", Account: "main", Rate: 10}

// maxInWindow returns the most timestamps any half-open window [t, t+w) holds.
func maxInWindow(ts []time.Time, w time.Duration) int {
	ts = slices.Clone(ts)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	best, j := 0, 0
	for i := range ts {
		for j < len(ts) && ts[j].Before(ts[i].Add(w)) {
			j++
		}
		best = max(best, j-i)
	}
	return best
}

// TestRateLimitSharedAcrossConnections runs three processes' worth of limiters (three connections,
// three factories, two goroutines each) on one key and checks the budget is shared: the
// reserved slots are distinct and any rate+1 consecutive ones span more than a second, and
// the measured times Wait returned put at most rate calls in any one-second window.
// Three process-local limiters, as before, would allow three times the rate.
func TestRateLimitSharedAcrossConnections(t *testing.T) {
	srv := server(t)
	const perGoroutine = 6
	var (
		mu        sync.Mutex
		slots     []time.Time
		returned  []time.Time
		wg        sync.WaitGroup
		errs      = make(chan error, 6*perGoroutine)
		ctx, stop = context.WithTimeout(context.Background(), 30*time.Second)
	)
	defer stop()
	for range 3 {
		f, _ := factory(t, srv, Options{})
		l := f.For(syncSpec).(*Limiter)
		for range 2 {
			wg.Go(func() {
				for range perGoroutine {
					// Wait as Limiter.Wait does, keeping every slot handed out.
					err := ratelimit.Pace(ctx, time.Now, func(ctx context.Context) (time.Time, error) {
						slot, err := l.reserve(ctx)
						if err == nil {
							mu.Lock()
							slots = append(slots, slot)
							mu.Unlock()
						}
						return slot, err
					})
					if err != nil {
						errs <- err
						return
					}
					now := time.Now()
					mu.Lock()
					returned = append(returned, now)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	slices.SortFunc(slots, func(a, b time.Time) int { return a.Compare(b) })
	slices.SortFunc(returned, func(a, b time.Time) int { return a.Compare(b) })
	rate := int(syncSpec.Rate)
	for i := range slots {
		if i > 0 && !slots[i].After(slots[i-1]) {
			t.Fatalf("slots %d and %d coincide: %v", i-1, i, slots[i])
		}
		if i >= rate && slots[i].Sub(slots[i-rate]) < time.Second {
			t.Errorf("slots %d..%d span %v: %d calls within one second", i-rate, i, slots[i].Sub(slots[i-rate]), rate+1)
		}
	}
	if n := maxInWindow(slots, time.Second); n > rate {
		t.Errorf("%d reserved slots in one second, want at most %d", n, rate)
	}
	if n := maxInWindow(returned, time.Second); n > rate {
		t.Errorf("%d calls went in one second, want at most %d", n, rate)
	}
	// The calls took as long as the shared limit says, not a third of it.
	if span := returned[len(returned)-1].Sub(returned[0]); span < time.Duration(len(returned)-1)*syncSpec.Interval()-ratelimit.MaxLate {
		t.Errorf("%d calls spread over %v, want at least %v", len(returned), span, time.Duration(len(returned)-1)*syncSpec.Interval())
	}
}

// TestRateLimitWaitIsPaced checks Wait itself: 12 calls at 20/s take at least 11 intervals.
func TestRateLimitWaitIsPaced(t *testing.T) {
	srv := server(t)
	f, _ := factory(t, srv, Options{})
	spec := ratelimit.Spec{Provider: "huawei", API: "ims", Account: "a", Rate: 20}
	l := f.For(spec)
	start := time.Now()
	var times []time.Time
	for range 12 {
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		times = append(times, time.Now())
	}
	if took, want := time.Since(start), 11*spec.Interval(); took < want {
		t.Errorf("12 calls took %v, want at least %v", took, want)
	}
	if n := maxInWindow(times, time.Second); n > 21 {
		t.Errorf("%d calls in one second at 20/s", n)
	}
}

// TestRateLimitBurst lets burst calls go at once after a quiet spell, then spaces the rest.
func TestRateLimitBurst(t *testing.T) {
	srv := server(t)
	f, _ := factory(t, srv, Options{})
	spec := ratelimit.Spec{Provider: "alibaba", API: "ListImage", Account: "a", Rate: 5, Burst: 3}
	l := f.For(spec).(*Limiter)
	now := time.Now()
	var slots []time.Time
	for range 5 {
		s, err := l.reserve(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		slots = append(slots, s)
	}
	for i := range 3 {
		if slots[i].Sub(now) > 500*time.Millisecond {
			t.Errorf("slot %d is %v away; the first %d calls of a burst should go at once", i, slots[i].Sub(now), spec.Burst)
		}
	}
	// Any k+1 consecutive slots span at least (k - (burst-1)) intervals.
	for i := range slots {
		for j := i + spec.Burst; j < len(slots); j++ {
			want := time.Duration(j-i-(spec.Burst-1)) * spec.Interval()
			if got := slots[j].Sub(slots[i]); got < want-time.Millisecond {
				t.Errorf("slots %d and %d are %v apart, want at least %v", i, j, got, want)
			}
		}
	}
}

// TestRateLimitDistinctSpecsDoNotShare gives each (provider, API, account) its own budget, and keys
// that differ only in bytes a naive key would fold stay apart: after one call per spec, the
// bucket holds one key per spec. (Counting keys rather than timing the calls keeps the test
// exact on a loaded machine, where a late wake-up legitimately reserves the next slot.)
func TestRateLimitDistinctSpecsDoNotShare(t *testing.T) {
	srv := server(t)
	f, nc := factory(t, srv, Options{})
	specs := []ratelimit.Spec{
		{Provider: "tencent", API: "SyncImages", Account: "a.b", Rate: 1},
		{Provider: "tencent", API: "SyncImages", Account: "a_b", Rate: 1},
		{Provider: "tencent", API: "SyncImages", Account: "a b", Rate: 1},
		{Provider: "tencent", API: "SyncImages", Account: "", Rate: 1},
		{Provider: "tencent", API: "SyncImages", Account: "镜像", Rate: 1},
		{Provider: "tencent", API: "DescribeImages", Account: "a.b", Rate: 1},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range specs {
		if err := f.For(s).Wait(ctx); err != nil {
			t.Fatalf("%v: %v", s, err)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "test-ratelimit")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(specs) {
		t.Errorf("%d specs share %d keys %v: each (provider, API, account) needs its own", len(specs), len(keys), keys)
	}
}

// TestRateLimitDeadlineRefusedWithoutReserving fails a Wait whose slot lies past the deadline at once,
// and leaves the slot to others.
func TestRateLimitDeadlineRefusedWithoutReserving(t *testing.T) {
	srv := server(t)
	f, _ := factory(t, srv, Options{})
	spec := ratelimit.Spec{Provider: "p", API: "a", Account: "x", Rate: 0.5}
	l := f.For(spec).(*Limiter)
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := l.known.tat
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := l.Wait(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want a deadline error", err)
	}
	if time.Since(start) > 150*time.Millisecond {
		t.Errorf("a Wait that cannot make its deadline took %v, want an immediate error", time.Since(start))
	}
	if l.known.tat != before {
		t.Errorf("the refused Wait reserved a slot")
	}
}

// TestRateLimitCancelledWhileWaiting returns the context's error.
func TestRateLimitCancelledWhileWaiting(t *testing.T) {
	srv := server(t)
	f, _ := factory(t, srv, Options{})
	l := f.For(ratelimit.Spec{Provider: "p", API: "a", Account: "x", Rate: 0.5})
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel) // the cancellation under test, not synchronisation
	if err := l.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
}

// TestRateLimitUnavailableFailsTheCall never lets a call through when the bucket cannot be reached.
func TestRateLimitUnavailableFailsTheCall(t *testing.T) {
	srv := server(t)
	f, nc := factory(t, srv, Options{OpTimeout: 300 * time.Millisecond})
	l := f.For(syncSpec)
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	for range 2 { // with and without a cached revision
		err := l.Wait(context.Background())
		if !errors.Is(err, ratelimit.ErrUnavailable) {
			t.Fatalf("Wait with the connection closed = %v, want ErrUnavailable", err)
		}
	}
}

// TestRateLimitUnavailableWhenServerDown covers a server that is gone (not a closed client).
func TestRateLimitUnavailableWhenServerDown(t *testing.T) {
	srv := server(t)
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	f, err := Open(context.Background(), js, Options{Bucket: "down", OpTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	start := time.Now()
	err = f.For(syncSpec).Wait(context.Background())
	if !errors.Is(err, ratelimit.ErrUnavailable) {
		t.Fatalf("Wait with the server down = %v, want ErrUnavailable", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("the failure took %v; OpTimeout should bound it", time.Since(start))
	}
}

// TestRateLimitClockFaultIsReset does not block the limit for an hour because one machine wrote a tat
// from a clock an hour ahead.
func TestRateLimitClockFaultIsReset(t *testing.T) {
	srv := server(t)
	f, _ := factory(t, srv, Options{MaxAhead: time.Minute})
	if _, err := f.kv.Put(context.Background(), syncSpec.Key(), []byte(strconv.FormatInt(time.Now().Add(time.Hour).UnixNano(), 10))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := f.For(syncSpec).Wait(ctx); err != nil {
		t.Fatalf("Wait after a clock fault: %v", err)
	}
}

// TestRateLimitGarbageValueIsOverwritten treats a value it did not write as an idle limit.
func TestRateLimitGarbageValueIsOverwritten(t *testing.T) {
	srv := server(t)
	f, _ := factory(t, srv, Options{})
	if _, err := f.kv.Put(context.Background(), syncSpec.Key(), []byte("not a time")); err != nil {
		t.Fatal(err)
	}
	if err := f.For(syncSpec).Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	e, err := f.kv.Get(context.Background(), syncSpec.Key())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strconv.ParseInt(string(e.Value()), 10, 64); err != nil {
		t.Errorf("value %q was not replaced", e.Value())
	}
}

// TestRateLimitOpenIsIdempotent opens the bucket twice, the second time with other settings, and
// binds to what exists.
func TestRateLimitOpenIsIdempotent(t *testing.T) {
	srv := server(t)
	factory(t, srv, Options{Bucket: "twice"})
	f, _ := factory(t, srv, Options{Bucket: "twice", Replicas: 1, OpTimeout: time.Second})
	st, err := f.kv.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.History() != 1 || st.Bucket() != "twice" {
		t.Errorf("bucket %s history %d", st.Bucket(), st.History())
	}
}

// BenchmarkWait measures the bucket's cost per Wait at a rate too high to ever sleep: one
// limiter (one compare-and-swap write per Wait when uncontended).
func BenchmarkWait(b *testing.B) {
	srv := server(b)
	f, _ := factory(b, srv, Options{})
	l := f.For(ratelimit.Spec{Provider: "bench", API: "a", Account: "x", Rate: 1e9})
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if err := l.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWaitContended is three connections (three processes) on one key, so most Waits
// lose a race and read again.
func BenchmarkWaitContended(b *testing.B) {
	srv := server(b)
	var ls []ratelimit.Limiter
	for range 3 {
		f, _ := factory(b, srv, Options{})
		ls = append(ls, f.For(ratelimit.Spec{Provider: "bench", API: "a", Account: "x", Rate: 1e9}))
	}
	ctx := context.Background()
	var i sync.Mutex
	n := 0
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i.Lock()
		l := ls[n%len(ls)]
		n++
		i.Unlock()
		for pb.Next() {
			if err := l.Wait(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

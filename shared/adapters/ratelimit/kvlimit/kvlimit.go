// Package kvlimit shares rate limits across every process of a deployment through a
// JetStream key-value bucket: NATS workers, Lambda and Function Compute invocations all draw
// from one budget per (provider, API, account).
//
// # Algorithm
//
// Each limit is one key holding a "theoretical arrival time" (GCRA): the Unix time in
// nanoseconds at which the next call may go if the limit were always spaced evenly. A Wait
// reads the key, reserves the slot
//
//	slot = max(now, tat - (burst-1)·interval)
//	tat' = max(tat, now) + interval
//
// writes tat' with compare-and-swap on the key's revision (retrying with the fresh value when
// another process wrote first), and then sleeps until its slot. Because every reservation
// moves tat forward by one interval and the write is atomic, no two callers anywhere get the
// same slot, and any burst+N consecutive slots span at least N intervals. With the default
// burst of 1, any second holds at most the limit's rate of calls (ratelimit.Slack widens the
// interval so that this also holds where the provider counts them).
//
// A reservation is made only if its slot lies before the context's deadline; a caller whose
// context ends while it sleeps has used its slot (the limit errs on the safe side). A caller
// that wakes more than ratelimit.MaxLate after its slot (its process stalled) does not go: it
// reserves again, so that a stall cannot release a clump of calls at once.
//
// # Clocks
//
// now is each machine's own wall clock; tat is an absolute time written by whichever machine
// reserved last. A machine whose clock is behind only waits longer. A machine whose clock is
// ahead by δ may send its call up to δ before the slot another machine's clock would have
// given it, so clocks must be synchronised (NTP keeps them within milliseconds, well inside
// ratelimit.Slack). A tat further ahead than Options.MaxAhead (a machine with a badly wrong
// clock, or a queue far longer than any deadline) is treated as a clock fault: it is reset to
// now, with a warning, rather than blocking every call for as long as the error.
//
// # Failures
//
// When the bucket cannot be read or written (NATS unreachable, no JetStream quorum, a
// timeout), Wait returns an error wrapping ratelimit.ErrUnavailable and the call is not made:
// the limit is never skipped silently. The providers report it as retryable.
package kvlimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/shared/adapters/ratelimit"
)

// Defaults.
const (
	// DefaultOpTimeout bounds each read or write of the bucket within one Wait.
	DefaultOpTimeout = 5 * time.Second
	// DefaultMaxAhead is how far in the future a stored tat may lie before it is taken for
	// a clock fault.
	DefaultMaxAhead = 10 * time.Minute
	// maxAttempts bounds the compare-and-swap retries of one Wait; each lost race means
	// another caller got a slot, so the limit as a whole makes progress.
	maxAttempts = 1000
)

// Options configure the bucket and the limiters.
type Options struct {
	// Bucket is the key-value bucket's name, e.g. "imagerelay-ratelimit". Required.
	Bucket string
	// Replicas is the bucket's replica count (1 on a single server, 3 in a cluster).
	Replicas int
	// OpTimeout bounds each bucket operation; 0 means DefaultOpTimeout.
	OpTimeout time.Duration
	// MaxAhead is how far ahead a stored tat may be; 0 means DefaultMaxAhead.
	MaxAhead time.Duration
	// Log receives clock-fault warnings; nil means slog.Default().
	Log *slog.Logger
	// Now is the clock; nil means time.Now. Tests may set it.
	Now func() time.Time
}

// Factory makes cluster-wide limiters on one bucket. It is safe for concurrent use, and
// implements ratelimit.Factory.
type Factory struct {
	kv   jetstream.KeyValue
	opts Options

	mu       sync.Mutex
	limiters map[string]*Limiter
}

// Open creates the bucket if it does not exist (file storage, history 1) and returns a
// factory on it. An existing bucket is used as it is, never reconfigured: its settings do
// not matter to correctness, and rewriting them is the owner's job.
func Open(ctx context.Context, js jetstream.JetStream, o Options) (*Factory, error) {
	if o.Bucket == "" {
		return nil, errors.New("kvlimit: a bucket name is required")
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      o.Bucket,
		Description: "imagerelay cluster-wide rate limits: one theoretical arrival time per provider, API and account",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(o.Replicas, 1),
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, o.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("kvlimit: open bucket %s: %w", o.Bucket, err)
	}
	return New(kv, o), nil
}

// New returns a factory on an open bucket.
func New(kv jetstream.KeyValue, o Options) *Factory {
	if o.OpTimeout <= 0 {
		o.OpTimeout = DefaultOpTimeout
	}
	if o.MaxAhead <= 0 {
		o.MaxAhead = DefaultMaxAhead
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Factory{kv: kv, opts: o, limiters: map[string]*Limiter{}}
}

// For returns the limiter of s. Specs with the same key share one limiter in this process
// (and one budget everywhere); the first spec's rate and burst are this process's.
func (f *Factory) For(s ratelimit.Spec) ratelimit.Limiter {
	if s.Rate <= 0 {
		return ratelimit.Local().For(s)
	}
	key := s.Key()
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.limiters[key]; ok {
		return l
	}
	l := &Limiter{f: f, spec: s, key: key, interval: s.Interval(),
		tolerance: time.Duration(s.BurstSize()-1) * s.Interval(), turn: make(chan struct{}, 1)}
	f.limiters[key] = l
	return l
}

// Limiter is one cluster-wide limit. It is safe for concurrent use.
type Limiter struct {
	f         *Factory
	spec      ratelimit.Spec
	key       string
	interval  time.Duration
	tolerance time.Duration

	// turn serialises this process's reservations, so its own goroutines do not race each
	// other's compare-and-swap; the sleeps run in parallel.
	turn chan struct{}
	// known is the last value this process read or wrote and its revision (rev 0: none),
	// so that an uncontended Wait needs one write and no read.
	known struct {
		tat int64
		rev uint64
	}
}

// Wait reserves the next slot of the limit and sleeps until it, reserving again if it woke
// more than ratelimit.MaxLate after it (see ratelimit.Pace).
func (l *Limiter) Wait(ctx context.Context) error {
	return ratelimit.Pace(ctx, l.f.opts.Now, l.reserve)
}

// reserve writes the next tat and returns the caller's slot.
func (l *Limiter) reserve(ctx context.Context) (time.Time, error) {
	select {
	case l.turn <- struct{}{}:
		defer func() { <-l.turn }()
	case <-ctx.Done():
		return time.Time{}, fmt.Errorf("kvlimit: %s: %w", l.spec, ctx.Err())
	}
	tat, rev := l.known.tat, l.known.rev
	if rev == 0 {
		var err error
		if tat, rev, err = l.read(ctx); err != nil {
			return time.Time{}, err
		}
	}
	for range maxAttempts {
		now := l.f.opts.Now().UnixNano()
		if ahead := time.Duration(tat - now); ahead > l.f.opts.MaxAhead {
			l.f.opts.Log.Warn("rate limit's next slot is implausibly far ahead; a machine's clock is probably wrong, resetting it to now",
				"limit", l.key, "ahead", ahead.String())
			tat = now
		}
		slot := max(now, tat-int64(l.tolerance))
		next := max(tat, now) + int64(l.interval)
		if dl, ok := ctx.Deadline(); ok && slot > dl.UnixNano() {
			return time.Time{}, fmt.Errorf("kvlimit: %s: the next slot is in %s, after the context's deadline: %w",
				l.spec, time.Duration(slot-now).Round(time.Millisecond), context.DeadlineExceeded)
		}
		newRev, err := l.write(ctx, next, rev)
		if err == nil {
			l.known.tat, l.known.rev = next, newRev
			return time.Unix(0, slot), nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			l.known.rev = 0
			return time.Time{}, l.failed(ctx, "write", err)
		}
		// Another process reserved since our value was read: read again and recompute.
		if tat, rev, err = l.read(ctx); err != nil {
			l.known.rev = 0
			return time.Time{}, err
		}
	}
	l.known.rev = 0
	return time.Time{}, fmt.Errorf("%w: %s: lost %d compare-and-swap races in a row", ratelimit.ErrUnavailable, l.spec, maxAttempts)
}

// read returns the stored tat and its revision; revision 0 means no key yet.
func (l *Limiter) read(ctx context.Context) (int64, uint64, error) {
	octx, cancel := context.WithTimeout(ctx, l.f.opts.OpTimeout)
	defer cancel()
	e, err := l.f.kv.Get(octx, l.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, l.failed(ctx, "read", err)
	}
	tat, perr := strconv.ParseInt(string(e.Value()), 10, 64)
	if perr != nil {
		// Not written by us: overwrite it as if the limit had been idle.
		tat = 0
	}
	return tat, e.Revision(), nil
}

// write stores tat if the key is still at rev (0: if it does not exist).
func (l *Limiter) write(ctx context.Context, tat int64, rev uint64) (uint64, error) {
	octx, cancel := context.WithTimeout(ctx, l.f.opts.OpTimeout)
	defer cancel()
	v := []byte(strconv.FormatInt(tat, 10))
	if rev == 0 {
		return l.f.kv.Create(octx, l.key, v)
	}
	return l.f.kv.Update(octx, l.key, v, rev)
}

// failed wraps a bucket error: the caller's own cancellation stays a context error, anything
// else is ErrUnavailable.
func (l *Limiter) failed(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("kvlimit: %s: %w", l.spec, ctx.Err())
	}
	return fmt.Errorf("%w: %s: %s bucket key %s: %w", ratelimit.ErrUnavailable, l.spec, op, l.key, err)
}

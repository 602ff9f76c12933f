// Package ratelimit is the port through which the cloud adapters pace their API calls: one
// Limiter per (provider, API, account), made by a Factory from a Spec that carries the
// documented limit.
//
// The documented limits are per account, not per process: two workers that each send 10
// SyncImages a second together send 20 against Tencent's limit of 10. The runtimes therefore
// inject a cluster-wide Factory (package kvlimit, on a JetStream key-value bucket) that every
// worker, Lambda and Function Compute invocation shares. When nothing is injected (unit
// tests, emulators, tools) a provider falls back to Local, a process-local token bucket with
// the same spacing.
//
// This package imports no NATS: the providers depend on the port only, and the composition
// root decides which implementation they get.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Limiter paces calls. Wait blocks until the caller may make one call, or returns an error
// (the call must then not be made): the context ended, the next slot lies past the context's
// deadline, or the shared limit could not be read (ErrUnavailable). A limiter never lets a
// call through without a slot: when in doubt it fails, and the caller retries later.
type Limiter interface {
	Wait(ctx context.Context) error
}

// Factory makes the limiter of one (provider, API, account).
type Factory interface {
	For(s Spec) Limiter
}

// FactoryFunc adapts a function to Factory.
type FactoryFunc func(Spec) Limiter

// For calls f.
func (f FactoryFunc) For(s Spec) Limiter { return f(s) }

// ErrUnavailable is wrapped by the error of a Wait that could not reach the shared limit's
// store. No call was made; the caller should treat it as retryable.
var ErrUnavailable = errors.New("ratelimit: the cluster-wide rate limit could not be read or written, so the call was not made")

// Slack is added to each second of a limit before it is divided into slots: a limit of N per
// second spaces calls (1s + Slack)/N apart. The spacing is enforced where the slot is handed
// out, but the provider counts calls when they arrive, after a late timer, request signing
// and the network; without the slack, N+1 evenly spaced calls would land inside one of the
// provider's seconds whenever the first was delayed a millisecond more than the last. Half of
// it goes to waiters that wake late (MaxLate), the other half covers the difference in
// latency between calls and clock skew between machines (see package kvlimit). It costs
// 9 % of the throughput at a limit of any size, which is cheap: copies take minutes, and the
// API rate is never what holds a replication up.
const Slack = 100 * time.Millisecond

// MaxLate is how late after its slot a waiter may wake and still make its call. A process
// that stalls (a garbage-collection pause, a starved CPU, a suspended Lambda) wakes several
// waiters at once; if they all went, their calls would reach the provider in one clump
// although their slots were spaced. A waiter that wakes more than MaxLate after its slot
// gives the slot up and reserves a new one (up to LateRetries times, after which it goes: a
// machine that is always this late does not clump). With MaxLate at half of Slack, any
// Rate+1 consecutive calls leave at least 1s + Slack/2 apart, which leaves the other half of
// Slack for the network.
const MaxLate = Slack / 2

// LateRetries bounds how many times one Wait gives up a slot it woke too late for.
const LateRetries = 3

// Spec is one documented limit.
type Spec struct {
	// Provider, API and Account name the limit; together they are its identity, so every
	// limiter with the same three shares one budget.
	Provider, API, Account string
	// Rate is the documented limit in calls per second; 0 or less means unlimited.
	Rate float64
	// Burst is how many calls may go at once after a quiet spell; 0 means 1, which spaces
	// every call evenly so that no second ever holds more than Rate calls.
	Burst int
}

// Interval is the spacing between two calls: (1s + Slack) / Rate. It is 0 when Rate is 0 or
// less (unlimited).
func (s Spec) Interval() time.Duration {
	if s.Rate <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second+Slack) / s.Rate)
}

// BurstSize is Burst, at least 1.
func (s Spec) BurstSize() int { return max(1, s.Burst) }

// Key is the limit's identity as a NATS subject: three tokens, provider.api.account, each
// escaped by EscapeToken so that different specs never share a key.
func (s Spec) Key() string {
	return EscapeToken(s.Provider) + "." + EscapeToken(s.API) + "." + EscapeToken(s.Account)
}

// EscapeToken maps s injectively onto a non-empty string of [A-Za-z0-9_-]: letters, digits
// and '-' stay, every other byte (including '_' and '.') becomes "_" and two upper-case hex
// digits, and the empty string becomes "_" (which no other input produces, since every other
// '_' is followed by two hex digits). The result is a valid KV key token and a valid subject
// token.
func EscapeToken(s string) string {
	if s == "" {
		return "_"
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xF])
		}
	}
	return b.String()
}

// String names the limit for logs and errors.
func (s Spec) String() string {
	return s.Provider + " " + s.API + " (account " + strconv.Quote(s.Account) + ", " +
		strconv.FormatFloat(s.Rate, 'f', -1, 64) + "/s)"
}

// Local returns a factory of process-local limiters: a token bucket per call of For, with
// Interval's spacing, BurstSize's burst and the MaxLate rule. It is the default when nothing
// cluster-wide is injected; it holds only within one process.
func Local() Factory {
	return FactoryFunc(func(s Spec) Limiter {
		if s.Rate <= 0 {
			return rate.NewLimiter(rate.Inf, 0)
		}
		return local{rate.NewLimiter(rate.Every(s.Interval()), s.BurstSize())}
	})
}

// local is a token bucket that follows the MaxLate rule.
type local struct{ lim *rate.Limiter }

func (l local) Wait(ctx context.Context) error {
	return Pace(ctx, time.Now, func(ctx context.Context) (time.Time, error) {
		now := time.Now()
		r := l.lim.ReserveN(now, 1)
		if !r.OK() {
			return time.Time{}, errors.New("ratelimit: a burst of 0 never allows a call")
		}
		slot := now.Add(r.DelayFrom(now))
		if dl, ok := ctx.Deadline(); ok && slot.After(dl) {
			r.CancelAt(now)
			return time.Time{}, fmt.Errorf("ratelimit: the next slot is in %s, after the context's deadline: %w",
				slot.Sub(now).Round(time.Millisecond), context.DeadlineExceeded)
		}
		return slot, nil
	})
}

// Pace is the waiting half of a Limiter: it calls reserve for a slot, sleeps until it, and
// returns when the slot has come; when it wakes more than MaxLate after the slot (the process
// stalled), it reserves again, up to LateRetries times. now is the limiter's clock.
func Pace(ctx context.Context, now func() time.Time, reserve func(context.Context) (time.Time, error)) error {
	for attempt := 0; ; attempt++ {
		slot, err := reserve(ctx)
		if err != nil {
			return err
		}
		if d := slot.Sub(now()); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("ratelimit: waiting for a slot: %w", ctx.Err())
			}
		}
		if now().Sub(slot) <= MaxLate || attempt >= LateRetries {
			return nil
		}
	}
}

// Or returns f, or Local when f is nil.
func Or(f Factory) Factory {
	if f == nil {
		return Local()
	}
	return f
}

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
// provider's seconds whenever the first was delayed a millisecond more than the last. Slack
// also covers clock skew between machines of up to its size (see package kvlimit). It costs
// 5 % of the throughput at a limit of any size.
const Slack = 50 * time.Millisecond

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
// Interval's spacing and BurstSize's burst. It is the default when nothing cluster-wide is
// injected; it holds only within one process.
func Local() Factory {
	return FactoryFunc(func(s Spec) Limiter {
		if s.Rate <= 0 {
			return rate.NewLimiter(rate.Inf, 0)
		}
		return rate.NewLimiter(rate.Every(s.Interval()), s.BurstSize())
	})
}

// Or returns f, or Local when f is nil.
func Or(f Factory) Factory {
	if f == nil {
		return Local()
	}
	return f
}

package lifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/imagerelay/imagerelay/shared/domain"
)

// Limiter is a cluster-wide counting semaphore, shared by every worker and runtime; the state
// store implements it on the KV bucket.
type Limiter interface {
	// Acquire takes one of limit slots of name for holder, leased for lease; it is idempotent
	// for a holder that has one. It returns false, and queues holder, when every slot is taken.
	Acquire(ctx context.Context, name, holder string, limit int, lease time.Duration) (bool, error)
	// Renew extends holder's lease if it still holds a slot.
	Renew(ctx context.Context, name, holder string, lease time.Duration) error
	// Release frees holder's slot and returns the oldest waiter, taken off the queue ("" when
	// nobody waits).
	Release(ctx context.Context, name, holder string) (next string, err error)
}

// Waker makes a pending schedule due now; the bus implements it.
type Waker interface {
	Wake(ctx context.Context, function, key string) error
}

// Slots caps the copies in flight per provider account where a provider does (Huawei IMS: 5
// per tenant). It is the one place that limit lives: replicate takes a slot before it starts
// a copy, the poller renews it at every check, and whoever settles the copy releases it and
// wakes the oldest request waiting for one. Providers without a limit pass through. A slot is
// named by the provider account and held by the copy's key, so a redelivered request keeps
// its own slot.
type Slots struct {
	// Limits holds the most copies in flight per account of each limited provider.
	Limits  map[string]int
	Limiter Limiter
	// Waker wakes the next waiter when a slot frees; nil leaves waiters to their back-off.
	Waker Waker
	Log   *slog.Logger
}

// SlotWaitFunction is the function whose requests wait for a slot.
const SlotWaitFunction = "replicate"

// Limit returns the most copies in flight per account of provider; 0 means no limit.
func (s Slots) Limit(provider string) int { return s.Limits[provider] }

// Take takes c's slot for a copy followed every poll; it reports true at once when c's
// provider has no limit. false means every slot is taken: c is queued and is woken under
// [WaitKey] when one frees.
func (s Slots) Take(ctx context.Context, c domain.Copy, poll time.Duration) (bool, error) {
	limit := s.Limit(c.Provider)
	if limit == 0 {
		return true, nil
	}
	got, err := s.Limiter.Acquire(ctx, SlotName(c), c.Key(), limit, lease(poll))
	if err != nil {
		return false, fmt.Errorf("take a copy slot of %s: %w", SlotName(c), err)
	}
	return got, nil
}

// Count makes a copy that was found at the provider (started by an interrupted attempt) hold
// its slot, so the poller's renewals keep it counted. It runs whether or not a slot is free:
// the copy exists either way. A failure is logged; the copy is then not counted until its
// first renewal finds no slot to renew, which only delays other copies.
func (s Slots) Count(ctx context.Context, c domain.Copy, poll time.Duration) {
	if _, err := s.Take(ctx, c, poll); err != nil {
		s.log().Warn("could not count a found copy against its provider's copy slots", "key", c.Key(), "error", err)
	}
}

// Renew extends c's lease for another few checks. A failure is logged: the lease is long
// enough to survive a missed renewal, and the next check renews again.
func (s Slots) Renew(ctx context.Context, c domain.Copy, poll time.Duration) {
	if s.Limit(c.Provider) == 0 {
		return
	}
	if err := s.Limiter.Renew(ctx, SlotName(c), c.Key(), lease(poll)); err != nil {
		s.log().Warn("could not renew the copy's slot; its lease may lapse", "key", c.Key(), "error", err)
	}
}

// Release frees c's slot and wakes the oldest request waiting for one. A failure is logged,
// not returned: the slot's lease runs out by itself and a waiter asks again after its
// back-off, so nothing is lost, only delayed.
func (s Slots) Release(ctx context.Context, c domain.Copy) {
	if s.Limit(c.Provider) == 0 {
		return
	}
	next, err := s.Limiter.Release(ctx, SlotName(c), c.Key())
	if err != nil {
		s.log().Warn("could not release the copy's slot; it frees when its lease ends", "key", c.Key(), "error", err)
		return
	}
	if next == "" || s.Waker == nil {
		return
	}
	if err := s.Waker.Wake(ctx, SlotWaitFunction, waitKey(next)); err != nil {
		s.log().Warn("could not wake the next request waiting for a copy slot; it asks again after its back-off", "waiter", next, "error", err)
	}
}

// WaitKey is the schedule key of c's request while it waits for a slot, so that whoever frees
// one can wake it at once rather than at its next back-off.
func WaitKey(c domain.Copy) string { return waitKey(c.Key()) }

func waitKey(holder string) string { return "slot-wait:" + holder }

// SlotName names the semaphore of c's provider account.
func SlotName(c domain.Copy) string {
	account := c.Account
	if account == "" {
		account = "default"
	}
	return c.Provider + "/" + account
}

// lease is how long a slot is held without renewal: the poller renews it at every check, so it
// only lapses when nothing follows the copy any more.
func lease(poll time.Duration) time.Duration { return 3*poll + 2*time.Minute }

// SlotLease is the lease of a slot held by a copy checked every poll, for tests and status.
func SlotLease(poll time.Duration) time.Duration { return lease(poll) }

func (s Slots) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// PollInterval is how often a copy with pollIntervalSeconds is checked (which also sets its
// slot's lease); a copy without one is checked every second rather than in a busy loop.
func PollInterval(seconds int) time.Duration { return time.Duration(max(seconds, 1)) * time.Second }

package state

import (
	"context"
	"errors"
	"slices"
	"time"
)

// semaphore is the stored value of a cluster-wide counting semaphore: who holds a slot and
// until when, and who is waiting for one, oldest first. An expired lease frees its slot, so a
// crashed holder cannot block the others.
type semaphore struct {
	Holders map[string]time.Time `json:"holders"`
	Waiters []string             `json:"waiters,omitempty"`
}

func semKey(name string) string { return Key("sem", name) }

// Acquire takes one of limit slots of the semaphore name for holder, leased for lease. It is
// idempotent: a holder that already has a slot keeps it (and its lease is renewed). It
// returns false when every slot is taken by someone else; holder is then queued as a waiter,
// and [Store.Release] names it when a slot frees.
func (s *Store) Acquire(ctx context.Context, name, holder string, limit int, lease time.Duration) (bool, error) {
	key := semKey(name)
	if _, err := Create(ctx, s, key, semaphore{Holders: map[string]time.Time{}}); err != nil && !errors.Is(err, ErrExists) {
		return false, err
	}
	got := false
	_, err := Update(ctx, s, key, func(sem *semaphore) error {
		got = false
		t := s.now()
		if sem.Holders == nil {
			sem.Holders = map[string]time.Time{}
		}
		for h, until := range sem.Holders {
			if t.After(until) {
				delete(sem.Holders, h)
			}
		}
		if _, ok := sem.Holders[holder]; !ok && len(sem.Holders) >= limit {
			if slices.Contains(sem.Waiters, holder) {
				return ErrNoChange
			}
			sem.Waiters = append(sem.Waiters, holder)
			return nil
		}
		sem.Holders[holder] = t.Add(lease)
		sem.Waiters = slices.DeleteFunc(sem.Waiters, func(w string) bool { return w == holder })
		got = true
		return nil
	})
	return got, err
}

// Renew extends holder's lease if it still holds a slot.
func (s *Store) Renew(ctx context.Context, name, holder string, lease time.Duration) error {
	_, err := Update(ctx, s, semKey(name), func(sem *semaphore) error {
		if _, ok := sem.Holders[holder]; !ok {
			return ErrNoChange
		}
		sem.Holders[holder] = s.now().Add(lease)
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// Release frees holder's slot and returns the oldest waiter, taken off the queue, to wake: the
// slot is its to take (it may still lose the race to another caller, and then queues again).
// next is "" when nobody waits. Releasing a slot not held is not an error and wakes nobody.
func (s *Store) Release(ctx context.Context, name, holder string) (next string, err error) {
	_, err = Update(ctx, s, semKey(name), func(sem *semaphore) error {
		next = ""
		if _, ok := sem.Holders[holder]; !ok {
			return ErrNoChange
		}
		delete(sem.Holders, holder)
		if len(sem.Waiters) > 0 {
			next, sem.Waiters = sem.Waiters[0], sem.Waiters[1:]
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	return next, err
}

// Holders returns the current holders of a semaphore (expired leases included), for status.
func (s *Store) Holders(ctx context.Context, name string) (map[string]time.Time, error) {
	sem, _, err := Get[semaphore](ctx, s, semKey(name))
	if errors.Is(err, ErrNotFound) {
		return map[string]time.Time{}, nil
	}
	return sem.Holders, err
}

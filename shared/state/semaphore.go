package state

import (
	"context"
	"errors"
	"time"
)

// semaphore is the stored value of a cluster-wide counting semaphore: who holds a slot and
// until when. An expired lease frees its slot, so a crashed holder cannot block the others.
type semaphore struct {
	Holders map[string]time.Time `json:"holders"`
}

func semKey(name string) string { return Key("sem", name) }

// Acquire takes one of limit slots of the semaphore name for holder, leased for lease. It is
// idempotent: a holder that already has a slot keeps it (and its lease is renewed). It
// returns false when every slot is taken by someone else.
func (s *Store) Acquire(ctx context.Context, name, holder string, limit int, lease time.Duration) (bool, error) {
	key := semKey(name)
	if _, err := Create(ctx, s, key, semaphore{Holders: map[string]time.Time{}}); err != nil && !errors.Is(err, ErrExists) {
		return false, err
	}
	got := false
	_, err := Update(ctx, s, key, func(sem *semaphore) error {
		got = false
		t := now()
		if sem.Holders == nil {
			sem.Holders = map[string]time.Time{}
		}
		for h, until := range sem.Holders {
			if t.After(until) {
				delete(sem.Holders, h)
			}
		}
		if _, ok := sem.Holders[holder]; !ok && len(sem.Holders) >= limit {
			return ErrNoChange
		}
		sem.Holders[holder] = t.Add(lease)
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
		sem.Holders[holder] = now().Add(lease)
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// Release frees holder's slot; releasing a slot not held is not an error.
func (s *Store) Release(ctx context.Context, name, holder string) error {
	_, err := Update(ctx, s, semKey(name), func(sem *semaphore) error {
		if _, ok := sem.Holders[holder]; !ok {
			return ErrNoChange
		}
		delete(sem.Holders, holder)
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// Holders returns the current holders of a semaphore (expired leases included), for status.
func (s *Store) Holders(ctx context.Context, name string) (map[string]time.Time, error) {
	sem, _, err := Get[semaphore](ctx, s, semKey(name))
	if errors.Is(err, ErrNotFound) {
		return map[string]time.Time{}, nil
	}
	return sem.Holders, err
}

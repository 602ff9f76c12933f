package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/imagerelay/imagerelay/shared/domain"
)

// Legacy key prefixes: before keys were '.'-separated tokens, every key was one token whose
// parts were joined by '/' (and characters outside [A-Za-z0-9-_=/] were folded to '_').
const (
	legacyRecordPrefix = "repl/"
	legacyPlanPrefix   = "plan/"
	legacySemPrefix    = "sem/"
)

// MigrateLegacyKeys moves the replication records, plans and semaphores that earlier versions
// stored under '/'-separated keys to their current keys, so an upgrade does not orphan copies
// in flight. It returns how many records it moved.
//
// A legacy key was folded and cannot be decoded, so the new key is computed from the stored
// value (a record's replication, a plan's image): the value is created under the new key,
// then the old key is deleted. When the new key already exists, the current version has
// written it since, and it wins; the old one is deleted all the same. A semaphore is moved
// only when its name survived folding (no '_' in the old key); one that did not is left to
// expire, since its leases lapse on their own. The migration is idempotent and safe to run
// from several processes at once.
func (s *Store) MigrateLegacyKeys(ctx context.Context) (int, error) {
	// Legacy keys are single tokens (the old Key folded '.'), and every current key has at
	// least two, so "*" lists exactly the legacy keys, filtered by the server.
	var keys []string
	if err := s.b.List(ctx, "*", func(key string, _ []byte) error {
		keys = append(keys, key)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("state: list legacy keys: %w", err)
	}
	moved := 0
	for _, old := range keys {
		ok, err := s.migrateOne(ctx, old)
		if err != nil {
			return moved, err
		}
		if ok {
			moved++
		}
	}
	return moved, ctx.Err()
}

// migrateOne moves one legacy key; it reports whether it moved something.
func (s *Store) migrateOne(ctx context.Context, old string) (bool, error) {
	var newKey string
	raw, _, err := s.b.Get(ctx, old)
	if errors.Is(err, ErrNotFound) {
		return false, nil // moved by another process meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("state: migrate %s: %w", old, err)
	}
	switch {
	case strings.HasPrefix(old, legacyRecordPrefix):
		var rec domain.Record
		if err := json.Unmarshal(raw, &rec); err != nil {
			return false, fmt.Errorf("state: migrate %s: decode the record: %w", old, err)
		}
		newKey = RecordKey(rec.Copy)
	case strings.HasPrefix(old, legacyPlanPrefix):
		var p domain.Plan
		if err := json.Unmarshal(raw, &p); err != nil {
			return false, fmt.Errorf("state: migrate %s: decode the plan: %w", old, err)
		}
		newKey = PlanKey(p.Image)
	case strings.HasPrefix(old, legacySemPrefix) && !strings.Contains(old, "_"):
		return s.migrateSemaphore(ctx, old, strings.TrimPrefix(old, legacySemPrefix), raw)
	default:
		return false, nil // not ours to move (rebuild records, or a folded semaphore name)
	}
	if _, err := s.b.Create(ctx, newKey, raw); err != nil && !errors.Is(err, ErrExists) {
		return false, fmt.Errorf("state: migrate %s to %s: %w", old, newKey, err)
	}
	if err := s.Delete(ctx, old); err != nil {
		return false, err
	}
	return true, nil
}

// migrateSemaphore merges a legacy semaphore's holders into the current one of the same name,
// so copies in flight during an upgrade still count against the limit.
func (s *Store) migrateSemaphore(ctx context.Context, old, name string, raw []byte) (bool, error) {
	var legacy semaphore
	if err := json.Unmarshal(raw, &legacy); err != nil {
		return false, fmt.Errorf("state: migrate %s: decode the semaphore: %w", old, err)
	}
	key := semKey(name)
	if _, err := Create(ctx, s, key, semaphore{Holders: legacy.Holders}); errors.Is(err, ErrExists) {
		_, err = Update(ctx, s, key, func(sem *semaphore) error {
			if sem.Holders == nil {
				sem.Holders = map[string]time.Time{}
			}
			for h, until := range legacy.Holders {
				if cur, ok := sem.Holders[h]; !ok || until.After(cur) {
					sem.Holders[h] = until
				}
			}
			return nil
		})
		if err != nil {
			return false, err
		}
	} else if err != nil {
		return false, err
	}
	if err := s.Delete(ctx, old); err != nil {
		return false, err
	}
	return true, nil
}

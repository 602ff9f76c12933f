package rebuild_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/rebuild"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// clock is a settable clock shared by the core and the fake fleet. It is safe for concurrent
// use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// memTable is an in-memory rebuild.Table: values are kept as JSON (so a caller never shares
// memory with the store, as with the KV bucket) with a revision each, and Update writes only
// over the revision it read, retrying otherwise, as compare-and-swap on the bucket does.
type memTable[T any] struct {
	mu   sync.Mutex
	rows map[string]memRow
	// writes counts successful creates and updates, for tests that look at contention.
	writes int
}

type memRow struct {
	raw []byte
	rev uint64
}

func newTable[T any]() *memTable[T] { return &memTable[T]{rows: map[string]memRow{}} }

// memKey encodes key parts injectively (each part quoted), standing in for state.Key.
func memKey(parts ...string) string {
	q := make([]string, len(parts))
	for i, p := range parts {
		q[i] = strconv.Quote(p)
	}
	return strings.Join(q, ".")
}

func (m *memTable[T]) read(key []string) (T, uint64, error) {
	var v T
	m.mu.Lock()
	row, ok := m.rows[memKey(key...)]
	m.mu.Unlock()
	if !ok {
		return v, 0, domain.ErrNotFound
	}
	if err := json.Unmarshal(row.raw, &v); err != nil {
		return v, 0, fmt.Errorf("memtable: decode %v: %w", key, err)
	}
	return v, row.rev, nil
}

func (m *memTable[T]) Get(_ context.Context, key ...string) (T, error) {
	v, _, err := m.read(key)
	return v, err
}

func (m *memTable[T]) Create(_ context.Context, v T, key ...string) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := memKey(key...)
	if _, ok := m.rows[k]; ok {
		return domain.ErrExists
	}
	m.rows[k] = memRow{raw: raw, rev: 1}
	m.writes++
	return nil
}

func (m *memTable[T]) Update(ctx context.Context, change func(*T) error, key ...string) (T, error) {
	for {
		v, rev, err := m.read(key)
		if err != nil {
			return v, err
		}
		if err := change(&v); errors.Is(err, domain.ErrNoChange) {
			return v, nil
		} else if err != nil {
			return v, err
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return v, err
		}
		m.mu.Lock()
		k := memKey(key...)
		if m.rows[k].rev == rev {
			m.rows[k] = memRow{raw: raw, rev: rev + 1}
			m.writes++
			m.mu.Unlock()
			return v, nil
		}
		m.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return v, err
		}
	}
}

// memCopies is an in-memory rebuild.Copies over the replication records a test puts in.
type memCopies struct {
	mu   sync.Mutex
	recs map[string]domain.Record
}

// put stores rec unless a record of the same copy exists, as the poller's create does.
func (m *memCopies) put(rec domain.Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := rec.Copy.Key()
	if _, ok := m.recs[k]; !ok {
		m.recs[k] = rec
	}
}

func (m *memCopies) Record(_ context.Context, r events.Replication) (domain.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.recs[events.ReplicationKey(r)]
	if !ok {
		return domain.Record{}, domain.ErrNotFound
	}
	return rec, nil
}

func (m *memCopies) OfImage(_ context.Context, i events.Image) ([]domain.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	account := func(a string) string {
		if a == "" {
			return "default"
		}
		return a
	}
	var out []domain.Record
	for _, rec := range m.recs {
		if rec.Provider == i.Provider && account(rec.Account) == account(i.Account) && rec.ImageID == i.ImageID {
			out = append(out, rec)
		}
	}
	return out, nil
}

// memStore is the in-memory storage of one test: the core's tables and the replication
// records.
type memStore struct {
	rollouts *memTable[rebuild.Rollout]
	desktops *memTable[rebuild.DesktopRecord]
	onImage  *memTable[rebuild.OnImage]
	copies   *memCopies
}

func newStore() *memStore {
	return &memStore{rollouts: newTable[rebuild.Rollout](), desktops: newTable[rebuild.DesktopRecord](),
		onImage: newTable[rebuild.OnImage](), copies: &memCopies{recs: map[string]domain.Record{}}}
}

// ports returns the store as the core's Store port.
func (s *memStore) ports() rebuild.Store {
	return rebuild.Store{Rollouts: s.rollouts, Desktops: s.desktops, OnImage: s.onImage, Copies: s.copies, Key: memKey}
}

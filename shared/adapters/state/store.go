// Package state keeps imagerelay's records: one record per replication and per desktop
// rebuild, the plan of each image, and cluster-wide semaphores. Records are claimed with Create
// and advanced with compare-and-swap, which is what makes the functions idempotent across
// workers, runtimes and redeliveries.
//
// The package is storage logic only: it keeps its records in a [Bucket], the port with two
// implementations — the JetStream key-value bucket of package natskv (what imagerelay runs on)
// and the in-memory map of package memkv (for the cores' unit tests) — and one conformance
// suite, package statetest, that both pass. It never imports NATS.
package state

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/imagerelay/imagerelay/shared/domain"
)

// ErrNotFound is returned when a record does not exist (it is domain.ErrNotFound, which the
// cores' ports speak).
var ErrNotFound = domain.ErrNotFound

// ErrExists is returned by Create when the record already exists (domain.ErrExists).
var ErrExists = domain.ErrExists

// Store is a typed view of a [Bucket]. It is safe for concurrent use.
type Store struct {
	b   Bucket
	now func() time.Time
	// plans remembers the plans this store last read or wrote, with their revisions, so a
	// settle can compare-and-swap a plan without reading it first (see [Store.Settle]).
	plans *revisions
}

// New returns a store over b.
func New(b Bucket) *Store { return &Store{b: b, now: time.Now, plans: newRevisions(planCacheSize)} }

// WithClock returns a copy of s whose semaphore leases follow now (for tests of expiry).
func (s *Store) WithClock(now func() time.Time) *Store {
	c := *s
	c.now = now
	return &c
}

// Bucket returns the bucket under s.
func (s *Store) Bucket() Bucket { return s.b }

// Key builds a bucket key from parts, one '.'-separated token per part, so that a listing can
// be filtered on the server by whole tokens (see [Prefix]). The mapping is injective: letters,
// digits and '-' stay as they are, every other byte (the '_' escape itself included) becomes
// "_XX" in upper-case hex, and an empty part becomes a lone "_", which no escape can be. Two
// different lists of parts therefore never share a key, and [ParseKey] gives the parts back.
func Key(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('.')
		}
		writeToken(&b, p)
	}
	return b.String()
}

// Prefix returns the subject filter that matches every key whose first tokens are parts,
// for [List]: Prefix("repl", "huawei") matches Key("repl", "huawei", ...) and nothing else.
func Prefix(parts ...string) string {
	if len(parts) == 0 {
		return ">"
	}
	return Key(parts...) + ".>"
}

func keepByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
}

const hexDigits = "0123456789ABCDEF"

func writeToken(b *strings.Builder, p string) {
	if p == "" {
		b.WriteByte('_')
		return
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; keepByte(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0x0f])
		}
	}
}

// ErrBadKey is returned by ParseKey for a string that Key cannot have made.
var ErrBadKey = errors.New("state: not a key made by state.Key")

// ParseKey returns the parts Key was given to make key.
func ParseKey(key string) ([]string, error) {
	tokens := strings.Split(key, ".")
	parts := make([]string, len(tokens))
	for i, t := range tokens {
		p, err := parseToken(t)
		if err != nil {
			return nil, fmt.Errorf("%w: %q (token %d: %w)", ErrBadKey, key, i+1, err)
		}
		parts[i] = p
	}
	return parts, nil
}

func parseToken(t string) (string, error) {
	switch t {
	case "":
		return "", errors.New("empty token")
	case "_":
		return "", nil
	}
	var b strings.Builder
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case keepByte(c):
			b.WriteByte(c)
		case c == '_' && i+2 < len(t) && isUpperHex(t[i+1]) && isUpperHex(t[i+2]):
			v := strings.IndexByte(hexDigits, t[i+1])<<4 | strings.IndexByte(hexDigits, t[i+2])
			if keepByte(byte(v)) {
				// Key never escapes a byte it keeps: accepting it would give one part two keys.
				return "", fmt.Errorf("needless escape %q", t[i:i+3])
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			return "", fmt.Errorf("byte %q at %d", c, i)
		}
	}
	return b.String(), nil
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

// Get reads the record at key into a T and returns its revision.
func Get[T any](ctx context.Context, s *Store, key string) (T, uint64, error) {
	var v T
	raw, rev, err := s.b.Get(ctx, key)
	if err != nil {
		return v, 0, err
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, 0, fmt.Errorf("state: decode %s: %w", key, err)
	}
	return v, rev, nil
}

// Create stores v at key if nothing is there yet; ErrExists otherwise.
func Create[T any](ctx context.Context, s *Store, key string, v T) (uint64, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("state: encode %s: %w", key, err)
	}
	return s.b.Create(ctx, key, raw)
}

// ErrNoChange can be returned by an update function to leave the record as it is
// (domain.ErrNoChange).
var ErrNoChange = domain.ErrNoChange

// Update reads the record at key, applies change and writes it back with compare-and-swap,
// retrying when another writer got there first. change sees the latest value each time.
// It returns the value as stored (or as read, when change returned ErrNoChange).
func Update[T any](ctx context.Context, s *Store, key string, change func(*T) error) (T, error) {
	v, rev, err := Get[T](ctx, s, key)
	if err != nil {
		return v, err
	}
	v, _, err = UpdateFrom(ctx, s, key, v, rev, change)
	return v, err
}

// UpdateFrom is [Update] for a value the caller has already read, at revision rev: change is
// applied to v and written with compare-and-swap at rev, with no read first. When another
// writer got there first, it reads the record again and applies change to that, as Update
// does, so the outcome is the same as Update's; it only saves the read when nobody wrote
// since. It returns the value as stored (or as read, when change returned ErrNoChange) and
// its revision.
func UpdateFrom[T any](ctx context.Context, s *Store, key string, v T, rev uint64, change func(*T) error) (T, uint64, error) {
	for attempt := 0; ; attempt++ {
		if err := change(&v); errors.Is(err, ErrNoChange) {
			return v, rev, nil
		} else if err != nil {
			return v, rev, err
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return v, rev, fmt.Errorf("state: encode %s: %w", key, err)
		}
		next, err := s.b.Update(ctx, key, raw, rev)
		if err == nil {
			return v, next, nil
		}
		if !errors.Is(err, ErrRevisionMismatch) {
			return v, rev, err
		}
		if attempt > 100 {
			return v, rev, fmt.Errorf("state: update %s: too much contention: %w", key, err)
		}
		if err := ctx.Err(); err != nil {
			return v, rev, err
		}
		if v, rev, err = Get[T](ctx, s, key); err != nil {
			return v, rev, err
		}
	}
}

// List returns every record whose key matches filter, made by [Prefix]. The filter is applied
// by the bucket (on the server, for JetStream) and the values come with the listing, so a
// listing costs what it returns, not the size of the bucket.
func List[T any](ctx context.Context, s *Store, filter string) ([]T, error) {
	var out []T
	err := s.b.List(ctx, cmp.Or(filter, ">"), func(key string, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("state: decode %s: %w", key, err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// Delete removes the record at key; a missing record is not an error.
func (s *Store) Delete(ctx context.Context, key string) error { return s.b.Delete(ctx, key) }

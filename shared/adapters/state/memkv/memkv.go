// Package memkv is the in-memory implementation of the state.Bucket port: a map with
// revisions, for the function cores' unit tests, which then run without a NATS server. It
// passes the same conformance suite (package statetest) as the JetStream bucket of package
// natskv, which is what imagerelay runs on; it is never used by a function binary.
package memkv

import (
	"context"
	"strings"
	"sync"

	"github.com/imagerelay/imagerelay/shared/adapters/state"
)

// Bucket is an in-memory state.Bucket. The zero value is not usable; call [New].
type Bucket struct {
	mu   sync.Mutex
	rev  uint64
	live map[string]entry
}

type entry struct {
	value []byte
	rev   uint64
}

// New returns an empty bucket.
func New() *Bucket { return &Bucket{live: map[string]entry{}} }

// NewStore returns a state.Store over a new empty bucket.
func NewStore() *state.Store { return state.New(New()) }

// Get implements state.Bucket.
func (b *Bucket) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.live[key]
	if !ok {
		return nil, 0, state.ErrNotFound
	}
	return clone(e.value), e.rev, nil
}

// Create implements state.Bucket.
func (b *Bucket) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.live[key]; ok {
		return 0, state.ErrExists
	}
	return b.put(key, value), nil
}

// Update implements state.Bucket.
func (b *Bucket) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.live[key]; !ok || e.rev != revision {
		return 0, state.ErrRevisionMismatch
	}
	return b.put(key, value), nil
}

func (b *Bucket) put(key string, value []byte) uint64 {
	b.rev++
	b.live[key] = entry{value: clone(value), rev: b.rev}
	return b.rev
}

// Delete implements state.Bucket.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.live[key]; ok {
		b.rev++ // a delete is a write, as a JetStream delete marker is
		delete(b.live, key)
	}
	return nil
}

// List implements state.Bucket. It calls fn on a snapshot, outside the lock, so fn may use
// the bucket.
func (b *Bucket) List(ctx context.Context, filter string, fn func(key string, value []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	var keys []string
	var values [][]byte
	for k, e := range b.live {
		if Match(filter, k) {
			keys = append(keys, k)
			values = append(values, clone(e.value))
		}
	}
	b.mu.Unlock()
	for i, k := range keys {
		if err := fn(k, values[i]); err != nil {
			return err
		}
	}
	return nil
}

// Match reports whether key matches filter the way a NATS subject matches a subscription: the
// tokens are compared one by one, '*' matches any one token and a final '>' any one or more.
func Match(filter, key string) bool {
	f, k := strings.Split(filter, "."), strings.Split(key, ".")
	for i, t := range f {
		if t == ">" && i == len(f)-1 {
			return len(k) > i
		}
		if i >= len(k) || t != "*" && t != k[i] {
			return false
		}
	}
	return len(f) == len(k)
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

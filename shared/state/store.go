// Package state keeps imagerelay's records in a JetStream key-value bucket: one record per
// replication and per desktop rebuild, the plan of each image, and cluster-wide semaphores.
// Records are claimed with Create and advanced with compare-and-swap, which is what makes the
// functions idempotent across workers, runtimes and redeliveries.
package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("state: record not found")

// ErrExists is returned by Create when the record already exists.
var ErrExists = errors.New("state: record exists")

// Store is a typed view of the bucket. It is safe for concurrent use.
type Store struct {
	kv jetstream.KeyValue
}

// Open creates the bucket if needed and returns the store.
func Open(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*Store, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "imagerelay replication and rebuild records",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("state: open bucket %s: %w", bucket, err)
	}
	return &Store{kv: kv}, nil
}

// Key builds a bucket key from parts; characters a key may not hold become "_".
func Key(parts ...string) string {
	for i, p := range parts {
		parts[i] = strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '=', r == '/':
				return r
			}
			return '_'
		}, p)
	}
	return strings.Join(parts, "/")
}

// Get reads the record at key into a T and returns its revision.
func Get[T any](ctx context.Context, s *Store, key string) (T, uint64, error) {
	var v T
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return v, 0, ErrNotFound
	}
	if err != nil {
		return v, 0, fmt.Errorf("state: get %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return v, 0, fmt.Errorf("state: decode %s: %w", key, err)
	}
	return v, e.Revision(), nil
}

// Create stores v at key if nothing is there yet; ErrExists otherwise.
func Create[T any](ctx context.Context, s *Store, key string, v T) (uint64, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("state: encode %s: %w", key, err)
	}
	rev, err := s.kv.Create(ctx, key, raw)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, ErrExists
	}
	if err != nil {
		return 0, fmt.Errorf("state: create %s: %w", key, err)
	}
	return rev, nil
}

// ErrNoChange can be returned by an update function to leave the record as it is.
var ErrNoChange = errors.New("state: no change")

// Update reads the record at key, applies change and writes it back with compare-and-swap,
// retrying when another writer got there first. change sees the latest value each time.
// It returns the value as stored (or as read, when change returned ErrNoChange).
func Update[T any](ctx context.Context, s *Store, key string, change func(*T) error) (T, error) {
	for attempt := 0; ; attempt++ {
		v, rev, err := Get[T](ctx, s, key)
		if err != nil {
			return v, err
		}
		if err := change(&v); errors.Is(err, ErrNoChange) {
			return v, nil
		} else if err != nil {
			return v, err
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return v, fmt.Errorf("state: encode %s: %w", key, err)
		}
		_, err = s.kv.Update(ctx, key, raw, rev)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return v, fmt.Errorf("state: update %s: %w", key, err)
		}
		if attempt > 100 {
			return v, fmt.Errorf("state: update %s: too much contention: %w", key, err)
		}
		if err := ctx.Err(); err != nil {
			return v, err
		}
	}
}

// List returns every record whose key starts with prefix. Keys use "/" inside one subject
// token, so the prefix is matched here rather than with a subject wildcard.
func List[T any](ctx context.Context, s *Store, prefix string) ([]T, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("state: list %s: %w", prefix, err)
	}
	var out []T
	for k := range lister.Keys() {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		v, _, err := Get[T](ctx, s, k)
		if errors.Is(err, ErrNotFound) {
			continue // deleted between listing and reading
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Delete removes the record at key.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("state: delete %s: %w", key, err)
	}
	return nil
}

// now is the store's clock, replaceable in tests of lease expiry.
var now = time.Now

// Bind opens an existing bucket without creating it (for read-only tools such as status).
func Bind(ctx context.Context, js jetstream.JetStream, bucket string) (*Store, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("state: bucket %s: %w (has imagerelay run on this NATS yet?)", bucket, err)
	}
	return &Store{kv: kv}, nil
}

// Package state keeps imagerelay's records in a JetStream key-value bucket: one record per
// replication and per desktop rebuild, the plan of each image, and cluster-wide semaphores.
// Records are claimed with Create and advanced with compare-and-swap, which is what makes the
// functions idempotent across workers, runtimes and redeliveries.
package state

import (
	"cmp"
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
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket,
		Description: "imagerelay replication and rebuild records",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}); err != nil {
		return nil, fmt.Errorf("state: open bucket %s: %w", bucket, err)
	}
	if err := leaderReads(ctx, js, bucket); err != nil {
		return nil, err
	}
	// Bound anew, so the handle reads the way the bucket now says.
	return Bind(ctx, js, bucket)
}

// leaderReads turns off direct gets on the bucket's stream. nats.go creates KV buckets with
// direct gets, which any replica may answer: in a cluster a read can miss a write acknowledged
// a moment before. imagerelay decides from reads (has every region of an image settled? is
// this copy already started?), so every read goes to the stream leader and sees every
// acknowledged write. The chaos test on a 3-node cluster lost replication.completed events
// before this: the last region to settle read its siblings' records from a replica that was
// still behind.
func leaderReads(ctx context.Context, js jetstream.JetStream, bucket string) error {
	s, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return fmt.Errorf("state: bucket %s: %w", bucket, err)
	}
	cfg := s.CachedInfo().Config
	if !cfg.AllowDirect {
		return nil
	}
	cfg.AllowDirect = false
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("state: bucket %s: read from the leader: %w", bucket, err)
	}
	return nil
}

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

// List returns every record whose key matches filter, made by [Prefix]. The filter is applied
// by the server and the values come with the listing (one watch, no read per key), so a
// listing costs what it returns, not the size of the bucket.
func List[T any](ctx context.Context, s *Store, filter string) ([]T, error) {
	var out []T
	err := s.each(ctx, cmp.Or(filter, ">"), func(key string, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("state: decode %s: %w", key, err)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

// each calls fn with the key and value of every live key matching filter, from one watch
// that delivers the values (deleted keys are skipped by the server's markers).
func (s *Store) each(ctx context.Context, filter string, fn func(key string, raw []byte) error) error {
	w, err := s.kv.WatchFiltered(ctx, []string{filter}, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("state: list %s: %w", filter, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("state: list %s: %w", filter, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("state: list %s: the watch ended before the listing was complete", filter)
			}
			if e == nil {
				return nil // every value present when the watch started has been seen
			}
			if err := fn(e.Key(), e.Value()); err != nil {
				return err
			}
		}
	}
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

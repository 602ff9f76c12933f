// Package natskv is the JetStream implementation of the state.Bucket port: imagerelay's
// records live in a JetStream key-value bucket, read from the stream leader, so every runtime
// and every worker of a cluster shares them. It passes the conformance suite of package
// statetest, as the in-memory bucket of package memkv does.
package natskv

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/shared/adapters/state"
)

// Bucket is a state.Bucket on a JetStream key-value bucket. It is safe for concurrent use.
type Bucket struct {
	kv jetstream.KeyValue
}

// Open creates the bucket if needed (or brings it to these settings) and returns a store on
// it. Only the component that owns the bucket calls it (see compose.Setup); everything else
// calls [Bind].
func Open(ctx context.Context, js jetstream.JetStream, bucket string, replicas int) (*state.Store, error) {
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

// Bind opens an existing bucket without creating or changing it and returns a store on it.
func Bind(ctx context.Context, js jetstream.JetStream, bucket string) (*state.Store, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("state: bucket %s: %w (has imagerelay run on this NATS yet?)", bucket, err)
	}
	return state.New(&Bucket{kv: kv}), nil
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

// Get implements state.Bucket.
func (b *Bucket) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := b.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, state.ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("state: get %s: %w", key, err)
	}
	return e.Value(), e.Revision(), nil
}

// Create implements state.Bucket.
func (b *Bucket) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	rev, err := b.kv.Create(ctx, key, value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, state.ErrExists
	}
	if err != nil {
		return 0, fmt.Errorf("state: create %s: %w", key, err)
	}
	return rev, nil
}

// Update implements state.Bucket.
func (b *Bucket) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	rev, err := b.kv.Update(ctx, key, value, revision)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, fmt.Errorf("%w: %s", state.ErrRevisionMismatch, key)
	}
	if err != nil {
		return 0, fmt.Errorf("state: update %s: %w", key, err)
	}
	return rev, nil
}

// Delete implements state.Bucket.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := b.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("state: delete %s: %w", key, err)
	}
	return nil
}

// List implements state.Bucket with one watch filtered by the server, which delivers the
// values too (no key listing, no read per key); deleted keys are skipped by their markers.
func (b *Bucket) List(ctx context.Context, filter string, fn func(key string, value []byte) error) error {
	w, err := b.kv.WatchFiltered(ctx, []string{filter}, jetstream.IgnoreDeletes())
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

// Status returns the bucket's JetStream status (its stream settings), for checks of how it
// is set up.
func (b *Bucket) Status(ctx context.Context) (jetstream.KeyValueStatus, error) {
	return b.kv.Status(ctx)
}

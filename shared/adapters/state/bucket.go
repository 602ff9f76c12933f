package state

import (
	"context"
	"errors"
)

// ErrRevisionMismatch is returned by [Bucket.Update] when the key was written since the
// revision the caller read: another writer got there first.
var ErrRevisionMismatch = errors.New("state: revision mismatch")

// Bucket is the storage port under [Store]: a map of keys to values in which every write gets
// a new revision, so that a read-modify-write can be made safe with compare-and-swap. Keys are
// '.'-separated tokens (see [Key]), and listings filter on whole tokens the way NATS subjects
// do ('*' one token, '>' the rest), so a listing is filtered where the data lives.
//
// Implementations must be safe for concurrent use and pass the conformance suite of package
// statetest: natskv (JetStream) and memkv (in memory) do.
type Bucket interface {
	// Get returns the value at key and its revision; ErrNotFound when there is none (or it
	// was deleted).
	Get(ctx context.Context, key string) (value []byte, revision uint64, err error)
	// Create stores value at key if the key has no live value, and returns its revision;
	// ErrExists otherwise.
	Create(ctx context.Context, key string, value []byte) (uint64, error)
	// Update replaces the value at key if its revision is still revision, and returns the new
	// revision; ErrRevisionMismatch otherwise.
	Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List calls fn with the key and value of every live key that matches filter, in no
	// particular order, and stops at fn's first error.
	List(ctx context.Context, filter string, fn func(key string, value []byte) error) error
}

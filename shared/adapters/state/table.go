package state

import "context"

// Table is a typed view of the records of one kind, addressed by key parts: the parts are
// made into one key by [Key], so two different lists of parts never share a record. It
// implements the record ports the cores declare (get, create, update with a function, list
// by prefix) for any record type T that encodes as JSON.
type Table[T any] struct{ s *Store }

// NewTable returns the table of T records in s.
func NewTable[T any](s *Store) Table[T] { return Table[T]{s: s} }

// Get reads the record at key; ErrNotFound when there is none.
func (t Table[T]) Get(ctx context.Context, key ...string) (T, error) {
	v, _, err := Get[T](ctx, t.s, Key(key...))
	return v, err
}

// Create stores v at key if nothing is there yet; ErrExists otherwise.
func (t Table[T]) Create(ctx context.Context, v T, key ...string) error {
	_, err := Create(ctx, t.s, Key(key...), v)
	return err
}

// Update changes the record at key with compare-and-swap (see [Update]); change may return
// ErrNoChange to leave it as it is.
func (t Table[T]) Update(ctx context.Context, change func(*T) error, key ...string) (T, error) {
	return Update(ctx, t.s, Key(key...), change)
}

// List returns every record whose key starts with the parts of prefix, filtered by the bucket.
func (t Table[T]) List(ctx context.Context, prefix ...string) ([]T, error) {
	return List[T](ctx, t.s, Prefix(prefix...))
}

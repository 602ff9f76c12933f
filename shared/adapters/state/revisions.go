package state

import "sync"

// planCacheSize bounds the plans a store remembers: enough for the images one worker settles
// at a time, small next to a worker's memory (a plan is a few hundred bytes).
const planCacheSize = 4096

// revisions remembers, for a bounded number of keys, the last value a store read or wrote and
// its revision. It is only ever a guess at where to start a compare-and-swap: a value that
// has changed since makes the write fail with ErrRevisionMismatch, and the caller reads it
// again. It keeps the encoded value, so nobody can edit what it holds.
type revisions struct {
	mu    sync.Mutex
	limit int
	m     map[string]revision
}

type revision struct {
	raw []byte
	rev uint64
}

func newRevisions(limit int) *revisions {
	return &revisions{limit: limit, m: map[string]revision{}}
}

// get returns the remembered value of key and its revision.
func (r *revisions) get(key string) ([]byte, uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.m[key]
	return v.raw, v.rev, ok
}

// put remembers raw at rev for key, unless a later revision is remembered already.
func (r *revisions) put(key string, raw []byte, rev uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.m[key]; ok && old.rev > rev {
		return
	}
	if _, ok := r.m[key]; !ok && len(r.m) >= r.limit {
		for k := range r.m { // the map's random order makes this a random eviction
			delete(r.m, k)
			break
		}
	}
	r.m[key] = revision{raw: append([]byte(nil), raw...), rev: rev}
}

// forget drops key, when its remembered revision proved stale.
func (r *revisions) forget(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, key)
}

package rebuild_test

import (
	"context"
	"errors"

	"github.com/imagerelay/imagerelay/functions/rebuild"
	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/adapters/state/memkv"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// memStore is the storage of one test: the in-memory bucket of memkv (which passes the same
// conformance suite as the JetStream bucket), with the core's tables on it.
type memStore struct {
	kv       *state.Store
	rollouts state.Table[rebuild.Rollout]
}

func newStore() *memStore {
	kv := memkv.NewStore()
	return &memStore{kv: kv, rollouts: state.NewTable[rebuild.Rollout](kv)}
}

// putCopy stores a replication record unless the copy has one, as the poller's create does.
func (s *memStore) putCopy(rec domain.Record) {
	if err := s.kv.CreateRecord(context.Background(), rec); err != nil && !errors.Is(err, domain.ErrExists) {
		panic(err)
	}
}

// ports returns the store as the core's Store port, wired as the composition root wires it.
func (s *memStore) ports() rebuild.Store {
	return rebuild.Store{Rollouts: s.rollouts, Desktops: state.NewTable[rebuild.DesktopRecord](s.kv),
		OnImage: state.NewTable[rebuild.OnImage](s.kv), Copies: s.kv, Key: state.Key}
}

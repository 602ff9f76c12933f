package compose

import (
	"context"
	"errors"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/rebuild"
	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/config"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// RebuildPolicies maps the configuration's rebuild policies to the rebuild core's, in file
// order. A maintenance window is parsed by the core's own rules; one with problems (which
// validation reports when the file is loaded) never opens, so it cannot rebuild at the wrong
// time.
func RebuildPolicies(cfg *config.Config) []rebuild.Policy {
	out := make([]rebuild.Policy, 0, len(cfg.Rebuild.Policies))
	for _, p := range cfg.Rebuild.Policies {
		rp := rebuild.Policy{Name: p.Name, Match: p.Match, Regions: p.Regions, Desktops: rebuild.Selector(p.Desktops),
			Canary: p.Canary, BatchSize: p.BatchSize, FailureBudget: p.FailureBudget, OperateType: p.OperateType,
			Language: p.Language, AllowDataDiskWipe: p.AllowDataDiskWipe, DryRun: p.DryRun,
			CheckInterval: p.CheckInterval.Std(), Timeout: p.Timeout.Std()}
		if p.Window != nil {
			rp.Window, _ = rebuild.ParseWindow(p.Window.Spec())
		}
		out = append(out, rp)
	}
	return out
}

// RebuildStore adapts the KV store to the rebuild core's storage ports.
//
// It is a shim until the state package offers its generic tables: it encodes key parts with
// state.Key, lists a copy's image with the server-filtered state.RecordsOfImage, and
// translates the store's errors to the domain's.
func RebuildStore(s *state.Store) rebuild.Store {
	return rebuild.Store{Rollouts: kvTable[rebuild.Rollout]{s}, Desktops: kvTable[rebuild.DesktopRecord]{s},
		OnImage: kvTable[rebuild.OnImage]{s}, Copies: kvCopies{s}, Key: state.Key}
}

// kvTable is a rebuild.Table over the KV store.
type kvTable[T any] struct{ s *state.Store }

func (t kvTable[T]) Get(ctx context.Context, key ...string) (T, error) {
	v, _, err := state.Get[T](ctx, t.s, state.Key(key...))
	return v, domainErr(err)
}

func (t kvTable[T]) Create(ctx context.Context, v T, key ...string) error {
	_, err := state.Create(ctx, t.s, state.Key(key...), v)
	return domainErr(err)
}

func (t kvTable[T]) Update(ctx context.Context, change func(*T) error, key ...string) (T, error) {
	v, err := state.Update(ctx, t.s, state.Key(key...), func(v *T) error {
		if err := change(v); !errors.Is(err, domain.ErrNoChange) {
			return err
		}
		return state.ErrNoChange
	})
	return v, domainErr(err)
}

// kvCopies reads replication records for the rebuild core.
type kvCopies struct{ s *state.Store }

func (c kvCopies) Record(ctx context.Context, r events.Replication) (domain.Record, error) {
	rec, _, err := c.s.Record(ctx, r)
	return rec, domainErr(err)
}

func (c kvCopies) OfImage(ctx context.Context, i events.Image) ([]domain.Record, error) {
	return state.List[domain.Record](ctx, c.s, state.RecordsOfImage(i))
}

// domainErr gives the store's not-found and exists errors as the domain's, which the cores'
// ports speak.
func domainErr(err error) error {
	switch {
	case errors.Is(err, state.ErrNotFound):
		return domain.ErrNotFound
	case errors.Is(err, state.ErrExists):
		return domain.ErrExists
	}
	return err
}

package rebuildwire

import (
	"github.com/imagerelay/imagerelay/functions/rebuild"
	"github.com/imagerelay/imagerelay/functions/rebuild/rules"
	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/config"
)

// Policies maps the configuration's rebuild policies to the rebuild core's, in file
// order. A maintenance window is parsed by the core's own rules; one with problems (which
// validation reports when the file is loaded) never opens, so it cannot rebuild at the wrong
// time.
func Policies(cfg *config.Config) []rules.Policy {
	out := make([]rules.Policy, 0, len(cfg.Rebuild.Policies))
	for _, p := range cfg.Rebuild.Policies {
		rp := rules.Policy{Name: p.Name, Match: p.Match, Regions: p.Regions, Desktops: rules.Selector(p.Desktops),
			Canary: p.Canary, BatchSize: p.BatchSize, FailureBudget: p.FailureBudget, OperateType: p.OperateType,
			Language: p.Language, AllowDataDiskWipe: p.AllowDataDiskWipe, DryRun: p.DryRun,
			CheckInterval: p.CheckInterval.Std(), Timeout: p.Timeout.Std()}
		if p.Window != nil {
			rp.Window, _ = rules.ParseWindow(p.Window.Spec())
		}
		out = append(out, rp)
	}
	return out
}

// Store gives the rebuild core its storage ports on the KV store: a table per record
// type, whose key parts state.Key encodes (the core keeps that encoding in its records, so it
// is passed in rather than copied), and the replication records, listed for an image with a
// server-filtered prefix.
func Store(s *state.Store) rebuild.Store {
	return rebuild.Store{Rollouts: state.NewTable[rebuild.Rollout](s), Desktops: state.NewTable[rebuild.DesktopRecord](s),
		OnImage: state.NewTable[rebuild.OnImage](s), Copies: s, Key: state.Key}
}

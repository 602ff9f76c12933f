// Package fanoutwire wires the fanout function: its core, its policies from the
// configuration, and the clouds' constraint checkers. The fanout binary's main hands
// [Function] to the runtime.
package fanoutwire

import (
	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/fanout"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/compose"
	"github.com/imagerelay/imagerelay/shared/compose/clouds"
	"github.com/imagerelay/imagerelay/shared/runtime/host"
)

// Function is what the fanout binary hands to the runtime: its core on
// the clouds its policies may name.
func Function() host.Function { return clouds.Function(fanout.Name, Spec) }

// Spec returns fanout's bus spec: its core on c, four events at a time.
func Spec(env *compose.Env, c clouds.Clouds) bus.Spec {
	return bus.Spec{Function: fanout.Name, Types: []string{events.TypeImagePublished}, Handler: Core(env, c), Concurrency: 4}
}

// Core builds the fanout core.
func Core(env *compose.Env, c clouds.Clouds) *fanout.Core {
	cfg := env.Config
	core := &fanout.Core{Checkers: clouds.Named[fanout.ConstraintChecker](c, c.Tencent, c.Alibaba, c.Huawei), Unavailable: c.Unavailable,
		Plans: env.Store, Timeout: cfg.Replication.Timeout.Std(), PollInterval: cfg.Replication.PollInterval.Std()}
	for _, p := range cfg.Replication.Policies {
		core.Policies = append(core.Policies, fanout.Policy{Name: p.Name, Match: p.Match, Regions: p.Regions,
			Timeout: cfg.Replication.TimeoutFor(p), PollInterval: cfg.Replication.PollIntervalFor(p)})
	}
	return core
}

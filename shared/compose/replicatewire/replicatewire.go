// Package replicatewire wires the replicate function: its core on the three clouds' copiers.
// The replicate binary's main hands [Function] to the runtime.
package replicatewire

import (
	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/replicate"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/compose"
	"github.com/imagerelay/imagerelay/shared/compose/clouds"
	"github.com/imagerelay/imagerelay/shared/runtime/host"
)

// Function is what the replicate binary hands to the runtime: its core on
// the clouds it copies on.
func Function() host.Function { return clouds.Function(replicate.Name, Spec) }

// Spec returns replicate's bus spec: its core on c, eight events at a time.
func Spec(env *compose.Env, c clouds.Clouds) bus.Spec {
	return bus.Spec{Function: replicate.Name, Types: []string{events.TypeReplicationRequested}, Handler: Core(env, c), Concurrency: 8}
}

// Core builds the replicate core.
func Core(env *compose.Env, c clouds.Clouds) *replicate.Core {
	return replicate.New(replicate.Config{Copiers: clouds.Named[replicate.Copier](c, c.Tencent, c.Alibaba, c.Huawei), Unavailable: c.Unavailable,
		Store: env.Store, Log: env.Log, Slots: clouds.Slots(c, env.Store, env.Bus, env.Log)})
}

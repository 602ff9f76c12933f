// Package pollerwire wires the poller function: its core on the three clouds' status
// readers. The poller binary's main hands [Function] to the runtime.
package pollerwire

import (
	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/poller"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/compose"
	"github.com/imagerelay/imagerelay/shared/compose/clouds"
	"github.com/imagerelay/imagerelay/shared/runtime/host"
)

// Function is what the poller binary hands to the runtime: its core on
// the clouds it reads copies from.
func Function() host.Function { return clouds.Function(poller.Name, Spec) }

// Spec returns the poller's bus spec: its core on c, in batches of up to 100 checks of one
// provider and destination region (the subject's tail), the largest a status call takes
// (Tencent DescribeImages: 100 ids), four batches at a time. A batch is handled as soon as
// it is full, or after bus.DefaultBatchWait when its group receives fewer checks than that.
func Spec(env *compose.Env, c clouds.Clouds) bus.Spec {
	return bus.Spec{Function: poller.Name, Types: []string{events.TypeReplicationStarted}, Handler: Core(env, c),
		BatchSize: BatchSize, Concurrency: Concurrency, BatchKey: bus.BySubjectTail}
}

// BatchSize is how many checks the poller gets at once: the most ids one Tencent
// DescribeImages call takes; the core splits a batch further for providers that take fewer.
const BatchSize = 100

// Concurrency is how many batches one poller worker handles at once: status calls of
// different groups overlap instead of waiting for each other.
const Concurrency = 4

// Core builds the poller core.
func Core(env *compose.Env, c clouds.Clouds) *poller.Core {
	return poller.New(poller.Config{Readers: clouds.Named[poller.StatusReader](c, c.Tencent, c.Alibaba, c.Huawei),
		Store: env.Store, Log: env.Log, Unavailable: c.Unavailable, Slots: clouds.Slots(c, env.Store, env.Bus, env.Log)})
}

// Package clouds builds the replication providers from the configuration: Tencent CVM,
// Alibaba App Streaming and Huawei IMS, each on its official SDK. It names no core: each
// function's wiring package takes the adapters it needs as the ports its core declares (see
// [Named]). Only the functions that copy images import it; rebuild takes Alibaba's desktops
// from alibabawire and links no other cloud.
package clouds

import (
	"context"
	"log/slog"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/lifecycle"
	"github.com/imagerelay/imagerelay/shared/adapters/alibaba"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/adapters/huawei"
	"github.com/imagerelay/imagerelay/shared/adapters/ratelimit"
	"github.com/imagerelay/imagerelay/shared/adapters/tencent"
	"github.com/imagerelay/imagerelay/shared/compose"
	"github.com/imagerelay/imagerelay/shared/compose/alibabawire"
	"github.com/imagerelay/imagerelay/shared/config"
	"github.com/imagerelay/imagerelay/shared/runtime/host"
)

// Clouds are the replication providers that could be built, and why the others could not.
type Clouds struct {
	// Tencent, Alibaba and Huawei are nil when they could not be built; Unavailable says why.
	Tencent *tencent.Provider
	Alibaba *alibaba.Provider
	Huawei  *huawei.Provider
	// Unavailable explains each provider that could not be built (missing credentials, ...),
	// by provider name.
	Unavailable map[string]error
}

// Build builds every replication provider whose credentials are present, pacing their calls
// with limits (one limiter per provider, API and account; nil means process-local limits:
// enough for one process, not for several workers).
func Build(cfg *config.Config, limits ratelimit.Factory) Clouds {
	c := Clouds{Unavailable: map[string]error{}}
	pc := cfg.Providers
	var err error
	if c.Tencent, err = tencent.New(tencent.Config{Endpoint: pc.Tencent.Endpoint, Account: pc.Tencent.Account,
		SyncRatePerSecond: pc.Tencent.SyncRate, DescribeRatePerSecond: pc.Tencent.DescribeRate, Limits: limits}); err != nil {
		c.Tencent, c.Unavailable[events.ProviderTencent] = nil, err
	}
	if c.Alibaba, err = alibaba.New(alibaba.Config{Endpoint: pc.Alibaba.Endpoint, EcdEndpoint: pc.Alibaba.EcdEndpoint,
		Account: pc.Alibaba.Account, ProductType: pc.Alibaba.ProductType, RatePerSecond: pc.Alibaba.Rate, Regions: pc.Alibaba.Regions, Limits: limits}); err != nil {
		c.Alibaba, c.Unavailable[events.ProviderAlibaba] = nil, err
	}
	if c.Huawei, err = huawei.New(huawei.Config{Endpoint: pc.Huawei.Endpoint, Account: pc.Huawei.Account,
		Projects: pc.Huawei.Projects, Agency: pc.Huawei.Agency, RatePerSecond: pc.Huawei.Rate, Limits: limits}); err != nil {
		c.Huawei, c.Unavailable[events.ProviderHuawei] = nil, err
	}
	return c
}

// Warn logs each provider that could not be built, once at start.
func (c Clouds) Warn(log *slog.Logger) {
	if log == nil {
		return
	}
	for name, err := range c.Unavailable {
		log.Warn("provider not available; its events will be dead-lettered with this reason", "provider", name, "reason", err.Error())
	}
}

// Named returns the providers that could be built, by provider name, as the port P a core
// declares. The caller passes each provider converted to P (c.Tencent, c.Alibaba, c.Huawei),
// so the compiler checks that every provider implements the port; a provider that could not
// be built is left out.
func Named[P any](c Clouds, tencent, alibaba, huawei P) map[string]P {
	out := map[string]P{}
	if c.Tencent != nil {
		out[events.ProviderTencent] = tencent
	}
	if c.Alibaba != nil {
		out[events.ProviderAlibaba] = alibaba
	}
	if c.Huawei != nil {
		out[events.ProviderHuawei] = huawei
	}
	return out
}

// CheckRegions reports, with file and line, the policy regions a provider does not serve (a
// typo such as "ap-shangai"), so they are caught at start rather than skipped at publish time.
// Huawei regions are checked per copy, against the configured project ids.
func CheckRegions(cfg *config.Config) error {
	ali := cfg.Providers.Alibaba.Regions
	if len(ali) == 0 {
		ali = alibaba.KnownRegions()
	}
	return cfg.CheckRegions(map[string][]string{
		events.ProviderTencent: tencent.KnownRegions(),
		events.ProviderAlibaba: ali,
	})
}

// Slots are the copy slots of the providers in c that limit copies in flight per account
// (Huawei IMS: 5), held in limiter (the KV store's cluster-wide semaphores); waker (the bus)
// wakes the next waiter when one frees. replicate and the poller share this one definition.
func Slots(c Clouds, limiter lifecycle.Limiter, waker lifecycle.Waker, log *slog.Logger) lifecycle.Slots {
	s := lifecycle.Slots{Limits: map[string]int{}, Limiter: limiter, Waker: waker, Log: log}
	if c.Huawei != nil {
		s.Limits[events.ProviderHuawei] = c.Huawei.MaxInFlight()
	}
	return s
}

// Function is what the binary of a function whose core works on the clouds (fanout,
// replicate, poller) hands to the runtime: at start it builds the clouds from the
// configuration, logs the ones that could not be built, and hands them to spec. Function
// Compute's per-invocation keys reach the Alibaba adapter through alibabawire's hook.
func Function(name string, spec func(*compose.Env, Clouds) bus.Spec) host.Function {
	return compose.Function(name, func(_ context.Context, env *compose.Env) (bus.Spec, error) {
		c := Build(env.Config, env.Limits)
		c.Warn(env.Log)
		return spec(env, c), nil
	}, alibabawire.WithCredentials)
}

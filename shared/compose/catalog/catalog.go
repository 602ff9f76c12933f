// Package catalog gathers every function's wiring, for the CLI (`imagerelay up`, `worker`,
// `demo`), the end-to-end tests and the scripts that check the deployment: the function
// names, and each function's spec or runtime entry by name. Function binaries never import
// it; each links only its own wiring package.
package catalog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/imagerelay/imagerelay/functions/fanout"
	"github.com/imagerelay/imagerelay/functions/poller"
	"github.com/imagerelay/imagerelay/functions/rebuild"
	"github.com/imagerelay/imagerelay/functions/replicate"
	"github.com/imagerelay/imagerelay/shared/adapters/alibaba"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/adapters/ratelimit"
	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/compose"
	"github.com/imagerelay/imagerelay/shared/compose/alibabawire"
	"github.com/imagerelay/imagerelay/shared/compose/clouds"
	"github.com/imagerelay/imagerelay/shared/compose/fanoutwire"
	"github.com/imagerelay/imagerelay/shared/compose/pollerwire"
	"github.com/imagerelay/imagerelay/shared/compose/rebuildwire"
	"github.com/imagerelay/imagerelay/shared/compose/replicatewire"
	"github.com/imagerelay/imagerelay/shared/config"
	"github.com/imagerelay/imagerelay/shared/runtime/host"
)

// FunctionNames lists the functions, in flow order.
var FunctionNames = []string{fanout.Name, replicate.Name, poller.Name, rebuild.Name}

// Function returns what the named function's binary hands to the runtime.
func Function(name string) (host.Function, error) {
	switch name {
	case fanout.Name:
		return fanoutwire.Function(), nil
	case replicate.Name:
		return replicatewire.Function(), nil
	case poller.Name:
		return pollerwire.Function(), nil
	case rebuild.Name:
		return rebuildwire.Function(), nil
	}
	return host.Function{}, unknown(name)
}

func unknown(name string) error {
	return fmt.Errorf("unknown function %q; functions are %v", name, FunctionNames)
}

// Provider is what one cloud adapter offers the three replication functions.
type Provider interface {
	replicate.Copier
	poller.StatusReader
	fanout.ConstraintChecker
}

// Providers are the clouds that could be set up, and why the others could not.
type Providers struct {
	clouds.Clouds
	// ByName are the replication providers that could be built, by name.
	ByName map[string]Provider
	// Desktops is the Alibaba Elastic Desktop Service client rebuild uses; nil when it could
	// not be built, and DesktopsErr says why (that disables rebuild only).
	Desktops    *alibaba.Desktops
	DesktopsErr error
}

// BuildProviders builds every provider whose credentials are present, with process-local
// rate limits: enough for one process (tests, tools), not for several workers. Runtimes use
// BuildProvidersWithLimits with the cluster-wide limits.
func BuildProviders(cfg *config.Config) Providers { return BuildProvidersWithLimits(cfg, nil) }

// BuildProvidersWithLimits builds every provider whose credentials are present, pacing their
// calls with limits (one limiter per provider, API and account; nil means process-local).
func BuildProvidersWithLimits(cfg *config.Config, limits ratelimit.Factory) Providers {
	c := clouds.Build(cfg, limits)
	p := Providers{Clouds: c, ByName: clouds.Named[Provider](c, c.Tencent, c.Alibaba, c.Huawei)}
	p.Desktops, p.DesktopsErr = alibabawire.Desktops(cfg, limits)
	return p
}

// Runtime is everything the functions need at run time, all four in one process.
type Runtime struct {
	Config    *config.Config
	Bus       *bus.Bus
	Store     *state.Store
	Providers Providers
	Log       *slog.Logger
}

// Open binds to the existing stream and KV bucket on nc (see [compose.Setup]) and builds
// every cloud adapter on the cluster-wide rate limits.
func Open(ctx context.Context, cfg *config.Config, nc *nats.Conn, log *slog.Logger) (*Runtime, error) {
	env, err := compose.Open(ctx, cfg, nc, log)
	if err != nil {
		return nil, err
	}
	rt := &Runtime{Config: cfg, Bus: env.Bus, Store: env.Store, Providers: BuildProvidersWithLimits(cfg, env.Limits), Log: log}
	rt.Providers.Warn(log)
	return rt, nil
}

// Spec returns the bus spec of one function.
func (rt *Runtime) Spec(name string) (bus.Spec, error) {
	env := &compose.Env{Config: rt.Config, Bus: rt.Bus, Store: rt.Store, Log: rt.Log}
	c := rt.Providers.Clouds
	switch name {
	case fanout.Name:
		return fanoutwire.Spec(env, c), nil
	case replicate.Name:
		return replicatewire.Spec(env, c), nil
	case poller.Name:
		return pollerwire.Spec(env, c), nil
	case rebuild.Name:
		return rebuildwire.Spec(env, rt.Providers.Desktops, rt.Providers.DesktopsErr), nil
	}
	return bus.Spec{}, unknown(name)
}

// Package compose is the composition root: it builds the providers, the state store and the
// function cores from the configuration, for every runtime (the NATS workers of `imagerelay
// up` and `imagerelay worker`, and the Lambda and Function Compute binaries). It never
// imports the embedded nats-server.
package compose

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/fanout"
	"github.com/imagerelay/imagerelay/functions/lifecycle"
	"github.com/imagerelay/imagerelay/functions/poller"
	"github.com/imagerelay/imagerelay/functions/rebuild"
	"github.com/imagerelay/imagerelay/functions/replicate"
	"github.com/imagerelay/imagerelay/shared/adapters/alibaba"
	alibabarules "github.com/imagerelay/imagerelay/shared/adapters/alibaba/constraints"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/adapters/huawei"
	huaweirules "github.com/imagerelay/imagerelay/shared/adapters/huawei/constraints"
	"github.com/imagerelay/imagerelay/shared/adapters/ratelimit"
	"github.com/imagerelay/imagerelay/shared/adapters/ratelimit/kvlimit"
	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/adapters/state/natskv"
	"github.com/imagerelay/imagerelay/shared/adapters/tencent"
	tencentrules "github.com/imagerelay/imagerelay/shared/adapters/tencent/constraints"
	"github.com/imagerelay/imagerelay/shared/config"
)

// Provider is what one cloud adapter offers the three replication functions.
type Provider interface {
	replicate.Copier
	poller.StatusReader
	fanout.ConstraintChecker
}

// Providers are the clouds that could be set up, and why the others could not.
type Providers struct {
	ByName map[string]Provider
	// Unavailable explains each provider that could not be built (missing credentials, ...).
	Unavailable map[string]error
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
	p := Providers{ByName: map[string]Provider{}, Unavailable: map[string]error{}}
	add := func(name string, prov Provider, err error) {
		if err != nil {
			p.Unavailable[name] = err
			return
		}
		p.ByName[name] = prov
	}
	pc := cfg.Providers
	t, err := tencent.New(tencent.Config{Endpoint: pc.Tencent.Endpoint, Account: pc.Tencent.Account,
		SyncRatePerSecond: pc.Tencent.SyncRate, DescribeRatePerSecond: pc.Tencent.DescribeRate, Limits: limits})
	add(events.ProviderTencent, t, err)
	a, err := alibaba.New(alibaba.Config{Endpoint: pc.Alibaba.Endpoint, EcdEndpoint: pc.Alibaba.EcdEndpoint,
		Account: pc.Alibaba.Account, ProductType: pc.Alibaba.ProductType, RatePerSecond: pc.Alibaba.Rate, Regions: pc.Alibaba.Regions, Limits: limits})
	add(events.ProviderAlibaba, a, err)
	p.Desktops, p.DesktopsErr = alibaba.NewDesktops(alibaba.Config{EcdEndpoint: pc.Alibaba.EcdEndpoint,
		Account: pc.Alibaba.Account, RatePerSecond: pc.Alibaba.Rate, Limits: limits})
	h, err := huawei.New(huawei.Config{Endpoint: pc.Huawei.Endpoint, Account: pc.Huawei.Account,
		Projects: pc.Huawei.Projects, Agency: pc.Huawei.Agency, RatePerSecond: pc.Huawei.Rate, Limits: limits})
	add(events.ProviderHuawei, h, err)
	return p
}

// RateLimitBucket is the key-value bucket of the cluster-wide rate limits: the records
// bucket's name with "-ratelimit".
func RateLimitBucket(cfg *config.Config) string { return cfg.NATS.KVBucket + "-ratelimit" }

// OpenRateLimits opens (creating it if needed) the bucket of the cluster-wide rate limits on
// js, so that every worker, Lambda and Function Compute invocation draws from one budget per
// provider, API and account.
func OpenRateLimits(ctx context.Context, cfg *config.Config, js jetstream.JetStream, log *slog.Logger) (ratelimit.Factory, error) {
	f, err := kvlimit.Open(ctx, js, kvlimit.Options{Bucket: RateLimitBucket(cfg), Replicas: cfg.NATS.Replicas, Log: log})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// BusConfig maps the NATS section of the configuration onto the bus.
func BusConfig(cfg *config.Config) bus.Config {
	n := cfg.NATS
	bc := bus.Config{
		Stream:          n.Stream,
		Replicas:        n.Replicas,
		DuplicateWindow: n.DuplicateWindow.Std(),
		MaxAge:          n.MaxAge.Std(),
		MaxDeliver:      n.MaxDeliver,
		AckWait:         n.AckWait.Std(),
		KVBucket:        n.KVBucket,
	}
	for _, d := range n.Backoff {
		bc.Backoff = append(bc.Backoff, d.Std())
	}
	return bc
}

// Connect opens the configured external NATS, retrying until it answers (for workers).
func Connect(cfg *config.Config, name string) (*nats.Conn, error) {
	return bus.Connect(ConnectOptions(cfg, name))
}

// Dial connects a short-lived tool to NATS at url with the configured credentials and TLS,
// failing at once, with the URL in the error, when nothing answers.
func Dial(cfg *config.Config, url, name string) (*nats.Conn, error) {
	o := ConnectOptions(cfg, name)
	o.URL, o.FailFast = url, true
	nc, err := bus.Connect(o)
	if err != nil {
		return nil, fmt.Errorf("%w; is `imagerelay up` running, or is nats.url (IMAGERELAY_NATS_URL) set to your NATS?", err)
	}
	return nc, nil
}

// ConnectOptions maps the configured external NATS (URL, credentials, TLS) onto the bus's
// connect options; name is the connection name the server shows.
func ConnectOptions(cfg *config.Config, name string) bus.ConnectOptions {
	n := cfg.NATS
	return bus.ConnectOptions{URL: n.URL, CredsFile: n.CredsFile,
		CAFile: n.TLS.CAFile, CertFile: n.TLS.CertFile, KeyFile: n.TLS.KeyFile, Name: name}
}

// Runtime is everything a function needs at run time.
type Runtime struct {
	Config    *config.Config
	Bus       *bus.Bus
	Store     *state.Store
	Providers Providers
	Log       *slog.Logger
}

// Setup creates the stream and the KV bucket, or brings them to the configuration. Only the
// component that owns them calls it: `imagerelay up`, `imagerelay demo` and `imagerelay
// setup`. Everything else binds with [Open] and never changes them.
func Setup(ctx context.Context, cfg *config.Config, nc *nats.Conn, log *slog.Logger) error {
	b, err := bus.Setup(ctx, nc, BusConfig(cfg), log)
	if err != nil {
		return err
	}
	store, err := natskv.Open(ctx, b.JetStream(), cfg.NATS.KVBucket, cfg.NATS.Replicas)
	if err != nil {
		return err
	}
	// Records written by earlier versions under '/' keys move to the injective keys, so an
	// upgrade does not orphan copies in flight.
	moved, err := store.MigrateLegacyKeys(ctx)
	if err != nil {
		return err
	}
	if moved > 0 && log != nil {
		log.Info("moved records to the current key format", "records", moved)
	}
	_, err = OpenRateLimits(ctx, cfg, b.JetStream(), log)
	return err
}

// Open binds to the existing stream and KV bucket on nc (see [Setup]) and builds the
// providers.
func Open(ctx context.Context, cfg *config.Config, nc *nats.Conn, log *slog.Logger) (*Runtime, error) {
	b, err := bus.Bind(ctx, nc, BusConfig(cfg), log)
	if err != nil {
		return nil, err
	}
	store, err := natskv.Bind(ctx, b.JetStream(), cfg.NATS.KVBucket)
	if err != nil {
		return nil, err
	}
	limits, err := OpenRateLimits(ctx, cfg, b.JetStream(), log)
	if err != nil {
		return nil, err
	}
	rt := &Runtime{Config: cfg, Bus: b, Store: store, Providers: BuildProvidersWithLimits(cfg, limits), Log: log}
	for name, err := range rt.Providers.Unavailable {
		log.Warn("provider not available; its events will be dead-lettered with this reason", "provider", name, "reason", err.Error())
	}
	return rt, nil
}

// FunctionNames lists the functions a runtime can run, in flow order.
var FunctionNames = []string{fanout.Name, replicate.Name, poller.Name, rebuild.Name}

// Spec returns the bus spec of one function.
func (rt *Runtime) Spec(name string) (bus.Spec, error) {
	switch name {
	case fanout.Name:
		return bus.Spec{Function: name, Types: []string{events.TypeImagePublished}, Handler: rt.Fanout(), Concurrency: 4}, nil
	case replicate.Name:
		return bus.Spec{Function: name, Types: []string{events.TypeReplicationRequested}, Handler: rt.Replicate(), Concurrency: 8}, nil
	case poller.Name:
		return bus.Spec{Function: name, Types: []string{events.TypeReplicationStarted}, Handler: rt.Poller(), BatchSize: 100}, nil
	case rebuild.Name:
		return bus.Spec{Function: name, Types: []string{events.TypeReplicationSucceeded}, Handler: rt.Rebuild(), Concurrency: 4}, nil
	}
	return bus.Spec{}, fmt.Errorf("unknown function %q; functions are %v", name, FunctionNames)
}

// Checkers returns the constraint checker of every provider, built from the configuration
// alone: they need neither a cloud SDK nor credentials, so a binary that only plans copies
// (fanout) links no SDK.
func Checkers(cfg *config.Config) map[string]fanout.ConstraintChecker {
	pc := cfg.Providers
	return map[string]fanout.ConstraintChecker{
		events.ProviderTencent: tencentrules.New(nil),
		events.ProviderAlibaba: alibabarules.New(pc.Alibaba.Regions),
		events.ProviderHuawei:  huaweirules.New(pc.Huawei.Projects),
	}
}

// Fanout builds the fanout core. It plans copies only for the providers that could be built:
// an image of another provider is refused with the reason, as replicate could not copy it.
func (rt *Runtime) Fanout() *fanout.Core {
	c := &fanout.Core{Checkers: map[string]fanout.ConstraintChecker{}, Unavailable: rt.Providers.Unavailable, Plans: rt.Store,
		Timeout: rt.Config.Replication.Timeout.Std(), PollInterval: rt.Config.Replication.PollInterval.Std()}
	checkers := Checkers(rt.Config)
	for name := range rt.Providers.ByName {
		c.Checkers[name] = checkers[name]
	}
	for _, p := range rt.Config.Replication.Policies {
		c.Policies = append(c.Policies, fanout.Policy{Name: p.Name, Match: p.Match, Regions: p.Regions,
			Timeout: rt.Config.Replication.TimeoutFor(p), PollInterval: rt.Config.Replication.PollIntervalFor(p)})
	}
	return c
}

// Replicate builds the replicate core.
func (rt *Runtime) Replicate() *replicate.Core {
	c := replicate.Config{Copiers: map[string]replicate.Copier{}, Unavailable: rt.Providers.Unavailable, Store: rt.Store, Log: rt.Log,
		Slots: rt.Slots()}
	for name, p := range rt.Providers.ByName {
		c.Copiers[name] = p
	}
	return replicate.New(c)
}

// Poller builds the poller core.
func (rt *Runtime) Poller() *poller.Core {
	c := &poller.Core{Readers: map[string]poller.StatusReader{}, Store: rt.Store, Log: rt.Log,
		Unavailable: rt.Providers.Unavailable, Slots: rt.Slots()}
	for name, p := range rt.Providers.ByName {
		c.Readers[name] = p
	}
	return c
}

// Slots are the copy slots of the providers that limit copies in flight per account (Huawei
// IMS: 5), on the KV store's cluster-wide semaphores; the bus wakes the next waiter.
func (rt *Runtime) Slots() lifecycle.Slots {
	s := lifecycle.Slots{Limits: map[string]int{}, Limiter: rt.Store, Waker: rt.Bus, Log: rt.Log}
	for name, p := range rt.Providers.ByName {
		if l, ok := p.(interface{ MaxInFlight() int }); ok && l.MaxInFlight() > 0 {
			s.Limits[name] = l.MaxInFlight()
		}
	}
	return s
}

// Rebuild builds the rebuild core. Without a desktop client it is built disabled: matching
// copies are acknowledged with a warning, and replication carries on unaffected.
func (rt *Runtime) Rebuild() *rebuild.Core {
	c := rebuild.Config{Policies: RebuildPolicies(rt.Config), Store: RebuildStore(rt.Store), Log: rt.Log, Publisher: rt.Bus}
	switch {
	case rt.Providers.DesktopsErr != nil:
		c.Disabled = fmt.Errorf("%w: the Alibaba Elastic Desktop Service client could not be built: %w", rebuild.ErrDisabled, rt.Providers.DesktopsErr)
	case rt.Providers.Desktops == nil:
		c.Disabled = fmt.Errorf("%w: no Alibaba Elastic Desktop Service client", rebuild.ErrDisabled)
	default:
		c.Fleet = desktopFleet{d: rt.Providers.Desktops}
	}
	if len(c.Policies) > 0 && rt.Log != nil {
		switch {
		case c.Fleet == nil:
			rt.Log.Warn("rebuild is disabled; its policies will not rebuild anything", "reason", c.Disabled.Error())
		case alibaba.CredentialsFromEnv().AccessKeyID == "":
			// Function Compute hands credentials to each invocation, so this is not fatal;
			// elsewhere every rebuild is refused and dead-lettered with the reason.
			rt.Log.Warn("rebuild policies are set but no Alibaba credentials are in the environment; rebuilds will be refused unless the runtime supplies credentials",
				"variables", alibaba.EnvAccessKeyID+", "+alibaba.EnvAccessKeySecret)
		}
	}
	return rebuild.New(c)
}

// desktopFleet adapts the Alibaba Elastic Desktop Service client to rebuild's Fleet port.
type desktopFleet struct{ d *alibaba.Desktops }

func (f desktopFleet) ListDesktops(ctx context.Context, region string, filter rebuild.DesktopFilter) ([]rebuild.Desktop, error) {
	got, err := f.d.ListDesktops(ctx, region, alibaba.DesktopFilter{DesktopIDs: filter.DesktopIDs, ImageIDs: filter.ImageIDs,
		GroupID: filter.GroupID, Tags: filter.Tags})
	if err != nil {
		return nil, err
	}
	out := make([]rebuild.Desktop, len(got))
	for i, d := range got {
		out[i] = rebuild.Desktop{ID: d.ID, Status: d.Status, ImageID: d.ImageID, OSType: d.OSType, GPU: d.GPU,
			DataDisk: d.DataDisk, GroupID: d.GroupID, Tags: d.Tags}
	}
	return out, nil
}

func (f desktopFleet) RebuildDesktops(ctx context.Context, region string, ids []string, imageID string, opts rebuild.Options) ([]rebuild.DesktopResult, error) {
	got, err := f.d.RebuildDesktops(ctx, region, ids, imageID, opts.OperateType, opts.Language)
	if err != nil {
		return nil, err
	}
	out := make([]rebuild.DesktopResult, len(got))
	for i, r := range got {
		out[i] = rebuild.DesktopResult{DesktopID: r.DesktopID, Code: r.Code, Message: r.Message, OK: r.OK}
	}
	return out, nil
}

// Deadline bounds start-up work such as creating the stream.
const Deadline = 30 * time.Second

// CheckRegions reports, with file and line, the policy regions a provider does not serve (a
// typo such as "ap-shangai"), so they are caught at start rather than skipped at publish time.
// Huawei regions are checked per copy, against the configured project ids.
func CheckRegions(cfg *config.Config) error {
	ali := cfg.Providers.Alibaba.Regions
	if len(ali) == 0 {
		ali = alibabarules.KnownRegions()
	}
	return cfg.CheckRegions(map[string][]string{
		events.ProviderTencent: tencentrules.KnownRegions(),
		events.ProviderAlibaba: ali,
	})
}

// Retryable reports whether err, from opening the runtime on NATS, may go away by itself: a
// timeout or a JetStream cluster without a leader while a node restarts. Missing or unfit
// streams and buckets, JetStream switched off and invalid configuration need an operator, so a
// worker says so and stops instead of waiting for ever.
func Retryable(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, bus.ErrStreamMissing),
		errors.Is(err, bus.ErrStreamUnfit),
		errors.Is(err, bus.ErrInvalidConfig),
		errors.Is(err, jetstream.ErrBucketNotFound),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, nats.ErrAuthorization),
		errors.Is(err, nats.ErrPermissionViolation):
		return false
	}
	return true
}

// firstRetryWait is the first wait of [Retry] (shortened by tests).
var firstRetryWait = time.Second

// Retry runs open until it succeeds, fails with an error that is not [Retryable], or ctx ends;
// each try gets [Deadline], and the waits between tries grow from one second to fifteen. A
// worker started while a JetStream cluster elects a leader (a node was just restarted) waits
// for it instead of exiting.
func Retry(ctx context.Context, log *slog.Logger, what string, open func(context.Context) error) error {
	wait := firstRetryWait
	for {
		octx, cancel := context.WithTimeout(ctx, Deadline)
		err := open(octx)
		cancel()
		if err == nil || !Retryable(err) || ctx.Err() != nil {
			return err
		}
		log.Warn(what+" failed; NATS may be electing a leader or restarting, trying again", "error", err.Error(), "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 15*time.Second)
	}
}

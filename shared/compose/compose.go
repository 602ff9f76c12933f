// Package compose is the base of the composition root: it maps the configuration onto the
// bus, the key-value store and the cluster-wide rate limits, creates them ([Setup]) or binds
// to them ([Open]), and opens a function binary's session from its environment ([Function]).
// It builds no core and no cloud adapter: each function has its own wiring package
// (fanoutwire, replicatewire, pollerwire, rebuildwire), so that a function binary links
// only what its function needs, and the catalog package gathers all four for the CLI and the
// tests. It never imports the embedded nats-server.
package compose

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/adapters/ratelimit"
	"github.com/imagerelay/imagerelay/shared/adapters/ratelimit/kvlimit"
	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/adapters/state/natskv"
	"github.com/imagerelay/imagerelay/shared/config"
)

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

// Env is what every function's wiring builds its core from: the configuration, the bus,
// the key-value store, the cluster-wide rate limits and the logger.
type Env struct {
	Config *config.Config
	Bus    *bus.Bus
	Store  *state.Store
	// Limits are the cluster-wide rate limits the cloud adapters draw from (nil: each
	// process keeps its own).
	Limits ratelimit.Factory
	Log    *slog.Logger
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

// Open binds to the existing stream and KV bucket on nc (see [Setup]) and opens the
// cluster-wide rate limits.
func Open(ctx context.Context, cfg *config.Config, nc *nats.Conn, log *slog.Logger) (*Env, error) {
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
	return &Env{Config: cfg, Bus: b, Store: store, Limits: limits, Log: log}, nil
}

// Deadline bounds start-up work such as creating the stream.
const Deadline = 30 * time.Second

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

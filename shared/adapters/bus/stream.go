package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/events"
)

// One component owns the stream: `imagerelay up` and `imagerelay setup` call [Setup], which
// creates it or brings its settings to the configuration. Everything else (workers, the
// serverless functions, publish, status, watch) calls [Bind], which never changes the stream:
// a command run without the operator's configuration must not shrink its retention or dedupe
// window (JetStream applies a smaller max age at once and drops older events).

// ErrStreamMissing is matched when [Bind] finds no stream to bind to.
var ErrStreamMissing = errors.New("bus: the imagerelay stream does not exist")

// ErrStreamUnfit is matched when [Bind] finds a stream that lacks a setting imagerelay cannot
// work without (message schedules).
var ErrStreamUnfit = errors.New("bus: the imagerelay stream lacks a required setting")

// streamConfig is the stream imagerelay wants for cfg.
func streamConfig(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "imagerelay events (CloudEvents, binary mode)",
		Subjects:    []string{events.SubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Replicas:    max(cfg.Replicas, 1),
		Duplicates:  cfg.DuplicateWindow,
		MaxAge:      cfg.MaxAge,
		// Deferred work is held by the server as message schedules (see schedule.go); a
		// schedule subject is rolled up to its latest schedule, and fired checks may carry a
		// TTL.
		AllowMsgSchedules: true,
		AllowRollup:       true,
		AllowMsgTTL:       true,
	}
}

// Setup creates the stream or updates it to cfg, and returns the bus. Only the component
// that owns the stream calls it.
func Setup(ctx context.Context, nc *nats.Conn, cfg Config, log *slog.Logger) (*Bus, error) {
	b, err := newBus(nc, cfg, log)
	if err != nil {
		return nil, err
	}
	if _, err := b.js.CreateOrUpdateStream(ctx, streamConfig(cfg)); err != nil {
		return nil, fmt.Errorf("bus: create or update stream %s: %w", cfg.Stream, err)
	}
	return b, nil
}

// Bind returns a bus on the existing stream without changing it. It fails when the stream
// does not exist or cannot hold schedules, and logs a warning for every setting that differs
// from cfg, naming both values and the command that applies the configuration.
func Bind(ctx context.Context, nc *nats.Conn, cfg Config, log *slog.Logger) (*Bus, error) {
	b, err := newBus(nc, cfg, log)
	if err != nil {
		return nil, err
	}
	s, err := b.js.Stream(ctx, cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("%w: no stream %q on this NATS; run `imagerelay setup` (or `imagerelay up`) once with your imagerelay.yaml to create it", ErrStreamMissing, cfg.Stream)
	}
	if err != nil {
		return nil, fmt.Errorf("bus: stream %s: %w", cfg.Stream, err)
	}
	have := s.CachedInfo().Config
	if !have.AllowMsgSchedules {
		return nil, fmt.Errorf("%w: stream %q does not allow message schedules (created by an older imagerelay or by hand); run `imagerelay setup` to upgrade it (nats-server 2.12 or later)", ErrStreamUnfit, cfg.Stream)
	}
	if drift := Drift(have, streamConfig(cfg)); len(drift) > 0 {
		b.log.Warn("the stream's settings differ from this configuration; the stream is left as it is (run `imagerelay setup` to apply the configuration)",
			"stream", cfg.Stream, "differences", strings.Join(drift, "; "))
	}
	return b, nil
}

// Drift lists the settings of have that differ from want, as "name: have X, configured Y".
func Drift(have, want jetstream.StreamConfig) []string {
	var out []string
	add := func(name string, h, w any) {
		if fmt.Sprint(h) != fmt.Sprint(w) {
			out = append(out, fmt.Sprintf("%s: stream has %v, configured %v", name, h, w))
		}
	}
	add("maxAge", have.MaxAge, want.MaxAge)
	add("duplicateWindow", have.Duplicates, want.Duplicates)
	add("replicas", have.Replicas, want.Replicas)
	add("subjects", have.Subjects, want.Subjects)
	add("storage", have.Storage, want.Storage)
	return out
}

func newBus(nc *nats.Conn, cfg Config, log *slog.Logger) (*Bus, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	return &Bus{nc: nc, js: js, cfg: cfg, log: log}, nil
}

package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/compose"
	"github.com/imagerelay/imagerelay/shared/config"
)

// Environment variables the function binaries read besides the IMAGERELAY_* configuration
// overrides (IMAGERELAY_NATS_URL and the others that shared/config documents).
const (
	// EnvConfig is the path of the configuration file. Default: imagerelay.yaml in the working
	// directory, else next to the executable (that is where `make package` puts it in the
	// Lambda and Function Compute zips); no file at all means the built-in defaults.
	EnvConfig = "IMAGERELAY_CONFIG"
	// EnvNATSCreds holds the contents of a NATS .creds file (user JWT and nkey seed), for
	// platforms that hand secrets over as environment variables (a Lambda parameter resolved
	// from SSM, a Function Compute variable). It is parsed in memory, never written to disk;
	// nats.credsFile, when set, wins.
	EnvNATSCreds = "IMAGERELAY_NATS_CREDS"
	// EnvDrainBudget caps the time one scheduled invocation spends pulling work from
	// JetStream (a Go duration such as 45s). Without it the budget is the invocation's
	// deadline minus a safety margin.
	EnvDrainBudget = "IMAGERELAY_DRAIN_BUDGET"
)

// ErrNoNATS is matched by the error an opener returns when no external NATS is configured:
// function binaries never embed a server.
var ErrNoNATS = errors.New("runtime: no NATS URL configured; set IMAGERELAY_NATS_URL (or nats.url in the configuration file): function binaries connect to an external NATS")

// ConfigPath returns the configuration file to read, following EnvConfig's rules.
func ConfigPath(getenv func(string) string) string {
	if p := getenv(EnvConfig); p != "" {
		return p
	}
	const name = "imagerelay.yaml"
	if _, err := os.Stat(name); err == nil {
		return name
	}
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), name); fileExists(p) {
			return p
		}
	}
	return name
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// DrainCap reads EnvDrainBudget; 0 means no cap.
func DrainCap(getenv func(string) string) (time.Duration, error) {
	v := getenv(EnvDrainBudget)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("runtime: %s=%q is not a positive duration such as 45s", EnvDrainBudget, v)
	}
	return d, nil
}

// FromEnv returns the opener the function binaries use: it reads the configuration (file and
// IMAGERELAY_* variables), connects to the external NATS, sets up the stream, the key-value
// bucket and the providers, and picks the function's spec.
func FromEnv(function string, log *slog.Logger) Opener {
	return func(ctx context.Context) (*Session, error) {
		return open(ctx, function, log, os.Getenv)
	}
}

func open(ctx context.Context, function string, log *slog.Logger, getenv func(string) string) (*Session, error) {
	cfg, err := config.LoadOrDefault(ConfigPath(getenv))
	if err != nil {
		return nil, err
	}
	if cfg.NATS.Embedded() {
		return nil, ErrNoNATS
	}
	drainCap, err := DrainCap(getenv)
	if err != nil {
		return nil, err
	}
	conn := compose.ConnectOptions(cfg, "imagerelay-"+function)
	if creds := getenv(EnvNATSCreds); creds != "" && cfg.NATS.CredsFile == "" {
		conn.Creds = []byte(creds)
	}
	nc, err := bus.Connect(conn)
	if errors.Is(err, bus.ErrInvalidConfig) && len(conn.Creds) > 0 {
		return nil, fmt.Errorf("%s: %w", EnvNATSCreds, err)
	}
	if err != nil {
		return nil, err
	}
	octx, cancel := context.WithTimeout(ctx, compose.Deadline)
	defer cancel()
	rt, err := compose.Open(octx, cfg, nc, log)
	if err != nil {
		nc.Close()
		return nil, err
	}
	spec, err := rt.Spec(function)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &Session{Function: function, Bus: rt.Bus, Spec: spec, Conn: nc, DrainCap: drainCap}, nil
}

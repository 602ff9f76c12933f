package compose

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/config"
	"github.com/imagerelay/imagerelay/shared/runtime/host"
)

// Environment variables the function binaries read besides the IMAGERELAY_* configuration
// overrides (IMAGERELAY_NATS_URL and the others that shared/config documents) and the
// runtime's own [host.EnvDrainBudget].
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

// SpecFunc builds one function's bus spec (its core and consumer settings) on env.
type SpecFunc func(ctx context.Context, env *Env) (bus.Spec, error)

// Function returns what a function binary's main hands to the runtime: name, an opener that
// reads the configuration (file and IMAGERELAY_* variables), connects to the external NATS,
// binds to the stream, the bucket and the rate limits and builds the function with spec, and
// the credentials hook (nil when the function's adapters take none).
func Function(name string, spec SpecFunc, withCredentials func(context.Context, host.Credentials) context.Context) host.Function {
	return host.Function{
		Name: name,
		Open: func(log *slog.Logger) host.Opener {
			return func(ctx context.Context) (*host.Session, error) {
				return OpenFunction(ctx, name, spec, log, os.Getenv)
			}
		},
		WithCredentials: withCredentials,
	}
}

// OpenFunction opens function's session as [Function]'s opener does, reading the environment
// with getenv.
func OpenFunction(ctx context.Context, function string, spec SpecFunc, log *slog.Logger, getenv func(string) string) (*host.Session, error) {
	if log == nil {
		log = slog.Default()
	}
	cfg, err := config.LoadOrDefault(ConfigPath(getenv))
	if err != nil {
		return nil, err
	}
	if cfg.NATS.Embedded() {
		return nil, ErrNoNATS
	}
	drainCap, err := host.DrainCap(getenv)
	if err != nil {
		return nil, err
	}
	conn := ConnectOptions(cfg, "imagerelay-"+function)
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
	octx, cancel := context.WithTimeout(ctx, Deadline)
	defer cancel()
	env, err := Open(octx, cfg, nc, log)
	if err != nil {
		nc.Close()
		return nil, err
	}
	s, err := spec(octx, env)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &host.Session{Function: function, Bus: env.Bus, Spec: s, Conn: nc, DrainCap: drainCap}, nil
}

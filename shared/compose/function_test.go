package compose_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/compose"
	"github.com/imagerelay/imagerelay/shared/runtime/host"
)

// noSpec fails the test if an opener gets as far as building the function.
func noSpec(t *testing.T) compose.SpecFunc {
	return func(context.Context, *compose.Env) (bus.Spec, error) {
		t.Error("the function was built")
		return bus.Spec{}, errors.New("unexpected")
	}
}

func TestFunctionNeedsExternalNATS(t *testing.T) {
	t.Setenv(compose.EnvConfig, filepath.Join(t.TempDir(), "missing.yaml"))
	t.Setenv("IMAGERELAY_NATS_URL", "")
	_, err := compose.Function("fanout", noSpec(t), nil).Open(nil)(context.Background())
	if !errors.Is(err, compose.ErrNoNATS) {
		t.Fatalf("err = %v, want ErrNoNATS", err)
	}
}

func TestFunctionRejectsBrokenCredentialsContentByName(t *testing.T) {
	// The contents are parsed in memory: a broken value fails before any connect, names the
	// variable, and nothing is written to disk.
	t.Setenv(compose.EnvConfig, filepath.Join(t.TempDir(), "missing.yaml"))
	t.Setenv("IMAGERELAY_NATS_URL", "nats://127.0.0.1:1")
	t.Setenv(compose.EnvNATSCreds, "not a creds file")
	t.Setenv("TMPDIR", t.TempDir())
	_, err := compose.Function("fanout", noSpec(t), nil).Open(nil)(context.Background())
	if !errors.Is(err, bus.ErrInvalidConfig) || !strings.Contains(err.Error(), compose.EnvNATSCreds) {
		t.Fatalf("err = %v, want ErrInvalidConfig naming %s", err, compose.EnvNATSCreds)
	}
	if left, _ := os.ReadDir(os.Getenv("TMPDIR")); len(left) != 0 {
		t.Errorf("files written while reading credentials: %v", left)
	}
}

func TestFunctionRejectsABadDrainBudget(t *testing.T) {
	// The configuration reads its IMAGERELAY_* overrides from the process environment.
	t.Setenv("IMAGERELAY_NATS_URL", "nats://127.0.0.1:1")
	env := map[string]string{compose.EnvConfig: filepath.Join(t.TempDir(), "missing.yaml"), host.EnvDrainBudget: "soon"}
	_, err := compose.OpenFunction(context.Background(), "fanout", noSpec(t), nil, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), host.EnvDrainBudget) {
		t.Fatalf("err = %v, want one naming %s", err, host.EnvDrainBudget)
	}
}

func TestConfigPath(t *testing.T) {
	env := map[string]string{compose.EnvConfig: "/etc/x.yaml"}
	get := func(k string) string { return env[k] }
	if p := compose.ConfigPath(get); p != "/etc/x.yaml" {
		t.Errorf("ConfigPath = %q", p)
	}
	delete(env, compose.EnvConfig)
	if p := compose.ConfigPath(get); filepath.Base(p) != "imagerelay.yaml" {
		t.Errorf("default ConfigPath = %q", p)
	}
}

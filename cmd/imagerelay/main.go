// Command imagerelay is the operator CLI: it runs the functions on embedded or external NATS,
// runs the cloud emulators, publishes images, shows replication status and runs the demo.
package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/imagerelay/imagerelay/shared/compose/clouds"
	"github.com/imagerelay/imagerelay/shared/config"
)

// globals are the flags every command shares.
type globals struct {
	configPath string
	logLevel   string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "imagerelay",
		Short:         "Replicate cloud images across regions and clouds, event by event",
		Long:          "imagerelay replicates images published on Alibaba Cloud App Streaming, Tencent Cloud CVM and Huawei Cloud IMS to the regions your policy names, as CloudEvents on NATS JetStream, and can roll Alibaba Cloud desktops onto the copies.",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", "imagerelay.yaml", "configuration file (missing file = defaults)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error (default from the configuration)")
	root.AddCommand(newUp(g), newSetup(g), newWorker(g), newEmulate(g), newPublish(g), newStatus(g), newWatch(g), newDemo(g))
	return root
}

// load reads the configuration (defaults when the file does not exist).
func (g *globals) load() (*config.Config, error) {
	cfg, err := config.LoadOrDefault(g.configPath)
	if err != nil {
		return nil, err
	}
	if err := clouds.CheckRegions(cfg); err != nil {
		return nil, err
	}
	if g.logLevel != "" {
		cfg.Log.Level = g.logLevel
	}
	return cfg, nil
}

// logger returns the JSON logger all commands use.
func logger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

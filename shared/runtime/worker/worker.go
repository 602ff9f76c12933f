// Package worker runs a function as a NATS JetStream worker: a durable pull consumer on an
// external NATS, each message settled by the outcome mapping every runtime shares (fn.Settle:
// Ack, schedule, NakWithDelay, Term plus dead letter). It is what a function binary does outside Lambda and Function
// Compute; start several to scale out. It never embeds a NATS server.
package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/imagerelay/imagerelay/shared/runtime/host"
)

// Run handles the function's events from h's session until ctx ends, then flushes and
// closes the connection.
func Run(ctx context.Context, h *host.Host) error {
	sess, err := h.Session(ctx)
	if err != nil {
		return err
	}
	h.Log().Info("worker running", "function", sess.Function)
	runErr := sess.Bus.Run(ctx, sess.Spec)
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Close(cctx); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// Main runs f as a worker until SIGINT or SIGTERM and returns the process exit code.
func Main(f host.Function) int {
	function := f.Name
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var level slog.Level
	if err := level.UnmarshalText([]byte(os.Getenv("IMAGERELAY_LOG_LEVEL"))); err != nil {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("function", function)
	if err := Run(ctx, host.New(function, f.Open(log), log)); err != nil {
		log.Error("worker stopped", "error", err)
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/imagerelay/imagerelay/shared/compose"
)

// newSetup is `imagerelay setup`: the one command, besides up, that creates or changes the
// stream and the KV bucket on an external NATS. Workers and serverless functions only bind.
func newSetup(g *globals) *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Create or update the stream and the KV bucket on NATS from the configuration",
		Long: "setup creates the JetStream stream and KV bucket imagerelay uses, or brings their settings " +
			"(max age, dedupe window, replicas, message schedules) to the configuration. Run it once before " +
			"starting workers or serverless functions on an external NATS, and again after changing the nats " +
			"section. Nothing else changes the stream: workers, publish, status and watch bind to it and warn " +
			"when its settings differ.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			nc, err := compose.Dial(cfg, natsURL(cfg, url), "imagerelay-setup")
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), compose.Deadline)
			defer cancel()
			if err := compose.Setup(ctx, cfg, nc, nil); err != nil {
				return err
			}
			n := cfg.NATS
			fmt.Fprintf(cmd.OutOrStdout(), "stream %s (max age %s, dedupe window %s, replicas %d, message schedules on) and KV bucket %s are set up\n",
				n.Stream, n.MaxAge.Std(), n.DuplicateWindow.Std(), max(n.Replicas, 1), n.KVBucket)
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "NATS URL (default: nats.url, or the local `imagerelay up`)")
	return cmd
}

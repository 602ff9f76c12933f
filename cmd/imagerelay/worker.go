package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/imagerelay/imagerelay/shared/compose/catalog"
)

func newWorker(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "worker FUNCTION",
		Short: "Run one function against NATS; start several to scale out",
		Long: fmt.Sprintf(`worker runs one function (%v) on its durable JetStream consumer. Workers of the same
function share the consumer, so starting more of them scales out. Set nats.url
(IMAGERELAY_NATS_URL) to point at your NATS cluster; without it an embedded server is used.`, catalog.FunctionNames),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			log := logger(os.Stderr, cfg.Log.Level).With("function", args[0])
			st, err := startStack(cmd.Context(), cfg, log, false)
			if err != nil {
				return err
			}
			defer st.close()
			if err := st.run(cmd.Context(), args); err != nil {
				return err
			}
			log.Info("worker running")
			<-cmd.Context().Done()
			return nil
		},
	}
}

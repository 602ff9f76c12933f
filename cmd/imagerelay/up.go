package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/imagerelay/imagerelay/shared/compose/catalog"
	"github.com/imagerelay/imagerelay/shared/dev/emulators"
)

func newUp(g *globals) *cobra.Command {
	var noEmulators bool
	var seedPath string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run every function, the embedded NATS server and the cloud emulators until interrupted",
		Long: `up runs the whole pipeline in one process: an embedded NATS server with JetStream file
storage (listening on nats.listen, 127.0.0.1:4222 by default, so any NATS client can watch the
events), the cloud emulators (unless --no-emulators), and the functions fanout, replicate and
poller. With nats.url set it uses that NATS instead of the embedded one.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			log := logger(os.Stderr, cfg.Log.Level)
			if !noEmulators {
				seed := emulators.DefaultSeed()
				if seedPath != "" {
					if seed, err = emulators.LoadSeed(seedPath); err != nil {
						return err
					}
				}
				emus, err := emulators.Start(seed, emulators.DefaultAddrs())
				if err != nil {
					return err
				}
				defer emus.Close()
				useDemoCredentials()
				log.Info("emulators running", "tencent", emus.Addrs.Tencent, "alibaba", emus.Addrs.Alibaba, "huawei", emus.Addrs.Huawei)
			}
			st, err := startStack(cmd.Context(), cfg, log, true)
			if err != nil {
				return err
			}
			defer st.close()
			if err := st.run(cmd.Context(), catalog.FunctionNames); err != nil {
				return err
			}
			url := "in-process only"
			if st.server != nil && st.server.ClientURL() != "" {
				url = st.server.ClientURL()
			}
			log.Info("imagerelay up", "nats", url, "functions", catalog.FunctionNames)
			fmt.Fprintf(os.Stderr, "imagerelay is up (NATS: %s). Publish with `imagerelay publish --file samples/tencent-web.yaml`; Ctrl-C stops.\n", url)
			<-cmd.Context().Done()
			return nil
		},
	}
	cmd.Flags().BoolVar(&noEmulators, "no-emulators", false, "do not start the cloud emulators (use real clouds)")
	cmd.Flags().StringVar(&seedPath, "seed", "", "emulator seed file (default: built-in demo data)")
	return cmd
}

// useDemoCredentials sets the emulators' demo keys where the user has none of their own; it
// is called only when the emulators run.
func useDemoCredentials() {
	for k, v := range emulators.DemoEnv() {
		if os.Getenv(k) == "" {
			_ = os.Setenv(k, v)
		}
	}
}

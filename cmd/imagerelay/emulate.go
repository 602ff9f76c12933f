package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/imagerelay/imagerelay/shared/dev/emulators"
)

func newEmulate(_ *globals) *cobra.Command {
	var seedPath string
	addrs := emulators.DefaultAddrs()
	cmd := &cobra.Command{
		Use:   "emulate",
		Short: "Run the local cloud emulators (Tencent CVM, Alibaba App Streaming + ECD, Huawei IMS)",
		Long: `emulate serves each cloud's real wire protocol on loopback: the official SDKs work against
it unchanged. Signatures are verified, documented constraints and error codes enforced, copies
progress over time, and faults can be injected. Every port serves /_admin/calls (what was
received) and /_admin/faults (POST a JSON array of rules).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			seed := emulators.DefaultSeed()
			if seedPath != "" {
				var err error
				if seed, err = emulators.LoadSeed(seedPath); err != nil {
					return err
				}
			}
			set, err := emulators.Start(seed, addrs)
			if err != nil {
				return err
			}
			defer set.Close()
			fmt.Fprintf(os.Stdout, "tencent  http://%s\nalibaba  http://%s\nhuawei   http://%s\nadmin    http://%s/_admin/calls (on every port)\n",
				set.Addrs.Tencent, set.Addrs.Alibaba, set.Addrs.Huawei, set.Addrs.Tencent)
			<-cmd.Context().Done()
			return nil
		},
	}
	cmd.Flags().StringVar(&seedPath, "seed", "", "seed file with images, desktops, credentials and faults (YAML or JSON)")
	cmd.Flags().StringVar(&addrs.Tencent, "tencent", addrs.Tencent, "Tencent emulator listen address")
	cmd.Flags().StringVar(&addrs.Alibaba, "alibaba", addrs.Alibaba, "Alibaba emulator listen address")
	cmd.Flags().StringVar(&addrs.Huawei, "huawei", addrs.Huawei, "Huawei emulator listen address")
	return cmd
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/imagerelay/imagerelay/shared/app"
	"github.com/imagerelay/imagerelay/shared/config"
	"github.com/imagerelay/imagerelay/shared/replication"
	"github.com/imagerelay/imagerelay/shared/state"
)

func newStatus(g *globals) *cobra.Command {
	var asJSON bool
	var url string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every replication: state, progress, destination image, error, durations",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			nc, err := app.Connect(&config.Config{NATS: config.NATS{URL: natsURL(cfg, url)}}, "imagerelay-status")
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			store, err := state.Bind(cmd.Context(), js, cfg.NATS.KVBucket)
			if err != nil {
				return err
			}
			recs, err := store.Records(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), recs)
			}
			writeTable(cmd.OutOrStdout(), recs, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	cmd.Flags().StringVar(&url, "nats", "", "NATS URL (default: nats.url, else the local `imagerelay up`)")
	return cmd
}

func writeJSON(w io.Writer, recs []replication.Record) error {
	if recs == nil {
		recs = []replication.Record{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(recs)
}

// writeTable prints one row per image × region.
func writeTable(w io.Writer, recs []replication.Record, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tIMAGE\tREGION\tSTATE\tPROGRESS\tDESTINATION IMAGE\tWAITED\tCOPY TIME\tERROR")
	for _, r := range recs {
		image := r.ImageID
		if r.VersionID != "" {
			image += "@" + r.VersionID
		}
		errText := ""
		if r.Code != "" {
			errText = r.Code + ": " + oneLine(r.Message, 60)
		} else if r.State == replication.StateWaiting {
			errText = r.Message
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d%%\t%s\t%s\t%s\t%s\n", r.Provider, image, r.DestinationRegion, r.State, r.Percent,
			dash(r.DestinationImageID), span(r.RequestedAt, r.StartedAt, now), span(r.StartedAt, r.FinishedAt, now), errText)
	}
	if len(recs) == 0 {
		fmt.Fprintln(tw, "(no replications yet)")
	}
	_ = tw.Flush()
}

// span is the time from a to b (to now while b is unset), rounded for reading.
func span(a, b, now time.Time) string {
	if a.IsZero() {
		return "-"
	}
	if b.IsZero() {
		b = now
	}
	return b.Sub(a).Round(100 * time.Millisecond).String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/imagerelay/imagerelay/functions/rebuild"
	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/adapters/state/natskv"
	"github.com/imagerelay/imagerelay/shared/compose"
	"github.com/imagerelay/imagerelay/shared/domain"
)

func newStatus(g *globals) *cobra.Command {
	var asJSON bool
	var url, imageID string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every replication: state, progress, destination image, error, durations",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			nc, err := compose.Dial(cfg, natsURL(cfg, url), "imagerelay-status")
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			store, err := natskv.Bind(cmd.Context(), js, cfg.NATS.KVBucket)
			if err != nil {
				return err
			}
			recs, rollouts, err := readStatus(cmd.Context(), store, imageID)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), newStatusReport(recs, rollouts))
			}
			writeTable(cmd.OutOrStdout(), recs, time.Now())
			if len(rollouts) > 0 {
				fmt.Fprintln(cmd.OutOrStdout())
				writeRollouts(cmd.OutOrStdout(), rollouts)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table (documented in the README: status --json)")
	cmd.Flags().StringVar(&url, "nats", "", "NATS URL (default: nats.url, else the local `imagerelay up`)")
	cmd.Flags().StringVar(&imageID, "image", "", "show only the replications and rollouts of this image id (every provider, account and version)")
	return cmd
}

// readStatus reads what status shows: every replication record and rollout, each kind with
// one listing filtered by the bucket that delivers the values with it (no read per key), or,
// for one image, only that image's records and rollouts, so the answer costs what it shows
// and not the size of the bucket.
func readStatus(ctx context.Context, store *state.Store, imageID string) ([]domain.Record, []rebuild.Rollout, error) {
	var (
		recs []domain.Record
		err  error
	)
	if imageID == "" {
		recs, err = store.Records(ctx)
	} else {
		recs, err = store.RecordsOfImageID(ctx, imageID)
	}
	if err != nil {
		return nil, nil, err
	}
	rollouts, err := state.List[rebuild.Rollout](ctx, store, state.Prefix(rebuild.RolloutPrefix()...))
	if imageID != "" {
		rollouts = slices.DeleteFunc(rollouts, func(r rebuild.Rollout) bool { return r.Replication.ImageID != imageID })
	}
	return recs, rollouts, err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeRollouts prints one row per desktop rollout.
func writeRollouts(w io.Writer, rollouts []rebuild.Rollout) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REBUILD POLICY\tIMAGE\tREGION\tPHASE\tBATCH\tREBUILT\tFAILED\tSKIPPED\tNOTE")
	for _, r := range rollouts {
		phase := string(r.Phase)
		switch {
		case r.DryRun:
			phase = "dry run"
		case r.Stopped:
			phase = "stopped"
		case !r.WaitingUntil.IsZero() && r.Phase != rebuild.PhaseDone:
			phase = "waiting for window"
		}
		batch := "-"
		if len(r.Batches) > 0 {
			batch = fmt.Sprintf("%d/%d", min(r.Current+1, len(r.Batches)), len(r.Batches))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", r.Policy, r.DestinationImageID, r.Replication.DestinationRegion,
			phase, batch, r.Succeeded, r.Failed, r.Skipped, oneLine(r.Reason, 80))
	}
	_ = tw.Flush()
}

// writeTable prints one row per image × region.
func writeTable(w io.Writer, recs []domain.Record, now time.Time) {
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
		} else if r.State == domain.StateWaiting {
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

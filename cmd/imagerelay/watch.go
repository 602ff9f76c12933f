package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/compose"
)

func newWatch(g *globals) *cobra.Command {
	var url, filter string
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Print imagerelay events as they happen (a NATS subscriber like any other)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			nc, err := compose.Dial(cfg, natsURL(cfg, url), "imagerelay-watch")
			if err != nil {
				return err
			}
			defer nc.Close()
			stop, err := follow(cmd.Context(), nc, cfg.NATS.Stream, filter, func(m jetstream.Msg) { printMsg(cmd.OutOrStdout(), m) })
			if err != nil {
				return err
			}
			defer stop()
			<-cmd.Context().Done()
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "nats", "", "NATS URL (default: nats.url, else the local `imagerelay up`)")
	cmd.Flags().StringVar(&filter, "subject", "imagerelay.>", "NATS subject filter, e.g. imagerelay.replication.*.tencent.>")
	return cmd
}

// follow reads new events of the stream through an ordered JetStream consumer: unlike a
// plain subscription, it sees each stored event once (a duplicate publish that the stream
// dropped is not delivered).
func follow(ctx context.Context, nc *nats.Conn, stream, filter string, handle func(jetstream.Msg)) (func(), error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("follow %s on stream %s: %w (is imagerelay running on this NATS?)", filter, stream, err)
	}
	cc, err := cons.Consume(handle)
	if err != nil {
		return nil, err
	}
	return cc.Stop, nil
}

// printMsg writes one line per event; internal schedule and defer messages are not shown.
func printMsg(w io.Writer, m jetstream.Msg) {
	subject, h := m.Subject(), m.Headers()
	if strings.HasPrefix(subject, bus.DeferPrefix) || strings.HasPrefix(subject, bus.SchedulePrefix) {
		return
	}
	ts := time.Now().Format("15:04:05.000")
	if strings.HasPrefix(subject, events.DeadLetterPrefix) {
		fmt.Fprintf(w, "%s  DEAD LETTER  %s  %s\n", ts, subject, h.Get(bus.HeaderDeadLetterReason))
		return
	}
	e, err := events.FromHeader(h, m.Data())
	if err != nil {
		fmt.Fprintf(w, "%s  (not an imagerelay event on %s: %v)\n", ts, subject, err)
		return
	}
	fmt.Fprintf(w, "%s  %-26s %-9s %-15s %s\n", ts, events.ShortName(e.Type()), events.StringExt(e, events.ExtProvider),
		events.StringExt(e, events.ExtRegion), describe(e))
}

// describe summarises an event's data in a few words.
func describe(e event.Event) string {
	img := events.StringExt(e, events.ExtImageID)
	switch e.Type() {
	case events.TypeReplicationPlanned:
		d, _ := events.DataAs[events.ReplicationPlanned](e)
		s := fmt.Sprintf("%s → %v", img, d.Regions)
		for _, sk := range d.Skipped {
			s += fmt.Sprintf("; skip %s: %s", sk.Region, sk.Reason)
		}
		return s
	case events.TypeReplicationStarted:
		d, _ := events.DataAs[events.ReplicationStarted](e)
		return fmt.Sprintf("%s task %s", img, d.TaskID)
	case events.TypeReplicationProgressed:
		d, _ := events.DataAs[events.ReplicationProgressed](e)
		return fmt.Sprintf("%s %d%% %s", img, d.Percent, d.Status)
	case events.TypeReplicationSucceeded:
		d, _ := events.DataAs[events.ReplicationSucceeded](e)
		return fmt.Sprintf("%s → %s in %.1fs", img, d.DestinationImageID, d.DurationSeconds)
	case events.TypeReplicationFailed:
		d, _ := events.DataAs[events.ReplicationFailed](e)
		return fmt.Sprintf("%s %s: %s", img, d.Code, oneLine(d.Message, 80))
	case events.TypeReplicationCompleted:
		d, _ := events.DataAs[events.ReplicationCompleted](e)
		return fmt.Sprintf("%s %d succeeded, %d failed", img, d.Succeeded, d.Failed)
	case events.TypeRebuildPlanned:
		d, _ := events.DataAs[events.RebuildPlanned](e)
		n := 0
		for _, x := range d.Decisions {
			if x.Action == "rebuild" {
				n++
			}
		}
		s := fmt.Sprintf("%s policy %s: rebuild %d, skip %d", d.DestinationImageID, d.Policy, n, len(d.Decisions)-n)
		if d.DryRun {
			s += " (dry run)"
		}
		return s
	case events.TypeDesktopRebuildStarted, events.TypeDesktopRebuildSucceeded:
		d, _ := events.DataAs[events.DesktopRebuild](e)
		return fmt.Sprintf("%s batch %d → %s", d.DesktopID, d.Batch, d.DestinationImageID)
	case events.TypeDesktopRebuildFailed:
		d, _ := events.DataAs[events.DesktopRebuild](e)
		return fmt.Sprintf("%s batch %d %s: %s", d.DesktopID, d.Batch, d.Code, oneLine(d.Message, 80))
	case events.TypeRebuildCompleted:
		d, _ := events.DataAs[events.RebuildCompleted](e)
		s := fmt.Sprintf("%s policy %s: %d rebuilt, %d failed, %d skipped", d.DestinationImageID, d.Policy, d.Succeeded, d.Failed, d.Skipped)
		if d.Stopped {
			s += "; stopped: " + oneLine(d.Reason, 120)
		}
		return s
	}
	return img
}

package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/app"
	"github.com/imagerelay/imagerelay/shared/bus"
	"github.com/imagerelay/imagerelay/shared/config"
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
			nc, err := app.Connect(&config.Config{NATS: config.NATS{URL: natsURL(cfg, url)}}, "imagerelay-watch")
			if err != nil {
				return err
			}
			defer nc.Close()
			sub, err := nc.Subscribe(filter, func(m *nats.Msg) { printMsg(cmd.OutOrStdout(), m) })
			if err != nil {
				return err
			}
			defer func() { _ = sub.Unsubscribe() }()
			<-cmd.Context().Done()
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "nats", "", "NATS URL (default: nats.url, else the local `imagerelay up`)")
	cmd.Flags().StringVar(&filter, "subject", "imagerelay.>", "NATS subject filter, e.g. imagerelay.replication.*.tencent.>")
	return cmd
}

// printMsg writes one line per event; internal defer messages are not shown.
func printMsg(w io.Writer, m *nats.Msg) {
	if strings.HasPrefix(m.Subject, bus.DeferPrefix) {
		return
	}
	ts := time.Now().Format("15:04:05.000")
	if strings.HasPrefix(m.Subject, events.DeadLetterPrefix) {
		fmt.Fprintf(w, "%s  DEAD LETTER  %s  %s\n", ts, m.Subject, m.Header.Get(bus.HeaderDeadLetterReason))
		return
	}
	names := make([]string, 0, len(m.Header))
	for k := range m.Header {
		names = append(names, k)
	}
	e, err := events.FromBinary(names, m.Header.Get, m.Data)
	if err != nil {
		fmt.Fprintf(w, "%s  (not an imagerelay event on %s: %v)\n", ts, m.Subject, err)
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
	}
	return img
}

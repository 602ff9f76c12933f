package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/rebuild"
	"github.com/imagerelay/imagerelay/functions/rebuild/rules"
	"github.com/imagerelay/imagerelay/samples"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/compose/catalog"
	"github.com/imagerelay/imagerelay/shared/compose/rebuildwire"
	"github.com/imagerelay/imagerelay/shared/config"
	"github.com/imagerelay/imagerelay/shared/dev/emulators"
	"github.com/imagerelay/imagerelay/shared/domain"
)

func newDemo(g *globals) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start everything embedded, publish the sample images and follow them to the end",
		Long: `demo starts an embedded NATS server (in a fresh temporary store), the cloud emulators on
free loopback ports and every function, publishes the images in samples/, prints each event as
it happens and, once every region has settled, the final status table. It exits 0 when every
replication succeeded and nothing was dead-lettered, 1 otherwise.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			return runDemo(cmd.Context(), cfg, timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 90*time.Second, "give up after this long")
	return cmd
}

func runDemo(ctx context.Context, cfg *config.Config, timeout time.Duration) error {
	out := os.Stdout
	dir, err := os.MkdirTemp("", "imagerelay-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// A fresh store and free ports every run, so the demo never trips over an earlier run
	// or over a running `imagerelay up`.
	cfg.NATS.URL, cfg.NATS.StoreDir, cfg.NATS.Listen = "", dir, config.ListenNone
	emus, err := emulators.Start(emulators.DefaultSeed(), emulators.Addrs{Tencent: "127.0.0.1:0", Alibaba: "127.0.0.1:0", Huawei: "127.0.0.1:0"})
	if err != nil {
		return err
	}
	defer emus.Close()
	cfg.Providers.Tencent.Endpoint = emus.Addrs.Tencent
	cfg.Providers.Alibaba.Endpoint, cfg.Providers.Alibaba.EcdEndpoint = emus.Addrs.Alibaba, emus.Addrs.Alibaba
	cfg.Providers.Huawei.Endpoint = "http://" + emus.Addrs.Huawei
	useDemoCredentials()

	logFile, err := os.Create(dir + "/imagerelay.log")
	if err != nil {
		return err
	}
	defer logFile.Close()
	st, err := startStack(ctx, cfg, logger(logFile, cfg.Log.Level), true)
	if err != nil {
		return err
	}
	defer st.close()

	tracker := newDemoTracker(rebuildwire.Policies(cfg))
	stop, err := follow(ctx, st.nc, cfg.NATS.Stream, events.SubjectPrefix+">", func(m jetstream.Msg) {
		printMsg(out, m)
		tracker.observe(m)
	})
	if err != nil {
		return err
	}
	defer stop()
	if err := st.run(ctx, catalog.FunctionNames); err != nil {
		return err
	}

	images, err := sampleImages(samples.FS)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "imagerelay demo: %d sample images, emulators on %s (tencent), %s (alibaba), %s (huawei)\n\n",
		len(images), emus.Addrs.Tencent, emus.Addrs.Alibaba, emus.Addrs.Huawei)
	start := time.Now()
	for _, img := range images {
		e, err := newPublished(img)
		if err != nil {
			return err
		}
		tracker.expect(e.ID())
		if err := st.rt.Bus.Publish(ctx, e); err != nil {
			return err
		}
	}
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	finished := tracker.wait(waitCtx)
	recs, err := st.rt.Store.Records(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nFinal status after %s:\n\n", time.Since(start).Round(100*time.Millisecond))
	writeTable(out, recs, time.Now())

	rollouts, err := state.List[rebuild.Rollout](ctx, st.rt.Store, state.Prefix(rebuild.RolloutPrefix()...))
	if err != nil {
		return err
	}
	var problems []string
	for _, ro := range rollouts {
		fmt.Fprintf(out, "\nRebuild %s: %s in %s: %d rebuilt, %d failed, %d skipped, %s\n", ro.Policy, ro.DestinationImageID,
			ro.Replication.DestinationRegion, ro.Succeeded, ro.Failed, ro.Skipped, rolloutBatches(ro))
		for _, d := range ro.Decisions {
			fmt.Fprintf(out, "  %-16s %-7s %s\n", d.DesktopID, d.Action, d.Reason)
		}
		switch {
		case ro.Stopped:
			problems = append(problems, fmt.Sprintf("rebuild %s stopped: %s", ro.Policy, ro.Reason))
		case ro.Phase != rebuild.PhaseDone:
			problems = append(problems, fmt.Sprintf("rebuild %s did not finish", ro.Policy))
		case ro.Failed > 0:
			problems = append(problems, fmt.Sprintf("rebuild %s: %d desktops failed", ro.Policy, ro.Failed))
		}
	}
	if len(recs) == 0 {
		problems = append(problems, "no replication was recorded")
	}
	if !finished {
		problems = append(problems, fmt.Sprintf("not every region settled within %s", timeout))
	}
	for _, r := range recs {
		if r.State != domain.StateSucceeded {
			problems = append(problems, fmt.Sprintf("%s is %s %s", r.Key, r.State, r.Code))
		}
	}
	problems = append(problems, tracker.deadLetters()...)
	if len(problems) > 0 {
		fmt.Fprintf(out, "\nUnexpected: %s\nLogs: %s (kept until exit)\n", strings.Join(problems, "; "), logFile.Name())
		return exitError{code: 1, msg: "demo finished with problems"}
	}
	fmt.Fprintf(out, "\nEvery replication succeeded. Run `imagerelay up` to keep the pipeline running, then `imagerelay publish` and `imagerelay status`.\n")
	return nil
}

// rolloutBatches describes a rollout's batches ("canary 1, then 3, 1").
func rolloutBatches(ro rebuild.Rollout) string {
	var sizes []string
	for _, b := range ro.Batches[min(1, len(ro.Batches)):] {
		sizes = append(sizes, fmt.Sprint(len(b)))
	}
	s := "no canary"
	if len(ro.Batches) > 0 && len(ro.Batches[0]) > 0 {
		s = fmt.Sprintf("canary %d", len(ro.Batches[0]))
	}
	if len(sizes) > 0 {
		s += ", then batches of " + strings.Join(sizes, ", ")
	}
	return s
}

// demoTracker follows the published images until each has its completion (or no region to
// copy to), and each rebuild rollout a copy starts until its rebuild.completed.
type demoTracker struct {
	mu       sync.Mutex
	pending  map[string]bool // correlation id, or rollout key → still waiting
	policies []rules.Policy
	dlq      []string
	changed  chan struct{}
}

func newDemoTracker(policies []rules.Policy) *demoTracker {
	return &demoTracker{pending: map[string]bool{}, policies: policies, changed: make(chan struct{}, 1)}
}

func (t *demoTracker) expect(id string) {
	t.mu.Lock()
	t.pending[id] = true
	t.mu.Unlock()
}

func (t *demoTracker) observe(m jetstream.Msg) {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer func() {
		select {
		case t.changed <- struct{}{}:
		default:
		}
	}()
	h := m.Headers()
	if strings.HasPrefix(m.Subject(), events.DeadLetterPrefix) {
		t.dlq = append(t.dlq, m.Subject()+": "+h.Get(bus.HeaderDeadLetterReason))
		return
	}
	corr := h.Get("ce-" + events.ExtCorrelationID)
	switch h.Get("ce-type") {
	case events.TypeReplicationPlanned:
		e, err := events.FromHeader(h, m.Data())
		if err != nil {
			return
		}
		if d, err := events.DataAs[events.ReplicationPlanned](e); err == nil && len(d.Regions) == 0 {
			delete(t.pending, events.CorrelationID(e))
		}
	case events.TypeReplicationCompleted:
		delete(t.pending, corr)
	case events.TypeReplicationSucceeded:
		// The succeeded event comes before the image's completed one on the stream, so the
		// rollouts it starts are waited for before the image stops being pending.
		e, err := events.FromHeader(h, m.Data())
		if err != nil {
			return
		}
		if d, err := events.DataAs[events.ReplicationSucceeded](e); err == nil {
			for _, p := range rules.Applies(t.policies, d) {
				if !p.DryRun {
					t.pending[state.Key(rebuild.RolloutKey(p.Name, d.Replication)...)] = true
				}
			}
		}
	case events.TypeRebuildCompleted:
		e, err := events.FromHeader(h, m.Data())
		if err != nil {
			return
		}
		if d, err := events.DataAs[events.RebuildCompleted](e); err == nil {
			delete(t.pending, state.Key(rebuild.RolloutKey(d.Policy, d.Replication)...))
		}
	}
}

func (t *demoTracker) wait(ctx context.Context) bool {
	for {
		t.mu.Lock()
		n := len(t.pending)
		t.mu.Unlock()
		if n == 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.changed:
		}
	}
}

func (t *demoTracker) deadLetters() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.dlq...)
}

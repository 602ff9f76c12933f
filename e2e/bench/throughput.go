package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/compose"
	"github.com/imagerelay/imagerelay/shared/compose/catalog"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// ThroughputOptions shape a throughput run.
type ThroughputOptions struct {
	// Images is N, spread round-robin over Clouds; Regions is K, the destinations of each.
	Images, Regions int
	// Clouds are the providers the images come from.
	Clouds []string
	// Copy is how long the emulators take for one copy (~0: 1 ms).
	Copy time.Duration
	// Poll is the poll interval (imagerelay's floor is 1 s).
	Poll time.Duration
	// RawMessages and RawSize shape each raw JetStream run.
	RawMessages, RawSize int
	// Dir holds the NATS store; it must be empty or absent.
	Dir string
	// Timeout bounds the pipeline part.
	Timeout time.Duration
}

// DefaultThroughput is what `make bench-e2e` runs.
func DefaultThroughput() ThroughputOptions {
	return ThroughputOptions{Images: 300, Regions: 3, Clouds: []string{Tencent, Alibaba}, Copy: time.Millisecond, Poll: time.Second,
		RawMessages: 100_000, RawSize: 700, Timeout: 20 * time.Minute}
}

// ThroughputReport is what a throughput run measured.
type ThroughputReport struct {
	Machine      Machine
	Options      ThroughputOptions
	RawBefore    RawResult
	RawAfter     RawResult
	Replications int
	Succeeded    int
	Failed       int
	Completed    int
	Elapsed      time.Duration
	// PerCloud is, per provider, the time from the first publish until its last copy settled.
	PerCloud map[string]time.Duration
	Ops      Ops
	Stream   string
	// CPU is the process's CPU time during the pipeline part.
	CPU time.Duration
}

// SettledPerSecond is replications settled per second, first publish to last completed.
func (r ThroughputReport) SettledPerSecond() float64 {
	return float64(r.Replications) / max(r.Elapsed.Seconds(), 1e-9)
}

// RawPerSecond is the mean of the two raw runs.
func (r ThroughputReport) RawPerSecond() float64 {
	return (r.RawBefore.PerSecond() + r.RawAfter.PerSecond()) / 2
}

// OpsPerReplication is JetStream operations (events stored + KV writes + KV reads) per
// replication.
func (r ThroughputReport) OpsPerReplication() float64 {
	return float64(r.Ops.Total(r.Stream)) / float64(max(r.Replications, 1))
}

// Ratio is settled/s ÷ (raw msg/s ÷ operations per replication): the share of the same-run
// engine ceiling imagerelay reaches.
func (r ThroughputReport) Ratio() float64 {
	ceiling := r.RawPerSecond() / max(r.OpsPerReplication(), 1e-9)
	return r.SettledPerSecond() / max(ceiling, 1e-9)
}

// RunThroughput runs raw JetStream, the pipeline, and raw JetStream again, in this process,
// and writes the report to w as it goes.
func RunThroughput(ctx context.Context, o ThroughputOptions, w io.Writer) (ThroughputReport, error) {
	rep := ThroughputReport{Machine: ThisMachine(), Options: o, PerCloud: map[string]time.Duration{}}
	if o.Regions < 1 || o.Regions > MaxRegions || o.Images < 1 || len(o.Clouds) == 0 {
		return rep, fmt.Errorf("bench: need ≥ 1 image, 1..%d regions and a cloud", MaxRegions)
	}
	p := newPlan(o.Images, o.Regions, o.Clouds)
	rep.Replications = p.replications()
	fmt.Fprintf(w, "bench-e2e throughput: %d images × %d regions = %d replications over %s; copy %s, poll %s\n",
		o.Images, o.Regions, rep.Replications, strings.Join(o.Clouds, ", "), o.Copy, o.Poll)
	fmt.Fprintf(w, "  machine: %s\n", rep.Machine)
	r, err := startRig(o.Dir, p, o.Copy, o.Poll, max(10*time.Minute, o.Timeout), false)
	if err != nil {
		return rep, err
	}
	defer r.Close()
	bc := compose.BusConfig(r.cfg)
	rep.Stream = bc.Stream

	if rep.RawBefore, err = runRaw(ctx, r.nc, o.RawMessages, o.RawSize, bc.DuplicateWindow, bc.MaxAge); err != nil {
		return rep, err
	}
	fmt.Fprintf(w, "  a) raw JetStream: %d × %d B published (async, Nats-Msg-Id) and consumed with an ack each in %s: %.0f msg/s\n",
		rep.RawBefore.Messages, rep.RawBefore.Size, rep.RawBefore.Elapsed.Round(time.Millisecond), rep.RawBefore.PerSecond())

	if err := runPipeline(ctx, r, p, o, &rep); err != nil {
		return rep, err
	}
	fmt.Fprintf(w, "  b) pipeline: %d replications settled (%d succeeded, %d failed), %d images completed, in %s: %.1f settled/s (process CPU %s, %.0f %% of one core)\n",
		rep.Replications, rep.Succeeded, rep.Failed, rep.Completed, rep.Elapsed.Round(time.Millisecond), rep.SettledPerSecond(),
		rep.CPU.Round(time.Millisecond), 100*rep.CPU.Seconds()/max(rep.Elapsed.Seconds(), 1e-9))
	for _, c := range o.Clouds {
		n := p.perKind[c] * p.regions
		if d := rep.PerCloud[c]; d > 0 {
			fmt.Fprintf(w, "     %s: %d replications, last settled after %s (%.1f/s)\n", c, n, d.Round(time.Millisecond), float64(n)/d.Seconds())
		}
	}
	rep.Ops.write(w, rep.Stream, rep.Replications)

	if rep.RawAfter, err = runRaw(ctx, r.nc, o.RawMessages, o.RawSize, bc.DuplicateWindow, bc.MaxAge); err != nil {
		return rep, err
	}
	fmt.Fprintf(w, "  c) raw JetStream again: %.0f msg/s (in %s)\n", rep.RawAfter.PerSecond(), rep.RawAfter.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  ceiling: %.0f msg/s (mean of a and c) ÷ %.1f operations per replication = %.0f replications/s\n",
		rep.RawPerSecond(), rep.OpsPerReplication(), rep.RawPerSecond()/max(rep.OpsPerReplication(), 1e-9))
	fmt.Fprintf(w, "  ratio settled/s ÷ ceiling: %.3f\n", rep.Ratio())
	return rep, nil
}

// runPipeline opens the runtime as `imagerelay up` does, starts the four functions on the bus,
// publishes every image and waits for every replication.completed, then checks the records.
func runPipeline(ctx context.Context, r *rig, p plan, o ThroughputOptions, rep *ThroughputReport) error {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	log, hush := quietLog()
	if err := compose.Setup(ctx, r.cfg, r.nc, log); err != nil {
		return err
	}
	rt, err := catalog.Open(ctx, r.cfg, r.nc, log)
	if err != nil {
		return err
	}
	for name, err := range rt.Providers.Unavailable {
		return fmt.Errorf("provider %s unavailable: %w", name, err)
	}
	runCtx, stopFns := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { hush(); stopFns(); wg.Wait() }()
	for _, name := range catalog.FunctionNames {
		spec, err := rt.Spec(name)
		if err != nil {
			return err
		}
		// Create the consumers before the clock starts, as a running `up` has them.
		if _, err := rt.Bus.Consumer(ctx, spec); err != nil {
			return err
		}
		wg.Go(func() {
			if err := rt.Bus.Run(runCtx, spec); err != nil {
				log.Error("function stopped", "function", spec.Function, "error", err)
			}
		})
	}
	completed, err := countDistinct(r.nc, events.TypeReplicationCompleted, len(p.images))
	if err != nil {
		return err
	}
	settled := newSettleClock(p)
	stopSettled, err := settled.watch(r.nc)
	if err != nil {
		return err
	}
	defer stopSettled()
	meter, err := startOps(ctx, r.nc, r.js)
	if err != nil {
		return err
	}
	cpu0 := processCPU()
	start := time.Now()
	settled.start = start
	if err := publish(ctx, rt.Bus, p); err != nil {
		return err
	}
	last, err := completed.wait(ctx)
	if err != nil {
		n, _ := completed.progress()
		return fmt.Errorf("%d of %d images completed: %w", n, len(p.images), err)
	}
	rep.Elapsed = last.Sub(start)
	rep.CPU = processCPU() - cpu0
	rep.Completed = len(p.images)
	// The work the replications caused ends when no function has anything left to do: the
	// duplicates and acks after the last completion belong to the run, so they are counted.
	infos, err := waitIdle(ctx, r, catalog.FunctionNames)
	if err != nil {
		return err
	}
	if rep.Ops, err = meter.stop(ctx, r.nc); err != nil {
		return err
	}
	rep.Ops.discount("api CONSUMER.INFO", infos)
	hush()
	stopFns()
	wg.Wait()
	rep.PerCloud = settled.perCloud()
	recs, err := rt.Store.Records(ctx)
	if err != nil {
		return err
	}
	var bad []string
	for _, rec := range recs {
		switch rec.State {
		case domain.StateSucceeded:
			rep.Succeeded++
		case domain.StateFailed:
			rep.Failed++
		default:
			bad = append(bad, rec.Key+" "+string(rec.State))
		}
	}
	if len(recs) != rep.Replications || len(bad) > 0 {
		return fmt.Errorf("bench: %d records for %d replications; not settled: %v", len(recs), rep.Replications, bad)
	}
	return nil
}

// settleClock notes, per provider, when its last succeeded or failed event arrived.
type settleClock struct {
	mu    sync.Mutex
	start time.Time
	last  map[string]time.Time
}

func newSettleClock(plan) *settleClock { return &settleClock{last: map[string]time.Time{}} }

// watch subscribes to succeeded and failed events until the returned stop.
func (s *settleClock) watch(nc *nats.Conn) (func(), error) {
	var subs []*nats.Subscription
	stop := func() {
		for _, sub := range subs {
			_ = sub.Unsubscribe()
		}
	}
	for _, typ := range []string{events.TypeReplicationSucceeded, events.TypeReplicationFailed} {
		sub, err := nc.Subscribe(events.NATSFilter(typ), func(m *nats.Msg) {
			now := time.Now()
			s.mu.Lock()
			s.last[m.Header.Get("ce-"+events.ExtProvider)] = now
			s.mu.Unlock()
		})
		if err != nil {
			stop()
			return nil, err
		}
		_ = sub.SetPendingLimits(-1, -1)
		subs = append(subs, sub)
	}
	return stop, nil
}

// perCloud is, per provider, the time from the start to its last settlement.
func (s *settleClock) perCloud() map[string]time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]time.Duration{}
	for c, t := range s.last {
		out[c] = t.Sub(s.start)
	}
	return out
}

// processCPU is the CPU time this process has used (user + system).
func processCPU() time.Duration {
	raw, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	var utime, stime int64
	_, _ = fmt.Sscan(f[11], &utime)
	_, _ = fmt.Sscan(f[12], &stime)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// waitIdle waits until every function's consumer has nothing pending and nothing awaiting an
// ack, twice in a row, and returns how many consumer info requests that took.
func waitIdle(ctx context.Context, r *rig, functions []string) (int, error) {
	requests, quiet := 0, 0
	for quiet < 2 {
		busy := false
		for _, name := range functions {
			c, err := r.js.Consumer(ctx, r.cfg.NATS.Stream, name)
			requests++
			if err != nil {
				return requests, err
			}
			info := c.CachedInfo()
			busy = busy || info.NumPending > 0 || info.NumAckPending > 0
		}
		if busy {
			quiet = 0
		} else {
			quiet++
		}
		select {
		case <-ctx.Done():
			return requests, fmt.Errorf("waiting for the functions to finish: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return requests, nil
}

package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/compose"
	"github.com/imagerelay/imagerelay/shared/compose/catalog"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/tencentemu"
)

// InFlightOptions shape an in-flight run.
type InFlightOptions struct {
	// Copies is M, the copies started and kept in flight; Regions is K per image, so
	// ceil(M/K) Tencent images are published.
	Copies, Regions int
	// Copy is how long one copy takes (hours: none finishes during the run).
	Copy time.Duration
	// Poll is the poll interval.
	Poll time.Duration
	// Rounds is how many poll intervals are measured once every copy has started.
	Rounds int
	// Binary is a built imagerelay: when set, each function runs as `imagerelay worker` in a
	// process of its own (so its memory is its own) and `imagerelay status` is timed; when
	// empty the functions run in this process.
	Binary string
	// Dir holds the NATS store, the configuration and the workers' logs.
	Dir string
	// StartTimeout bounds starting every copy.
	StartTimeout time.Duration
}

// DefaultInFlight is what `make bench-e2e-inflight` runs.
func DefaultInFlight() InFlightOptions {
	return InFlightOptions{Copies: 100_000, Regions: 4, Copy: 24 * time.Hour, Poll: 30 * time.Second, Rounds: 3, StartTimeout: 40 * time.Minute}
}

// InFlightReport is what an in-flight run measured.
type InFlightReport struct {
	Machine Machine
	Options InFlightOptions
	// Started is copies started; StartElapsed the time from the first publish until the last
	// replication.started.
	Started      int
	StartElapsed time.Duration
	// Window is the measured span (Rounds poll intervals).
	Window time.Duration
	// Calls is DescribeImages calls in the window; Asked the image ids they named (one per
	// copy polled); Distinct the copies polled at least once; OnTime the copies polled at
	// least every poll interval + 10 % through the window.
	Calls, Asked, Distinct, OnTime int
	// WorkerRSS is each worker process's resident memory at the end (binary mode), and
	// WorkerPeak its peak; ProcessRSS is this process's (NATS server and emulators included,
	// and the functions in in-process mode).
	WorkerRSS, WorkerPeak map[string]int64
	ProcessRSS            int64
	StoreBytes            int64
	// Pending is, per function's consumer, messages not yet delivered plus delivered and not
	// acked, at the end.
	Pending map[string]uint64
	// StatusAll is the time to read every record as `imagerelay status` does, in process;
	// StatusCLI the built binary's `status` (with --image when it has that flag).
	StatusAll, StatusCLI time.Duration
	StatusCLIArgs        string
}

// Needed is polls per second needed: every copy once per interval.
func (r InFlightReport) Needed() float64 { return float64(r.Started) / r.Options.Poll.Seconds() }

// Achieved is copies polled per second in the window.
func (r InFlightReport) Achieved() float64 { return float64(r.Asked) / max(r.Window.Seconds(), 1e-9) }

// RunInFlight starts M copies that take hours, measures a few poll intervals, and writes the
// report to w as it goes.
func RunInFlight(ctx context.Context, o InFlightOptions, w io.Writer) (InFlightReport, error) {
	rep := InFlightReport{Machine: ThisMachine(), Options: o, WorkerRSS: map[string]int64{}, WorkerPeak: map[string]int64{}, Pending: map[string]uint64{}}
	if o.Regions < 1 || o.Regions > MaxRegions || o.Copies < 1 || o.Rounds < 1 {
		return rep, fmt.Errorf("bench: need ≥ 1 copy, 1..%d regions and ≥ 1 round", MaxRegions)
	}
	images := (o.Copies + o.Regions - 1) / o.Regions
	p := newPlan(images, o.Regions, []string{Tencent})
	mode := "functions in this process"
	if o.Binary != "" {
		mode = "one `imagerelay worker` process per function"
	}
	fmt.Fprintf(w, "bench-e2e in-flight: %d Tencent images × %d regions = %d copies; copy %s, poll %s, %d rounds measured; %s\n",
		images, o.Regions, p.replications(), o.Copy, o.Poll, o.Rounds, mode)
	fmt.Fprintf(w, "  machine: %s\n", rep.Machine)
	r, err := startRig(o.Dir, p, o.Copy, o.Poll, 4*o.Copy, o.Binary != "")
	if err != nil {
		return rep, err
	}
	defer r.Close()
	log, hush := quietLog()
	if err := compose.Setup(ctx, r.cfg, r.nc, log); err != nil {
		return rep, err
	}
	rt, err := catalog.Open(ctx, r.cfg, r.nc, log)
	if err != nil {
		return rep, err
	}
	runCtx, stopFns := context.WithCancel(ctx)
	defer stopFns()
	var procs []*worker
	var wg sync.WaitGroup
	defer func() {
		hush()
		stopFns()
		wg.Wait()
		for _, pr := range procs {
			pr.stop()
		}
	}()
	for _, name := range catalog.FunctionNames {
		if o.Binary != "" {
			pr, err := startWorker(o.Binary, r, name)
			if err != nil {
				return rep, err
			}
			procs = append(procs, pr)
			continue
		}
		spec, err := rt.Spec(name)
		if err != nil {
			return rep, err
		}
		wg.Go(func() {
			if err := rt.Bus.Run(runCtx, spec); err != nil {
				log.Error("function stopped", "function", spec.Function, "error", err)
			}
		})
	}
	started, err := countDistinct(r.nc, events.TypeReplicationStarted, p.replications())
	if err != nil {
		return rep, err
	}
	start := time.Now()
	if err := publish(ctx, rt.Bus, p); err != nil {
		return rep, err
	}
	sctx, cancel := context.WithTimeout(ctx, o.StartTimeout)
	go func() {
		// Progress while the copies start, which takes minutes at 100,000.
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				n, _ := started.progress()
				fmt.Fprintf(w, "    %s: %d copies started\n", time.Since(start).Round(time.Second), n)
			}
		}
	}()
	last, err := started.wait(sctx)
	cancel()
	rep.Started = p.replications()
	switch {
	case err != nil && ctx.Err() == nil:
		// Measure what did start: a start phase that cannot finish is a result too.
		rep.Started, last = started.progress()
		rep.StartElapsed = last.Sub(start)
		fmt.Fprintf(w, "  only %d of %d copies started within %s (the last after %s); measuring those\n", rep.Started, p.replications(),
			o.StartTimeout, rep.StartElapsed.Round(time.Millisecond))
	case err != nil:
		return rep, err
	default:
		rep.StartElapsed = last.Sub(start)
		fmt.Fprintf(w, "  all %d copies started after %s (%.0f starts/s)\n", rep.Started, rep.StartElapsed.Round(time.Millisecond),
			float64(rep.Started)/max(rep.StartElapsed.Seconds(), 1e-9))
	}

	// The measured window: a fixed span of poll rounds, not a wait for a condition.
	from := time.Now()
	rep.Window = time.Duration(o.Rounds) * o.Poll
	select {
	case <-time.After(rep.Window):
	case <-ctx.Done():
		return rep, ctx.Err()
	}
	to := time.Now()
	rep.Window = to.Sub(from)
	rep.measurePolls(r.emus.Calls.Calls(tencentemu.Provider, "DescribeImages"), from, to)
	for _, pr := range procs {
		rep.WorkerRSS[pr.name] = procKB(fmt.Sprintf("/proc/%d/status", pr.cmd.Process.Pid), "VmRSS:") << 10
		rep.WorkerPeak[pr.name] = procKB(fmt.Sprintf("/proc/%d/status", pr.cmd.Process.Pid), "VmHWM:") << 10
	}
	rep.ProcessRSS = procKB("/proc/self/status", "VmRSS:") << 10
	for _, name := range catalog.FunctionNames {
		if c, err := r.js.Consumer(ctx, r.cfg.NATS.Stream, name); err == nil {
			if info, err := c.Info(ctx); err == nil {
				rep.Pending[name] = info.NumPending + uint64(info.NumAckPending)
			}
		}
	}
	rep.StoreBytes = r.storeBytes()

	t0 := time.Now()
	recs, err := rt.Store.Records(ctx)
	if err != nil {
		return rep, err
	}
	rep.StatusAll = time.Since(t0)
	if len(recs) < rep.Started {
		return rep, fmt.Errorf("bench: %d records for %d copies", len(recs), rep.Started)
	}
	if o.Binary != "" {
		if rep.StatusCLI, rep.StatusCLIArgs, err = timeStatus(ctx, o.Binary, r, p.images[len(p.images)/2].event.ImageID); err != nil {
			return rep, err
		}
	}
	rep.write(w)
	return rep, nil
}

// measurePolls reads the window's DescribeImages calls: how many, how many ids they named, and
// for each copy whether it was asked about at least every poll interval + 10 %.
func (r *InFlightReport) measurePolls(calls []emucore.Call, from, to time.Time) {
	asked := map[string][]time.Time{}
	for _, c := range calls {
		if c.Time.Before(from) || c.Time.After(to) {
			continue
		}
		r.Calls++
		for _, id := range stringList(c.Params["ImageIds"]) {
			r.Asked++
			asked[id] = append(asked[id], c.Time)
		}
	}
	r.Distinct = len(asked)
	limit := r.Options.Poll + r.Options.Poll/10
	for _, times := range asked {
		sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
		prev, ok := from, true
		for _, t := range append(times, to) {
			if t.Sub(prev) > limit {
				ok = false
				break
			}
			prev = t
		}
		if ok {
			r.OnTime++
		}
	}
}

// stringList reads a logged list parameter.
func stringList(v any) []string {
	switch l := v.(type) {
	case []string:
		return l
	case []any:
		out := make([]string, 0, len(l))
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func (r InFlightReport) write(w io.Writer) {
	rounds := r.Window.Seconds() / r.Options.Poll.Seconds()
	fmt.Fprintf(w, "  window %s (%.1f poll intervals):\n", r.Window.Round(time.Millisecond), rounds)
	fmt.Fprintf(w, "    polls/s needed %.0f (copies ÷ poll interval), achieved %.0f (image ids asked in DescribeImages calls ÷ window)\n",
		r.Needed(), r.Achieved())
	fmt.Fprintf(w, "    copies polled at least once: %d of %d (%.1f %%); every interval + 10 %%: %d (%.1f %%)\n",
		r.Distinct, r.Started, 100*float64(r.Distinct)/float64(max(r.Started, 1)), r.OnTime, 100*float64(r.OnTime)/float64(max(r.Started, 1)))
	fmt.Fprintf(w, "    DescribeImages calls: %d (%.1f/s, %.1f ids a call, %.4f calls per copy per poll round)\n",
		r.Calls, float64(r.Calls)/max(r.Window.Seconds(), 1e-9), float64(r.Asked)/float64(max(r.Calls, 1)),
		float64(r.Calls)/(float64(max(r.Started, 1))*max(rounds, 1e-9)))
	var names []string
	for n := range r.WorkerRSS {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "    worker %s: RSS %s (peak %s)\n", n, mib(r.WorkerRSS[n]), mib(r.WorkerPeak[n]))
	}
	fmt.Fprintf(w, "    this process RSS %s (nats-server and emulators%s)\n", mib(r.ProcessRSS), map[bool]string{true: "", false: " and the functions"}[len(names) > 0])
	fmt.Fprintf(w, "    NATS store on disk: %s\n", mib(r.StoreBytes))
	names = names[:0]
	for n := range r.Pending {
		names = append(names, n)
	}
	slices.Sort(names)
	fmt.Fprint(w, "    consumer backlog (pending + ack pending):")
	for _, n := range names {
		fmt.Fprintf(w, " %s %d;", n, r.Pending[n])
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "    status: every record read in process (what `imagerelay status` does) in %s\n", r.StatusAll.Round(time.Millisecond))
	if r.StatusCLIArgs != "" {
		fmt.Fprintf(w, "    status: %s in %s, the built binary, connection included\n", r.StatusCLIArgs, r.StatusCLI.Round(time.Millisecond))
	}
}

// worker is one `imagerelay worker FUNCTION` process.
type worker struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// startWorker starts bin as a worker of function name against the rig, logging to a file.
func startWorker(bin string, r *rig, name string) (*worker, error) {
	logf, err := os.Create(filepath.Join(r.dir, "worker-"+name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "worker", name, "--config", r.cfgPath)
	cmd.Env = os.Environ()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s worker %s: %w", bin, name, err)
	}
	wk := &worker{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(wk.done)
	}()
	return wk, nil
}

// stop asks the worker to stop and waits for it, killing it after 30 s.
func (wk *worker) stop() {
	_ = wk.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-wk.done:
	case <-time.After(30 * time.Second):
		_ = wk.cmd.Process.Kill()
		<-wk.done
	}
}

// timeStatus runs `imagerelay status` once against the rig, with --image when the binary has
// that flag, and returns how long it took.
func timeStatus(ctx context.Context, bin string, r *rig, imageID string) (time.Duration, string, error) {
	args := []string{"status", "--config", r.cfgPath}
	help, _ := exec.CommandContext(ctx, bin, "status", "--help").CombinedOutput()
	if strings.Contains(string(help), "--image") {
		args = append(args, "--image", imageID)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = os.Environ()
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		return 0, "", fmt.Errorf("imagerelay %s: %w: %s", strings.Join(args, " "), err, tail(out))
	}
	shown := strings.Join(slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == "--config" || a == r.cfgPath }), " ")
	return d, "`imagerelay " + shown + "` (" + strconv.Itoa(strings.Count(string(out), "\n")) + " lines out)", nil
}

func tail(b []byte) string {
	if len(b) > 500 {
		b = b[len(b)-500:]
	}
	return string(b)
}

// Command bench runs the end-to-end benchmark (`make bench-e2e`, `make bench-e2e-inflight`):
// see the package documentation of e2e/bench and the README's Performance section.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/imagerelay/imagerelay/e2e/bench"
)

func main() {
	t, f := bench.DefaultThroughput(), bench.DefaultInFlight()
	mode := flag.String("mode", "throughput", "throughput (raw JetStream, N images × K regions, raw again) or inflight (M copies in flight)")
	clouds := flag.String("clouds", strings.Join(t.Clouds, ","), "throughput: clouds the images come from (tencent, alibaba, huawei; Huawei runs at most 5 copies at once)")
	flag.IntVar(&t.Images, "images", t.Images, "throughput: N images")
	regions := flag.Int("regions", 0, fmt.Sprintf("K destination regions per image, 1..%d (default %d for throughput, %d for inflight)", bench.MaxRegions, t.Regions, f.Regions))
	flag.DurationVar(&t.Copy, "copy", t.Copy, "throughput: how long the emulators take for one copy")
	poll := flag.Duration("poll", 0, fmt.Sprintf("poll interval (default %s for throughput, %s for inflight)", t.Poll, f.Poll))
	flag.IntVar(&t.RawMessages, "raw", t.RawMessages, "throughput: messages in each raw JetStream run")
	flag.IntVar(&t.RawSize, "raw-size", t.RawSize, "throughput: bytes per raw message")
	flag.IntVar(&f.Copies, "copies", f.Copies, "inflight: M copies in flight (e.g. 10000 for a short run)")
	flag.IntVar(&f.Rounds, "rounds", f.Rounds, "inflight: poll intervals measured once every copy started")
	flag.DurationVar(&f.Copy, "inflight-copy", f.Copy, "inflight: how long one copy takes")
	flag.StringVar(&f.Binary, "bin", "", "inflight: built imagerelay; runs each function as `imagerelay worker` and times `imagerelay status` (empty: functions in this process)")
	dir := flag.String("dir", "", "directory for the NATS store and logs (default: a new temporary one, removed afterwards)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	workDir := *dir
	if workDir == "" {
		d, err := os.MkdirTemp("", "imagerelay-bench-")
		if err != nil {
			fail(err)
		}
		defer os.RemoveAll(d)
		workDir = d
	}
	var err error
	switch *mode {
	case "throughput":
		t.Dir, t.Clouds = workDir, strings.Split(*clouds, ",")
		if *regions > 0 {
			t.Regions = *regions
		}
		if *poll > 0 {
			t.Poll = *poll
		}
		_, err = bench.RunThroughput(ctx, t, os.Stdout)
	case "inflight":
		f.Dir = workDir
		if *regions > 0 {
			f.Regions = *regions
		}
		if *poll > 0 {
			f.Poll = *poll
		}
		_, err = bench.RunInFlight(ctx, f, os.Stdout)
	default:
		err = fmt.Errorf("unknown mode %q: use throughput or inflight", *mode)
	}
	if err != nil {
		stop()
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

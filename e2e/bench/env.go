// Package bench is the end-to-end benchmark behind `make bench-e2e`: raw JetStream on an
// embedded nats-server with file storage, then N images × K regions through the whole
// pipeline against the cloud emulators with copy time ~0 and rate limits lifted, then raw
// JetStream again (throughput mode); and M copies in flight with a long copy time, measuring
// the polls the poller achieves against the ones it needs, the workers' memory, the store's
// size and `imagerelay status` latency (in-flight mode).
//
// It reports numbers, it asserts nothing about speed: what is fast enough is judged by a
// person reading the report with the machine it names. The smoke test only checks that a tiny
// run completes and that its counts add up.
package bench

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/config"
	"github.com/imagerelay/imagerelay/shared/dev/emulators"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/alibabaemu"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/huaweiemu"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/tencentemu"
	"github.com/imagerelay/imagerelay/shared/dev/natsembed"
)

// Provider names, as the events and the configuration spell them.
const (
	Tencent = events.ProviderTencent
	Alibaba = events.ProviderAlibaba
	Huawei  = events.ProviderHuawei
)

// sources and destinations per cloud: the source region of every seeded image and the
// destination regions a policy copies to, in the order they are taken (K ≤ 5).
var (
	sources = map[string]string{Tencent: "ap-guangzhou", Alibaba: "cn-shanghai", Huawei: "cn-north-4"}
	dests   = map[string][]string{
		Tencent: {"ap-shanghai", "ap-beijing", "ap-singapore", "ap-tokyo", "ap-hongkong"},
		Alibaba: {"cn-hangzhou", "cn-beijing", "cn-shenzhen", "cn-hongkong", "ap-southeast-1"},
		Huawei:  {"cn-east-3", "cn-south-1", "ap-southeast-1", "ap-southeast-3", "af-south-1"},
	}
)

// MaxRegions is the largest K: every cloud has this many destination regions to copy to.
const MaxRegions = 5

// lifted is the rate, in requests per second, given to every limit the benchmark lifts: the
// providers' client-side limits in the configuration and the emulators' server-side ones.
const lifted = 1e6

// image is one seeded source image and the event that publishes it.
type image struct {
	provider string
	event    events.ImagePublished
}

// plan is what a run seeds and publishes: images per cloud, each copied to regions regions.
type plan struct {
	images  []image
	regions int
	perKind map[string]int
}

// newPlan spreads n images over clouds round-robin (so the feed interleaves the clouds, as a
// real one would), each to k regions.
func newPlan(n, k int, clouds []string) plan {
	p := plan{regions: k, perKind: map[string]int{}}
	for i := range n {
		c := clouds[i%len(clouds)]
		j := p.perKind[c]
		p.perKind[c]++
		var img events.ImagePublished
		switch c {
		case Tencent:
			img = events.ImagePublished{Image: events.Image{Provider: c, ImageID: fmt.Sprintf("img-b%07d", j), ImageName: fmt.Sprintf("bench-t-%d", j), SourceRegion: sources[c]}, SizeGB: 20}
		case Alibaba:
			img = events.ImagePublished{Image: events.Image{Provider: c, ImageID: fmt.Sprintf("imgc-b%09d", j), VersionID: fmt.Sprintf("iv-b%09d", j),
				ImageName: fmt.Sprintf("bench-a-%d", j), SourceRegion: sources[c], ProductType: "CloudDesktop"}}
		case Huawei:
			img = events.ImagePublished{Image: events.Image{Provider: c, ImageID: fmt.Sprintf("b4a05000-0000-4000-8000-%012d", j), ImageName: fmt.Sprintf("bench-h-%d", j), SourceRegion: sources[c]}, SizeGB: 40}
		}
		p.images = append(p.images, image{provider: c, event: img})
	}
	return p
}

// replications is the number of copies the plan asks for.
func (p plan) replications() int { return len(p.images) * p.regions }

// seed returns the emulators' seed for the plan: its images, copies that take copy, and every
// rate and concurrency limit the emulators model lifted (Huawei's five copies per tenant stay:
// imagerelay enforces that limit itself, as IMS documents it).
func (p plan) seed(copy time.Duration) emulators.Seed {
	s := emulators.DefaultSeed()
	d := emucore.Duration(copy)
	s.Tencent.CopyDuration, s.Alibaba.AppStream.CopyDuration, s.Huawei.CopyDuration = d, d, d
	s.Tencent.RateLimits = tencentemu.RateLimits{SyncImages: lifted, DescribeImages: lifted}
	s.Tencent.Quota = 10 * (p.replications() + len(p.images) + 1000)
	s.Alibaba.RateLimits = alibabaemu.RateLimits{StartTaskForDistributeImage: lifted, ListImage: lifted, RebuildDesktops: lifted, DescribeDesktops: lifted}
	s.Alibaba.AppStream.MaxConcurrentDistributions = 10 * (p.replications() + 1000)
	for _, img := range p.images {
		e := img.event
		switch img.provider {
		case Tencent:
			s.Tencent.Images = append(s.Tencent.Images, tencentemu.Image{ID: e.ImageID, Name: e.ImageName, Region: e.SourceRegion, SizeGB: e.SizeGB})
		case Alibaba:
			s.Alibaba.AppStream.Images = append(s.Alibaba.AppStream.Images, alibabaemu.AppImage{ImageID: e.ImageID, VersionID: e.VersionID, Name: e.ImageName,
				ProductType: e.ProductType, Regions: []string{e.SourceRegion}})
		case Huawei:
			s.Huawei.Images = append(s.Huawei.Images, huaweiemu.Image{ID: e.ImageID, Name: e.ImageName, Region: e.SourceRegion, SizeGB: e.SizeGB, OSType: "Linux"})
		}
	}
	return s
}

// configYAML is the imagerelay.yaml of a run: the emulators' endpoints, the providers' rate
// limits lifted, one policy per cloud in the plan, and the poll interval and timeout.
func (p plan) configYAML(addrs emulators.Addrs, natsURL string, poll, timeout time.Duration) string {
	var b strings.Builder
	if natsURL != "" {
		fmt.Fprintf(&b, "nats:\n  url: %s\n", natsURL)
	}
	fmt.Fprintf(&b, "providers:\n  tencent:\n    endpoint: %s\n    syncRate: %g\n    describeRate: %g\n", addrs.Tencent, float64(lifted), float64(lifted))
	fmt.Fprintf(&b, "  alibaba:\n    endpoint: %s\n    ecdEndpoint: %s\n    productType: CloudDesktop\n    rate: %g\n", addrs.Alibaba, addrs.Alibaba, float64(lifted))
	fmt.Fprintf(&b, "  huawei:\n    endpoint: http://%s\n    agency: ims_admin_agency\n    rate: %g\n    projects:\n", addrs.Huawei, float64(lifted))
	for r, id := range huaweiemu.DefaultSeed().Projects {
		fmt.Fprintf(&b, "      %s: %s\n", r, id)
	}
	fmt.Fprintf(&b, "replication:\n  pollInterval: %s\n  timeout: %s\n  policies:\n", poll, timeout)
	for _, c := range []string{Tencent, Alibaba, Huawei} {
		if p.perKind[c] == 0 {
			continue
		}
		fmt.Fprintf(&b, "    - name: bench-%s\n      match:\n        provider: %s\n      regions: [%s]\n", c, c, strings.Join(dests[c][:p.regions], ", "))
	}
	b.WriteString("log:\n  level: warn\n")
	return b.String()
}

// rig is the parts every run shares: a directory, the embedded nats-server with file storage,
// the emulators, and the configuration that points imagerelay at both.
type rig struct {
	dir     string
	server  *natsembed.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	emus    *emulators.Set
	cfgPath string
	cfg     *config.Config
	natsURL string // "" when the server does not listen on TCP
}

// startRig starts the server (listening on a loopback port when listen) and the emulators
// seeded for p, and writes the configuration. Close stops them and removes dir's contents.
func startRig(dir string, p plan, copy, poll, timeout time.Duration, listen bool) (*rig, error) {
	r := &rig{dir: dir}
	for k, v := range emulators.DemoEnv() {
		if err := os.Setenv(k, v); err != nil {
			return nil, err
		}
	}
	addr := ""
	if listen {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	var err error
	r.server, err = natsembed.Start(natsembed.Options{StoreDir: filepath.Join(dir, "nats"), Listen: addr})
	if err != nil {
		return nil, err
	}
	r.natsURL = r.server.ClientURL()
	if r.nc, err = r.server.Connect(nats.Name("imagerelay-bench")); err != nil {
		r.Close()
		return nil, err
	}
	if r.js, err = jetstream.New(r.nc); err != nil {
		r.Close()
		return nil, err
	}
	local := "127.0.0.1:0"
	if r.emus, err = emulators.Start(p.seed(copy), emulators.Addrs{Tencent: local, Alibaba: local, Huawei: local}); err != nil {
		r.Close()
		return nil, err
	}
	r.cfgPath = filepath.Join(dir, "imagerelay.yaml")
	if err := os.WriteFile(r.cfgPath, []byte(p.configYAML(r.emus.Addrs, r.natsURL, poll, timeout)), 0o600); err != nil {
		r.Close()
		return nil, err
	}
	if r.cfg, err = config.Load(r.cfgPath); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Close stops everything the rig started.
func (r *rig) Close() {
	if r.emus != nil {
		r.emus.Close()
	}
	if r.nc != nil {
		r.nc.Close()
	}
	if r.server != nil {
		r.server.Shutdown()
	}
}

// storeBytes is the size of the NATS store on disk.
func (r *rig) storeBytes() int64 {
	var n int64
	_ = filepath.WalkDir(filepath.Join(r.dir, "nats"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// publish publishes one image.published event per image of p on b, the way `imagerelay
// publish` does (one event each, with its id as Nats-Msg-Id).
func publish(ctx context.Context, b *bus.Bus, p plan) error {
	for i, img := range p.images {
		e, err := events.New(events.TypeImagePublished, img.event, events.Meta{ID: fmt.Sprintf("bench-pub-%d", i), Source: "/bench",
			Provider: img.provider, Region: img.event.SourceRegion, ImageID: img.event.ImageID})
		if err != nil {
			return err
		}
		if err := b.Publish(ctx, e); err != nil {
			return fmt.Errorf("publish image %d: %w", i, err)
		}
	}
	return nil
}

// distinct counts distinct events (by ce-id) of one type seen on core NATS, and signals when
// want have been seen.
type distinct struct {
	sub  *nats.Subscription
	ids  chan string
	done chan struct{}
	seen map[string]bool // only the counting goroutine touches it
	mu   sync.Mutex
	n    int
	last time.Time
}

// countDistinct subscribes to events of typ and closes done once want distinct ids arrived.
func countDistinct(nc *nats.Conn, typ string, want int) (*distinct, error) {
	d := &distinct{ids: make(chan string, 4096), done: make(chan struct{}), seen: map[string]bool{}}
	sub, err := nc.Subscribe(events.NATSFilter(typ), func(m *nats.Msg) { d.ids <- m.Header.Get("ce-id") })
	if err != nil {
		return nil, err
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, err
	}
	d.sub = sub
	go func() {
		for id := range d.ids {
			if d.seen[id] {
				continue
			}
			d.seen[id] = true
			d.mu.Lock()
			d.n, d.last = len(d.seen), time.Now()
			d.mu.Unlock()
			if len(d.seen) == want {
				close(d.done)
			}
		}
	}()
	return d, nil
}

// progress is how many distinct events arrived so far, and when the last new one did.
func (d *distinct) progress() (int, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n, d.last
}

// wait waits for every event, or ctx; it returns when the last new one arrived.
func (d *distinct) wait(ctx context.Context) (time.Time, error) {
	select {
	case <-d.done:
		_ = d.sub.Unsubscribe()
		_, last := d.progress()
		return last, nil
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// quietLog is the pipeline's logger: warnings and errors only, so a run's output is its
// report, and nothing once hush is called (stopping the functions cancels their work in
// flight, which they rightly log).
func quietLog() (log *slog.Logger, hush func()) {
	h := &hushable{Handler: slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})}
	return slog.New(h), func() { h.off.Store(true) }
}

// hushable is a slog handler that can be switched off.
type hushable struct {
	slog.Handler
	off atomic.Bool
}

// Enabled reports false once the handler is switched off.
func (h *hushable) Enabled(ctx context.Context, l slog.Level) bool {
	return !h.off.Load() && h.Handler.Enabled(ctx, l)
}

// WithAttrs keeps the switch shared with the handler it derives from.
func (h *hushable) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &hushed{parent: h, Handler: h.Handler.WithAttrs(attrs)}
}

// WithGroup keeps the switch shared with the handler it derives from.
func (h *hushable) WithGroup(name string) slog.Handler {
	return &hushed{parent: h, Handler: h.Handler.WithGroup(name)}
}

// hushed is a handler derived from a hushable one, switched off with it.
type hushed struct {
	slog.Handler
	parent *hushable
}

// Enabled reports false once the parent is switched off.
func (h *hushed) Enabled(ctx context.Context, l slog.Level) bool {
	return !h.parent.off.Load() && h.Handler.Enabled(ctx, l)
}

// WithAttrs keeps the parent's switch.
func (h *hushed) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &hushed{parent: h.parent, Handler: h.Handler.WithAttrs(attrs)}
}

// WithGroup keeps the parent's switch.
func (h *hushed) WithGroup(name string) slog.Handler {
	return &hushed{parent: h.parent, Handler: h.Handler.WithGroup(name)}
}

// Machine describes where a run happened, as the report prints it.
type Machine struct {
	CPUs      int
	Model     string
	Go        string
	MemoryGiB float64
}

// ThisMachine reads the CPU count and model (/proc/cpuinfo), the memory (/proc/meminfo) and the
// Go version.
func ThisMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Model: "unknown"}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if kb := procKB("/proc/meminfo", "MemTotal:"); kb > 0 {
		m.MemoryGiB = float64(kb) / (1 << 20)
	}
	return m
}

func (m Machine) String() string {
	return fmt.Sprintf("%d CPUs (%s), %.0f GiB, %s %s/%s, nats-server 2.15 embedded, file storage", m.CPUs, m.Model, m.MemoryGiB,
		m.Go, runtime.GOOS, runtime.GOARCH)
}

// procKB reads one "Name:   123 kB" line of a /proc status file; 0 when absent.
func procKB(path, name string) int64 {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb); err == nil {
				return kb
			}
		}
	}
	return 0
}

// mib formats bytes as MiB.
func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

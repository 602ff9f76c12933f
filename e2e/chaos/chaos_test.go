package chaos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/dev/emulators"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/alibabaemu"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/huaweiemu"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/tencentemu"
)

// binDir holds the imagerelay and nats-server binaries the test runs.
var binDir string

// repoRoot is the module's root directory (infra/nats lives there).
var repoRoot string

func TestMain(m *testing.M) {
	if err := setupBinaries(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	code := m.Run()
	if os.Getenv("CHAOS_BIN") == "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// setupBinaries finds the repository and builds bin/imagerelay and bin/nats-server (from the
// version go.mod pins) into a temporary directory, unless CHAOS_BIN names ready ones.
func setupBinaries() error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	repoRoot = filepath.Dir(strings.TrimSpace(string(out)))
	if d := os.Getenv("CHAOS_BIN"); d != "" {
		binDir = d
		return nil
	}
	binDir, err = os.MkdirTemp("", "imagerelay-chaos-bin-")
	if err != nil {
		return err
	}
	for _, b := range []struct{ out, pkg string }{
		{"imagerelay", "./cmd/imagerelay"},
		{"nats-server", "github.com/nats-io/nats-server/v2"},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, b.out), b.pkg)
		cmd.Dir = repoRoot
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", b.pkg, err, msg)
		}
	}
	return nil
}

// size is the shape of one run.
type size struct {
	name string
	// images per cloud.
	tencent, alibaba, huawei int
	workerKills              int
	// publishOver spreads the publishes; kills happen during it and a little after.
	publishOver time.Duration
	// timeout is the replication timeout of every policy: after the fixes every copy settles
	// by it even if every poll were lost.
	timeout time.Duration
	// settleWithin bounds the wait for every replication to settle, after the chaos phase.
	settleWithin time.Duration
}

// sizes are the runs. settleWithin leaves room for the start lease (2 minutes): a worker
// killed, or cut off from NATS, while it holds a claim to start a copy leaves the claim for
// that long before another worker may look for the copy and start it, so a run settles at
// least that long after such a fault (the tiny run of -short once missed it by seconds).
var sizes = map[string]size{
	"tiny":  {name: "tiny", tencent: 3, alibaba: 3, huawei: 3, workerKills: 3, publishOver: 3 * time.Second, timeout: 60 * time.Second, settleWithin: 3 * time.Minute},
	"small": {name: "small", tencent: 10, alibaba: 10, huawei: 10, workerKills: 3, publishOver: 8 * time.Second, timeout: 90 * time.Second, settleWithin: 4 * time.Minute},
	"large": {name: "large", tencent: 60, alibaba: 60, huawei: 40, workerKills: 6, publishOver: 30 * time.Second, timeout: 3 * time.Minute, settleWithin: 5 * time.Minute},
}

// Destination regions per cloud, and each cloud's source region.
var (
	tencentSource, tencentDests = "ap-guangzhou", []string{"ap-shanghai", "ap-beijing", "ap-singapore", "ap-tokyo"}
	alibabaSource, alibabaDests = "cn-shanghai", []string{"cn-hangzhou", "cn-beijing", "cn-shenzhen"}
	huaweiSource, huaweiDests   = "cn-north-4", []string{"cn-east-3", "cn-south-1", "ap-southeast-1"}
)

var startActions = map[string]string{"tencent": "SyncImages", "alibaba": alibabaemu.ActionStartTaskForDistributeImage, "huawei": huaweiemu.ActionCopyImageCrossRegion}

var functions = []string{"fanout", "replicate", "poller"}

// TestChaos publishes images over three clouds through two workers per function on real
// processes while faults, kill -9s and duplicates hit them, then checks that every copy was
// started exactly once, every replication settled, and no event was lost.
func TestChaos(t *testing.T) {
	name := os.Getenv("CHAOS_SIZE")
	if name == "" {
		name = "small"
		if testing.Short() {
			name = "tiny"
		}
	}
	sz, ok := sizes[name]
	if !ok {
		t.Fatalf("CHAOS_SIZE=%q; use tiny, small or large", name)
	}
	seed := uint64(1)
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q is not a whole number", s)
		}
		seed = v
	}
	cluster := os.Getenv("CHAOS_CLUSTER") == "1"
	h := newHarness(t, sz, seed, cluster)
	h.run(t)
}

// harness is one chaos run.
type harness struct {
	sz      size
	seed    uint64
	cluster bool
	dir     string
	rng     *rand.Rand
	rngMu   sync.Mutex
	began   time.Time

	nats     []*proc
	natsURLs []string
	emu      *proc
	emuAddrs emulators.Addrs
	workers  []*proc
	cfgPath  string
	env      []string

	nc *nats.Conn
	js jetstream.JetStream

	images []events.ImagePublished
	// expected replications: provider/image/region.
	expected map[string]bool

	mu         sync.Mutex
	timeline   []string
	workerKill int
	natsKill   int
	resent     int
	dupPubs    int
}

func newHarness(t *testing.T, sz size, seed uint64, cluster bool) *harness {
	dir := t.TempDir()
	h := &harness{sz: sz, seed: seed, cluster: cluster, dir: dir, rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), expected: map[string]bool{}}
	t.Cleanup(func() {
		for _, p := range h.all() {
			p.stop()
		}
		if h.nc != nil {
			h.nc.Close()
		}
		if t.Failed() {
			for _, p := range h.all() {
				t.Logf("--- last lines of %s (%s):\n%s", p.name, p.log, p.tail(25))
			}
		}
	})
	return h
}

func (h *harness) all() []*proc {
	out := append([]*proc{}, h.nats...)
	if h.emu != nil {
		out = append(out, h.emu)
	}
	return append(out, h.workers...)
}

func (h *harness) note(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.timeline = append(h.timeline, fmt.Sprintf("+%5.1fs ", time.Since(h.began).Seconds())+fmt.Sprintf(format, args...))
}

func (h *harness) randDuration(lo, hi time.Duration) time.Duration {
	h.rngMu.Lock()
	defer h.rngMu.Unlock()
	return lo + time.Duration(h.rng.Int64N(int64(hi-lo)+1))
}

func (h *harness) randInt(n int) int {
	h.rngMu.Lock()
	defer h.rngMu.Unlock()
	return h.rng.IntN(n)
}

func (h *harness) run(t *testing.T) {
	h.began = time.Now()
	h.startNATS(t)
	h.startEmulators(t)
	h.writeConfig(t)
	h.setup(t)
	h.startWorkers(t)
	h.connect(t)

	stopResend := h.resendRequests(t)
	chaosStart := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { h.publishAll(t) })
	h.scheduleKills(t, &wg)
	wg.Wait()
	stopResend()
	chaosDone := time.Now()
	h.note("chaos phase over; waiting up to %s for every replication to settle", h.sz.settleWithin)

	rep := h.waitSettled(t)
	rep.chaos = chaosDone.Sub(chaosStart)
	rep.settle = time.Since(chaosDone)
	rep.wall = time.Since(h.began)
	h.collectCalls(t, rep)
	h.report(t, rep)
}

// startNATS starts one nats-server or a 3-node cluster from the configuration in infra/nats.
func (h *harness) startNATS(t *testing.T) {
	nodes := 1
	conf := filepath.Join(repoRoot, "infra", "nats", "single.conf")
	if h.cluster {
		nodes = 3
		conf = filepath.Join(repoRoot, "infra", "nats", "cluster.conf")
	}
	ports := freePorts(t, 2*nodes)
	var routes []string
	for i := range nodes {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[nodes+i]))
	}
	for i := range nodes {
		name := fmt.Sprintf("nats-%d", i+1)
		env := []string{
			"NATS_SERVER_NAME=" + name,
			fmt.Sprintf("NATS_LISTEN=127.0.0.1:%d", ports[i]),
			"NATS_STORE_DIR=" + filepath.Join(h.dir, name+"-store"),
		}
		if h.cluster {
			env = append(env, fmt.Sprintf("NATS_CLUSTER_LISTEN=127.0.0.1:%d", ports[nodes+i]))
			for j, r := range routes {
				env = append(env, fmt.Sprintf("NATS_ROUTE_%d=%s", j+1, r))
			}
		}
		p := newProc(h.dir, name, filepath.Join(binDir, "nats-server"), env, "-c", conf)
		if err := p.start(nil); err != nil {
			t.Fatal(err)
		}
		h.nats = append(h.nats, p)
		h.natsURLs = append(h.natsURLs, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	if err := h.waitJetStream(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	h.note("NATS up: %s", strings.Join(h.natsURLs, ","))
}

// waitJetStream waits until JetStream answers (in a cluster: a meta leader is elected).
func (h *harness) waitJetStream(within time.Duration) error {
	err := waitFor(within, 200*time.Millisecond, func() error {
		nc, err := nats.Connect(strings.Join(h.natsURLs, ","), nats.Timeout(2*time.Second))
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err = js.AccountInfo(ctx); err != nil || len(h.nats) == 1 {
			return err
		}
		// A cluster answers before every node has joined; an R3 stream needs all three.
		probe := jetstream.StreamConfig{Name: "CHAOS_PROBE", Subjects: []string{"chaos.probe"}, Storage: jetstream.MemoryStorage, Replicas: len(h.nats)}
		if _, err := js.CreateOrUpdateStream(ctx, probe); err != nil {
			return fmt.Errorf("R%d probe stream: %w", len(h.nats), err)
		}
		return js.DeleteStream(ctx, probe.Name)
	})
	if err != nil {
		return fmt.Errorf("JetStream not ready within %s: %w", within, err)
	}
	return nil
}

// seedFile writes the emulators' seed: the images, 1 s copies and the injected faults.
func (h *harness) startEmulators(t *testing.T) {
	seed := emulators.DefaultSeed()
	d := emucore.Duration(time.Second)
	seed.Tencent.CopyDuration, seed.Alibaba.AppStream.CopyDuration, seed.Huawei.CopyDuration = d, d, d
	seed.Faults = emulators.FaultSeed{
		// 25 % of all calls get a fault; the start calls are the ones that matter.
		Rates:      emucore.Rates{Throttle: 0.06, Server: 0.05, Drop: 0.04, LoseAnswer: 0.06, FailCopy: 0.04},
		RandomSeed: h.seed,
	}
	for i := range h.sz.tencent {
		id := fmt.Sprintf("img-ch%06d", i)
		n := fmt.Sprintf("chaos-t-%d", i)
		seed.Tencent.Images = append(seed.Tencent.Images, tencentemu.Image{ID: id, Name: n, Region: tencentSource, SizeGB: 20})
		h.addImage(events.ImagePublished{Image: events.Image{Provider: "tencent", ImageID: id, ImageName: n, SourceRegion: tencentSource}, SizeGB: 20}, tencentDests)
	}
	for i := range h.sz.alibaba {
		id, v := fmt.Sprintf("imgc-ch%010d", i), fmt.Sprintf("iv-ch%010d", i)
		n := fmt.Sprintf("chaos-a-%d", i)
		seed.Alibaba.AppStream.Images = append(seed.Alibaba.AppStream.Images, alibabaemu.AppImage{ImageID: id, VersionID: v, Name: n, ProductType: "CloudDesktop", Regions: []string{alibabaSource}})
		h.addImage(events.ImagePublished{Image: events.Image{Provider: "alibaba", ImageID: id, VersionID: v, ImageName: n, SourceRegion: alibabaSource, ProductType: "CloudDesktop"}}, alibabaDests)
	}
	for i := range h.sz.huawei {
		id := fmt.Sprintf("c4a05000-0000-4000-8000-%012d", i)
		n := fmt.Sprintf("chaos-h-%d", i)
		seed.Huawei.Images = append(seed.Huawei.Images, huaweiemu.Image{ID: id, Name: n, Region: huaweiSource, SizeGB: 40, OSType: "Linux"})
		h.addImage(events.ImagePublished{Image: events.Image{Provider: "huawei", ImageID: id, ImageName: n, SourceRegion: huaweiSource}, SizeGB: 40}, huaweiDests)
	}
	// Interleave the clouds, as a real feed would.
	h.rngMu.Lock()
	h.rng.Shuffle(len(h.images), func(i, j int) { h.images[i], h.images[j] = h.images[j], h.images[i] })
	h.rngMu.Unlock()
	raw, err := json.MarshalIndent(seed, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	seedPath := filepath.Join(h.dir, "seed.json")
	if err := os.WriteFile(seedPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	h.emu = newProc(h.dir, "emulators", filepath.Join(binDir, "imagerelay"), nil,
		"emulate", "--seed", seedPath, "--tencent", "127.0.0.1:0", "--alibaba", "127.0.0.1:0", "--huawei", "127.0.0.1:0")
	if err := h.emu.start(nil); err != nil {
		t.Fatal(err)
	}
	err = waitFor(30*time.Second, 100*time.Millisecond, func() error {
		out := h.emu.output()
		for _, c := range []struct {
			prefix string
			addr   *string
		}{{"tencent ", &h.emuAddrs.Tencent}, {"alibaba ", &h.emuAddrs.Alibaba}, {"huawei ", &h.emuAddrs.Huawei}} {
			line, ok := lineWith(out, c.prefix+" ")
			if !ok {
				return fmt.Errorf("emulators have not printed their %saddress", c.prefix)
			}
			f := strings.Fields(line)
			*c.addr = strings.TrimPrefix(f[len(f)-1], "http://")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h.note("emulators up: tencent %s, alibaba %s, huawei %s", h.emuAddrs.Tencent, h.emuAddrs.Alibaba, h.emuAddrs.Huawei)
}

func (h *harness) addImage(img events.ImagePublished, dests []string) {
	h.images = append(h.images, img)
	for _, r := range dests {
		h.expected[replKey(img.Provider, img.ImageID, r)] = true
	}
}

func replKey(provider, image, region string) string { return provider + "/" + image + "/" + region }

// writeConfig writes the imagerelay.yaml every process reads: the emulators' endpoints and
// one policy per cloud. NATS comes from IMAGERELAY_NATS_URL, as an operator's workers would.
func (h *harness) writeConfig(t *testing.T) {
	replicas := 1
	if h.cluster {
		replicas = 3
	}
	var b strings.Builder
	fmt.Fprintf(&b, "nats:\n  replicas: %d\n", replicas)
	fmt.Fprintf(&b, "providers:\n  tencent:\n    endpoint: %s\n", h.emuAddrs.Tencent)
	fmt.Fprintf(&b, "  alibaba:\n    endpoint: %s\n    ecdEndpoint: %s\n    productType: CloudDesktop\n", h.emuAddrs.Alibaba, h.emuAddrs.Alibaba)
	fmt.Fprintf(&b, "  huawei:\n    endpoint: http://%s\n    agency: ims_admin_agency\n    projects:\n", h.emuAddrs.Huawei)
	for r, p := range huaweiemu.DefaultSeed().Projects {
		fmt.Fprintf(&b, "      %s: %s\n", r, p)
	}
	fmt.Fprintf(&b, "replication:\n  pollInterval: 1s\n  timeout: %s\n  policies:\n", h.sz.timeout)
	for _, p := range []struct {
		provider string
		regions  []string
	}{{"tencent", tencentDests}, {"alibaba", alibabaDests}, {"huawei", huaweiDests}} {
		fmt.Fprintf(&b, "    - name: chaos-%s\n      match:\n        provider: %s\n      regions: [%s]\n", p.provider, p.provider, strings.Join(p.regions, ", "))
	}
	b.WriteString("log:\n  level: debug\n")
	h.cfgPath = filepath.Join(h.dir, "imagerelay.yaml")
	if err := os.WriteFile(h.cfgPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	h.env = []string{"IMAGERELAY_NATS_URL=" + strings.Join(h.natsURLs, ",")}
	for k, v := range emulators.DemoEnv() {
		h.env = append(h.env, k+"="+v)
	}
}

// cli runs one imagerelay command to completion.
func (h *harness) cli(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "imagerelay"), append(args, "--config", h.cfgPath)...)
	cmd.Env = append(os.Environ(), h.env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("imagerelay %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// setup runs `imagerelay setup` (it creates the stream and the KV bucket) when this build has
// it; without it the workers create them.
func (h *harness) setup(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	help := exec.CommandContext(ctx, filepath.Join(binDir, "imagerelay"), "setup", "--help")
	// Cobra answers --help for an unknown command with the root's help, so look for the
	// command's own usage line too.
	if out, err := help.CombinedOutput(); err != nil || !strings.Contains(string(out), "imagerelay setup") {
		h.note("no `imagerelay setup` in this build: the workers create the stream and bucket")
		return
	}
	if _, err := h.cli(ctx, "setup"); err != nil {
		t.Fatal(err)
	}
	h.note("imagerelay setup done")
}

// startWorkers starts two workers per function and waits until all run. The first one starts
// alone: without `imagerelay setup` it creates the stream and the bucket, and six workers
// creating an R3 stream at once in a fresh cluster time out. A worker that exits by itself
// (for example because NATS was down when it started) is restarted, as a service manager
// would; such exits are counted in the summary.
func (h *harness) startWorkers(t *testing.T) {
	for _, fn := range functions {
		for i := 1; i <= 2; i++ {
			h.workers = append(h.workers, newProc(h.dir, fmt.Sprintf("%s-%d", fn, i), filepath.Join(binDir, "imagerelay"), h.env, "worker", fn, "--config", h.cfgPath))
		}
	}
	running := func(ps []*proc) func() error {
		return func() error {
			for _, p := range ps {
				if !strings.Contains(p.output(), "worker running") {
					return fmt.Errorf("%s is not running yet", p.name)
				}
			}
			return nil
		}
	}
	for _, group := range [][]*proc{h.workers[:1], h.workers[1:]} {
		for _, p := range group {
			if err := p.start(h.restartLater); err != nil {
				t.Fatal(err)
			}
		}
		if err := waitFor(90*time.Second, 200*time.Millisecond, running(group)); err != nil {
			t.Fatal(err)
		}
	}
	h.note("%d workers running", len(h.workers))
}

// restartLater restarts a worker that exited by itself, after a second.
func (h *harness) restartLater(p *proc) {
	h.note("%s exited by itself; restarting it", p.name)
	time.AfterFunc(time.Second, func() { _ = p.start(h.restartLater) })
}

func (h *harness) connect(t *testing.T) {
	var err error
	h.nc, err = nats.Connect(strings.Join(h.natsURLs, ","), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.Name("chaos-test"))
	if err != nil {
		t.Fatal(err)
	}
	if h.js, err = jetstream.New(h.nc); err != nil {
		t.Fatal(err)
	}
}

// publish stores one event, retrying with the same message id until JetStream acknowledges it
// (NATS may be down for a while): a client that retries is what makes duplicates.
func (h *harness) publish(ctx context.Context, e event.Event, subject string) error {
	msg := nats.NewMsg(subject)
	for k, v := range events.ToHeaders(e) {
		msg.Header.Set(k, v)
	}
	msg.Data = e.Data()
	return waitFor(60*time.Second, 250*time.Millisecond, func() error {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, err := h.js.PublishMsg(pctx, msg, jetstream.WithMsgID(e.ID()))
		return err
	})
}

// publishAll publishes every image once, spread over publishOver, plus duplicates: every 4th
// image again with the same event id (a client retry), every 5th again under a new id (an
// upstream that published twice).
func (h *harness) publishAll(t *testing.T) {
	gap := h.sz.publishOver / time.Duration(len(h.images))
	ctx := t.Context()
	var dups sync.WaitGroup
	for i, img := range h.images {
		e, err := events.New(events.TypeImagePublished, img, events.Meta{
			ID: fmt.Sprintf("chaos-%d-%d", h.seed, i), Source: "/chaos-test",
			Provider: img.Provider, Region: img.SourceRegion, ImageID: img.ImageID})
		if err != nil {
			t.Errorf("image %d: %v", i, err)
			return
		}
		subject := events.NATSSubject(e.Type(), img.Provider, img.SourceRegion)
		if err := h.publish(ctx, e, subject); err != nil {
			t.Errorf("publish image %d: %v", i, err)
			return
		}
		if i%4 == 0 || i%5 == 0 {
			dup := e.Clone()
			if i%5 == 0 {
				dup.SetID(e.ID() + "-again")
			}
			after := h.randDuration(0, 3*time.Second)
			dups.Go(func() {
				select {
				case <-time.After(after):
				case <-ctx.Done():
					return
				}
				if err := h.publish(ctx, dup, subject); err != nil {
					t.Errorf("duplicate publish: %v", err)
					return
				}
				h.mu.Lock()
				h.dupPubs++
				h.mu.Unlock()
			})
		}
		select {
		case <-time.After(gap):
		case <-ctx.Done():
			return
		}
	}
	dups.Wait()
	h.note("published %d images (+ duplicates)", len(h.images))
}

// resendRequests re-sends every third replication.requested it sees under a new id, after a
// random delay: the same request delivered twice, as an upstream retry would.
func (h *harness) resendRequests(t *testing.T) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	n := 0
	sub, err := h.nc.Subscribe(events.NATSFilter(events.TypeReplicationRequested), func(m *nats.Msg) {
		id := m.Header.Get("ce-id")
		if strings.HasSuffix(id, "~resent") {
			return
		}
		n++
		if n%3 != 0 {
			return
		}
		e, err := events.FromHeader(m.Header, m.Data)
		if err != nil {
			t.Errorf("decode %s: %v", m.Subject, err)
			return
		}
		dup := e.Clone()
		dup.SetID(e.ID() + "~resent")
		after := h.randDuration(0, 4*time.Second)
		wg.Go(func() {
			select {
			case <-time.After(after):
			case <-ctx.Done():
				return
			}
			if err := h.publish(ctx, dup, m.Subject); err != nil {
				if ctx.Err() == nil {
					t.Errorf("re-send request: %v", err)
				}
				return
			}
			h.mu.Lock()
			h.resent++
			h.mu.Unlock()
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return func() {
		_ = sub.Unsubscribe()
		wg.Wait()
		cancel()
	}
}

// scheduleKills kill -9s workers at random moments (at least one replicate, one poller and one
// fanout worker) and restarts each after a short while, and kill -9s NATS (the single server,
// or one cluster node) once and restarts it with the same store directory.
func (h *harness) scheduleKills(t *testing.T, wg *sync.WaitGroup) {
	window := h.sz.publishOver + 8*time.Second
	byFn := map[string][]*proc{}
	for _, p := range h.workers {
		fn := p.name[:strings.LastIndex(p.name, "-")]
		byFn[fn] = append(byFn[fn], p)
	}
	for k := range h.sz.workerKills {
		var victim *proc
		if k < len(functions) {
			ws := byFn[[]string{"replicate", "poller", "fanout"}[k]]
			victim = ws[h.randInt(len(ws))]
		} else {
			victim = h.workers[h.randInt(len(h.workers))]
		}
		at := h.randDuration(window/10, window)
		down := h.randDuration(200*time.Millisecond, 2*time.Second)
		wg.Go(func() {
			if !sleepCtx(t.Context(), at) {
				return
			}
			victim.kill9()
			h.mu.Lock()
			h.workerKill++
			h.mu.Unlock()
			h.note("kill -9 %s (down for %s)", victim.name, down.Round(time.Millisecond))
			if !sleepCtx(t.Context(), down) {
				return
			}
			if err := victim.start(h.restartLater); err != nil {
				t.Errorf("restart %s: %v", victim.name, err)
			}
		})
	}
	node := h.nats[h.randInt(len(h.nats))]
	at := h.randDuration(window/4, window*3/4)
	down := h.randDuration(time.Second, 3*time.Second)
	wg.Go(func() {
		if !sleepCtx(t.Context(), at) {
			return
		}
		node.kill9()
		h.mu.Lock()
		h.natsKill++
		h.mu.Unlock()
		h.note("kill -9 %s (down for %s)", node.name, down.Round(time.Millisecond))
		if !sleepCtx(t.Context(), down) {
			return
		}
		if err := node.start(nil); err != nil {
			t.Errorf("restart %s: %v", node.name, err)
			return
		}
		if err := h.waitJetStream(60 * time.Second); err != nil {
			t.Errorf("after restarting %s: %v", node.name, err)
			return
		}
		h.note("%s back", node.name)
	})
}

// sleepCtx waits d (this schedules a fault; it synchronises nothing) unless ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

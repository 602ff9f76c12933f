package huawei_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/replicate"
	"github.com/imagerelay/imagerelay/shared/adapters/huawei"
	"github.com/imagerelay/imagerelay/shared/adapters/state/memkv"
	"github.com/imagerelay/imagerelay/shared/core/fn"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/huaweiemu"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// replicate waits a Huawei call out for its whole possible length before taking the claim
// for a crash.
var _ replicate.BoundedCopier = (*huawei.Provider)(nil)

// proxy stands in front of the emulator. intercept, when it returns true for a request, is
// given the request and the connection to the provider instead of the emulator answering.
func proxy(t *testing.T, e *env, intercept func(w http.ResponseWriter, r *http.Request) bool) *huawei.Provider {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if intercept(w, r) {
			return
		}
		e.emu.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cfg := e.cfg
	cfg.Endpoint, cfg.Timeout = srv.URL, 10*time.Second
	p, err := huawei.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func isCopy(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/cross_region_copy")
}

// dropConnection closes the client's connection without an answer.
func dropConnection(t *testing.T, w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	_ = conn.Close()
}

// A start call whose context ends while its request is on the way must not return before the
// request is done: abandoned, it could reach IMS after replicate gave up on the call, looked
// for the copy, found none and started another.
func TestStartCopyIsWaitedForWhenTheContextEnds(t *testing.T) {
	e := newEnv(t, func(s *huaweiemu.Seed) { s.CopyDuration = emucore.Duration(time.Hour) }, nil)
	entered, release := make(chan struct{}), make(chan struct{})
	p := proxy(t, e, func(w http.ResponseWriter, r *http.Request) bool {
		if !isCopy(r) {
			return false
		}
		close(entered)
		<-release // the request is still on its way to IMS
		e.emu.ServeHTTP(w, r)
		return true
	})
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		hs  []domain.Handle
		err error
	}
	returned := make(chan result, 1)
	go func() {
		hs, err := p.StartCopy(ctx, request(huaweiemu.DemoImageLinux, "golden", dst))
		returned <- result{hs, err}
	}()
	<-entered
	cancel()
	select {
	case r := <-returned:
		close(release)
		t.Fatalf("StartCopy returned (%+v, %v) while its request had not reached IMS: the copy would land after its caller gave up", r.hs, r.err)
	case <-time.After(300 * time.Millisecond): // long enough for an early return to show
	}
	close(release)
	select {
	case r := <-returned:
		if r.err != nil || len(r.hs) != 1 {
			t.Fatalf("StartCopy = %+v, %v; want the job IMS accepted", r.hs, r.err)
		}
		if jobs := e.emu.Jobs(); len(jobs) != 1 || jobs[0].ID != r.hs[0].TaskID {
			t.Fatalf("jobs %+v, want the one StartCopy returned", jobs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("StartCopy did not return after IMS answered")
	}
}

// requestEvent builds the replication.requested fanout would emit for one destination;
// delivery tells duplicates apart.
func requestEvent(t *testing.T, img events.Image, region string, delivery string) event.Event {
	t.Helper()
	e, err := events.New(events.TypeReplicationRequested, events.ReplicationRequested{
		Replication: events.Replication{Image: img, DestinationRegion: region}, SizeGB: 40, PollIntervalSeconds: 5, TimeoutSeconds: 3600,
	}, events.Meta{ID: fmt.Sprintf("req-%s-%s-%s", img.ImageID, region, delivery), Source: events.SourceOf("fanout"),
		Provider: img.Provider, Region: region, ImageID: img.ImageID, CorrelationID: "pub-" + img.ImageID})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// When IMS accepts a copy and the answer is lost on the way back (the connection drops after
// the request was served), replicate must not start the copy again: however often and however
// concurrently the request is delivered, each image gets exactly one accepted copy per region.
// IMS has no duplicate check of its own, so this rests on replicate looking for the copy by
// name (FindCopy) before any new start after an ambiguous one.
func TestLostAnswersMakeOneCopyPerRegion(t *testing.T) {
	e := newEnv(t, func(s *huaweiemu.Seed) { s.CopyDuration = emucore.Duration(time.Hour) }, nil)
	var mu sync.Mutex
	lost := map[string]int{} // copy name → answers lost
	p := proxy(t, e, func(w http.ResponseWriter, r *http.Request) bool {
		if !isCopy(r) {
			return false
		}
		rec := httptest.NewRecorder()
		e.emu.ServeHTTP(rec, r)
		calls := e.calls.Calls("huawei", huaweiemu.ActionCopyImageCrossRegion)
		name, _ := calls[len(calls)-1].Params["name"].(string)
		mu.Lock()
		lose := rec.Code == http.StatusOK && lost[name] == 0
		if lose {
			lost[name]++
		}
		mu.Unlock()
		if lose {
			dropConnection(t, w) // IMS accepted the copy; the answer never arrives
			return true
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return true
	})
	store := memkv.NewStore()
	core := replicate.New(replicate.Config{Copiers: map[string]replicate.Copier{events.ProviderHuawei: p}, Store: store,
		Log: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	targets := map[string][]string{
		huaweiemu.DemoImageLinux:   {"cn-east-3", "cn-south-1", "ap-southeast-1"},
		huaweiemu.DemoImageWindows: {"cn-east-3", "cn-south-1"},
	}
	type pair struct {
		img    events.Image
		region string
	}
	var pairs []pair
	for id, regions := range targets {
		img := events.Image{Provider: events.ProviderHuawei, Account: "demo", ImageID: id, ImageName: "golden " + id[:8], SourceRegion: src}
		if err := store.SavePlan(ctx, domain.Plan{Image: domain.Image(img), Regions: regions, CorrelationID: "pub-" + id,
			Attributes: &domain.ImageAttributes{SizeGB: 40}}); err != nil {
			t.Fatal(err)
		}
		for _, r := range regions {
			pairs = append(pairs, pair{img, r})
		}
	}
	// Three workers per request deliver it again and again, as redeliveries and duplicates
	// would, until it reports the copy started.
	var wg sync.WaitGroup
	for _, pr := range pairs {
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				deadline := time.Now().Add(30 * time.Second)
				for n := 0; time.Now().Before(deadline); n++ {
					res := core.Handle(ctx, requestEvent(t, pr.img, pr.region, fmt.Sprintf("w%d-%d", w, n)))
					switch res.Outcome.Kind {
					case fn.KindDone:
						return
					case fn.KindReject:
						t.Errorf("%s → %s rejected: %v", pr.img.ImageID, pr.region, res.Outcome.Err)
						return
					}
				}
				t.Errorf("%s → %s never started", pr.img.ImageID, pr.region)
			}()
		}
	}
	wg.Wait()

	accepted := map[string]int{}
	for _, j := range e.emu.Jobs() {
		accepted[j.ImageID+" → "+j.DestinationRegion]++
	}
	for _, pr := range pairs {
		if n := accepted[pr.img.ImageID+" → "+pr.region]; n != 1 {
			t.Errorf("%s → %s: %d accepted copies, want exactly 1", pr.img.ImageID, pr.region, n)
		}
		rec, err := store.Record(ctx, domain.Copy{Image: domain.Image(pr.img), DestinationRegion: pr.region})
		if err != nil || rec.State != domain.StateInProgress || rec.Ambiguous() || rec.DestinationImageID == "" {
			t.Errorf("%s → %s: record %+v (%v), want in progress on the found copy", pr.img.ImageID, pr.region, rec, err)
		}
	}
	if len(accepted) != len(pairs) || len(lost) != len(pairs) {
		t.Errorf("accepted copies %v, lost answers %v: want one of each per pair (%d)", accepted, lost, len(pairs))
	}
}

// A copy of an image with a CJK name (cut by characters, see replication.CopyName) is found
// by the name it was started with.
func TestFindCopyWithCJKName(t *testing.T) {
	name := "a" + strings.Repeat("镜", 30)
	e := newEnv(t, func(s *huaweiemu.Seed) { s.Images[0].Name = name }, nil)
	req := request(huaweiemu.DemoImageLinux, name, dst)
	hs, err := e.p.StartCopy(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	h, found, err := e.p.FindCopy(context.Background(), req)
	if err != nil || !found || h.DestinationImageID != e.emu.Jobs()[0].NewImageID {
		t.Fatalf("FindCopy = %+v found=%v err=%v, want the copy of job %s", h, found, err, hs[0].TaskID)
	}
}

package fanout_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/fanout"
	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/adapters/state/memkv"
	"github.com/imagerelay/imagerelay/shared/core/fn"
	"github.com/imagerelay/imagerelay/shared/core/policy"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// fakeChecker refuses the regions named in reasons and records every region it was asked about.
type fakeChecker struct {
	reasons map[string]string
	mu      sync.Mutex
	asked   []string
}

func (f *fakeChecker) CheckCopy(_ domain.Source, region string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, region)
	return f.reasons[region]
}

// policies used by every case: two overlap on cn-beijing so the first one's settings must win.
var policies = []fanout.Policy{
	{
		Name:    "desk",
		Match:   policy.Match{Provider: events.ProviderAlibaba, ProductType: "CloudDesktop"},
		Regions: []string{"cn-hangzhou", "cn-beijing"}, Timeout: 2 * time.Hour, PollInterval: 30 * time.Second,
	},
	{
		Name:    "stable",
		Match:   policy.Match{Tags: map[string]string{"channel": "stable"}},
		Regions: []string{"cn-beijing", "cn-shenzhen"}, Timeout: time.Hour, PollInterval: 10 * time.Second,
	},
	{
		Name:    "windows",
		Match:   policy.Match{NamePattern: "win-*"},
		Regions: []string{"ap-southeast-1"},
	},
	{
		Name:    "tencent",
		Match:   policy.Match{Provider: events.ProviderTencent},
		Regions: []string{"ap-guangzhou"}, Timeout: 30 * time.Minute, PollInterval: 5 * time.Second,
	},
}

const (
	defaultTimeout  = 6 * time.Hour
	defaultInterval = 15 * time.Second
)

func newCore(store *state.Store, refuse map[string]string) *fanout.Core {
	return &fanout.Core{
		Policies: policies,
		Checkers: map[string]fanout.ConstraintChecker{
			events.ProviderAlibaba: &fakeChecker{reasons: refuse},
			events.ProviderTencent: &fakeChecker{reasons: refuse},
		},
		Plans:        store,
		Timeout:      defaultTimeout,
		PollInterval: defaultInterval,
	}
}

// published builds an image.published event as a publisher would send it.
func published(t *testing.T, id string, img events.ImagePublished) event.Event {
	t.Helper()
	e, err := events.New(events.TypeImagePublished, img, events.Meta{
		ID: id, Source: "/test/publisher", Provider: img.Provider, Region: img.SourceRegion, ImageID: img.ImageID,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	})
	if err != nil {
		t.Fatalf("build published event: %v", err)
	}
	return e
}

// emitted checks every emitted event against the contract and splits them by type.
func emitted(t *testing.T, res fn.Result) (planned *events.ReplicationPlanned, plannedEv event.Event, requests []event.Event) {
	t.Helper()
	for _, e := range res.Emit {
		if err := events.Check(e); err != nil {
			t.Fatalf("emitted %s %s fails events.Check: %v", e.Type(), e.ID(), err)
		}
		if e.Source() != events.SourceOf(fanout.Name) {
			t.Errorf("emitted source = %q, want %q", e.Source(), events.SourceOf(fanout.Name))
		}
		switch e.Type() {
		case events.TypeReplicationPlanned:
			if planned != nil {
				t.Fatalf("two replication.planned events")
			}
			p, err := events.DataAs[events.ReplicationPlanned](e)
			if err != nil {
				t.Fatal(err)
			}
			planned, plannedEv = p, e
		case events.TypeReplicationRequested:
			requests = append(requests, e)
		default:
			t.Fatalf("unexpected emitted type %s", e.Type())
		}
	}
	return planned, plannedEv, requests
}

type wantRequest struct {
	timeoutSeconds, pollSeconds int
}

func TestHandlePlans(t *testing.T) {
	t.Parallel()
	store := memkv.NewStore()

	stableDesk := events.ImagePublished{
		Image: events.Image{Provider: events.ProviderAlibaba, ImageID: "img-desk", VersionID: "iv-1", ImageName: "desk-base",
			SourceRegion: "cn-shanghai", ProductType: "CloudDesktop"},
		SizeGB: 40, OSType: "Windows", Tags: map[string]string{"channel": "stable", "team": "vdi"},
	}
	with := func(img events.ImagePublished, edit func(*events.ImagePublished)) events.ImagePublished {
		img.Tags = map[string]string{"channel": "stable", "team": "vdi"}
		edit(&img)
		return img
	}

	cases := []struct {
		name        string
		img         events.ImagePublished
		refuse      map[string]string
		wantPolicy  string
		wantRegions []string
		wantSkipped []events.SkippedRegion
		// skipContains, when set, is matched against the reasons instead of wantSkipped's text.
		skipContains map[string]string
		wantRequests map[string]wantRequest
	}{
		{
			name:        "union of matching policies, shared region once with the first policy's settings",
			img:         stableDesk,
			wantPolicy:  "desk,stable",
			wantRegions: []string{"cn-hangzhou", "cn-beijing", "cn-shenzhen"},
			wantRequests: map[string]wantRequest{
				"cn-hangzhou": {7200, 30}, "cn-beijing": {7200, 30}, "cn-shenzhen": {3600, 10},
			},
		},
		{
			name: "tag mismatch drops the tag policy",
			img: with(stableDesk, func(i *events.ImagePublished) {
				i.ImageID, i.Tags["channel"] = "img-beta", "beta"
			}),
			wantPolicy:   "desk",
			wantRegions:  []string{"cn-hangzhou", "cn-beijing"},
			wantRequests: map[string]wantRequest{"cn-hangzhou": {7200, 30}, "cn-beijing": {7200, 30}},
		},
		{
			name: "name pattern policy without timeout uses the core defaults",
			img: with(stableDesk, func(i *events.ImagePublished) {
				i.ImageID, i.ImageName, i.ProductType, i.Tags = "img-win", "win-2025", "CloudApp", nil
			}),
			wantPolicy:   "windows",
			wantRegions:  []string{"ap-southeast-1"},
			wantRequests: map[string]wantRequest{"ap-southeast-1": {21600, 15}},
		},
		{
			name: "provider policy matches only its provider",
			img: events.ImagePublished{Image: events.Image{Provider: events.ProviderTencent, ImageID: "img-tc", SourceRegion: "ap-shanghai"},
				Tags: map[string]string{"channel": "stable"}},
			wantPolicy:   "stable,tencent",
			wantRegions:  []string{"cn-beijing", "cn-shenzhen", "ap-guangzhou"},
			wantRequests: map[string]wantRequest{"cn-beijing": {3600, 10}, "cn-shenzhen": {3600, 10}, "ap-guangzhou": {1800, 5}},
		},
		{
			name:        "checker reasons become skipped regions",
			img:         with(stableDesk, func(i *events.ImagePublished) { i.ImageID = "img-big" }),
			refuse:      map[string]string{"cn-beijing": "image is 40 GB, cn-beijing accepts at most 20 GB"},
			wantPolicy:  "desk,stable",
			wantRegions: []string{"cn-hangzhou", "cn-shenzhen"},
			wantSkipped: []events.SkippedRegion{{Region: "cn-beijing", Reason: "image is 40 GB, cn-beijing accepts at most 20 GB"}},
			wantRequests: map[string]wantRequest{
				"cn-hangzhou": {7200, 30}, "cn-shenzhen": {3600, 10},
			},
		},
		{
			name: "event regions narrow the plan and disallowed ones are skipped with a reason",
			img: with(stableDesk, func(i *events.ImagePublished) {
				i.ImageID, i.Regions = "img-narrow", []string{"cn-shenzhen", "eu-central-1", "cn-shenzhen"}
			}),
			wantPolicy:   "desk,stable",
			wantRegions:  []string{"cn-shenzhen"},
			skipContains: map[string]string{"eu-central-1": "policy desk,stable does not replicate to eu-central-1"},
			wantRequests: map[string]wantRequest{"cn-shenzhen": {3600, 10}},
		},
		{
			name: "event regions and checker together",
			img: with(stableDesk, func(i *events.ImagePublished) {
				i.ImageID, i.Regions = "img-both", []string{"cn-hangzhou", "cn-beijing"}
			}),
			refuse:       map[string]string{"cn-hangzhou": "encrypted images cannot be copied"},
			wantPolicy:   "desk,stable",
			wantRegions:  []string{"cn-beijing"},
			wantSkipped:  []events.SkippedRegion{{Region: "cn-hangzhou", Reason: "encrypted images cannot be copied"}},
			wantRequests: map[string]wantRequest{"cn-beijing": {7200, 30}},
		},
		{
			name: "no matching policy plans nothing",
			img: events.ImagePublished{Image: events.Image{Provider: events.ProviderAlibaba, ImageID: "img-none",
				ImageName: "app", SourceRegion: "cn-shanghai", ProductType: "CloudApp"}},
			wantRegions: []string{},
		},
		{
			name: "no matching policy with event regions skips each with a reason",
			img: events.ImagePublished{Image: events.Image{Provider: events.ProviderAlibaba, ImageID: "img-none2",
				ImageName: "app", SourceRegion: "cn-shanghai", ProductType: "CloudApp"}, Regions: []string{"cn-hangzhou"}},
			wantRegions:  []string{},
			skipContains: map[string]string{"cn-hangzhou": "no replication policy matches"},
		},
		{
			name:        "every region refused",
			img:         with(stableDesk, func(i *events.ImagePublished) { i.ImageID = "img-refused" }),
			refuse:      map[string]string{"cn-hangzhou": "a", "cn-beijing": "b", "cn-shenzhen": "c"},
			wantPolicy:  "desk,stable",
			wantRegions: []string{},
			wantSkipped: []events.SkippedRegion{{Region: "cn-hangzhou", Reason: "a"}, {Region: "cn-beijing", Reason: "b"}, {Region: "cn-shenzhen", Reason: "c"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			core := newCore(store, tc.refuse)
			in := published(t, "pub-"+tc.img.ImageID, tc.img)

			res := core.Handle(ctx, in)
			if res.Outcome.Kind != fn.KindDone {
				t.Fatalf("outcome = %v (%v), want done", res.Outcome.Kind, res.Outcome.Err)
			}
			planned, plannedEv, requests := emitted(t, res)
			if planned == nil {
				t.Fatal("no replication.planned emitted")
			}
			if planned.Image != tc.img.Image {
				t.Errorf("planned image = %+v, want %+v", planned.Image, tc.img.Image)
			}
			if planned.Policy != tc.wantPolicy {
				t.Errorf("planned policy = %q, want %q", planned.Policy, tc.wantPolicy)
			}
			if !slices.Equal(planned.Regions, tc.wantRegions) || planned.Regions == nil {
				t.Errorf("planned regions = %#v, want %#v", planned.Regions, tc.wantRegions)
			}
			if tc.skipContains != nil {
				if len(planned.Skipped) != len(tc.skipContains) {
					t.Errorf("skipped = %+v, want regions %v", planned.Skipped, tc.skipContains)
				}
				for _, s := range planned.Skipped {
					if want, ok := tc.skipContains[s.Region]; !ok || !strings.Contains(s.Reason, want) {
						t.Errorf("skipped %s reason %q, want it to contain %q", s.Region, s.Reason, want)
					}
				}
			} else if !slices.Equal(planned.Skipped, tc.wantSkipped) {
				t.Errorf("skipped = %+v, want %+v", planned.Skipped, tc.wantSkipped)
			}
			if got := events.CorrelationID(plannedEv); got != in.ID() {
				t.Errorf("planned correlationid = %q, want %q", got, in.ID())
			}

			// One request per planned region, in plan order, each carrying the whole plan.
			if len(requests) != len(tc.wantRegions) {
				t.Fatalf("%d requests, want %d", len(requests), len(tc.wantRegions))
			}
			ids := map[string]bool{plannedEv.ID(): true}
			for i, e := range requests {
				req, err := events.DataAs[events.ReplicationRequested](e)
				if err != nil {
					t.Fatal(err)
				}
				region := tc.wantRegions[i]
				if req.DestinationRegion != region || req.Image != tc.img.Image {
					t.Errorf("request %d = %s %+v, want %s %+v", i, req.DestinationRegion, req.Image, region, tc.img.Image)
				}
				if !slices.Equal(req.Regions, tc.wantRegions) {
					t.Errorf("request %s regions = %v, want the full plan %v", region, req.Regions, tc.wantRegions)
				}
				w := tc.wantRequests[region]
				if req.TimeoutSeconds != w.timeoutSeconds || req.PollIntervalSeconds != w.pollSeconds {
					t.Errorf("request %s timeout/poll = %d/%d s, want %d/%d s", region, req.TimeoutSeconds, req.PollIntervalSeconds, w.timeoutSeconds, w.pollSeconds)
				}
				if req.OSType != tc.img.OSType || req.SizeGB != tc.img.SizeGB || !maps.Equal(req.Tags, tc.img.Tags) {
					t.Errorf("request %s carried osType %q size %d tags %v, want %q %d %v", region, req.OSType, req.SizeGB, req.Tags, tc.img.OSType, tc.img.SizeGB, tc.img.Tags)
				}
				if got := events.CorrelationID(e); got != in.ID() {
					t.Errorf("request %s correlationid = %q, want the published id %q", region, got, in.ID())
				}
				if got := events.StringExt(e, events.ExtCausationID); got != in.ID() {
					t.Errorf("request %s causationid = %q, want %q", region, got, in.ID())
				}
				if got := events.StringExt(e, events.ExtTraceParent); got != events.StringExt(in, events.ExtTraceParent) {
					t.Errorf("request %s traceparent = %q, not carried over", region, got)
				}
				if got := events.StringExt(e, events.ExtRegion); got != region {
					t.Errorf("request region extension = %q, want %q", got, region)
				}
				if ids[e.ID()] {
					t.Errorf("request %s reuses id %s", region, e.ID())
				}
				ids[e.ID()] = true
			}

			// Handling the same input again yields the same ids, so the bus drops the duplicates.
			again := core.Handle(ctx, in)
			if len(again.Emit) != len(res.Emit) {
				t.Fatalf("second handling emitted %d events, first %d", len(again.Emit), len(res.Emit))
			}
			for i := range res.Emit {
				if again.Emit[i].ID() != res.Emit[i].ID() {
					t.Errorf("event %d id changed on redelivery: %s then %s", i, res.Emit[i].ID(), again.Emit[i].ID())
				}
			}

			// The plan is stored for completion tracking, only when there is something to track.
			plan, err := store.Plan(ctx, domain.Image(tc.img.Image))
			if len(tc.wantRegions) == 0 {
				if !errors.Is(err, domain.ErrNotFound) {
					t.Errorf("plan stored for an empty plan: %+v, %v", plan, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("read plan: %v", err)
			}
			if !slices.Equal(plan.Regions, tc.wantRegions) || plan.CorrelationID != in.ID() || plan.Image != domain.Image(tc.img.Image) {
				t.Errorf("stored plan = %+v, want regions %v correlation %s", plan, tc.wantRegions, in.ID())
			}
			// replicate refuses any request the plan does not cover: every request fanout
			// emits must match it, attributes included.
			want := domain.ImageAttributes{SizeGB: tc.img.SizeGB, Encrypted: tc.img.Encrypted, FromISO: tc.img.FromISO}
			if plan.Attributes == nil || *plan.Attributes != want {
				t.Errorf("stored plan attributes %+v, want %+v", plan.Attributes, want)
			}
			for _, e := range res.Emit {
				if e.Type() != events.TypeReplicationRequested {
					continue
				}
				req, err := events.DataAs[events.ReplicationRequested](e)
				if err != nil {
					t.Fatal(err)
				}
				if domain.Image(req.Image) != plan.Image || !slices.Contains(plan.Regions, req.DestinationRegion) ||
					req.SizeGB != want.SizeGB || req.Encrypted != want.Encrypted || req.FromISO != want.FromISO {
					t.Errorf("request %+v does not match the stored plan %+v", req, plan)
				}
				for _, r := range req.Regions {
					if !slices.Contains(plan.Regions, r) {
						t.Errorf("request names region %s outside the plan %v", r, plan.Regions)
					}
				}
			}
		})
	}
}

func TestHandleRequestIDsDifferPerImage(t *testing.T) {
	t.Parallel()
	store := memkv.NewStore()
	core := newCore(store, nil)
	img := events.ImagePublished{Image: events.Image{Provider: events.ProviderTencent, ImageID: "img-a", SourceRegion: "ap-shanghai"}}
	first := core.Handle(context.Background(), published(t, "pub-a", img))
	img.ImageID = "img-b"
	second := core.Handle(context.Background(), published(t, "pub-b", img))
	if len(first.Emit) != 2 || len(second.Emit) != 2 {
		t.Fatalf("emitted %d and %d events, want 2 each", len(first.Emit), len(second.Emit))
	}
	for i := range first.Emit {
		if first.Emit[i].ID() == second.Emit[i].ID() {
			t.Errorf("events of two publications share id %s", first.Emit[i].ID())
		}
	}
}

func TestHandleRejects(t *testing.T) {
	t.Parallel()
	store := memkv.NewStore()
	huawei := published(t, "pub-hw", events.ImagePublished{Image: events.Image{Provider: events.ProviderHuawei, ImageID: "img-hw", SourceRegion: "cn-north-4"}})
	wrong, err := events.Derive(huawei, "test", events.TypeReplicationRequested, events.ReplicationRequested{
		Replication: events.Replication{Image: events.Image{Provider: events.ProviderTencent, ImageID: "img-1", SourceRegion: "ap-shanghai"}, DestinationRegion: "ap-guangzhou"},
	}, events.ProviderTencent, "ap-guangzhou", "img-1", "ap-guangzhou")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		in      event.Event
		mention string
	}{
		{"unconfigured provider", huawei, "imagerelay.yaml"},
		{"wrong type", wrong, events.TypeImagePublished},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := newCore(store, nil).Handle(context.Background(), tc.in)
			if res.Outcome.Kind != fn.KindReject {
				t.Fatalf("outcome = %v, want reject", res.Outcome.Kind)
			}
			if res.Outcome.Err == nil || !strings.Contains(res.Outcome.Err.Error(), tc.mention) {
				t.Errorf("reject reason %v does not mention %q", res.Outcome.Err, tc.mention)
			}
			if len(res.Emit) != 0 {
				t.Errorf("a rejected event emitted %d events", len(res.Emit))
			}
		})
	}
	if _, err := store.Plan(context.Background(), domain.Image{Provider: events.ProviderHuawei, ImageID: "img-hw"}); !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("a rejected event stored a plan: %v", err)
	}
}

package rebuildwire

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/rebuild"
	"github.com/imagerelay/imagerelay/functions/rebuild/rules"
	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/config"
	"github.com/imagerelay/imagerelay/shared/dev/testenv"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// The shipped sample file, mapped to the rebuild core's policies, applies where the demo
// expects: the Alibaba desktop image in cn-beijing, not in cn-hangzhou.
func TestRebuildPoliciesOfTheSampleFile(t *testing.T) {
	cfg, err := config.LoadWithEnv("../../../imagerelay.yaml", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	pols := Policies(cfg)
	copyTo := func(region string) *events.ReplicationSucceeded {
		return &events.ReplicationSucceeded{Replication: events.Replication{Image: events.Image{Provider: events.ProviderAlibaba,
			ImageID: "imgc-1", ProductType: "CloudDesktop"}, DestinationRegion: region}}
	}
	got := rules.Applies(pols, copyTo("cn-beijing"))
	if len(got) != 1 {
		t.Fatalf("policies for cn-beijing: %+v", got)
	}
	p := got[0]
	if p.Name != "office-desktops" || p.Desktops.Tags["team"] != "design" || p.Canary != 1 || p.BatchSize != 3 ||
		p.FailureBudget != 1 || p.CheckInterval != time.Second || p.DryRun || p.Window != nil {
		t.Errorf("office-desktops = %+v", p)
	}
	if got := rules.Applies(pols, copyTo("cn-hangzhou")); len(got) != 0 {
		t.Errorf("rebuild applies in cn-hangzhou: %+v", got)
	}
}

// A window is handed to the core parsed by the core's rules; one that validation would
// refuse never opens.
func TestRebuildPoliciesMapTheWindow(t *testing.T) {
	cfg := config.Defaults()
	good, bad := config.DefaultRebuildPolicy(), config.DefaultRebuildPolicy()
	good.Window = &config.MaintenanceWindow{Start: "22:00", End: "06:00", TimeZone: "Asia/Shanghai"}
	bad.Window = &config.MaintenanceWindow{Start: "22:00", End: "22:00"}
	cfg.Rebuild.Policies = []config.RebuildPolicy{good, bad}
	pols := Policies(cfg)
	night := time.Date(2024, 3, 1, 15, 0, 0, 0, time.UTC) // 23:00 in Shanghai
	if !pols[0].Window.Open(night) || pols[0].Window.Open(night.Add(-2*time.Hour)) {
		t.Errorf("22:00-06:00 Shanghai is not open at 23:00 there, or open at 21:00")
	}
	if pols[1].Window == nil || pols[1].Window.Open(night) || !pols[1].Window.NextOpen(night).IsZero() {
		t.Errorf("an empty window opens")
	}
}

// The shim gives the rebuild core the KV store behind its ports: keys encoded with
// state.Key, the domain's errors, compare-and-swap updates, and the replication records of
// one image (every version, every region) from a filtered listing.
func TestRebuildStoreOnJetStream(t *testing.T) {
	env := testenv.Start(t)
	ctx := context.Background()
	st := Store(env.Store)
	key := []string{"rebuild", "on", "cn-hangzhou", "ecd-1/x"}
	if st.Key(key...) != state.Key(key...) {
		t.Fatalf("Key(%q) = %q, want state.Key's %q", key, st.Key(key...), state.Key(key...))
	}
	if _, err := st.OnImage.Get(ctx, key...); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("get of a missing record: %v", err)
	}
	if _, err := st.OnImage.Update(ctx, func(*rebuild.OnImage) error { return nil }, key...); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("update of a missing record: %v", err)
	}
	on := rebuild.OnImage{DesktopID: "ecd-1/x", ImageID: "imgc-1"}
	if err := st.OnImage.Create(ctx, on, key...); err != nil {
		t.Fatal(err)
	}
	if err := st.OnImage.Create(ctx, on, key...); !errors.Is(err, domain.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	if _, _, err := state.Get[rebuild.OnImage](ctx, env.Store, state.Key(key...)); err != nil {
		t.Fatalf("the record is not at state.Key: %v", err)
	}
	got, err := st.OnImage.Update(ctx, func(o *rebuild.OnImage) error { o.VersionID = "iv-2"; return domain.ErrNoChange }, key...)
	if err != nil || got.VersionID != "iv-2" {
		t.Fatalf("no-change update: %+v %v", got, err)
	}
	if got, _ := st.OnImage.Get(ctx, key...); got.VersionID != "" {
		t.Fatalf("a no-change update was stored: %+v", got)
	}
	if got, err := st.OnImage.Update(ctx, func(o *rebuild.OnImage) error { o.VersionID = "iv-3"; return nil }, key...); err != nil || got.VersionID != "iv-3" {
		t.Fatalf("update: %+v %v", got, err)
	}
	boom := errors.New("boom")
	if _, err := st.OnImage.Update(ctx, func(*rebuild.OnImage) error { return boom }, key...); !errors.Is(err, boom) {
		t.Fatalf("update error: %v", err)
	}

	img := events.Image{Provider: events.ProviderAlibaba, ImageID: "imgc-a.b", VersionID: "iv-1"}
	v2, other := img, img
	v2.VersionID = "iv-2"
	other.ImageID = "imgc-a"
	var want []string
	for _, r := range []events.Replication{{Image: img, DestinationRegion: "cn-beijing"}, {Image: v2, DestinationRegion: "cn-hangzhou"},
		{Image: other, DestinationRegion: "cn-beijing"}} {
		if err := env.Store.CreateRecord(ctx, domain.Record{Copy: domain.Copy{Image: domain.Image(r.Image), DestinationRegion: r.DestinationRegion}, State: domain.StateSucceeded}); err != nil {
			t.Fatal(err)
		}
		if r.Image != other {
			want = append(want, events.ReplicationKey(r))
		}
	}
	if _, err := st.Copies.Record(ctx, domain.Copy{Image: domain.Image(img), DestinationRegion: "ap-southeast-1"}); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("record of an unknown copy: %v", err)
	}
	if rec, err := st.Copies.Record(ctx, domain.Copy{Image: domain.Image(img), DestinationRegion: "cn-beijing"}); err != nil || rec.State != domain.StateSucceeded {
		t.Fatalf("record: %+v %v", rec, err)
	}
	recs, err := st.Copies.RecordsOf(ctx, domain.Image(img))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range recs {
		keys = append(keys, r.Copy.Key())
	}
	slices.Sort(keys)
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("records of %s: %v, want %v", img.ImageID, keys, want)
	}
}

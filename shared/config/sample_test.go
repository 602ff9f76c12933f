package config

import (
	"slices"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/events"
)

// TestSampleFile loads the imagerelay.yaml shipped at the repository root (the demo's
// configuration and the users' annotated example), so it can never drift out of validity.
func TestSampleFile(t *testing.T) {
	cfg, err := LoadWithEnv("../../imagerelay.yaml", func(string) string { return "" })
	if err != nil {
		t.Fatalf("sample config does not load:\n%v", err)
	}
	if !cfg.NATS.Embedded() {
		t.Errorf("sample NATS is not embedded: url %q", cfg.NATS.URL)
	}
	if addr, ok := cfg.NATS.ListenAddr(); !ok || addr != "127.0.0.1:4222" {
		t.Errorf("listen = %q, %v", addr, ok)
	}
	if got := cfg.Providers.Tencent.Endpoint; got != "127.0.0.1:9401" {
		t.Errorf("tencent endpoint %q", got)
	}
	if a := cfg.Providers.Alibaba; a.Endpoint != "127.0.0.1:9402" || a.EcdEndpoint != "127.0.0.1:9402" {
		t.Errorf("alibaba endpoints %q %q", a.Endpoint, a.EcdEndpoint)
	}
	h := cfg.Providers.Huawei
	if h.Endpoint != "http://127.0.0.1:9403" || h.Agency != "ims_admin_agency" {
		t.Errorf("huawei %q %q", h.Endpoint, h.Agency)
	}
	ids := map[string]bool{}
	for _, r := range []string{"cn-north-4", "cn-east-3", "cn-south-1", "ap-southeast-1", "ap-southeast-3"} {
		id := h.Projects[r]
		if id == "" || ids[id] {
			t.Errorf("huawei project of %s is %q (missing or not distinct)", r, id)
		}
		ids[id] = true
	}
	if cfg.Replication.PollInterval.Std() != time.Second || cfg.Replication.Timeout.Std() != 2*time.Minute {
		t.Errorf("replication timings %s %s", cfg.Replication.PollInterval, cfg.Replication.Timeout)
	}
	want := map[string][]string{
		"tencent": {"ap-shanghai", "ap-beijing", "ap-singapore"},
		"alibaba": {"cn-hangzhou", "cn-shanghai", "cn-beijing"},
		"huawei":  {"cn-east-3", "cn-south-1", "ap-southeast-1"},
	}
	tencentProd := events.Image{Provider: "tencent", ImageID: "img-1"}
	if got := cfg.Replication.Matching(tencentProd, map[string]string{"env": "prod"}); len(got) != 1 || !slices.Equal(got[0].Regions, want["tencent"]) {
		t.Errorf("tencent prod image matches %+v", got)
	}
	if got := cfg.Replication.Matching(tencentProd, map[string]string{"env": "dev"}); len(got) != 0 {
		t.Errorf("tencent dev image matches %+v", got)
	}
	desk := events.Image{Provider: "alibaba", ImageID: "m-1", ProductType: "CloudDesktop"}
	if got := cfg.Replication.Matching(desk, nil); len(got) != 1 || !slices.Equal(got[0].Regions, want["alibaba"]) {
		t.Errorf("alibaba desktop image matches %+v", got)
	}
	if got := cfg.Replication.Matching(events.Image{Provider: "alibaba", ProductType: "CloudApp"}, nil); len(got) != 0 {
		t.Errorf("alibaba CloudApp image matches %+v", got)
	}
	if got := cfg.Replication.Matching(events.Image{Provider: "huawei"}, nil); len(got) != 1 || !slices.Equal(got[0].Regions, want["huawei"]) {
		t.Errorf("huawei image matches %+v", got)
	}
	for _, p := range cfg.Replication.Policies {
		if p.Timeout.Std() != 2*time.Minute || p.PollInterval.Std() != time.Second {
			t.Errorf("policy %s did not inherit timings: %s %s", p.Name, p.Timeout, p.PollInterval)
		}
	}
	// Which policies apply to a copy is the rebuild core's rule (rules.Applies, tested
	// there and on this file in compose); here the file must say what the demo relies on.
	if len(cfg.Rebuild.Policies) != 1 {
		t.Fatalf("rebuild policies: %+v", cfg.Rebuild.Policies)
	}
	p := cfg.Rebuild.Policies[0]
	if p.Name != "office-desktops" || p.Desktops.Tags["team"] != "design" || p.Canary != 1 || p.BatchSize != 3 ||
		p.FailureBudget != 1 || p.CheckInterval.Std() != time.Second || p.DryRun || p.Window != nil {
		t.Errorf("office-desktops = %+v", p)
	}
	if !p.Match.Matches(desk, nil) || !slices.Equal(p.Regions, []string{"cn-beijing"}) {
		t.Errorf("office-desktops matches %+v in %v, want the Alibaba desktop image in cn-beijing only", p.Match, p.Regions)
	}
}

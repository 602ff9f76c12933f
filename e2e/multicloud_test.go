package e2e_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/replicate"
	"github.com/imagerelay/imagerelay/shared/config"
	"github.com/imagerelay/imagerelay/shared/core/policy"
	"github.com/imagerelay/imagerelay/shared/dev/emulators"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/alibabaemu"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/huaweiemu"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/tencentemu"
	"github.com/imagerelay/imagerelay/shared/domain"
)

var (
	alibabaRegions = []string{"cn-hangzhou", "cn-beijing", "cn-shenzhen"}
	huaweiRegions  = []string{"cn-east-3", "cn-south-1", "ap-southeast-1"}
)

var allPolicies = []config.ReplicationPolicy{
	{Name: "tencent", Match: policy.Match{Provider: "tencent"}, Regions: tencentRegions},
	{Name: "alibaba", Match: policy.Match{Provider: "alibaba"}, Regions: alibabaRegions},
	{Name: "huawei", Match: policy.Match{Provider: "huawei"}, Regions: huaweiRegions},
}

// multiSeed seeds n images per provider, each copy taking copyTime.
func multiSeed(n int, copyTime time.Duration) (emulators.Seed, []events.ImagePublished) {
	seed := emulators.DefaultSeed()
	d := emucore.Duration(copyTime)
	seed.Tencent.CopyDuration, seed.Alibaba.AppStream.CopyDuration, seed.Huawei.CopyDuration = d, d, d
	var imgs []events.ImagePublished
	for i := range n {
		tid := fmt.Sprintf("img-mc%06d", i)
		seed.Tencent.Images = append(seed.Tencent.Images, tencentemu.Image{ID: tid, Name: fmt.Sprintf("mc-%d", i), Region: "ap-guangzhou", SizeGB: 20})
		imgs = append(imgs, events.ImagePublished{Image: events.Image{Provider: "tencent", ImageID: tid, ImageName: fmt.Sprintf("mc-%d", i), SourceRegion: "ap-guangzhou"}, SizeGB: 20})

		aid, vid := fmt.Sprintf("imgc-mc%010d", i), fmt.Sprintf("iv-mc%010d", i)
		seed.Alibaba.AppStream.Images = append(seed.Alibaba.AppStream.Images, alibabaemu.AppImage{ImageID: aid, VersionID: vid, Name: fmt.Sprintf("mc-%d", i),
			ProductType: "CloudDesktop", Regions: []string{"cn-shanghai"}})
		imgs = append(imgs, events.ImagePublished{Image: events.Image{Provider: "alibaba", ImageID: aid, VersionID: vid, ImageName: fmt.Sprintf("mc-%d", i),
			SourceRegion: "cn-shanghai", ProductType: "CloudDesktop"}})

		hid := fmt.Sprintf("6a0c0000-0000-4000-8000-%012d", i)
		seed.Huawei.Images = append(seed.Huawei.Images, huaweiemu.Image{ID: hid, Name: fmt.Sprintf("mc-%d", i), Region: "cn-north-4", SizeGB: 40, OSType: "Linux"})
		imgs = append(imgs, events.ImagePublished{Image: events.Image{Provider: "huawei", ImageID: hid, ImageName: fmt.Sprintf("mc-%d", i), SourceRegion: "cn-north-4"}, SizeGB: 40})
	}
	return seed, imgs
}

// startKeys names the (image, region) pairs an accepted start call covers, per provider.
func startKeys(c emucore.Call) []string {
	str := func(k string) string { s, _ := c.Params[k].(string); return s }
	switch c.Provider {
	case "tencent":
		return syncKeys(c)
	case "alibaba":
		regions, _ := c.Params["DestinationRegionList"].([]string)
		var out []string
		for _, r := range regions {
			out = append(out, str("ImageId")+"/"+r)
		}
		return out
	case "huawei":
		return []string{str("imageId") + "/" + str("destinationRegion")}
	}
	return nil
}

var startActions = map[string]string{"tencent": "SyncImages", "alibaba": "StartTaskForDistributeImage", "huawei": "CopyImageCrossRegion"}

func TestAllProvidersEndToEndWithFaults(t *testing.T) {
	const perProvider = 3
	seed, imgs := multiSeed(perProvider, 1500*time.Millisecond)
	var rules []emucore.Rule
	for provider, action := range startActions {
		rules = append(rules,
			emucore.Rule{Provider: provider, Action: action, Kind: emucore.FaultThrottle, Count: 2},
			emucore.Rule{Provider: provider, Action: action, Kind: emucore.FaultServer, Count: 1})
	}
	rules = append(rules,
		emucore.Rule{Provider: "tencent", Action: "DescribeImages", Kind: emucore.FaultServer, Count: 2},
		emucore.Rule{Provider: "alibaba", Action: "ListImage", Kind: emucore.FaultThrottle, Count: 2},
		emucore.Rule{Provider: "huawei", Action: "ShowJob", Kind: emucore.FaultServer, Count: 2})
	seed.Faults.Rules = rules
	s := startStack(t, seed, stackOptions{Policies: allPolicies})
	s.duplicate(t, events.TypeReplicationRequested, replicate.Name, 0)
	for _, img := range imgs {
		s.publish(t, img)
	}
	total := perProvider * (len(tencentRegions) + len(alibabaRegions) + len(huaweiRegions))
	recs := s.waitSettled(t, total, 90*time.Second)
	for _, r := range recs {
		if r.State != domain.StateSucceeded {
			t.Errorf("%s ended %s: %s %s", r.Key, r.State, r.Code, r.Message)
		}
	}
	for provider, action := range startActions {
		calls := s.emus.Calls.Calls(provider, action)
		perKey := okCalls(calls, startKeys)
		want := perProvider * 3
		if len(perKey) != want {
			t.Errorf("%s: accepted starts cover %d (image, region) pairs, want %d", provider, len(perKey), want)
		}
		for k, n := range perKey {
			if n != 1 {
				t.Errorf("%s %s: started %d times, want exactly once", provider, k, n)
			}
		}
		faulted := 0
		for _, c := range calls {
			if c.Outcome != "ok" {
				faulted++
			}
		}
		if faulted < 3 {
			t.Errorf("%s: only %d faulted %s calls; the injected faults did not happen", provider, faulted, action)
		}
	}
	// Alibaba copies all regions of an image in one call.
	if n := len(okCalls(s.emus.Calls.Calls("alibaba", "StartTaskForDistributeImage"), func(c emucore.Call) []string {
		id, _ := c.Params["ImageId"].(string)
		return []string{id}
	})); n != perProvider {
		t.Errorf("alibaba: %d images started, want %d", n, perProvider)
	}
	for _, c := range s.emus.Calls.Calls("alibaba", "StartTaskForDistributeImage") {
		if regions, _ := c.Params["DestinationRegionList"].([]string); c.Outcome == "ok" && len(regions) != len(alibabaRegions) {
			t.Errorf("alibaba start named %v, want all %d regions in one call", regions, len(alibabaRegions))
		}
	}
	s.waitEvents(t, events.TypeReplicationCompleted, 3*perProvider, 20*time.Second)
	if dead := s.rec.DeadLetters(); len(dead) > 0 {
		t.Errorf("unexpected dead letter: %s", dead[0].Header.Get("Imagerelay-Dlq-Reason"))
	}
	s.checkAllEventsValid(t)
}

func TestHuaweiNeverMoreThanFiveCopiesInFlight(t *testing.T) {
	seed := emulators.DefaultSeed()
	seed.Huawei.CopyDuration = emucore.Duration(1500 * time.Millisecond)
	var imgs []events.ImagePublished
	for i := range 4 {
		id := fmt.Sprintf("7b1d0000-0000-4000-8000-%012d", i)
		seed.Huawei.Images = append(seed.Huawei.Images, huaweiemu.Image{ID: id, Name: fmt.Sprintf("sem-%d", i), Region: "cn-north-4", SizeGB: 40, OSType: "Linux"})
		imgs = append(imgs, events.ImagePublished{Image: events.Image{Provider: "huawei", ImageID: id, ImageName: fmt.Sprintf("sem-%d", i), SourceRegion: "cn-north-4"}, SizeGB: 40})
	}
	s := startStack(t, seed, stackOptions{Policies: allPolicies})
	for _, img := range imgs {
		s.publish(t, img)
	}
	recs := s.waitSettled(t, 12, 90*time.Second)
	for _, r := range recs {
		if r.State != domain.StateSucceeded {
			t.Errorf("%s ended %s: %s %s", r.Key, r.State, r.Code, r.Message)
		}
	}
	if peak := s.emus.Huawei.MaxObservedConcurrent(); peak > 5 || peak < 2 {
		t.Errorf("peak concurrent copies %d, want between 2 and 5", peak)
	}
	jobs := s.emus.Huawei.Jobs()
	if len(jobs) != 12 {
		t.Errorf("%d copy jobs, want 12", len(jobs))
	}
	for _, c := range s.emus.Calls.Calls("huawei", "CopyImageCrossRegion") {
		if c.Outcome != "ok" {
			t.Errorf("a copy was refused (%s): the sixth copy should wait for a slot, not be sent", c.Outcome)
		}
	}
	holders, err := s.rt.Store.Holders(t.Context(), "huawei/default")
	if err != nil {
		t.Fatal(err)
	}
	if len(holders) != 0 {
		t.Errorf("slots still held after every copy settled: %v", holders)
	}
	s.checkAllEventsValid(t)
}

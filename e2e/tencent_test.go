package e2e_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/replicate"
	"github.com/imagerelay/imagerelay/shared/config"
	"github.com/imagerelay/imagerelay/shared/core/policy"
	"github.com/imagerelay/imagerelay/shared/dev/emulators"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/tencentemu"
	"github.com/imagerelay/imagerelay/shared/domain"
)

var tencentRegions = []string{"ap-shanghai", "ap-beijing", "ap-singapore"}

// tencentSeed seeds n images in ap-guangzhou with copies that take copyTime.
func tencentSeed(n int, copyTime time.Duration) (emulators.Seed, []events.ImagePublished) {
	seed := emulators.DefaultSeed()
	seed.Tencent.CopyDuration = emucore.Duration(copyTime)
	var imgs []events.ImagePublished
	for i := range n {
		id := fmt.Sprintf("img-e2e%05d", i)
		seed.Tencent.Images = append(seed.Tencent.Images, tencentemu.Image{ID: id, Name: fmt.Sprintf("e2e-%d", i), Region: "ap-guangzhou", SizeGB: 20})
		imgs = append(imgs, events.ImagePublished{Image: events.Image{Provider: events.ProviderTencent, ImageID: id,
			ImageName: fmt.Sprintf("e2e-%d", i), SourceRegion: "ap-guangzhou"}, SizeGB: 20, Tags: map[string]string{"env": "prod"}})
	}
	return seed, imgs
}

var tencentPolicy = []config.ReplicationPolicy{{Name: "tencent-prod", Match: policy.Match{Provider: "tencent", Tags: map[string]string{"env": "prod"}}, Regions: tencentRegions}}

func syncKeys(c emucore.Call) []string {
	ids, _ := c.Params["ImageIds"].([]string)
	regions, _ := c.Params["DestinationRegions"].([]string)
	var out []string
	for _, id := range ids {
		for _, r := range regions {
			out = append(out, id+"/"+r)
		}
	}
	return out
}

func TestTencentEndToEndExactlyOneSyncPerRegion(t *testing.T) {
	const images = 4
	seed, imgs := tencentSeed(images, 1500*time.Millisecond)
	// Throttle the first SyncImages calls: they must be retried and still succeed.
	seed.Faults.Rules = []emucore.Rule{{Provider: "tencent", Action: "SyncImages", Kind: emucore.FaultThrottle, Count: 3}}
	s := startStack(t, seed, stackOptions{Policies: tencentPolicy})
	s.duplicate(t, events.TypeReplicationRequested, replicate.Name, 0)
	for _, img := range imgs {
		s.publish(t, img)
	}
	recs := s.waitSettled(t, images*len(tencentRegions), 60*time.Second)

	for _, r := range recs {
		if r.State != domain.StateSucceeded {
			t.Errorf("%s ended %s: %s %s", r.Key, r.State, r.Code, r.Message)
		}
		if !strings.HasPrefix(r.DestinationImageID, "img-") {
			t.Errorf("%s has no destination image id", r.Key)
		}
	}
	// Exactly one accepted SyncImages per (image, region), despite duplicates and redeliveries.
	calls := s.emus.Calls.Calls("tencent", "SyncImages")
	perKey := okCalls(calls, syncKeys)
	if len(perKey) != images*len(tencentRegions) {
		t.Errorf("SyncImages reached %d (image, region) pairs, want %d", len(perKey), images*len(tencentRegions))
	}
	for k, n := range perKey {
		if n != 1 {
			t.Errorf("%s: %d accepted SyncImages calls, want exactly 1", k, n)
		}
	}
	throttled := 0
	for _, c := range calls {
		if c.Outcome == "RequestLimitExceeded" {
			throttled++
		}
	}
	if throttled != 3 {
		t.Errorf("%d throttled calls, want the 3 injected", throttled)
	}
	// Every image completes once, every copy is announced once; the events all validate.
	s.waitEvents(t, events.TypeReplicationCompleted, images, 20*time.Second)
	s.waitEvents(t, events.TypeReplicationPlanned, images, 20*time.Second)
	s.waitEvents(t, events.TypeReplicationStarted, images*len(tencentRegions), 20*time.Second)
	s.waitEvents(t, events.TypeReplicationSucceeded, images*len(tencentRegions), 20*time.Second)
	if len(s.rec.OfType(events.TypeReplicationProgressed)) == 0 {
		t.Error("no replication.progressed event")
	}
	for _, e := range s.rec.OfType(events.TypeReplicationCompleted) {
		d, _ := events.DataAs[events.ReplicationCompleted](e)
		if d.Succeeded != len(tencentRegions) || d.Failed != 0 {
			t.Errorf("completed %s: %d succeeded, %d failed", d.ImageID, d.Succeeded, d.Failed)
		}
	}
	if dead := s.rec.DeadLetters(); len(dead) > 0 {
		t.Errorf("unexpected dead letter: %s", dead[0].Header.Get("Imagerelay-Dlq-Reason"))
	}
	s.checkAllEventsValid(t)
}

func TestTencentWrongSecretKeyFailsWithAuthCodeAndHint(t *testing.T) {
	seed, imgs := tencentSeed(1, time.Second)
	s := startStack(t, seed, stackOptions{Policies: tencentPolicy, Env: map[string]string{"TENCENTCLOUD_SECRET_KEY": "not-the-right-secret"}})
	s.publish(t, imgs[0])
	recs := s.waitSettled(t, len(tencentRegions), 30*time.Second)
	for _, r := range recs {
		if r.State != domain.StateFailed || !strings.HasPrefix(r.Code, "AuthFailure.") {
			t.Errorf("%s: %s %s, want failed with an AuthFailure code", r.Key, r.State, r.Code)
		}
	}
	for _, e := range s.waitEvents(t, events.TypeReplicationFailed, len(tencentRegions), 20*time.Second) {
		d, _ := events.DataAs[events.ReplicationFailed](e)
		if !strings.HasPrefix(d.Code, "AuthFailure.") {
			t.Errorf("failed event code %q", d.Code)
		}
		if !strings.Contains(d.Hint, "TENCENTCLOUD_SECRET_KEY") {
			t.Errorf("hint %q does not tell the user which credential to fix", d.Hint)
		}
		if strings.Contains(string(e.Data()), "not-the-right-secret") {
			t.Error("the secret key leaked into an event")
		}
	}
	// Completion is still reported, with the failures.
	s.waitEvents(t, events.TypeReplicationCompleted, 1, 20*time.Second)
	s.checkAllEventsValid(t)
}

func TestTencentPlanSkipsWhatTheProviderWouldRefuse(t *testing.T) {
	seed, _ := tencentSeed(0, time.Second)
	s := startStack(t, seed, stackOptions{Policies: tencentPolicy})
	s.publish(t, events.ImagePublished{Image: events.Image{Provider: "tencent", ImageID: "img-demoenc1", SourceRegion: "ap-guangzhou"},
		Encrypted: true, SizeGB: 20, Tags: map[string]string{"env": "prod"}})
	s.publish(t, events.ImagePublished{Image: events.Image{Provider: "tencent", ImageID: "img-demobig1", SourceRegion: "ap-guangzhou"},
		SizeGB: 80, Tags: map[string]string{"env": "prod"}, Regions: []string{"ap-shanghai", "ap-mars-1"}})
	for _, e := range s.waitEvents(t, events.TypeReplicationPlanned, 2, 20*time.Second) {
		d, _ := events.DataAs[events.ReplicationPlanned](e)
		if len(d.Regions) != 0 {
			t.Errorf("%s planned %v, want nothing", d.ImageID, d.Regions)
		}
		if len(d.Skipped) == 0 {
			t.Errorf("%s: no skip reasons", d.ImageID)
		}
		for _, sk := range d.Skipped {
			if sk.Reason == "" {
				t.Errorf("%s/%s skipped without a reason", d.ImageID, sk.Region)
			}
		}
	}
	if n := len(s.emus.Calls.Calls("tencent", "SyncImages")); n != 0 {
		t.Errorf("%d SyncImages calls for images the plan refused", n)
	}
	s.checkAllEventsValid(t)
}

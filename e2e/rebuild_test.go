package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/functions/rebuild"
	"github.com/imagerelay/imagerelay/shared/adapters/bus"
	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/config"
	"github.com/imagerelay/imagerelay/shared/core/policy"
	"github.com/imagerelay/imagerelay/shared/dev/emulators"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/alibabaemu"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
	"github.com/imagerelay/imagerelay/shared/dev/testenv"
)

const (
	fleetRegion  = "cn-hangzhou"
	fleetImage   = "imgc-e2efleet001"
	fleetVersion = "iv-e2efleet001"
)

// fleet is the test fleet: 60 desktops in cn-hangzhou, 45 of them tagged office=hz (the
// policy's selection). Among the 45, eight cannot or must not be rebuilt.
type fleet struct {
	selected, unselected []string
	// incompatible are selected desktops the plan must skip; rebuildable the others.
	incompatible, rebuildable []string
}

func fleetSeed(t *testing.T) (emulators.Seed, fleet) {
	t.Helper()
	seed := emulators.DefaultSeed()
	seed.Alibaba.AppStream.CopyDuration = emucore.Duration(500 * time.Millisecond)
	seed.Alibaba.Ecd.RebuildDuration = emucore.Duration(400 * time.Millisecond)
	seed.Alibaba.AppStream.Images = append(seed.Alibaba.AppStream.Images, alibabaemu.AppImage{ImageID: fleetImage, VersionID: fleetVersion,
		Name: "office-2026.08", ProductType: "CloudDesktop", OSType: "Windows", Regions: []string{"cn-shanghai"}})
	var f fleet
	for i := range 60 {
		d := alibabaemu.Desktop{DesktopID: fmt.Sprintf("ecd-e2e%02d", i), Region: fleetRegion, ImageID: "m-e2eold0001",
			GroupID: "dg-e2eoffice", Tags: map[string]string{"office": "hz"}}
		if i >= 45 {
			d.Tags["office"] = "sz" // same group, same image, not selected
			f.unselected = append(f.unselected, d.DesktopID)
			seed.Alibaba.Ecd.Desktops = append(seed.Alibaba.Ecd.Desktops, d)
			continue
		}
		f.selected = append(f.selected, d.DesktopID)
		incompatible := true
		switch i {
		case 5, 17, 29:
			d.GPU = true // graphics desktops; the image is not a GPU image
		case 8, 33:
			d.Status = alibabaemu.DesktopPending
		case 11, 40:
			d.OSType, d.DataDisk = "Linux", true // Linux → Windows would wipe the data disk
		case 22:
			d.ImageID = fleetImage // already on the image
		default:
			incompatible = false
			switch i {
			case 14:
				d.OSType = "Linux" // no data disk: an OS change is allowed in the mainland
			case 2, 3:
				d.Status = alibabaemu.DesktopStopped
			case 7:
				d.DataDisk = true // same OS: the data disk is kept
			}
		}
		if incompatible {
			f.incompatible = append(f.incompatible, d.DesktopID)
		} else {
			f.rebuildable = append(f.rebuildable, d.DesktopID)
		}
		seed.Alibaba.Ecd.Desktops = append(seed.Alibaba.Ecd.Desktops, d)
	}
	return seed, f
}

func officePolicy(f func(*config.RebuildPolicy)) config.RebuildPolicy {
	p := config.DefaultRebuildPolicy()
	p.Name = "office-hz"
	p.Match = policy.Match{Provider: "alibaba", ProductType: "CloudDesktop"}
	p.Regions = []string{fleetRegion}
	p.Desktops = config.DesktopSelector{Tags: map[string]string{"office": "hz"}}
	p.Canary, p.BatchSize = 1, 20
	p.CheckInterval = config.Duration(time.Second)
	if f != nil {
		f(&p)
	}
	return p
}

var fleetReplication = []config.ReplicationPolicy{{Name: "to-hangzhou", Match: policy.Match{Provider: "alibaba"}, Regions: []string{fleetRegion}}}

// startRebuildStack is startStack with the fleet's replication policy and rebuild policies.
func startRebuildStack(t *testing.T, seed emulators.Seed, rebuilds ...config.RebuildPolicy) *stack {
	t.Helper()
	return startStack(t, seed, stackOptions{Policies: fleetReplication, Rebuilds: rebuilds})
}

func (s *stack) publishFleetImage(t *testing.T) {
	t.Helper()
	s.publish(t, events.ImagePublished{Image: events.Image{Provider: "alibaba", ImageID: fleetImage, VersionID: fleetVersion,
		ImageName: "office-2026.08", SourceRegion: "cn-shanghai", ProductType: "CloudDesktop"}, OSType: "Windows"})
}

// waitRebuildIdle waits until the rebuild consumer holds no message: every chain of
// deliveries, deferred ones included, has ended.
func (s *stack) waitRebuildIdle(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		c, err := s.env.Bus.JetStream().Consumer(context.Background(), s.env.Bus.Config().Stream, rebuild.Name)
		if err != nil {
			return err
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("rebuild consumer: %d pending, %d in flight", info.NumPending, info.NumAckPending)
		}
		return nil
	})
}

// rebuildCalls returns the accepted RebuildDesktops calls, in order.
func (s *stack) rebuildCalls() []emucore.Call {
	var out []emucore.Call
	for _, c := range s.emus.Calls.Calls(alibabaemu.ProviderEcd, alibabaemu.ActionRebuildDesktops) {
		if c.Outcome == "ok" {
			out = append(out, c)
		}
	}
	return out
}

func named(c emucore.Call) []string {
	ids, _ := c.Params["DesktopId"].([]string)
	return ids
}

func (s *stack) waitCompleted(t *testing.T) events.RebuildCompleted {
	t.Helper()
	var done *events.RebuildCompleted
	testenv.Eventually(t, 60*time.Second, func() error {
		cs := s.rec.OfType(events.TypeRebuildCompleted)
		if len(cs) == 0 {
			return fmt.Errorf("no rebuild.completed yet (%d started, %d succeeded)",
				len(s.rec.OfType(events.TypeDesktopRebuildStarted)), len(s.rec.OfType(events.TypeDesktopRebuildSucceeded)))
		}
		var err error
		done, err = events.DataAs[events.RebuildCompleted](cs[0])
		return err
	})
	return *done
}

func (s *stack) plan(t *testing.T) events.RebuildPlanned {
	t.Helper()
	var plan *events.RebuildPlanned
	testenv.Eventually(t, 30*time.Second, func() error {
		ps := s.rec.OfType(events.TypeRebuildPlanned)
		if len(ps) != 1 {
			return fmt.Errorf("%d rebuild.planned events", len(ps))
		}
		var err error
		plan, err = events.DataAs[events.RebuildPlanned](ps[0])
		return err
	})
	return *plan
}

func checkPlan(t *testing.T, plan events.RebuildPlanned, f fleet) {
	t.Helper()
	if len(plan.Decisions) != len(f.selected) {
		t.Errorf("plan has %d decisions, want one per selected desktop (%d)", len(plan.Decisions), len(f.selected))
	}
	var rebuildIDs, skipIDs []string
	for _, d := range plan.Decisions {
		if !slices.Contains(f.selected, d.DesktopID) {
			t.Errorf("plan names unselected desktop %s", d.DesktopID)
		}
		switch d.Action {
		case rebuild.ActionRebuild:
			rebuildIDs = append(rebuildIDs, d.DesktopID)
		case rebuild.ActionSkip:
			skipIDs = append(skipIDs, d.DesktopID)
			if d.Reason == "" {
				t.Errorf("skip of %s has no reason", d.DesktopID)
			}
		}
	}
	if !slices.Equal(rebuildIDs, f.rebuildable) || !slices.Equal(skipIDs, f.incompatible) {
		t.Errorf("plan rebuilds %v and skips %v;\nwant %v and %v", rebuildIDs, skipIDs, f.rebuildable, f.incompatible)
	}
	if plan.DestinationImageID != fleetImage || plan.Provider != "alibaba" || plan.DestinationRegion != fleetRegion {
		t.Errorf("plan for %s/%s in %s", plan.Provider, plan.DestinationImageID, plan.DestinationRegion)
	}
}

func TestRebuildRollsAFleetOntoTheNewCopy(t *testing.T) {
	seed, f := fleetSeed(t)
	s := startRebuildStack(t, seed, officePolicy(nil))
	dups := s.duplicate(t, events.TypeReplicationSucceeded, rebuild.Name, 300*time.Millisecond)
	s.publishFleetImage(t)

	done := s.waitCompleted(t)
	if done.Succeeded != len(f.rebuildable) || done.Failed != 0 || done.Skipped != len(f.incompatible) || done.Stopped {
		t.Fatalf("completed %+v, want %d succeeded, %d skipped", done, len(f.rebuildable), len(f.incompatible))
	}
	checkPlan(t, s.plan(t), f)
	s.waitRebuildIdle(t)
	if dups() == 0 {
		t.Fatal("no duplicate of replication.succeeded was sent")
	}

	calls := s.rebuildCalls()
	if len(calls) != 3 {
		t.Fatalf("%d RebuildDesktops calls, want 3 (canary, 20, 16)", len(calls))
	}
	// The canary goes first and alone, and the next call waits until it is back.
	canary := named(calls[0])
	if len(canary) != 1 {
		t.Fatalf("first call named %v, want the canary alone", canary)
	}
	if st, _ := s.emus.Alibaba.Desktop(canary[0]); st.LastRebuild == nil || !st.LastRebuild.Done || calls[1].Time.Before(st.LastRebuild.FinishedAt) {
		t.Errorf("the second call (%s) did not wait for the canary to come back (%+v)", calls[1].Time, st.LastRebuild)
	}
	perDesktop := map[string]int{}
	for _, c := range calls {
		ids := named(c)
		if len(ids) > 20 {
			t.Errorf("a call named %d desktops", len(ids))
		}
		if c.Params["ImageId"] != fleetImage {
			t.Errorf("a call rebuilt onto %v", c.Params["ImageId"])
		}
		for _, id := range ids {
			perDesktop[id]++
		}
	}
	// Every RebuildDesktops call the emulator saw, accepted or not, is checked here.
	for _, c := range s.emus.Calls.Calls(alibabaemu.ProviderEcd, alibabaemu.ActionRebuildDesktops) {
		for _, id := range named(c) {
			if !slices.Contains(f.rebuildable, id) {
				t.Errorf("desktop %s (unselected or incompatible) was named in a RebuildDesktops call", id)
			}
		}
	}
	for _, id := range f.rebuildable {
		if perDesktop[id] != 1 {
			t.Errorf("%s named in %d calls, want exactly 1", id, perDesktop[id])
		}
		st, _ := s.emus.Alibaba.Desktop(id)
		if st.ImageID != fleetImage || st.Status != alibabaemu.DesktopRunning || st.Rebuilds != 1 {
			t.Errorf("%s is %s on %s after %d rebuilds, want Running on %s after 1", id, st.Status, st.ImageID, st.Rebuilds, fleetImage)
		}
	}
	if st, _ := s.emus.Alibaba.Desktop("ecd-e2e07"); st.LastRebuild == nil || st.LastRebuild.DataDisk != alibabaemu.DataDiskKept {
		t.Errorf("ecd-e2e07's data disk was not kept: %+v", st.LastRebuild)
	}
	for _, id := range append(slices.Clone(f.unselected), f.incompatible...) {
		if st, _ := s.emus.Alibaba.Desktop(id); st.Rebuilds != 0 {
			t.Errorf("%s was rebuilt", id)
		}
	}
	for typ, want := range map[string]int{
		events.TypeRebuildPlanned: 1, events.TypeDesktopRebuildStarted: len(f.rebuildable),
		events.TypeDesktopRebuildSucceeded: len(f.rebuildable), events.TypeDesktopRebuildFailed: 0, events.TypeRebuildCompleted: 1,
	} {
		s.waitEvents(t, typ, want, 20*time.Second)
	}
	for _, e := range s.rec.OfType(events.TypeDesktopRebuildStarted) {
		if events.StringExt(e, events.ExtProvider) != "alibaba" || events.StringExt(e, events.ExtRegion) != fleetRegion {
			t.Errorf("started event %s has provider %q region %q", e.ID(), events.StringExt(e, events.ExtProvider), events.StringExt(e, events.ExtRegion))
		}
	}
	if dead := s.rec.DeadLetters(); len(dead) > 0 {
		t.Errorf("unexpected dead letter: %s", dead[0].Header.Get(bus.HeaderDeadLetterReason))
	}
	s.checkAllEventsValid(t)
}

func TestRebuildStopsWhenTheCanaryFails(t *testing.T) {
	seed, f := fleetSeed(t)
	canary := f.rebuildable[0]
	seed.Faults.Rules = []emucore.Rule{{Provider: alibabaemu.ProviderEcd, Action: alibabaemu.ActionRebuildDesktops, Kind: emucore.FaultFailCopy, Match: canary}}
	s := startRebuildStack(t, seed, officePolicy(func(p *config.RebuildPolicy) { p.FailureBudget = 5 }))
	s.publishFleetImage(t)

	done := s.waitCompleted(t)
	if !done.Stopped || !strings.Contains(done.Reason, "canary failed") || !strings.Contains(done.Reason, canary) || done.Failed != 1 || done.Succeeded != 0 {
		t.Fatalf("completed %+v, want stopped by the failed canary %s", done, canary)
	}
	s.waitRebuildIdle(t)
	calls := s.emus.Calls.Calls(alibabaemu.ProviderEcd, alibabaemu.ActionRebuildDesktops)
	if len(calls) != 1 || !slices.Equal(named(calls[0]), []string{canary}) {
		t.Fatalf("RebuildDesktops calls %v, want only the canary's", calls)
	}
	failed := s.rec.OfType(events.TypeDesktopRebuildFailed)
	if len(failed) != 1 {
		t.Fatalf("%d desktop.rebuild.failed events, want 1", len(failed))
	}
	if d, _ := events.DataAs[events.DesktopRebuild](failed[0]); d.DesktopID != canary || d.Code == "" || d.Batch != 0 {
		t.Errorf("failed event %+v", d)
	}
	if st, _ := s.emus.Alibaba.Desktop(canary); st.ImageID != "m-e2eold0001" {
		t.Errorf("the failed canary is on %s", st.ImageID)
	}
	for _, id := range f.rebuildable[1:] {
		if st, _ := s.emus.Alibaba.Desktop(id); st.Rebuilds != 0 {
			t.Errorf("%s was rebuilt after the canary failed", id)
		}
	}
	key := state.Key(rebuild.RolloutKey("office-hz",
		events.Replication{Image: events.Image{Provider: "alibaba", ImageID: fleetImage, VersionID: fleetVersion, SourceRegion: "cn-shanghai"}, DestinationRegion: fleetRegion})...)
	ro, _, err := state.Get[rebuild.Rollout](context.Background(), s.rt.Store, key)
	if err != nil || ro.Phase != rebuild.PhaseDone || !ro.Stopped {
		t.Errorf("rollout record %+v, %v", ro, err)
	}
	// The rollout is named by its KV key, as before the core had its own ports: event ids
	// derive from the name, so it must not change.
	if ro.Key != key {
		t.Errorf("rollout named %q, want its key %q", ro.Key, key)
	}
	s.checkAllEventsValid(t)
}

func TestRebuildDryRunPlansWithoutRebuilding(t *testing.T) {
	seed, f := fleetSeed(t)
	s := startRebuildStack(t, seed, officePolicy(func(p *config.RebuildPolicy) { p.DryRun = true }))
	s.publishFleetImage(t)

	plan := s.plan(t)
	if !plan.DryRun {
		t.Error("plan is not marked dryRun")
	}
	checkPlan(t, plan, f)
	batches := map[int]int{}
	for _, d := range plan.Decisions {
		if d.Action == rebuild.ActionRebuild {
			batches[d.Batch]++
		}
	}
	if batches[0] != 1 || batches[1] != 20 || batches[2] != len(f.rebuildable)-21 {
		t.Errorf("planned batches %v, want canary 1, then 20 and %d", batches, len(f.rebuildable)-21)
	}
	s.waitRebuildIdle(t)
	if calls := s.emus.Calls.Calls(alibabaemu.ProviderEcd, alibabaemu.ActionRebuildDesktops); len(calls) != 0 {
		t.Fatalf("dry run made %d RebuildDesktops calls", len(calls))
	}
	if n := len(s.rec.OfType(events.TypeRebuildCompleted)) + len(s.rec.OfType(events.TypeDesktopRebuildStarted)); n != 0 {
		t.Errorf("dry run emitted %d rollout events", n)
	}
	s.checkAllEventsValid(t)
}

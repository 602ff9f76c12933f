package alibaba

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/alibabaemu"
	"github.com/imagerelay/imagerelay/shared/domain"
)

func fleetSeed(n int) alibabaemu.Seed {
	s := emuSeed()
	for i := range n {
		d := alibabaemu.Desktop{DesktopID: fmt.Sprintf("ecd-fleet%05d", i), Region: "cn-hangzhou", ImageID: "m-fleetold0001",
			GroupID: "dg-fleet", Tags: map[string]string{"ring": "broad"}}
		if i%10 == 0 {
			d.Tags["ring"] = "canary"
		}
		if i%7 == 0 {
			d.Status = alibabaemu.DesktopStopped
		}
		s.Ecd.Desktops = append(s.Ecd.Desktops, d)
	}
	s.Ecd.Images = append(s.Ecd.Images, alibabaemu.EcdImage{ID: "m-fleetnew0001", Region: "cn-hangzhou"}, alibabaemu.EcdImage{ID: "m-fleetold0001", Region: "cn-hangzhou"})
	return s
}

func TestListDesktopsPagesAndFilters(t *testing.T) {
	e := newEnv(t, fleetSeed(230))
	ctx := context.Background()
	all, err := e.desktops.ListDesktops(ctx, "cn-hangzhou", DesktopFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 230 || all[0].ID != "ecd-fleet00000" || all[229].ID != "ecd-fleet00229" {
		t.Fatalf("%d desktops", len(all))
	}
	if n := len(e.calls.Calls(alibabaemu.ProviderEcd, alibabaemu.ActionDescribeDesktops)); n != 3 {
		t.Fatalf("%d DescribeDesktops calls for 230 desktops, want 3 pages of 100", n)
	}
	var ids []string
	for i := range 150 {
		ids = append(ids, fmt.Sprintf("ecd-fleet%05d", i))
	}
	tests := []struct {
		name   string
		filter DesktopFilter
		want   int
	}{
		{"150 ids in two calls", DesktopFilter{DesktopIDs: ids}, 150},
		{"status", DesktopFilter{Status: alibabaemu.DesktopStopped}, 33},
		{"tag", DesktopFilter{Tags: map[string]string{"ring": "canary"}}, 23},
		{"group and tag", DesktopFilter{GroupID: "dg-fleet", Tags: map[string]string{"ring": "canary"}}, 23},
		{"image", DesktopFilter{ImageIDs: []string{"m-fleetnew0001"}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.desktops.ListDesktops(ctx, "cn-hangzhou", tc.filter)
			if err != nil || len(got) != tc.want {
				t.Fatalf("%d desktops, want %d (%v)", len(got), tc.want, err)
			}
		})
	}
	sh, err := e.desktops.ListDesktops(ctx, "cn-shanghai", DesktopFilter{DesktopIDs: []string{"ecd-demo000007", "ecd-demo000005"}})
	if err != nil || len(sh) != 2 {
		t.Fatalf("%+v %v", sh, err)
	}
	byID := map[string]Desktop{}
	for _, d := range sh {
		byID[d.ID] = d
	}
	if g := byID["ecd-demo000007"]; !g.GPU || g.OSType != "Windows" || g.Tags["team"] != "design" || g.DataDisk || g.Region != "cn-shanghai" {
		t.Errorf("GPU desktop %+v", g)
	}
	if l := byID["ecd-demo000005"]; l.GPU || l.OSType != "Linux" || !l.DataDisk || l.GroupID != "dg-demoops01" || l.Status != "Running" {
		t.Errorf("Linux desktop %+v", l)
	}
}

func TestRebuildDesktops(t *testing.T) {
	e := newEnv(t, fleetSeed(30))
	ctx := context.Background()
	for _, n := range []int{0, 21} {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("ecd-fleet%05d", i)
		}
		_, err := e.desktops.RebuildDesktops(ctx, "cn-hangzhou", ids, "m-fleetnew0001", "", "")
		var pe *domain.ProviderError
		if !errors.As(err, &pe) || pe.Code != "InvalidParameter" || !errors.Is(err, domain.ErrTerminal) {
			t.Fatalf("%d ids: %v", n, err)
		}
	}
	if n := len(e.calls.Calls(alibabaemu.ProviderEcd, alibabaemu.ActionRebuildDesktops)); n != 0 {
		t.Fatalf("out-of-range batches reached the API %d times", n)
	}
	ids := []string{"ecd-fleet00001", "ecd-fleet00002", "ecd-fleet00007", "ecd-nothere0001"}
	res, err := e.desktops.RebuildDesktops(ctx, "cn-hangzhou", ids, "m-fleetnew0001", "replace", "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"ecd-fleet00001": true, "ecd-fleet00002": true, "ecd-fleet00007": true, "ecd-nothere0001": false}
	if len(res) != len(ids) {
		t.Fatalf("results %+v", res)
	}
	for _, r := range res {
		if r.OK != want[r.DesktopID] || (r.OK && r.Code != "success") || (!r.OK && (r.Code == "" || r.Message == "")) {
			t.Errorf("result %+v", r)
		}
	}
	// Rebuilding desktops refuse a second rebuild with IncorrectDesktopStatus, per desktop.
	res, err = e.desktops.RebuildDesktops(ctx, "cn-hangzhou", []string{"ecd-fleet00001"}, "m-fleetnew0001", "", "")
	if err != nil || res[0].OK || res[0].Code != "IncorrectDesktopStatus" {
		t.Fatalf("%+v %v", res, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		done, err := e.desktops.ListDesktops(ctx, "cn-hangzhou", DesktopFilter{ImageIDs: []string{"m-fleetnew0001"}, Status: "Running"})
		if err != nil {
			t.Fatal(err)
		}
		if len(done) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rebuilt desktops running on the new image: %d", len(done))
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, _ := e.emu.Desktop("ecd-fleet00001")
	if st.LastRebuild == nil || st.LastRebuild.OperateType != "replace" || st.LastRebuild.PreviousImageID != "m-fleetold0001" {
		t.Fatalf("emulator record %+v", st.LastRebuild)
	}
	calls := e.calls.Calls(alibabaemu.ProviderEcd, alibabaemu.ActionRebuildDesktops)
	if len(calls) != 2 || !slices.Equal(calls[0].Params["DesktopId"].([]string), ids) || calls[0].Region != "cn-hangzhou" {
		t.Fatalf("call log %+v", calls)
	}
	// A request-level refusal is an error, not per-desktop results.
	_, err = e.desktops.RebuildDesktops(ctx, "cn-hangzhou", []string{"ecd-fleet00003"}, "m-unknown", "", "")
	var pe *domain.ProviderError
	if !errors.As(err, &pe) || pe.Code != "InvalidImageId.NotFound" || pe.Action != ActionRebuildDesktops {
		t.Fatalf("unknown image: %v", err)
	}
}

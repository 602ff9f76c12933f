package alibabaemu

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
)

// errorSeed adds one image for each error situation of the seed page's table.
func errorSeed() Seed {
	s := testSeed()
	sh := []string{"cn-shanghai"}
	s.AppStream.Images = append(s.AppStream.Images,
		AppImage{ImageID: "imgc-failed00001", VersionID: "iv-failed00001", ProductType: "CloudDesktop", Status: StatusCreateFailed, Regions: sh},
		AppImage{ImageID: "imgc-deleting0001", VersionID: "iv-deleting0001", ProductType: "CloudDesktop", Status: StatusDeleting, Regions: sh},
		AppImage{ImageID: "imgc-shared00001", VersionID: "iv-shared00001", ImageType: "Shared", Regions: sh},
		AppImage{ImageID: "imgc-system00001", VersionID: "iv-system00001", ImageType: "System", Regions: sh},
		AppImage{ImageID: "imgc-regional0001", VersionID: "iv-regional0001", NonCentralized: true, Regions: sh},
		AppImage{ImageID: "imgc-vhd000000001", VersionID: "iv-vhd000000001", PackageType: "Vhd", Regions: sh},
		AppImage{ImageID: "imgc-noregion0001", VersionID: "iv-noregion0001"},
		AppImage{ImageID: "imgc-child000001", VersionID: "iv-child000001", ParentImageID: "imgc-demoapp00001", Regions: sh},
	)
	s.AppStream.MaxConcurrentDistributions = 0
	return s
}

func TestStartTaskErrorTable(t *testing.T) {
	h := newHarness(t, errorSeed())
	cli := h.client(t, demoKey())
	to := func(r ...string) []string { return r }
	tests := []struct {
		name string
		body map[string]any
		code string
	}{
		{"missing image id", map[string]any{"DestinationRegionList": to("cn-beijing")}, "MissingParameter"},
		{"unknown image", map[string]any{"ImageId": "imgc-nope", "DestinationRegionList": to("cn-beijing")}, "Image.NotExist"},
		{"unknown version", map[string]any{"ImageId": "imgc-demodesk0001", "VersionId": "iv-nope", "DestinationRegionList": to("cn-beijing")}, "Image.NotExist"},
		{"product type mismatch", map[string]any{"ImageId": "imgc-demodesk0001", "ProductType": "CloudApp", "DestinationRegionList": to("cn-beijing")}, "Image.NotExist"},
		{"bad product type", map[string]any{"ImageId": "imgc-demodesk0001", "ProductType": "Desktop", "DestinationRegionList": to("cn-beijing")}, "InvalidParameter"},
		{"image being created", map[string]any{"ImageId": "imgc-demonew00001", "DestinationRegionList": to("cn-beijing")}, "ImageCreateByInstance.TaskExist"},
		{"image creation failed", map[string]any{"ImageId": "imgc-failed00001", "DestinationRegionList": to("cn-beijing")}, "CreateDesktopImageRecord.Failed"},
		{"image being deleted", map[string]any{"ImageId": "imgc-deleting0001", "DestinationRegionList": to("cn-beijing")}, "ImageUpdateFailed.NotAllow"},
		{"shared image", map[string]any{"ImageId": "imgc-shared00001", "DestinationRegionList": to("cn-beijing")}, "ImageUpdateSharedImageFailed.NotAllow"},
		{"system image", map[string]any{"ImageId": "imgc-system00001", "DestinationRegionList": to("cn-beijing")}, "ImageRegionDistribute.NotAllow"},
		{"regional image", map[string]any{"ImageId": "imgc-regional0001", "DestinationRegionList": to("cn-beijing")}, "Instance.ImageUnsupported"},
		{"encrypted image", map[string]any{"ImageId": "imgc-demoenc00001", "DestinationRegionList": to("cn-beijing")}, "ImageDistribute.ImageNotSupport"},
		{"vhd without base", map[string]any{"ImageId": "imgc-vhd000000001", "DestinationRegionList": to("cn-beijing")}, "InvalidBaseImage.NotConfigured"},
		{"no region configured", map[string]any{"ImageId": "imgc-noregion0001", "DestinationRegionList": to("cn-beijing")}, "ImageRegion.NotConfigured"},
		{"source region lacks image", map[string]any{"ImageId": "imgc-demodesk0001", "SourceRegion": "cn-beijing", "DestinationRegionList": to("cn-hangzhou")}, "ImageDistribute.Undistributed"},
		{"invalid source region", map[string]any{"ImageId": "imgc-demodesk0001", "SourceRegion": "mars-1", "DestinationRegionList": to("cn-hangzhou")}, "InvalidParameter"},
		{"empty destination list", map[string]any{"ImageId": "imgc-demodesk0001"}, "ImageDistribute.TargetDistributeRegionListEmpty"},
		{"invalid destination", map[string]any{"ImageId": "imgc-demodesk0001", "DestinationRegionList": to("cn-beijing", "us-moon-1")}, "InvalidParameter"},
		{"parent not in destination", map[string]any{"ImageId": "imgc-child000001", "DestinationRegionList": to("cn-beijing")}, "ParentImageRegionDistribute.NotExist"},
		{"already in destination", map[string]any{"ImageId": "imgc-demomulti001", "DestinationRegionList": to("cn-beijing", "cn-hangzhou")}, "ImageDistribute.RepeatedDistribution"},
		{"destination is source", map[string]any{"ImageId": "imgc-demodesk0001", "DestinationRegionList": to("cn-shanghai")}, "ImageDistribute.RepeatedDistribution"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := call(cli, AppStreamVersion, ActionStartTaskForDistributeImage, nil, tc.body)
			if err == nil {
				t.Fatal("call succeeded")
			}
			if code, status, _ := errCode(t, err); code != tc.code || status != 400 {
				t.Fatalf("got %s/%d, want %s/400 (%v)", code, status, tc.code, err)
			}
		})
	}
	// Nothing was started by any refused call.
	for _, id := range []string{"imgc-demodesk0001", "imgc-demomulti001"} {
		for _, d := range h.emu.Distributions(id) {
			if d.TaskID != "" {
				t.Errorf("refused call started %+v", d)
			}
		}
	}
}

func TestRepeatedDistributionWhileCopying(t *testing.T) {
	h := newHarness(t, testSeed(), func(e *Emulator) { e.copyDuration = time.Hour })
	cli := h.client(t, demoKey())
	body := map[string]any{"ImageId": "imgc-demodesk0001", "DestinationRegionList": []string{"cn-beijing"}}
	if _, err := call(cli, AppStreamVersion, ActionStartTaskForDistributeImage, nil, body); err != nil {
		t.Fatal(err)
	}
	_, err := call(cli, AppStreamVersion, ActionStartTaskForDistributeImage, nil, body)
	if code, _, _ := errCode(t, err); code != "ImageDistribute.RepeatedDistribution" {
		t.Fatalf("got %s", code)
	}
}

func TestExceedBuilderQuota(t *testing.T) {
	seed := testSeed()
	seed.AppStream.MaxConcurrentDistributions = 2
	h := newHarness(t, seed, func(e *Emulator) { e.copyDuration = time.Hour })
	cli := h.client(t, demoKey())
	_, err := call(cli, AppStreamVersion, ActionStartTaskForDistributeImage, nil,
		map[string]any{"ImageId": "imgc-demodesk0001", "DestinationRegionList": []string{"cn-beijing", "cn-hangzhou", "cn-shenzhen"}})
	if code, _, _ := errCode(t, err); code != "ExceedBuilderQuota" {
		t.Fatalf("got %s", code)
	}
	if _, err := call(cli, AppStreamVersion, ActionStartTaskForDistributeImage, nil,
		map[string]any{"ImageId": "imgc-demodesk0001", "DestinationRegionList": []string{"cn-beijing", "cn-hangzhou"}}); err != nil {
		t.Fatalf("within quota: %v", err)
	}
}

func TestDistributionProgressesToAvailable(t *testing.T) {
	h := newHarness(t, testSeed())
	cli := h.client(t, demoKey())
	body, err := call(cli, AppStreamVersion, ActionStartTaskForDistributeImage, nil, map[string]any{
		"ImageId": "imgc-demodesk0001", "VersionId": "iv-demodesk0001", "ProductType": "CloudDesktop",
		"DestinationRegionList": []string{"cn-beijing", "cn-hangzhou"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := body["Data"].(string)
	if !strings.HasPrefix(tid, "tid-") || body["Success"] != true || body["Code"] != "200" {
		t.Fatalf("start response: %v", body)
	}
	seen := map[string]bool{}
	waitFor(t, 5*time.Second, "both regions AVAILABLE", func() bool {
		b, err := call(cli, AppStreamVersion, ActionListImage, nil, map[string]any{"ImageId": "imgc-demodesk0001", "ProductType": "CloudDesktop"})
		if err != nil {
			t.Fatalf("ListImage: %v", err)
		}
		resp := decode[listImageResp](t, b)
		if resp.Count != 1 || len(resp.Data) != 1 {
			t.Fatalf("ListImage: %+v", resp)
		}
		done := 0
		for _, r := range resp.Data[0].ImageRegionDistributeList {
			if r.RegionId == "cn-shanghai" {
				continue
			}
			if !strings.HasSuffix(r.Progress, "%") || r.VersionId != "iv-demodesk0001" {
				t.Fatalf("row %+v", r)
			}
			seen[r.Status] = true
			if r.Status == StatusAvailable && r.Progress == "100%" {
				done++
			}
		}
		return done == 2
	})
	if !seen[StatusCreating] && !seen[StatusInit] {
		t.Errorf("never saw the copy in flight: %v", seen)
	}
	b, _ := call(cli, AppStreamVersion, ActionListImage, nil, map[string]any{"ImageId": "imgc-demodesk0001"})
	if got := decode[listImageResp](t, b).Data[0].ImageRegionList; len(got) != 3 {
		t.Fatalf("ImageRegionList %v", got)
	}
	calls := h.calls.Calls(ProviderAppStream, ActionStartTaskForDistributeImage)
	if len(calls) != 1 || calls[0].Region != "cn-shanghai" {
		t.Fatalf("call log %+v", calls)
	}
	if regions, _ := calls[0].Params["DestinationRegionList"].([]string); fmt.Sprint(regions) != "[cn-beijing cn-hangzhou]" || calls[0].Params["ImageId"] != "imgc-demodesk0001" {
		t.Fatalf("call log params %+v", calls[0].Params)
	}
}

func TestDistributionStatesOverTime(t *testing.T) {
	clock := newFakeClock()
	h := newHarness(t, testSeed(), clock.install(), func(e *Emulator) { e.copyDuration = 10 * time.Second })
	h.faults.Add(emucore.Rule{Provider: ProviderAppStream, Action: ActionStartTaskForDistributeImage, Kind: emucore.FaultFailCopy, Match: "cn-shenzhen"})
	cli := h.client(t, demoKey())
	if _, err := call(cli, AppStreamVersion, ActionStartTaskForDistributeImage, nil, map[string]any{
		"ImageId": "imgc-demoapp00001", "DestinationRegionList": []string{"cn-beijing", "cn-shenzhen"},
	}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		at                   time.Duration
		beijing, shenzhen    string
		beijingPct, shenzPct int
	}{
		{0, StatusInit, StatusInit, 0, 0},
		{3 * time.Second, StatusCreating, StatusCreating, 30, 30},
		{6 * time.Second, StatusCreating, StatusCreateFailed, 60, 50},
		{10 * time.Second, StatusAvailable, StatusCreateFailed, 100, 50},
	}
	for _, s := range steps {
		clock.set(s.at)
		got := map[string]Distribution{}
		for _, d := range h.emu.Distributions("imgc-demoapp00001") {
			got[d.RegionID] = d
		}
		if b := got["cn-beijing"]; b.Status != s.beijing || b.Progress != s.beijingPct {
			t.Errorf("at %v cn-beijing %s %d%%, want %s %d%%", s.at, b.Status, b.Progress, s.beijing, s.beijingPct)
		}
		if z := got["cn-shenzhen"]; z.Status != s.shenzhen || z.Progress != s.shenzPct {
			t.Errorf("at %v cn-shenzhen %s %d%%, want %s %d%%", s.at, z.Status, z.Progress, s.shenzhen, s.shenzPct)
		}
	}
	// A failed region can be distributed again; the finished one cannot.
	h.faults.Clear()
	if _, err := call(cli, AppStreamVersion, ActionStartTaskForDistributeImage, nil, map[string]any{
		"ImageId": "imgc-demoapp00001", "DestinationRegionList": []string{"cn-shenzhen"},
	}); err != nil {
		t.Fatalf("retry of failed region: %v", err)
	}
	_, err := call(cli, AppStreamVersion, ActionStartTaskForDistributeImage, nil, map[string]any{
		"ImageId": "imgc-demoapp00001", "DestinationRegionList": []string{"cn-beijing"},
	})
	if code, _, _ := errCode(t, err); code != "ImageDistribute.RepeatedDistribution" {
		t.Fatalf("got %s", code)
	}
}

func TestListImageFiltersAndPaging(t *testing.T) {
	h := newHarness(t, testSeed())
	cli := h.client(t, demoKey())
	tests := []struct {
		name  string
		query map[string]any
		body  map[string]any
		count int
		page  int
	}{
		{"all", nil, map[string]any{"PageSize": 100}, 7, 7},
		{"first page of 3", nil, map[string]any{"PageSize": 3, "PageNumber": 1}, 7, 3},
		{"last page of 3", nil, map[string]any{"PageSize": 3, "PageNumber": 3}, 7, 1},
		{"by id", nil, map[string]any{"ImageId": "imgc-demogpu00001"}, 1, 1},
		{"by product", nil, map[string]any{"ProductType": "CloudApp"}, 1, 1},
		{"by tag", map[string]any{"TagList": []map[string]string{{"Key": "team", "Value": "dev"}}}, nil, 1, 1},
		{"by region", nil, map[string]any{"BizRegionIdList": []string{"cn-hangzhou"}}, 1, 1},
		{"by status", nil, map[string]any{"Status": StatusCreating}, 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := call(cli, AppStreamVersion, ActionListImage, tc.query, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			resp := decode[listImageResp](t, b)
			if resp.Count != tc.count || len(resp.Data) != tc.page {
				t.Fatalf("count %d page %d, want %d %d", resp.Count, len(resp.Data), tc.count, tc.page)
			}
		})
	}
	_, err := call(cli, AppStreamVersion, ActionListImage, nil, map[string]any{"PageSize": 101})
	if code, _, _ := errCode(t, err); code != "InvalidParameter" {
		t.Fatalf("PageSize 101: %s", code)
	}
}

// TestLoseAnswerStartsEveryRegion checks that a lose-answer fault on one destination of a
// multi-region distribution carries out the whole call — every region starts and the call
// log counts it as accepted — while the client sees only a closed connection, and that a
// second attempt is then refused as RepeatedDistribution.
func TestLoseAnswerStartsEveryRegion(t *testing.T) {
	h := newHarness(t, testSeed(), func(e *Emulator) { e.copyDuration = time.Hour })
	cli := h.client(t, demoKey())
	h.faults.Add(emucore.Rule{Provider: ProviderAppStream, Action: ActionStartTaskForDistributeImage, Kind: emucore.FaultLoseAnswer, Count: 1, Match: "cn-hangzhou"})
	body := map[string]any{"ImageId": "imgc-demodesk0001", "DestinationRegionList": []string{"cn-beijing", "cn-hangzhou"}}
	_, err := call(cli, AppStreamVersion, ActionStartTaskForDistributeImage, nil, body)
	var ce *openapi.ClientError
	var se *openapi.ServerError
	if err == nil || errors.As(err, &ce) || errors.As(err, &se) {
		t.Fatalf("want a transport error (the answer is lost), got %T %v", err, err)
	}
	calls := h.calls.Calls(ProviderAppStream, ActionStartTaskForDistributeImage)
	if len(calls) != 1 || calls[0].Outcome != "ok" || calls[0].Fault != emucore.FaultLoseAnswer || calls[0].HTTPStatus != 0 {
		t.Fatalf("call log %+v; want one call, outcome ok, fault lose-answer, no HTTP status", calls)
	}
	started := map[string]bool{}
	for _, d := range h.emu.Distributions("imgc-demodesk0001") {
		if d.TaskID != "" {
			started[d.RegionID] = true
		}
	}
	if !started["cn-beijing"] || !started["cn-hangzhou"] {
		t.Fatalf("distributions started in %v; want cn-beijing and cn-hangzhou", started)
	}
	_, err = call(cli, AppStreamVersion, ActionStartTaskForDistributeImage, nil, body)
	if code, _, _ := errCode(t, err); code != "ImageDistribute.RepeatedDistribution" {
		t.Fatalf("second start: %s; want ImageDistribute.RepeatedDistribution", code)
	}
}

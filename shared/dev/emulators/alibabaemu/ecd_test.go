package alibabaemu

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
)

func rebuild(t *testing.T, h *harness, query map[string]any) (rebuildResp, error) {
	t.Helper()
	b, err := call(h.client(t, demoKey()), EcdVersion, ActionRebuildDesktops, query, nil)
	if err != nil {
		return rebuildResp{}, err
	}
	return decode[rebuildResp](t, b), nil
}

func TestRebuildDesktopsRequestErrors(t *testing.T) {
	h := newHarness(t, testSeed())
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("ecd-demo%06d", i+1)
		}
		return out
	}
	tests := []struct {
		name  string
		query map[string]any
		code  string
	}{
		{"no region", map[string]any{"DesktopId": ids(1)}, "MissingParameter"},
		{"unknown region", map[string]any{"RegionId": "us-moon-1", "DesktopId": ids(1)}, "InvalidRegionId"},
		{"no desktops", map[string]any{"RegionId": "cn-shanghai"}, "MissingParameter"},
		{"21 desktops", map[string]any{"RegionId": "cn-shanghai", "DesktopId": ids(21)}, "InvalidParameter"},
		{"bad operate type", map[string]any{"RegionId": "cn-shanghai", "DesktopId": ids(1), "OperateType": "keep"}, "InvalidParameter"},
		{"bad language", map[string]any{"RegionId": "cn-shanghai", "DesktopId": ids(1), "Language": "fr-FR"}, "InvalidParameter"},
		{"bad after status", map[string]any{"RegionId": "cn-shanghai", "DesktopId": ids(1), "AfterStatus": "Hibernated"}, "InvalidParameter"},
		{"unknown image", map[string]any{"RegionId": "cn-shanghai", "DesktopId": ids(1), "ImageId": "m-nope"}, "InvalidImageId.NotFound"},
		{"image of another region", map[string]any{"RegionId": "cn-shanghai", "DesktopId": ids(1), "ImageId": "m-demohkw000001"}, "InvalidImageId.NotFound"},
		{"app image not yet in region", map[string]any{"RegionId": "cn-hongkong", "DesktopId": []string{"ecd-demohk0001"}, "ImageId": "imgc-demodesk0001"}, "InvalidImageId.NotFound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rebuild(t, h, tc.query)
			if code, status, _ := errCode(t, err); code != tc.code || status != 400 {
				t.Fatalf("got %s/%d, want %s/400", code, status, tc.code)
			}
		})
	}
	for _, d := range h.emu.Desktops("") {
		if d.Rebuilds != 0 {
			t.Errorf("a refused call rebuilt %s", d.DesktopID)
		}
	}
	// 20 desktops is the documented maximum and is accepted (per-desktop results follow).
	resp, err := rebuild(t, h, map[string]any{"RegionId": "cn-shanghai", "DesktopId": ids(20)})
	if err != nil || len(resp.RebuildResults) != 20 {
		t.Fatalf("20 desktops: %v %+v", err, resp)
	}
}

func TestRebuildDesktopsPerDesktopRules(t *testing.T) {
	h := newHarness(t, testSeed(), func(e *Emulator) { e.rebuildDuration = time.Hour })
	tests := []struct {
		name   string
		region string
		image  string
		lang   string
		want   map[string]string // desktop id → code
	}{
		{"windows image", "cn-shanghai", "m-demowin000002", "", map[string]string{
			"ecd-demo000001": RebuildSuccess,      // Running
			"ecd-demo000003": RebuildSuccess,      // Stopped
			"ecd-demo000008": CodeIncorrectStatus, // Pending
			"ecd-demo000007": CodeGPUMismatch,     // GPU desktop, non-GPU image
			"ecd-nothere001": CodeDesktopNotFound,
			"ecd-demohk0001": CodeDesktopNotFound, // another region
		}},
		{"gpu image to non-gpu desktop", "cn-shanghai", "m-demogpu000001", "", map[string]string{"ecd-demo000004": CodeGPUMismatch}},
		{"os change on the mainland", "cn-shanghai", "m-demolnx000001", "", map[string]string{"ecd-demo000002": RebuildSuccess}},
		{"linux takes english only", "cn-shanghai", "m-demolnx000001", "zh-CN", map[string]string{"ecd-demo000006": CodeLanguageNotSupported}},
		{"os change in hong kong", "cn-hongkong", "m-demohkl000001", "", map[string]string{"ecd-demohk0001": CodeOSChangeNotSupported}},
		{"same os in hong kong", "cn-hongkong", "m-demohkw000001", "", map[string]string{"ecd-demohk0002": RebuildSuccess}},
		{"already rebuilding", "cn-shanghai", "m-demowin000002", "", map[string]string{"ecd-demo000001": CodeIncorrectStatus}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ids []string
			for id := range tc.want {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			q := map[string]any{"RegionId": tc.region, "DesktopId": ids, "ImageId": tc.image}
			if tc.lang != "" {
				q["Language"] = tc.lang
			}
			resp, err := rebuild(t, h, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.RebuildResults) != len(ids) {
				t.Fatalf("results %+v", resp.RebuildResults)
			}
			for i, r := range resp.RebuildResults {
				if r.DesktopId != ids[i] || r.Code != tc.want[r.DesktopId] {
					t.Errorf("%s: %s (%s), want %s", r.DesktopId, r.Code, r.Message, tc.want[r.DesktopId])
				}
				if (r.Code == RebuildSuccess) != (r.Message == "") {
					t.Errorf("%s: message %q with code %s", r.DesktopId, r.Message, r.Code)
				}
			}
		})
	}
	if d, _ := h.emu.Desktop("ecd-demo000001"); d.Status != DesktopRebuilding || d.Rebuilds != 1 {
		t.Fatalf("accepted desktop %+v", d)
	}
	if d, _ := h.emu.Desktop("ecd-demo000007"); d.Status != DesktopRunning || d.Rebuilds != 0 {
		t.Fatalf("refused desktop %+v", d)
	}
}

func TestRebuildLifecycleAndDataDisk(t *testing.T) {
	h := newHarness(t, testSeed())
	h.faults.Add(emucore.Rule{Provider: ProviderEcd, Action: ActionRebuildDesktops, Kind: emucore.FaultFailCopy, Match: "ecd-demo000004"})
	cases := []struct {
		id, image, operate string
		dataDisk           string
		failed             bool
		finalStatus        string
		finalImage         string
	}{
		{"ecd-demo000001", "m-demowin000002", "", DataDiskKept, false, DesktopRunning, "m-demowin000002"},
		{"ecd-demo000002", "m-demolnx000001", "", DataDiskCleared, false, DesktopRunning, "m-demolnx000001"},
		{"ecd-demo000005", "m-demolnx000001", "replace", DataDiskReplaced, false, DesktopRunning, "m-demolnx000001"},
		{"ecd-demo000003", "m-demowin000002", "replace", DataDiskNone, false, DesktopRunning, "m-demowin000002"},
		{"ecd-demo000004", "m-demowin000002", "", DataDiskNone, true, DesktopStopped, "m-demowin000001"},
	}
	for _, c := range cases {
		q := map[string]any{"RegionId": "cn-shanghai", "DesktopId": []string{c.id}, "ImageId": c.image}
		if c.operate != "" {
			q["OperateType"] = c.operate
		}
		resp, err := rebuild(t, h, q)
		if err != nil || resp.RebuildResults[0].Code != RebuildSuccess {
			t.Fatalf("%s: %v %+v", c.id, err, resp)
		}
	}
	cli := h.client(t, demoKey())
	waitFor(t, 5*time.Second, "rebuilds to finish", func() bool {
		b, err := call(cli, EcdVersion, ActionDescribeDesktops, map[string]any{"RegionId": "cn-shanghai", "DesktopStatus": DesktopRebuilding}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return decode[describeResp](t, b).TotalCount == 0
	})
	for _, c := range cases {
		d, _ := h.emu.Desktop(c.id)
		if d.Status != c.finalStatus || d.ImageID != c.finalImage {
			t.Errorf("%s: %s on %s, want %s on %s", c.id, d.Status, d.ImageID, c.finalStatus, c.finalImage)
		}
		r := d.LastRebuild
		if r == nil || !r.Done || r.Failed != c.failed || r.DataDisk != c.dataDisk || r.ImageID != c.image {
			t.Errorf("%s: last rebuild %+v", c.id, r)
		}
	}
	if d, _ := h.emu.Desktop("ecd-demo000002"); d.OSType != "Linux" {
		t.Errorf("OS after rebuild onto a Linux image: %s", d.OSType)
	}
	// The finished desktops are found by their new image.
	b, err := call(cli, EcdVersion, ActionDescribeDesktops, map[string]any{"RegionId": "cn-shanghai", "ImageId": []string{"m-demolnx000001"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := decode[describeResp](t, b).TotalCount; got != 3 { // 000005 and 000006 were on it; 000002 moved to it
		t.Errorf("desktops on m-demolnx000001: %d", got)
	}
	calls := h.calls.Calls(ProviderEcd, ActionRebuildDesktops)
	if len(calls) != len(cases) || calls[0].Region != "cn-shanghai" || fmt.Sprint(calls[0].Params["DesktopId"]) != "[ecd-demo000001]" {
		t.Fatalf("call log %+v", calls)
	}
}

func TestRebuildOntoDistributedAppImage(t *testing.T) {
	h := newHarness(t, testSeed())
	cli := h.client(t, demoKey())
	if _, err := call(cli, AppStreamVersion, ActionStartTaskForDistributeImage, nil,
		map[string]any{"ImageId": "imgc-demodesk0001", "DestinationRegionList": []string{"cn-hongkong"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "distribution to cn-hongkong", func() bool {
		for _, d := range h.emu.Distributions("imgc-demodesk0001") {
			if d.RegionID == "cn-hongkong" {
				return d.Status == StatusAvailable
			}
		}
		return false
	})
	resp, err := rebuild(t, h, map[string]any{"RegionId": "cn-hongkong", "DesktopId": []string{"ecd-demohk0001"}, "ImageId": "imgc-demodesk0001"})
	if err != nil || resp.RebuildResults[0].Code != RebuildSuccess {
		t.Fatalf("%v %+v", err, resp)
	}
}

func TestDescribeDesktopsPagingAndFilters(t *testing.T) {
	seed := testSeed()
	for i := range 65 {
		d := Desktop{DesktopID: fmt.Sprintf("ecd-fleet%05d", i), Region: "cn-hangzhou", ImageID: "m-fleet0001", GroupID: "dg-fleet", Tags: map[string]string{"ring": "broad"}}
		if i%5 == 0 {
			d.Status, d.Tags["ring"] = DesktopStopped, "canary"
		}
		if i%13 == 0 {
			d.GPU = true
		}
		seed.Ecd.Desktops = append(seed.Ecd.Desktops, d)
	}
	h := newHarness(t, seed)
	cli := h.client(t, demoKey())
	var all []string
	token, pages := "", 0
	for {
		q := map[string]any{"RegionId": "cn-hangzhou", "MaxResults": 20}
		if token != "" {
			q["NextToken"] = token
		}
		b, err := call(cli, EcdVersion, ActionDescribeDesktops, q, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp := decode[describeResp](t, b)
		pages++
		if resp.TotalCount != 65 {
			t.Fatalf("TotalCount %d", resp.TotalCount)
		}
		for _, d := range resp.Desktops {
			all = append(all, d.DesktopId)
		}
		if token = resp.NextToken; token == "" {
			break
		}
	}
	if pages != 4 || len(all) != 65 || !slices.IsSorted(all) || len(slices.Compact(slices.Clone(all))) != 65 {
		t.Fatalf("pages %d, %d desktops", pages, len(all))
	}
	tests := []struct {
		name  string
		query map[string]any
		total int
		page  int
	}{
		{"default page size", map[string]any{}, 65, 10},
		{"status", map[string]any{"DesktopStatus": DesktopStopped, "MaxResults": 100}, 13, 13},
		{"tag", map[string]any{"Tag": []map[string]string{{"Key": "ring", "Value": "canary"}}, "MaxResults": 100}, 13, 13},
		{"ids", map[string]any{"DesktopId": []string{"ecd-fleet00001", "ecd-fleet00002", "ecd-demo000001"}}, 2, 2},
		{"group", map[string]any{"DesktopGroupId": "dg-fleet", "MaxResults": 5}, 65, 5},
		{"image", map[string]any{"ImageId": []string{"m-other"}}, 0, 0},
		{"legacy paging", map[string]any{"PageNumber": 7, "PageSize": 10}, 65, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := map[string]any{"RegionId": "cn-hangzhou"}
			for k, v := range tc.query {
				q[k] = v
			}
			b, err := call(cli, EcdVersion, ActionDescribeDesktops, q, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp := decode[describeResp](t, b)
			if resp.TotalCount != tc.total || len(resp.Desktops) != tc.page {
				t.Fatalf("total %d page %d, want %d %d", resp.TotalCount, len(resp.Desktops), tc.total, tc.page)
			}
		})
	}
	b, _ := call(cli, EcdVersion, ActionDescribeDesktops, map[string]any{"RegionId": "cn-hangzhou", "DesktopId": []string{"ecd-fleet00013"}}, nil)
	d := decode[describeResp](t, b).Desktops[0]
	if d.GpuCount != 1 || d.GpuCategory != 1 || d.DesktopGroupId != "dg-fleet" || d.OsType != "Windows" || len(d.Tags) != 1 || d.Disks[0].DiskType != "SYSTEM" {
		t.Fatalf("desktop fields %+v", d)
	}
	for _, q := range []map[string]any{
		{"RegionId": "cn-hangzhou", "MaxResults": 101},
		{"RegionId": "cn-hangzhou", "NextToken": "garbage!"},
		{"RegionId": "cn-hangzhou", "DesktopStatus": "Sleeping"},
		{},
	} {
		_, err := call(cli, EcdVersion, ActionDescribeDesktops, q, nil)
		if code, status, _ := errCode(t, err); status != 400 || (code != "InvalidParameter" && code != "MissingParameter") {
			t.Errorf("%v: %s/%d", q, code, status)
		}
	}
}

package rebuild_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/imagerelay/imagerelay/functions/rebuild"
	"github.com/imagerelay/imagerelay/functions/rebuild/rules"
)

func win(id string) rebuild.Desktop {
	return rebuild.Desktop{ID: id, Status: "Running", ImageID: "m-old", OSType: "Windows", Tags: map[string]string{"team": "design"}}
}

func TestDecide(t *testing.T) {
	target := rebuild.Target{Region: "cn-hangzhou", ImageID: "imgc-new", VersionID: "iv-2", OSType: "Windows"}
	pol := rules.DefaultPolicy()
	wipe := pol
	wipe.AllowDataDiskWipe = true
	replace := wipe
	replace.OperateType = "replace"
	replaceNoWipe := pol
	replaceNoWipe.OperateType = "replace"
	ja := pol
	ja.Language = "ja-JP"
	with := func(f func(*rebuild.Desktop)) rebuild.Desktop {
		d := win("ecd-1")
		f(&d)
		return d
	}
	tgt := func(f func(*rebuild.Target)) rebuild.Target {
		x := target
		f(&x)
		return x
	}
	tests := []struct {
		name   string
		pol    rebuild.Policy
		d      rebuild.Desktop
		t      rebuild.Target
		hist   rebuild.History
		reason string // substring; "" means rebuild
	}{
		{name: "running windows desktop", pol: pol, d: win("ecd-1"), t: target},
		{name: "stopped desktop", pol: pol, d: with(func(d *rebuild.Desktop) { d.Status = "Stopped" }), t: target},
		{name: "pending", pol: pol, d: with(func(d *rebuild.Desktop) { d.Status = "Pending" }), t: target, reason: "status is Pending"},
		{name: "rebuilding", pol: pol, d: with(func(d *rebuild.Desktop) { d.Status = "Rebuilding" }), t: target, reason: "only Running or Stopped"},
		{name: "already on image", pol: pol, d: with(func(d *rebuild.Desktop) { d.ImageID = "imgc-new" }), t: target, reason: "already on image imgc-new"},
		{name: "same id, same version known", pol: pol, d: with(func(d *rebuild.Desktop) { d.ImageID = "imgc-new" }), t: target,
			hist: rebuild.History{Versions: map[string]string{"ecd-1": "iv-2"}}, reason: "already on image"},
		{name: "same id, older version", pol: pol, d: with(func(d *rebuild.Desktop) { d.ImageID = "imgc-new" }), t: target,
			hist: rebuild.History{Versions: map[string]string{"ecd-1": "iv-1"}}},
		{name: "gpu desktop, non-gpu image", pol: pol, d: with(func(d *rebuild.Desktop) { d.GPU = true }), t: target, reason: "graphics desktop needs a GPU image"},
		{name: "non-gpu desktop, gpu image", pol: pol, d: win("ecd-1"), t: tgt(func(t *rebuild.Target) { t.GPU = true }), reason: "is a GPU image"},
		{name: "gpu desktop, gpu image", pol: pol, d: with(func(d *rebuild.Desktop) { d.GPU = true }), t: tgt(func(t *rebuild.Target) { t.GPU = true })},
		{name: "os change in mainland, no data disk", pol: pol, d: with(func(d *rebuild.Desktop) { d.OSType = "Linux" }), t: target},
		{name: "os change wipes data disk", pol: pol, d: with(func(d *rebuild.Desktop) { d.OSType = "Linux"; d.DataDisk = true }), t: target,
			reason: "would wipe the data disk"},
		{name: "os change with data disk allowed", pol: wipe, d: with(func(d *rebuild.Desktop) { d.OSType = "Linux"; d.DataDisk = true }), t: target},
		{name: "os change in hong kong", pol: wipe, d: with(func(d *rebuild.Desktop) { d.OSType = "Linux" }),
			t: tgt(func(t *rebuild.Target) { t.Region = "cn-hongkong" }), reason: "which cn-hongkong does not allow"},
		{name: "os change abroad", pol: wipe, d: with(func(d *rebuild.Desktop) { d.OSType = "Linux" }),
			t: tgt(func(t *rebuild.Target) { t.Region = "ap-southeast-1" }), reason: "which ap-southeast-1 does not allow"},
		{name: "same os abroad", pol: pol, d: win("ecd-1"), t: tgt(func(t *rebuild.Target) { t.Region = "ap-southeast-1" })},
		{name: "unknown os abroad", pol: wipe, d: win("ecd-1"), t: tgt(func(t *rebuild.Target) { t.Region = "cn-hongkong"; t.OSType = "" }),
			reason: "OS type is unknown"},
		{name: "unknown os with data disk", pol: pol, d: with(func(d *rebuild.Desktop) { d.DataDisk = true }), t: tgt(func(t *rebuild.Target) { t.OSType = "" }),
			reason: "could wipe the data disk"},
		{name: "unknown os, no data disk, mainland", pol: pol, d: win("ecd-1"), t: tgt(func(t *rebuild.Target) { t.OSType = "" })},
		{name: "same os keeps data disk", pol: pol, d: with(func(d *rebuild.Desktop) { d.DataDisk = true }), t: target},
		{name: "replace without consent", pol: replaceNoWipe, d: with(func(d *rebuild.Desktop) { d.DataDisk = true }), t: target,
			reason: `operateType "replace" would replace the data disk`},
		{name: "replace with consent", pol: replace, d: with(func(d *rebuild.Desktop) { d.DataDisk = true }), t: target},
		{name: "replace, no data disk", pol: replaceNoWipe, d: win("ecd-1"), t: target},
		{name: "linux image, ja-JP", pol: ja, d: with(func(d *rebuild.Desktop) { d.OSType = "Linux" }), t: tgt(func(t *rebuild.Target) { t.OSType = "Linux" }),
			reason: "not available on Linux"},
		{name: "windows image, ja-JP", pol: ja, d: win("ecd-1"), t: target},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rebuild.Decide(tt.pol, tt.d, tt.t, tt.hist)
			if tt.reason == "" && got != "" {
				t.Fatalf("skipped: %s", got)
			}
			if tt.reason != "" && !strings.Contains(got, tt.reason) {
				t.Fatalf("reason %q, want it to contain %q", got, tt.reason)
			}
		})
	}
}

func TestSelects(t *testing.T) {
	target := rebuild.Target{Region: "cn-hangzhou", ImageID: "imgc-new", VersionID: "iv-2"}
	d := win("ecd-1")
	d.GroupID = "dg-1"
	hist := rebuild.History{OlderImageIDs: map[string]bool{"m-old": true}}
	tests := []struct {
		name string
		sel  rebuild.Selector
		d    rebuild.Desktop
		hist rebuild.History
		want bool
	}{
		{name: "empty selector selects nothing", sel: rebuild.Selector{}, d: d},
		{name: "by id", sel: rebuild.Selector{IDs: []string{"ecd-1"}}, d: d, want: true},
		{name: "other id", sel: rebuild.Selector{IDs: []string{"ecd-2"}}, d: d},
		{name: "by tag", sel: rebuild.Selector{Tags: map[string]string{"team": "design"}}, d: d, want: true},
		{name: "tag value differs", sel: rebuild.Selector{Tags: map[string]string{"team": "dev"}}, d: d},
		{name: "tag missing", sel: rebuild.Selector{Tags: map[string]string{"ring": "canary"}}, d: d},
		{name: "by group", sel: rebuild.Selector{GroupID: "dg-1"}, d: d, want: true},
		{name: "other group", sel: rebuild.Selector{GroupID: "dg-2"}, d: d},
		{name: "all fields must hold", sel: rebuild.Selector{IDs: []string{"ecd-1"}, GroupID: "dg-2"}, d: d},
		{name: "older copy", sel: rebuild.Selector{OlderVersionOfImage: true}, d: d, hist: hist, want: true},
		{name: "not an older copy", sel: rebuild.Selector{OlderVersionOfImage: true}, d: d},
		{name: "same id, older version", sel: rebuild.Selector{OlderVersionOfImage: true}, d: rebuild.Desktop{ID: "ecd-1", ImageID: "imgc-new"},
			hist: rebuild.History{Versions: map[string]string{"ecd-1": "iv-1"}}, want: true},
		{name: "same id, unknown version", sel: rebuild.Selector{OlderVersionOfImage: true}, d: rebuild.Desktop{ID: "ecd-1", ImageID: "imgc-new"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rebuild.Selects(tt.sel, tt.d, target, tt.hist); got != tt.want {
				t.Fatalf("Selects = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMakePlanBatches(t *testing.T) {
	var fleet []rebuild.Desktop
	for i := range 30 {
		d := win(fmt.Sprintf("ecd-%03d", i))
		switch i % 10 {
		case 3:
			d.Tags["team"] = "dev" // not selected
		case 7:
			d.Status = "Pending" // selected, skipped
		}
		fleet = append(fleet, d)
	}
	slices.Reverse(fleet) // the plan orders by id whatever the listing order
	target := rebuild.Target{Region: "cn-hangzhou", ImageID: "imgc-new", OSType: "Windows"}
	tests := []struct {
		name          string
		canary, batch int
		sizes         []int
	}{
		{name: "canary 1, batches of 20", canary: 1, batch: 20, sizes: []int{1, 20, 3}},
		{name: "canary 2, batches of 5", canary: 2, batch: 5, sizes: []int{2, 5, 5, 5, 5, 2}},
		{name: "no canary", canary: 0, batch: 10, sizes: []int{0, 10, 10, 4}},
		{name: "batch size above the API limit", canary: 0, batch: 50, sizes: []int{0, 20, 4}},
		{name: "canary above the API limit", canary: 30, batch: 20, sizes: []int{20, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := rules.DefaultPolicy()
			p.Desktops.Tags = map[string]string{"team": "design"}
			p.Canary, p.BatchSize = tt.canary, tt.batch
			plan := rebuild.MakePlan(p, target, fleet, rebuild.History{})
			var sizes []int
			for _, b := range plan.Batches {
				sizes = append(sizes, len(b))
			}
			if !slices.Equal(sizes, tt.sizes) {
				t.Fatalf("batch sizes %v, want %v", sizes, tt.sizes)
			}
			if len(plan.Decisions) != 27 || plan.Skipped() != 3 {
				t.Fatalf("%d decisions, %d skipped; want 27 and 3", len(plan.Decisions), plan.Skipped())
			}
			inBatch := map[string]int{}
			for i, b := range plan.Batches {
				for _, id := range b {
					inBatch[id] = i
				}
			}
			for i, dec := range plan.Decisions {
				if i > 0 && plan.Decisions[i-1].DesktopID >= dec.DesktopID {
					t.Fatalf("decisions not in id order at %s", dec.DesktopID)
				}
				if strings.HasSuffix(dec.DesktopID, "3") {
					t.Fatalf("unselected desktop %s is in the plan", dec.DesktopID)
				}
				switch dec.Action {
				case rebuild.ActionRebuild:
					if b, ok := inBatch[dec.DesktopID]; !ok || b != dec.Batch {
						t.Fatalf("%s decided for batch %d, planned in %d (%v)", dec.DesktopID, dec.Batch, b, ok)
					}
				case rebuild.ActionSkip:
					if _, ok := inBatch[dec.DesktopID]; ok || dec.Reason == "" {
						t.Fatalf("skipped %s is in a batch or has no reason", dec.DesktopID)
					}
				default:
					t.Fatalf("action %q", dec.Action)
				}
			}
		})
	}
}

package rebuild

import (
	"fmt"
	"slices"
	"strings"

	"github.com/imagerelay/imagerelay/events"
)

// Decision actions.
const (
	ActionRebuild = "rebuild"
	ActionSkip    = "skip"
)

// GPUTag is the image tag that marks a GPU (graphics) image: `gpu: "true"` on the published
// image. The replication events do not say whether an image is a GPU image, and Elastic
// Desktop Service refuses to put a GPU image on a non-graphics desktop or the reverse, so
// an image without the tag is taken to be a non-GPU image and graphics desktops are skipped.
const GPUTag = "gpu"

// Target is the image the desktops of one region are rebuilt onto.
type Target struct {
	Region string
	// ImageID is the destination image id (for Alibaba App Streaming, the imgc- id itself).
	ImageID string
	// VersionID is the image version the replication copied.
	VersionID string
	// OSType is Windows or Linux, or "" when the publisher did not say.
	OSType string
	// GPU is true for a GPU image (see GPUTag).
	GPU bool
}

// History is what imagerelay knows about the desktops' current images beyond what the
// provider lists: which image ids are older copies of the same source image, and which
// version imagerelay last rebuilt a desktop onto.
type History struct {
	// OlderImageIDs are destination image ids of earlier versions of the same source image
	// in this region.
	OlderImageIDs map[string]bool
	// Versions maps a desktop id to the image version imagerelay last rebuilt it onto, for
	// desktops whose image id is the target's (App Streaming keeps the id across versions).
	Versions map[string]string
}

// Plan is the outcome of planning a rollout.
type Plan struct {
	// Decisions has one entry per selected desktop, ordered by desktop id. Desktops the
	// policy does not select are not in the plan at all.
	Decisions []events.RebuildDecision
	// Batches lists the desktops to rebuild per batch; Batches[0] is the canary (empty when
	// the policy has no canary).
	Batches [][]string
}

// Skipped counts the skip decisions.
func (p Plan) Skipped() int {
	n := 0
	for _, d := range p.Decisions {
		if d.Action == ActionSkip {
			n++
		}
	}
	return n
}

// Selects reports whether the policy's desktop selector selects d. Every set field must
// hold; a selector with nothing set selects nothing (a rebuild wipes system disks, so it
// never defaults to every desktop).
func Selects(sel Selector, d Desktop, t Target, h History) bool {
	if sel.IsZero() {
		return false
	}
	if len(sel.IDs) > 0 && !slices.Contains(sel.IDs, d.ID) {
		return false
	}
	for k, v := range sel.Tags {
		if got, ok := d.Tags[k]; !ok || got != v {
			return false
		}
	}
	if sel.GroupID != "" && d.GroupID != sel.GroupID {
		return false
	}
	if sel.OlderVersionOfImage && !onOlderVersion(d, t, h) {
		return false
	}
	return true
}

// onOlderVersion reports whether d runs an older copy of the target's source image.
func onOlderVersion(d Desktop, t Target, h History) bool {
	if d.ImageID != t.ImageID && h.OlderImageIDs[d.ImageID] {
		return true
	}
	v, ok := h.Versions[d.ID]
	return d.ImageID == t.ImageID && ok && v != "" && v != t.VersionID
}

// Mainland reports whether region is in the Chinese mainland, the only place where a
// rebuild may change a desktop's operating system (not in Hong Kong, not abroad).
func Mainland(region string) bool {
	return strings.HasPrefix(region, "cn-") && region != "cn-hongkong"
}

// Decide returns why desktop d, selected by the policy, must be skipped, or "" to rebuild it.
// The rules mirror what RebuildDesktops refuses or what it would destroy:
//   - only Running or Stopped desktops can be rebuilt;
//   - a desktop already on the image is left alone;
//   - graphics desktops take GPU images only, other desktops non-GPU images only;
//   - the OS may change only in the Chinese mainland (not Hong Kong, not abroad);
//   - an OS change wipes the data disk, and OperateType "replace" replaces it: either needs
//     allowDataDiskWipe;
//   - Linux images take the language en-US only.
func Decide(p Policy, d Desktop, t Target, h History) string {
	if d.Status != StatusRunning && d.Status != StatusStopped {
		return fmt.Sprintf("status is %s; only Running or Stopped desktops can be rebuilt", orUnknown(d.Status))
	}
	if d.ImageID == t.ImageID && !onOlderVersion(d, t, h) {
		return "already on image " + t.ImageID
	}
	switch {
	case d.GPU && !t.GPU:
		return fmt.Sprintf("graphics desktop needs a GPU image; %s is not marked as one (tag %s: \"true\")", t.ImageID, GPUTag)
	case !d.GPU && t.GPU:
		return fmt.Sprintf("%s is a GPU image; only graphics desktops can use it", t.ImageID)
	}
	osKnown := t.OSType != "" && d.OSType != ""
	osChange := osKnown && !strings.EqualFold(t.OSType, d.OSType)
	if !Mainland(t.Region) {
		if osChange {
			return fmt.Sprintf("would change the OS from %s to %s, which %s does not allow (only the Chinese mainland does)", d.OSType, t.OSType, t.Region)
		}
		if !osKnown {
			return fmt.Sprintf("the image's OS type is unknown, so an OS change, which %s does not allow, cannot be ruled out (publish the image with osType)", t.Region)
		}
	}
	if d.DataDisk && !p.AllowDataDiskWipe {
		switch {
		case p.OperateType == "replace":
			return `operateType "replace" would replace the data disk; set allowDataDiskWipe: true to allow it`
		case osChange:
			return fmt.Sprintf("changing the OS from %s to %s would wipe the data disk; set allowDataDiskWipe: true to allow it", d.OSType, t.OSType)
		case !osKnown:
			return "the image's OS type is unknown, so a rebuild could wipe the data disk (publish the image with osType, or set allowDataDiskWipe: true)"
		}
	}
	if p.Language != "" && p.Language != "en-US" && strings.EqualFold(t.OSType, "Linux") {
		return fmt.Sprintf("language %s is not available on Linux images (en-US only)", p.Language)
	}
	return ""
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// MakePlan decides for every listed desktop the policy selects, in desktop id order, and cuts
// the desktops to rebuild into the canary batch (batch 0) and batches of the policy's size.
// Desktops the selector does not select never appear in the plan.
func MakePlan(p Policy, t Target, listed []Desktop, h History) Plan {
	p = p.WithDefaults() // idempotent; MakePlan is also called on policies New did not build
	desktops := slices.Clone(listed)
	slices.SortFunc(desktops, func(a, b Desktop) int { return strings.Compare(a.ID, b.ID) })
	desktops = slices.CompactFunc(desktops, func(a, b Desktop) bool { return a.ID == b.ID })
	var plan Plan
	var rebuild []string
	for _, d := range desktops {
		if !Selects(p.Desktops, d, t, h) {
			continue
		}
		if why := Decide(p, d, t, h); why != "" {
			plan.Decisions = append(plan.Decisions, events.RebuildDecision{DesktopID: d.ID, Action: ActionSkip, Reason: why})
			continue
		}
		rebuild = append(rebuild, d.ID)
	}
	canary := min(p.Canary, len(rebuild))
	size := p.BatchSize
	plan.Batches = append(plan.Batches, slices.Clone(rebuild[:canary]))
	for chunk := range slices.Chunk(rebuild[canary:], size) {
		plan.Batches = append(plan.Batches, slices.Clone(chunk))
	}
	batchOf := map[string]int{}
	for i, b := range plan.Batches {
		for _, id := range b {
			batchOf[id] = i
		}
	}
	for _, id := range rebuild {
		reason := fmt.Sprintf("batch %d of %d", batchOf[id], len(plan.Batches)-1)
		if batchOf[id] == 0 {
			reason = "canary"
		}
		plan.Decisions = append(plan.Decisions, events.RebuildDecision{DesktopID: id, Action: ActionRebuild, Reason: reason, Batch: batchOf[id]})
	}
	slices.SortStableFunc(plan.Decisions, func(a, b events.RebuildDecision) int { return strings.Compare(a.DesktopID, b.DesktopID) })
	return plan
}

// serverFilter is the part of the selector DescribeDesktops can apply itself. It only ever
// narrows the listing; Selects checks every rule again on the answer.
func serverFilter(sel Selector) DesktopFilter {
	return DesktopFilter{DesktopIDs: slices.Clone(sel.IDs), GroupID: sel.GroupID, Tags: sel.Tags}
}

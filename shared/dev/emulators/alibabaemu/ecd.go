package alibabaemu

import (
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Desktop statuses (DescribeDesktops DesktopStatus).
const (
	DesktopPending    = "Pending"
	DesktopStarting   = "Starting"
	DesktopRunning    = "Running"
	DesktopStopping   = "Stopping"
	DesktopStopped    = "Stopped"
	DesktopRebuilding = "Rebuilding"
	DesktopExpired    = "Expired"
	DesktopDeleted    = "Deleted"
)

// Per-desktop RebuildDesktops result codes. "success" and IncorrectDesktopStatus are
// documented; the others are this emulator's names (inferred) for the documented rules.
const (
	RebuildSuccess           = "success"
	CodeIncorrectStatus      = "IncorrectDesktopStatus"
	CodeDesktopNotFound      = "InvalidDesktopId.NotFound"
	CodeGPUMismatch          = "InvalidImage.GpuMismatch"
	CodeOSChangeNotSupported = "InvalidImage.OsChangeNotSupported"
	CodeLanguageNotSupported = "InvalidParameter.Language"
)

// Data disk outcomes of a rebuild (RebuildRecord.DataDisk).
const (
	DataDiskNone     = "none"     // the desktop has no data disk
	DataDiskKept     = "kept"     // same OS, no OperateType: data and snapshots kept
	DataDiskReplaced = "replaced" // OperateType replace
	DataDiskCleared  = "cleared"  // OS changed, no OperateType: data disk wiped
)

const (
	maxRebuildDesktops  = 20
	maxDescribeResults  = 100
	defaultMaxResults   = 10
	maxDescribeDesktops = 100
)

var (
	desktopStatuses = []string{DesktopPending, DesktopStarting, DesktopRunning, DesktopStopping, DesktopStopped, DesktopRebuilding, DesktopExpired, DesktopDeleted}
	languages       = []string{"en-US", "zh-HK", "zh-CN", "ja-JP"}
)

// RebuildRecord is what the emulator remembers of a desktop's latest accepted rebuild.
type RebuildRecord struct {
	PreviousImageID string `json:"previousImageId"`
	ImageID         string `json:"imageId"`
	OperateType     string `json:"operateType,omitempty"`
	Language        string `json:"language,omitempty"`
	OSChanged       bool   `json:"osChanged"`
	// DataDisk is what the rebuild does to the data disk: none, kept, replaced or cleared.
	DataDisk   string    `json:"dataDisk"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// Done is true once the desktop left Rebuilding; Failed when a fail-copy fault made the
	// rebuild fail, in which case the desktop is Stopped on its previous image.
	Done   bool `json:"done"`
	Failed bool `json:"failed"`
}

// DesktopState is a snapshot of a desktop for tests and operators.
type DesktopState struct {
	Desktop
	// Rebuilds counts the rebuilds accepted for this desktop.
	Rebuilds    int            `json:"rebuilds"`
	LastRebuild *RebuildRecord `json:"lastRebuild,omitempty"`
}

// desktop is the emulator's record of one cloud computer.
type desktop struct {
	Desktop
	created  time.Time
	rebuilds int
	last     *RebuildRecord
	pending  *rebuildOp
}

// rebuildOp is a rebuild in progress.
type rebuildOp struct {
	start       time.Time
	imageID     string
	osType      string
	afterStatus string
	fail        bool
}

// imageInfo is what a rebuild needs to know of its target image.
type imageInfo struct {
	osType string
	gpu    bool
}

// AddDesktop adds a desktop, for example to build a large fleet in a test.
func (e *Emulator) AddDesktop(d Desktop) error {
	if !strings.HasPrefix(d.DesktopID, "ecd-") || len(d.DesktopID) < 5 {
		return fmt.Errorf("desktopId %q must look like ecd-xxxxxxxx", d.DesktopID)
	}
	if d.Region == "" {
		return fmt.Errorf("desktop %s: region is required", d.DesktopID)
	}
	if d.ImageID == "" {
		return fmt.Errorf("desktop %s: imageId is required", d.DesktopID)
	}
	defaultTo(&d.Status, DesktopRunning)
	defaultTo(&d.OSType, "Windows")
	defaultTo(&d.Name, d.DesktopID)
	if !slices.Contains(desktopStatuses, d.Status) {
		return fmt.Errorf("desktop %s: status %q must be one of %v", d.DesktopID, d.Status, desktopStatuses)
	}
	if d.OSType != "Windows" && d.OSType != "Linux" {
		return fmt.Errorf("desktop %s: osType %q must be Windows or Linux", d.DesktopID, d.OSType)
	}
	d.Tags = maps.Clone(d.Tags)
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, dup := e.desktops[d.DesktopID]; dup {
		return fmt.Errorf("desktop %s is listed twice", d.DesktopID)
	}
	e.desktops[d.DesktopID] = &desktop{Desktop: d, created: e.now().UTC()}
	e.ecdRegions[d.Region] = true
	return nil
}

func (e *Emulator) addEcdImage(img EcdImage) error {
	if !strings.HasPrefix(img.ID, "m-") || len(img.ID) < 3 {
		return fmt.Errorf("id %q must look like m-xxxxxxxx", img.ID)
	}
	if img.Region == "" {
		return fmt.Errorf("image %s: region is required", img.ID)
	}
	defaultTo(&img.OSType, "Windows")
	if img.OSType != "Windows" && img.OSType != "Linux" {
		return fmt.Errorf("image %s: osType %q must be Windows or Linux", img.ID, img.OSType)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ecdImages[img.Region+"/"+img.ID] = img
	e.ecdRegions[img.Region] = true
	return nil
}

// Desktop returns a snapshot of one desktop.
func (e *Emulator) Desktop(id string) (DesktopState, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.desktops[id]
	if d == nil {
		return DesktopState{}, false
	}
	e.settle(d, e.now())
	return snapshot(d), true
}

// Desktops returns snapshots of the desktops of a region ("" = every region), by id.
func (e *Emulator) Desktops(region string) []DesktopState {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	var out []DesktopState
	for _, id := range slices.Sorted(maps.Keys(e.desktops)) {
		d := e.desktops[id]
		if region == "" || d.Region == region {
			e.settle(d, now)
			out = append(out, snapshot(d))
		}
	}
	return out
}

func snapshot(d *desktop) DesktopState {
	s := DesktopState{Desktop: d.Desktop, Rebuilds: d.rebuilds}
	s.Tags = maps.Clone(d.Tags)
	if d.last != nil {
		r := *d.last
		s.LastRebuild = &r
	}
	return s
}

// settle finishes a rebuild whose time is up: Running (or AfterStatus) on the new image, or,
// when a fail-copy fault hit it, Stopped on the previous image. Callers hold e.mu.
func (e *Emulator) settle(d *desktop, now time.Time) {
	op := d.pending
	if op == nil || now.Before(op.start.Add(e.rebuildDuration)) {
		return
	}
	d.pending = nil
	d.last.Done = true
	d.last.FinishedAt = op.start.Add(e.rebuildDuration).UTC()
	if op.fail {
		d.last.Failed = true
		d.Status = DesktopStopped
		return
	}
	d.ImageID, d.OSType = op.imageID, op.osType
	d.Status = DesktopRunning
	if op.afterStatus != "" {
		d.Status = op.afterStatus
	}
}

// lookupImage finds a rebuild target in region: an Ecd image, or a WUYING image that is
// AVAILABLE there. Callers hold e.mu.
func (e *Emulator) lookupImage(region, id string, now time.Time) (imageInfo, bool) {
	if img, ok := e.ecdImages[region+"/"+id]; ok {
		return imageInfo{osType: img.OSType, gpu: img.GPU}, true
	}
	if img := e.images[id]; img != nil {
		for i := len(img.versions) - 1; i >= 0; i-- {
			v := img.versions[i]
			if e.holds(img, v.VersionID, region, now) {
				return imageInfo{osType: v.OSType, gpu: v.GPU}, true
			}
		}
	}
	return imageInfo{}, false
}

// mainland reports whether region is in the Chinese mainland, where a rebuild may change the
// operating system.
func mainland(region string) bool {
	return strings.HasPrefix(region, "cn-") && region != "cn-hongkong"
}

// checkRegion validates RegionId for an Ecd call.
func (e *Emulator) checkRegion(region string) *apiError {
	if region == "" {
		return badRequest("MissingParameter", "The input parameter RegionId that is mandatory for processing this request is not supplied.")
	}
	if !e.ecdRegions[region] {
		return badRequest("InvalidRegionId", "The specified region %s does not exist or Elastic Desktop Service is not offered there.", region)
	}
	return nil
}

// rebuildDesktops replaces the image of 1–20 desktops. Request-level problems (missing or
// unknown RegionId, no DesktopId: MissingParameter; more than 20 DesktopId, a value outside
// the OperateType/Language/AfterStatus enums: InvalidParameter; an ImageId not usable in the
// region: InvalidImageId.NotFound) are HTTP 400 and start nothing. Otherwise every desktop
// gets its own result in an HTTP 200: "success", or IncorrectDesktopStatus (not Running or
// Stopped), InvalidDesktopId.NotFound, InvalidImage.GpuMismatch (GPU image for a non-GPU
// desktop or the reverse), InvalidImage.OsChangeNotSupported (a different OS outside the
// Chinese mainland or in cn-hongkong), InvalidParameter.Language (Linux takes en-US only).
func (e *Emulator) rebuildDesktops(req *request) (map[string]any, *apiError) {
	p := req.params
	region := p.get("RegionId")
	if aerr := e.checkRegion(region); aerr != nil {
		return nil, aerr
	}
	ids := p.list("DesktopId")
	switch {
	case len(ids) == 0:
		return nil, badRequest("MissingParameter", "The input parameter DesktopId that is mandatory for processing this request is not supplied.")
	case len(ids) > maxRebuildDesktops:
		return nil, badRequest("InvalidParameter", "The specified parameter DesktopId is not valid: you can specify 1 to %d desktop IDs, not %d.", maxRebuildDesktops, len(ids))
	}
	operate := p.get("OperateType")
	if operate != "" && operate != "replace" {
		return nil, badRequest("InvalidParameter", "The specified parameter OperateType %q is not valid; the only value is replace.", operate)
	}
	lang := p.get("Language")
	if lang != "" && !slices.Contains(languages, lang) {
		return nil, badRequest("InvalidParameter", "The specified parameter Language %q is not valid; use one of %s.", lang, strings.Join(languages, ", "))
	}
	after := p.get("AfterStatus")
	if after != "" && after != DesktopRunning && after != DesktopStopped {
		return nil, badRequest("InvalidParameter", "The specified parameter AfterStatus %q is not valid; use Running or Stopped.", after)
	}
	imageID := p.get("ImageId")
	e.mu.Lock()
	defer e.mu.Unlock()
	var target *imageInfo
	if imageID != "" {
		info, ok := e.lookupImage(region, imageID, req.now)
		if !ok {
			return nil, badRequest("InvalidImageId.NotFound", "The specified image %s does not exist or is not available in region %s.", imageID, region)
		}
		target = &info
	}
	results := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		code, msg := e.rebuildOne(req, region, id, imageID, target, operate, lang, after)
		res := map[string]any{"DesktopId": id, "Code": code}
		if code != RebuildSuccess {
			res["Message"] = msg
		}
		results = append(results, res)
	}
	return map[string]any{"RebuildResults": results}, nil
}

// rebuildOne applies the per-desktop rules and starts the rebuild. Callers hold e.mu.
func (e *Emulator) rebuildOne(req *request, region, id, imageID string, target *imageInfo, operate, lang, after string) (code, msg string) {
	d := e.desktops[id]
	if d == nil || d.Region != region {
		return CodeDesktopNotFound, fmt.Sprintf("The specified desktop %s does not exist in region %s.", id, region)
	}
	e.settle(d, req.now)
	if d.Status != DesktopRunning && d.Status != DesktopStopped {
		return CodeIncorrectStatus, "The current status of the desktop does not support this operation."
	}
	info := imageInfo{osType: d.OSType, gpu: d.GPU}
	newImage := d.ImageID
	if target != nil {
		info, newImage = *target, imageID
	}
	if info.gpu != d.GPU {
		if d.GPU {
			return CodeGPUMismatch, "Graphics cloud computers must use GPU images."
		}
		return CodeGPUMismatch, "Non-graphics cloud computers can only use non-GPU images."
	}
	osChanged := info.osType != d.OSType
	if osChanged && !mainland(region) {
		return CodeOSChangeNotSupported, fmt.Sprintf("Cloud computers in %s cannot switch to an image with a different operating system (%s to %s).", region, d.OSType, info.osType)
	}
	if lang != "" && info.osType == "Linux" && lang != "en-US" {
		return CodeLanguageNotSupported, "Linux cloud computers support only the en-US language."
	}
	disk := DataDiskNone
	switch {
	case !d.DataDisk:
	case operate == "replace":
		disk = DataDiskReplaced
	case osChanged:
		disk = DataDiskCleared
	default:
		disk = DataDiskKept
	}
	d.pending = &rebuildOp{start: req.now, imageID: newImage, osType: info.osType, afterStatus: after,
		fail: req.failKeys[id]}
	d.last = &RebuildRecord{PreviousImageID: d.ImageID, ImageID: newImage, OperateType: operate, Language: lang,
		OSChanged: osChanged, DataDisk: disk, StartedAt: req.now.UTC()}
	d.rebuilds++
	d.Status = DesktopRebuilding
	return RebuildSuccess, ""
}

// describeDesktops lists the desktops of a region. Filters: DesktopId.N (at most 100),
// ImageId.N, DesktopStatus, DesktopStatusList.N, DesktopName (substring), OsTypes.N,
// DesktopGroupId (or GroupId), Tag.N.Key/Value (all must match). Paging: MaxResults (1–100,
// default 10) with NextToken, or the legacy PageNumber/PageSize; TotalCount counts every
// match.
func (e *Emulator) describeDesktops(req *request) (map[string]any, *apiError) {
	p := req.params
	region := p.get("RegionId")
	if aerr := e.checkRegion(region); aerr != nil {
		return nil, aerr
	}
	ids := p.list("DesktopId")
	if len(ids) > maxDescribeDesktops {
		return nil, badRequest("InvalidParameter", "The specified parameter DesktopId is not valid: you can specify at most %d desktop IDs.", maxDescribeDesktops)
	}
	imageIDs := p.list("ImageId")
	statuses := p.list("DesktopStatusList")
	if s := p.get("DesktopStatus"); s != "" {
		statuses = append(statuses, s)
	}
	for _, s := range statuses {
		if !slices.Contains(desktopStatuses, s) {
			return nil, badRequest("InvalidParameter", "The specified parameter DesktopStatus %q is not valid; use one of %s.", s, strings.Join(desktopStatuses, ", "))
		}
	}
	osTypes := p.list("OsTypes")
	group := p.get("DesktopGroupId")
	if group == "" {
		group = p.get("GroupId")
	}
	name := p.get("DesktopName")
	tags := p.listMaps("Tag")
	pageMode := !p.has("MaxResults") && !p.has("NextToken") && (p.has("PageNumber") || p.has("PageSize"))
	var offset, limit, pageNumber int
	var aerr *apiError
	if pageMode {
		if pageNumber, aerr = p.intParam("PageNumber", 1, 1, 1<<20); aerr != nil {
			return nil, aerr
		}
		if limit, aerr = p.intParam("PageSize", defaultMaxResults, 1, maxDescribeResults); aerr != nil {
			return nil, aerr
		}
		offset = (pageNumber - 1) * limit
	} else {
		if limit, aerr = p.intParam("MaxResults", defaultMaxResults, 1, maxDescribeResults); aerr != nil {
			return nil, aerr
		}
		if tok := p.get("NextToken"); tok != "" {
			var ok bool
			if offset, ok = decodeToken(tok); !ok {
				return nil, badRequest("InvalidParameter", "The specified parameter NextToken is not valid.")
			}
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var matched []*desktop
	for _, id := range slices.Sorted(maps.Keys(e.desktops)) {
		d := e.desktops[id]
		if d.Region != region {
			continue
		}
		e.settle(d, req.now)
		switch {
		case len(ids) > 0 && !slices.Contains(ids, d.DesktopID),
			len(imageIDs) > 0 && !slices.Contains(imageIDs, d.ImageID),
			len(statuses) > 0 && !slices.Contains(statuses, d.Status),
			len(osTypes) > 0 && !slices.ContainsFunc(osTypes, func(o string) bool { return strings.EqualFold(o, d.OSType) }),
			group != "" && group != d.GroupID,
			name != "" && !strings.Contains(d.Name, name),
			!tagsMatch(d.Tags, tags):
			continue
		}
		matched = append(matched, d)
	}
	from := min(len(matched), offset)
	to := min(len(matched), from+limit)
	out := make([]map[string]any, 0, to-from)
	for _, d := range matched[from:to] {
		out = append(out, desktopJSON(d))
	}
	resp := map[string]any{"TotalCount": len(matched), "Desktops": out}
	if pageMode {
		resp["PageNumber"], resp["PageSize"] = pageNumber, limit
	} else {
		next := ""
		if to < len(matched) {
			next = encodeToken(to)
		}
		resp["NextToken"] = next
	}
	return resp, nil
}

// Paging tokens are opaque to clients; inside they are the offset of the next page.
func encodeToken(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("ecd-page:" + strconv.Itoa(offset)))
}

func decodeToken(tok string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, false
	}
	s, ok := strings.CutPrefix(string(b), "ecd-page:")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

// desktopJSON renders one desktop as a DescribeDesktops entry.
func desktopJSON(d *desktop) map[string]any {
	platform, desktopType, cpu, memory := "Windows Server 2022", "eds.enterprise_office.4c8g", 4, 8192
	if d.OSType == "Linux" {
		platform = "Ubuntu"
	}
	gpuCount, gpuCategory, gpuSpec := 0.0, 0, ""
	if d.GPU {
		gpuCount, gpuCategory, gpuSpec = 1, 1, "NVIDIA T4"
		desktopType, cpu, memory = "eds.graphics.8c32g", 8, 32768
	}
	tags := make([]map[string]string, 0, len(d.Tags))
	for _, k := range slices.Sorted(maps.Keys(d.Tags)) {
		tags = append(tags, map[string]string{"Key": k, "Value": d.Tags[k], "Scope": "Custom"})
	}
	disks := []map[string]any{{"DiskId": "d-" + strings.TrimPrefix(d.DesktopID, "ecd-") + "s", "DiskType": "SYSTEM", "DiskSize": 80, "PerformanceLevel": "PL0"}}
	if d.DataDisk {
		disks = append(disks, map[string]any{"DiskId": "d-" + strings.TrimPrefix(d.DesktopID, "ecd-") + "d", "DiskType": "DATA", "DiskSize": 100, "PerformanceLevel": "PL0"})
	}
	return map[string]any{
		"DesktopId": d.DesktopID, "DesktopName": d.Name, "DesktopStatus": d.Status, "ImageId": d.ImageID,
		"OsType": d.OSType, "Platform": platform, "GpuCount": gpuCount, "GpuCategory": gpuCategory, "GpuSpec": gpuSpec,
		"DesktopGroupId": d.GroupID, "DesktopType": desktopType, "Cpu": cpu, "Memory": memory,
		"OfficeSiteId": d.Region + "+dir-imagerelaydemo", "ManagementFlag": "NoFlag", "Progress": "100%",
		"ChargeType": "PostPaid", "CreationTime": d.created.UTC().Format("2006-01-02T15:04Z"),
		"Tags": tags, "Disks": disks, "ProtocolType": "ASP",
	}
}

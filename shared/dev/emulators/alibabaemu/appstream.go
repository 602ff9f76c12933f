package alibabaemu

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
)

// Image and distribution statuses.
const (
	StatusInit         = "INIT"
	StatusCreating     = "CREATING"
	StatusAvailable    = "AVAILABLE"
	StatusCreateFailed = "CREATE_FAILED"
	StatusDeleting     = "DELETING"
)

const gmtFormat = "2006-01-02 15:04:05"

var (
	productTypes = []string{"CloudApp", "CloudDesktop", "WuyingServer"}
	imageTypes   = []string{"User", "Shared", "System", "Community"}
	imageStatus  = []string{StatusAvailable, StatusInit, StatusCreating, StatusCreateFailed, StatusDeleting}
)

// appImage is one image with its versions and its region distribution rows.
type appImage struct {
	id       string
	versions []AppImage // in order; the last is the latest
	rows     []*distRow
	created  time.Time
}

func (img *appImage) latest() AppImage { return img.versions[len(img.versions)-1] }

func (img *appImage) version(id string) (AppImage, bool) {
	for _, v := range img.versions {
		if v.VersionID == id {
			return v, true
		}
	}
	return AppImage{}, false
}

// row returns the distribution row of one version in one region.
func (img *appImage) row(versionID, region string) *distRow {
	for _, r := range img.rows {
		if r.versionID == versionID && r.region == region {
			return r
		}
	}
	return nil
}

// distRow is one version's presence in one region: seeded (already there) or being copied by
// a distribution task.
type distRow struct {
	region, versionID, taskID string
	start                     time.Time
	seeded                    bool
	failCopy                  bool
}

// state returns the row's Status and Progress at now. A copy is INIT for the first tenth of
// the copy duration, CREATING until it ends and then AVAILABLE at 100%; a copy a fail-copy
// fault hit stops at 50% with CREATE_FAILED.
func (e *Emulator) state(r *distRow, now time.Time) (string, int) {
	if r.seeded {
		return StatusAvailable, 100
	}
	p := emucore.Progress(r.start, e.copyDuration, now)
	switch {
	case r.failCopy && p >= 50:
		return StatusCreateFailed, 50
	case p >= 100:
		return StatusAvailable, 100
	case p < 10:
		return StatusInit, p
	default:
		return StatusCreating, p
	}
}

// Distribution is one region row of an image, as ListImage reports it.
type Distribution struct {
	RegionID  string `json:"regionId"`
	ImageID   string `json:"imageId"`
	VersionID string `json:"versionId"`
	TaskID    string `json:"taskId,omitempty"`
	Status    string `json:"status"`
	Progress  int    `json:"progress"`
}

// Distributions returns the region rows of an image (every version), for tests and operators.
func (e *Emulator) Distributions(imageID string) []Distribution {
	e.mu.Lock()
	defer e.mu.Unlock()
	img := e.images[imageID]
	if img == nil {
		return nil
	}
	now := e.now()
	out := make([]Distribution, 0, len(img.rows))
	for _, r := range img.rows {
		st, p := e.state(r, now)
		out = append(out, Distribution{RegionID: r.region, ImageID: img.id, VersionID: r.versionID, TaskID: r.taskID, Status: st, Progress: p})
	}
	return out
}

// AddImage adds an image version, for example one a build pipeline just made.
func (e *Emulator) AddImage(img AppImage) error {
	return e.addAppImage(img, e.now().UTC())
}

func (e *Emulator) addAppImage(img AppImage, created time.Time) error {
	if !strings.HasPrefix(img.ImageID, "imgc-") || len(img.ImageID) < 6 {
		return fmt.Errorf("imageId %q must look like imgc-xxxxxxxx", img.ImageID)
	}
	if !strings.HasPrefix(img.VersionID, "iv-") || len(img.VersionID) < 4 {
		return fmt.Errorf("versionId %q must look like iv-xxxxxxxx", img.VersionID)
	}
	defaultTo(&img.ProductType, "CloudApp")
	defaultTo(&img.Status, StatusAvailable)
	defaultTo(&img.ImageType, "User")
	defaultTo(&img.OSType, "Windows")
	defaultTo(&img.PackageType, "Ecs")
	defaultTo(&img.Name, img.ImageID)
	switch {
	case !slices.Contains(productTypes, img.ProductType):
		return fmt.Errorf("productType %q must be one of %v", img.ProductType, productTypes)
	case !slices.Contains(imageStatus, img.Status):
		return fmt.Errorf("status %q must be one of %v", img.Status, imageStatus)
	case !slices.Contains(imageTypes, img.ImageType):
		return fmt.Errorf("imageType %q must be one of %v", img.ImageType, imageTypes)
	case img.OSType != "Windows" && img.OSType != "Linux":
		return fmt.Errorf("osType %q must be Windows or Linux", img.OSType)
	}
	for _, r := range img.Regions {
		if !e.asRegions[r] {
			return fmt.Errorf("region %q is not one of the App Streaming regions", r)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ai := e.images[img.ImageID]
	if ai == nil {
		ai = &appImage{id: img.ImageID, created: created}
		e.images[img.ImageID] = ai
	}
	if _, dup := ai.version(img.VersionID); dup {
		return fmt.Errorf("image %s already has version %s", img.ImageID, img.VersionID)
	}
	ai.versions = append(ai.versions, img)
	for _, r := range img.Regions {
		ai.rows = append(ai.rows, &distRow{region: r, versionID: img.VersionID, seeded: true, start: created})
	}
	return nil
}

func defaultTo(s *string, d string) {
	if *s == "" {
		*s = d
	}
}

func dedupe(in []string) []string {
	var out []string
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func badRequest(code, format string, args ...any) *apiError {
	return errf(http.StatusBadRequest, code, format, args...)
}

// startTaskForDistributeImage starts copying one image version to the destination regions.
// The checks run in this order, each with the code of the seed page's table:
//
//   - no ImageId: MissingParameter; unknown image, version, or ProductType mismatch: Image.NotExist
//   - image INIT/CREATING: ImageCreateByInstance.TaskExist; CREATE_FAILED:
//     CreateDesktopImageRecord.Failed; DELETING: ImageUpdateFailed.NotAllow
//   - Shared image: ImageUpdateSharedImageFailed.NotAllow; System/Community image:
//     ImageRegionDistribute.NotAllow; legacy regional image: Instance.ImageUnsupported
//   - encrypted: ImageDistribute.ImageNotSupport; Vhd/Container without base image:
//     InvalidBaseImage.NotConfigured
//   - version in no region: ImageRegion.NotConfigured; SourceRegion not holding it (or no
//     region holding it yet): ImageDistribute.Undistributed
//   - no destinations: ImageDistribute.TargetDistributeRegionListEmpty; unknown region:
//     InvalidParameter; parent image missing in a destination:
//     ParentImageRegionDistribute.NotExist
//   - a destination already holding or getting this version: ImageDistribute.RepeatedDistribution
//     (the whole call is refused; a CREATE_FAILED row may be distributed again)
//   - more distributions in flight than the seed allows: ExceedBuilderQuota
//
// Instance.NotFound, DesktopInstance.NotFound and Instance.PhysicalNodeNotExist describe
// image creation from an instance, which this action has no input for. InternalError comes
// from a server-error fault (HTTP 500).
func (e *Emulator) startTaskForDistributeImage(req *request) (map[string]any, *apiError) {
	p := req.params
	imageID := p.get("ImageId")
	if imageID == "" {
		return nil, badRequest("MissingParameter", "The input parameter ImageId that is mandatory for processing this request is not supplied.")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	img := e.images[imageID]
	if img == nil {
		return nil, badRequest("Image.NotExist", "The image does not exist. (%s)", imageID)
	}
	versionID := p.get("VersionId")
	if versionID == "" {
		versionID = img.latest().VersionID
	}
	meta, ok := img.version(versionID)
	if !ok {
		return nil, badRequest("Image.NotExist", "The image does not exist. (%s has no version %s)", imageID, versionID)
	}
	if pt := p.get("ProductType"); pt != "" {
		if !slices.Contains(productTypes, pt) {
			return nil, badRequest("InvalidParameter", "The specified parameter ProductType %q is not valid; use one of %s.", pt, strings.Join(productTypes, ", "))
		}
		if pt != meta.ProductType {
			return nil, badRequest("Image.NotExist", "The image does not exist. (%s is a %s image, not %s)", imageID, meta.ProductType, pt)
		}
	}
	switch meta.Status {
	case StatusInit, StatusCreating:
		return nil, badRequest("ImageCreateByInstance.TaskExist", "The image task of instance creation already exists. (%s is %s)", imageID, meta.Status)
	case StatusCreateFailed:
		return nil, badRequest("CreateDesktopImageRecord.Failed", "Create cloud computer image failed. (%s is %s)", imageID, meta.Status)
	case StatusDeleting:
		return nil, badRequest("ImageUpdateFailed.NotAllow", "The image is not allowed to be modified. (%s is %s)", imageID, meta.Status)
	}
	switch meta.ImageType {
	case "Shared":
		return nil, badRequest("ImageUpdateSharedImageFailed.NotAllow", "The shared image is not allowed to be modified.")
	case "System", "Community":
		return nil, badRequest("ImageRegionDistribute.NotAllow", "This image cannot be distributed. (%s images are not distributed by users)", meta.ImageType)
	}
	if meta.NonCentralized {
		return nil, badRequest("Instance.ImageUnsupported", "A non-centralized image does not support this type of operation.")
	}
	if meta.Encrypted {
		return nil, badRequest("ImageDistribute.ImageNotSupport", "The image does not support region distribution. (encrypted image)")
	}
	if (meta.PackageType == "Vhd" || meta.PackageType == "Container") && meta.BaseImageID == "" {
		return nil, badRequest("InvalidBaseImage.NotConfigured", "Configuration required for Vhd/Container images.")
	}
	var holding []string
	anyRow := false
	for _, r := range img.rows {
		if r.versionID != versionID {
			continue
		}
		anyRow = true
		if st, _ := e.state(r, req.now); st == StatusAvailable {
			holding = append(holding, r.region)
		}
	}
	if !anyRow {
		return nil, badRequest("ImageRegion.NotConfigured", "The image does not have any region configuration.")
	}
	source := p.get("SourceRegion")
	switch {
	case source != "" && !e.asRegions[source]:
		return nil, badRequest("InvalidParameter", "The specified parameter SourceRegion %q is not a WUYING region.", source)
	case source != "" && !slices.Contains(holding, source):
		return nil, badRequest("ImageDistribute.Undistributed", "The image has not been distributed to any region. (not AVAILABLE in source region %s)", source)
	case source == "" && len(holding) == 0:
		return nil, badRequest("ImageDistribute.Undistributed", "The image has not been distributed to any region.")
	case source == "":
		sort.Strings(holding)
		source = holding[0]
	}
	req.call.Region = source
	dests := dedupe(p.list("DestinationRegionList"))
	if len(dests) == 0 {
		return nil, badRequest("ImageDistribute.TargetDistributeRegionListEmpty", "The target distribution region list is empty.")
	}
	for _, d := range dests {
		if !e.asRegions[d] {
			return nil, badRequest("InvalidParameter", "The specified parameter DestinationRegionList contains %q, which is not a WUYING region.", d)
		}
	}
	if meta.ParentImageID != "" {
		parent := e.images[meta.ParentImageID]
		for _, d := range dests {
			if parent == nil || !e.holds(parent, parent.latest().VersionID, d, req.now) {
				return nil, badRequest("ParentImageRegionDistribute.NotExist", "The target distribution region of the parent image does not exist. (parent %s is not in %s)", meta.ParentImageID, d)
			}
		}
	}
	var repeated []string
	for _, d := range dests {
		if r := img.row(versionID, d); r != nil {
			if st, _ := e.state(r, req.now); st != StatusCreateFailed {
				repeated = append(repeated, d)
			}
		}
	}
	if len(repeated) > 0 {
		return nil, badRequest("ImageDistribute.RepeatedDistribution", "This image has been distributed to this region. (%s)", strings.Join(repeated, ", "))
	}
	if e.maxDistribution > 0 {
		if n := e.inFlight(req.now); n+len(dests) > e.maxDistribution {
			return nil, badRequest("ExceedBuilderQuota", "The maximum number of builders is reached. (%d distributions in flight, %d allowed)", n, e.maxDistribution)
		}
	}
	taskID := newID("tid-", 17)
	for _, d := range dests {
		row := &distRow{region: d, versionID: versionID, taskID: taskID, start: req.now, failCopy: req.failKeys[d]}
		if old := img.row(versionID, d); old != nil {
			*old = *row // replaces a CREATE_FAILED row
		} else {
			img.rows = append(img.rows, row)
		}
	}
	return map[string]any{"Data": taskID, "Success": true, "Code": "200", "Message": "success"}, nil
}

// holds reports whether a version is AVAILABLE in region. Callers hold e.mu.
func (e *Emulator) holds(img *appImage, versionID, region string, now time.Time) bool {
	r := img.row(versionID, region)
	if r == nil {
		return false
	}
	st, _ := e.state(r, now)
	return st == StatusAvailable
}

// inFlight counts distributions not yet settled. Callers hold e.mu.
func (e *Emulator) inFlight(now time.Time) int {
	n := 0
	for _, img := range e.images {
		for _, r := range img.rows {
			if st, _ := e.state(r, now); st == StatusInit || st == StatusCreating {
				n++
			}
		}
	}
	return n
}

// listImage lists images with their region distribution rows. Filters: ImageId, ImageName
// (substring), ImageType, Status (default: every status), ProductType, ProductTypeList,
// OsType, PackageType, BizRegionIdList (AVAILABLE in one of them), TagList (all must match);
// paging with PageNumber (from 1) and PageSize (default 10, at most 100).
func (e *Emulator) listImage(req *request) (map[string]any, *apiError) {
	p := req.params
	pageNumber, aerr := p.intParam("PageNumber", 1, 1, 1<<20)
	if aerr != nil {
		return nil, aerr
	}
	pageSize, aerr := p.intParam("PageSize", 10, 1, 100)
	if aerr != nil {
		return nil, aerr
	}
	if pt := p.get("ProductType"); pt != "" && !slices.Contains(productTypes, pt) {
		return nil, badRequest("InvalidParameter", "The specified parameter ProductType %q is not valid; use one of %s.", pt, strings.Join(productTypes, ", "))
	}
	productList := p.list("ProductTypeList")
	bizRegions := p.list("BizRegionIdList")
	tags := p.listMaps("TagList")
	e.mu.Lock()
	defer e.mu.Unlock()
	var matched []*appImage
	for _, img := range e.images {
		m := img.latest()
		switch {
		case p.get("ImageId") != "" && p.get("ImageId") != img.id,
			p.get("ImageName") != "" && !strings.Contains(m.Name, p.get("ImageName")),
			p.get("ImageType") != "" && p.get("ImageType") != m.ImageType,
			p.get("Status") != "" && p.get("Status") != m.Status,
			p.get("ProductType") != "" && p.get("ProductType") != m.ProductType,
			len(productList) > 0 && !slices.Contains(productList, m.ProductType),
			p.get("OsType") != "" && !strings.EqualFold(p.get("OsType"), m.OSType),
			p.get("PackageType") != "" && p.get("PackageType") != m.PackageType,
			len(bizRegions) > 0 && !slices.ContainsFunc(bizRegions, func(r string) bool { return e.holds(img, m.VersionID, r, req.now) }),
			!tagsMatch(m.Tags, tags):
			continue
		}
		matched = append(matched, img)
	}
	sort.Slice(matched, func(a, b int) bool {
		if !matched[a].created.Equal(matched[b].created) {
			return matched[a].created.After(matched[b].created)
		}
		return matched[a].id < matched[b].id
	})
	from := min(len(matched), (pageNumber-1)*pageSize)
	to := min(len(matched), from+pageSize)
	data := make([]map[string]any, 0, to-from)
	for _, img := range matched[from:to] {
		data = append(data, e.imageJSON(img, req.now))
	}
	return map[string]any{
		"Code": "200", "Message": "success", "Success": true,
		"Count": len(matched), "PageNumber": pageNumber, "PageSize": pageSize, "Data": data,
	}, nil
}

func tagsMatch(have map[string]string, want []map[string]string) bool {
	for _, t := range want {
		v, ok := have[t["Key"]]
		if !ok || (t["Value"] != "" && t["Value"] != v) {
			return false
		}
	}
	return true
}

// imageJSON renders one image as a ListImage Data entry. Callers hold e.mu.
func (e *Emulator) imageJSON(img *appImage, now time.Time) map[string]any {
	m := img.latest()
	var regionList []string
	rows := make([]map[string]any, 0, len(img.rows))
	for _, r := range img.rows {
		st, pct := e.state(r, now)
		if r.versionID == m.VersionID && st == StatusAvailable {
			regionList = append(regionList, r.region)
		}
		rows = append(rows, map[string]any{
			"RegionId": r.region, "ImageId": img.id, "VersionId": r.versionID,
			"Status": st, "Progress": strconv.Itoa(pct) + "%",
		})
	}
	tags := make([]map[string]string, 0, len(m.Tags))
	for _, k := range slices.Sorted(maps.Keys(m.Tags)) {
		tags = append(tags, map[string]string{"Key": k, "Value": m.Tags[k]})
	}
	platform := "Windows Server 2022"
	if m.OSType == "Linux" {
		platform = "Ubuntu"
	}
	created := img.created.UTC().Format(gmtFormat)
	return map[string]any{
		"ImageId": img.id, "ImageName": m.Name, "Status": m.Status,
		"VersionId": m.VersionID, "VersionName": m.VersionID, "LatestVersionId": m.VersionID, "OnlineVersionId": m.VersionID,
		"ImageType": m.ImageType, "OsType": m.OSType, "PlatformName": platform, "ProductType": m.ProductType,
		"PackageType": m.PackageType, "ImageRegionList": nonNilStrings(regionList),
		"ImageRegionDistributeList": rows, "Tags": tags,
		"GmtCreate": created, "GmtModified": created, "SystemDiskSize": 80,
	}
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

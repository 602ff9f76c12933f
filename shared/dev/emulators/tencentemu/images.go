package tencentemu

import (
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// syncImagesParams are the SyncImages parameters (tencentcloud.com/document/api/213/33267).
type syncImagesParams struct {
	ImageIds           []string `json:"ImageIds"`
	DestinationRegions []string `json:"DestinationRegions"`
	DryRun             flexBool `json:"DryRun"`
	ImageName          *string  `json:"ImageName"`
	ImageSetRequired   flexBool `json:"ImageSetRequired"`
	Encrypt            flexBool `json:"Encrypt"`
	KmsKeyId           *string  `json:"KmsKeyId"`

	// failCopy is set when an injected fault should make the copies fail.
	failCopy bool
}

func (p *syncImagesParams) logParams() map[string]any {
	m := map[string]any{"ImageIds": p.ImageIds, "DestinationRegions": p.DestinationRegions}
	if p.ImageName != nil {
		m["ImageName"] = *p.ImageName
	}
	if p.DryRun.Set {
		m["DryRun"] = p.DryRun.V
	}
	if p.ImageSetRequired.Set {
		m["ImageSetRequired"] = p.ImageSetRequired.V
	}
	if p.Encrypt.Set {
		m["Encrypt"] = p.Encrypt.V
	}
	return m
}

func (p *syncImagesParams) faultKeys(region string) []string {
	keys := append([]string{region}, p.ImageIds...)
	keys = append(keys, p.DestinationRegions...)
	if p.ImageName != nil {
		keys = append(keys, *p.ImageName)
	}
	return keys
}

// filter is one DescribeImages filter.
type filter struct {
	Name   string   `json:"Name"`
	Values []string `json:"Values"`
}

// describeImagesParams are the DescribeImages parameters (tencentcloud.com/document/api/213/33272).
type describeImagesParams struct {
	ImageIds     []string `json:"ImageIds"`
	Filters      []filter `json:"Filters"`
	Offset       flexUint `json:"Offset"`
	Limit        flexUint `json:"Limit"`
	InstanceType *string  `json:"InstanceType"`
}

func (p *describeImagesParams) logParams() map[string]any {
	m := map[string]any{}
	if len(p.ImageIds) > 0 {
		m["ImageIds"] = p.ImageIds
	}
	if len(p.Filters) > 0 {
		f := map[string][]string{}
		for _, x := range p.Filters {
			f[x.Name] = append(f[x.Name], x.Values...)
		}
		m["Filters"] = f
	}
	if p.Offset.Set {
		m["Offset"] = p.Offset.V
	}
	if p.Limit.Set {
		m["Limit"] = p.Limit.V
	}
	return m
}

func (p *describeImagesParams) faultKeys(region string) []string {
	keys := append([]string{region}, p.ImageIds...)
	for _, f := range p.Filters {
		keys = append(keys, f.Values...)
	}
	return keys
}

// syncImages checks every documented SyncImages constraint, in roughly the order the real
// service reports them, then starts one copy per destination region.
func (e *Emulator) syncImages(src string, p syncImagesParams, now time.Time) (map[string]any, *apiError) {
	switch {
	case len(p.ImageIds) == 0:
		return nil, errf("MissingParameter", "The request is missing a required parameter `ImageIds`.")
	case slices.Contains(p.ImageIds, ""):
		return nil, errf("InvalidParameter", "ImageIds must not contain an empty image id.")
	case len(p.DestinationRegions) == 0:
		return nil, errf("MissingParameter", "The request is missing a required parameter `DestinationRegions`.")
	case slices.Contains(p.DestinationRegions, ""):
		return nil, errf("InvalidParameter", "DestinationRegions must not contain an empty region.")
	case len(p.ImageIds) > 1:
		return nil, errf("InvalidParameterValue.LimitExceeded", "Only one image can be synced per SyncImages call; ImageIds has %d.", len(p.ImageIds))
	}
	if r, dup := firstDuplicate(p.DestinationRegions); dup {
		return nil, errf("InvalidParameterValue", "DestinationRegions names %s more than once.", r)
	}
	if p.ImageName != nil {
		switch n := utf8.RuneCountInString(*p.ImageName); {
		case n == 0:
			return nil, errf("InvalidParameterValue", "ImageName must not be empty.")
		case n > maxImageNameLen:
			return nil, errf("InvalidParameterValue", "ImageName is %d characters long; the limit is %d.", n, maxImageNameLen)
		}
	}
	id := p.ImageIds[0]
	if !imageIDPattern.MatchString(id) {
		return nil, errf("InvalidImageId.Malformed", "The image id %s is malformed; image ids look like img-xxxxxxxx.", id)
	}
	if aerr := e.checkRegion(src); aerr != nil {
		return nil, aerr
	}
	if e.unsupported[src] {
		return nil, errf("InvalidRegion.Unavailable", "The region %s does not support image synchronization.", src)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	img, ok := e.images[id]
	if !ok || img.Region != src {
		return nil, errf("InvalidImageId.NotFound", "The image %s cannot be found in region %s.", id, src)
	}
	e.refresh(img, now)
	switch {
	case img.InstanceImage:
		return nil, errf("InvalidParameter.InstanceImageNotSupport", "The image %s is an instance image; SyncImages does not support instance images.", id)
	case img.State != stateNormal:
		return nil, errf("InvalidImageId.IncorrectState", "The image %s is in state %s; only images in state NORMAL can be synced.", id, img.State)
	case img.SizeGB >= maxSyncSizeGB:
		return nil, errf("InvalidImageId.TooLarge", "The image %s is %d GB; only images smaller than %d GB can be synced.", id, img.SizeGB, maxSyncSizeGB)
	case img.Encrypted:
		return nil, errf("UnsupportedOperation.EncryptedImagesNotSupported", "The image %s is encrypted; encrypted images cannot be synced.", id)
	}
	if p.KmsKeyId != nil {
		if !p.Encrypt.V {
			return nil, errf("InvalidParameter.InvalidKmsKeyId", "KmsKeyId is only used together with Encrypt=true.")
		}
		if !kmsKeyIDPattern.MatchString(*p.KmsKeyId) {
			return nil, errf("InvalidParameter.InvalidKmsKeyId", "The KMS key id %s is not valid.", *p.KmsKeyId)
		}
	}
	for _, d := range p.DestinationRegions {
		switch {
		case !e.regions[d]:
			return nil, errf("InvalidRegion.NotFound", "The destination region %s does not exist.", d)
		case e.unsupported[d]:
			return nil, errf("UnsupportedOperation.Region", "The destination region %s does not support image synchronization.", d)
		case img.Shared && d != src:
			return nil, errf("InvalidParameterValue.InvalidRegion", "The image %s is shared with this account; a shared image can only be synced to its own region %s, which makes it a custom image there.", id, src)
		case p.Encrypt.V && d != src:
			return nil, errf("UnsupportedOperation.SyncEncryptImageNotSupport", "An encrypted copy (Encrypt=true) can only be made in the source region %s, not in %s.", src, d)
		case !img.Shared && !p.Encrypt.V && d == src:
			return nil, errf("InvalidParameterValue.InvalidRegion", "The destination region %s is the source region; sync a custom image to other regions.", d)
		}
	}
	name := img.Name
	if p.ImageName != nil {
		name = *p.ImageName
	}
	for _, d := range p.DestinationRegions {
		in := e.inRegion(d)
		if len(in.byName[name]) > 0 {
			return nil, errf("InvalidImageName.Duplicate", "An image named %q already exists in region %s.", name, d)
		}
		if in.private >= e.quota {
			return nil, errf("ImageQuotaLimitExceeded", "Region %s already holds %d custom images, the quota is %d.", d, in.private, e.quota)
		}
	}
	if p.DryRun.V {
		return nil, errf("DryRunOperation", "The dry run passed: %s can be synced to %s.", id, strings.Join(p.DestinationRegions, ", "))
	}

	set := make([]map[string]string, 0, len(p.DestinationRegions))
	for _, d := range p.DestinationRegions {
		nid := e.newImageID()
		e.put(&image{
			Image: Image{
				ID: nid, Name: name, Region: d, State: stateSyncing, SizeGB: img.SizeGB,
				Encrypted: p.Encrypt.V, Platform: img.Platform, CreatedTime: now.UTC(),
			},
			imageType: typePrivate,
			syncing:   true,
			copyStart: now,
			failCopy:  p.failCopy,
			fromSync:  true,
		})
		set = append(set, map[string]string{"ImageId": nid, "Region": d})
	}
	resp := map[string]any{}
	if p.ImageSetRequired.V {
		resp["ImageSet"] = set
	}
	return resp, nil
}

// describeImages lists the images of one region, by id or by filters, a page at a time.
func (e *Emulator) describeImages(region string, p describeImagesParams, now time.Time) (map[string]any, *apiError) {
	if aerr := e.checkRegion(region); aerr != nil {
		return nil, aerr
	}
	switch {
	case len(p.ImageIds) > 0 && len(p.Filters) > 0:
		return nil, errf("InvalidParameter.InvalidParameterCoexistImageIdsFilters", "ImageIds and Filters cannot be specified together.")
	case len(p.ImageIds) > maxDescribeIDs:
		return nil, errf("InvalidParameterValue.LimitExceeded", "ImageIds has %d ids; at most %d are allowed.", len(p.ImageIds), maxDescribeIDs)
	case len(p.Filters) > maxFilters:
		return nil, errf("InvalidParameterValue.LimitExceeded", "Filters has %d entries; at most %d are allowed.", len(p.Filters), maxFilters)
	case p.Limit.Set && p.Limit.V > maxDescribeLimit:
		return nil, errf("InvalidParameterValue.InvalidParameterValueLimit", "Limit is %d; the maximum is %d.", p.Limit.V, maxDescribeLimit)
	}
	for _, id := range p.ImageIds {
		if !imageIDPattern.MatchString(id) {
			return nil, errf("InvalidImageId.Malformed", "The image id %s is malformed; image ids look like img-xxxxxxxx.", id)
		}
	}
	for _, f := range p.Filters {
		switch {
		case !knownFilter(f.Name):
			return nil, errf("InvalidFilter", "The filter %q is not supported; use image-id, image-name, image-type, platform, tag-key, tag-value or tag:<key>.", f.Name)
		case len(f.Values) == 0:
			return nil, errf("MissingParameter", "The filter %q has no Values.", f.Name)
		case len(f.Values) > maxFilterValues:
			return nil, errf("InvalidFilterValue.LimitExceeded", "The filter %q has %d values; at most %d are allowed.", f.Name, len(f.Values), maxFilterValues)
		}
	}
	limit := uint64(defaultLimit)
	if p.Limit.Set && p.Limit.V > 0 {
		limit = p.Limit.V
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	var matched []*image
	for _, img := range e.candidates(region, p) {
		if !matchesFilters(img, p.Filters) {
			continue
		}
		e.refresh(img, now)
		matched = append(matched, img)
	}
	// Newest first, as the console lists them; ties by id so pages are stable.
	sort.Slice(matched, func(i, j int) bool {
		if !matched[i].CreatedTime.Equal(matched[j].CreatedTime) {
			return matched[i].CreatedTime.After(matched[j].CreatedTime)
		}
		return matched[i].ID < matched[j].ID
	})
	total := len(matched)
	start := min(uint64(total), p.Offset.V)
	end := min(uint64(total), start+limit)
	set := make([]map[string]any, 0, end-start)
	for _, img := range matched[start:end] {
		set = append(set, describe(img))
	}
	return map[string]any{"ImageSet": set, "TotalCount": total}, nil
}

func knownFilter(name string) bool {
	switch name {
	case "image-id", "image-name", "image-type", "platform", "tag-key", "tag-value":
		return true
	}
	return strings.HasPrefix(name, "tag:")
}

// matchesFilters applies filters: every filter must match, any of its values may.
func matchesFilters(img *image, filters []filter) bool {
	for _, f := range filters {
		var field string
		switch f.Name {
		case "image-id":
			field = img.ID
		case "image-name":
			field = img.Name
		case "image-type":
			field = img.imageType
		case "platform":
			field = img.Platform
		default:
			// The emulator keeps no tags, so tag filters match nothing.
			return false
		}
		if !slices.Contains(f.Values, field) {
			return false
		}
	}
	return true
}

// describe renders an image the way DescribeImages returns it.
func describe(img *image) map[string]any {
	source := "CREATE_IMAGE"
	if img.fromSync {
		source = "SYNC_IMAGE"
	}
	osName := img.Platform
	if osName == "" {
		osName = "TencentOS Server"
	}
	return map[string]any{
		"ImageId":            img.ID,
		"OsName":             osName,
		"ImageType":          img.imageType,
		"CreatedTime":        img.CreatedTime.UTC().Format(tencentTime),
		"ImageName":          img.Name,
		"ImageDescription":   "",
		"ImageSize":          img.SizeGB,
		"Architecture":       "x86_64",
		"ImageState":         img.State,
		"Platform":           img.Platform,
		"ImageCreator":       "",
		"ImageSource":        source,
		"SyncPercent":        img.SyncPercent,
		"IsSupportCloudinit": true,
		"SnapshotSet":        []any{},
		"Tags":               []any{},
		"LicenseType":        "TencentCloud",
	}
}

// regionImages indexes the images of one region, so that a call costs what it names (ids, a
// name) rather than a scan of every image: at 100,000 images a scan under the emulator's one
// mutex took ~7 ms a call, and a rehearsal at scale was bounded by the emulator itself.
// Images never leave a region or change name or type, so the index is only ever added to.
type regionImages struct {
	all     []*image
	byName  map[string][]*image
	private int // custom images, for the quota
}

// inRegion returns region's index (empty when it holds no image). Callers hold e.mu.
func (e *Emulator) inRegion(region string) *regionImages {
	if in := e.byRegion[region]; in != nil {
		return in
	}
	return &regionImages{}
}

// put stores a new image and indexes it. Callers hold e.mu.
func (e *Emulator) put(img *image) {
	e.images[img.ID] = img
	if e.byRegion == nil {
		e.byRegion = map[string]*regionImages{}
	}
	in := e.byRegion[img.Region]
	if in == nil {
		in = &regionImages{byName: map[string][]*image{}}
		e.byRegion[img.Region] = in
	}
	in.all = append(in.all, img)
	in.byName[img.Name] = append(in.byName[img.Name], img)
	if img.imageType == typePrivate {
		in.private++
	}
}

// candidates returns the images of region a DescribeImages call may return, each once,
// before its filters are applied: the ids it names, else the images with the names an
// image-id or image-name filter names, else every image of the region. Callers hold e.mu.
func (e *Emulator) candidates(region string, p describeImagesParams) []*image {
	pick := func(ids []string) []*image {
		var out []*image
		seen := map[string]bool{}
		for _, id := range ids {
			if img, ok := e.images[id]; ok && img.Region == region && !seen[id] {
				seen[id] = true
				out = append(out, img)
			}
		}
		return out
	}
	if len(p.ImageIds) > 0 {
		return pick(p.ImageIds)
	}
	in := e.inRegion(region)
	for _, f := range p.Filters {
		switch f.Name {
		case "image-id":
			return pick(f.Values)
		case "image-name":
			var out []*image
			for _, name := range dedupe(f.Values) {
				out = append(out, in.byName[name]...)
			}
			return out
		}
	}
	return in.all
}

// dedupe returns vals without repeats, in their order.
func dedupe(vals []string) []string {
	var out []string
	for _, v := range vals {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

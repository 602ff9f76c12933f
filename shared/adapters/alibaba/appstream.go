package alibaba

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/imagerelay/imagerelay/shared/adapters/alibaba/constraints"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// Region distribution statuses ListImage reports (inferred to follow the image statuses).
const (
	StatusInit         = "INIT"
	StatusCreating     = "CREATING"
	StatusAvailable    = "AVAILABLE"
	StatusCreateFailed = "CREATE_FAILED"
)

const (
	codeRepeatedDistribution = "ImageDistribute.RepeatedDistribution"
	// statusBatchSize is the most tasks one CopyStatus call takes (the poller's whole batch, so the
	// copies of one image are never split over two calls); it makes one ListImage
	// call per distinct image among them.
	statusBatchSize   = 100
	listImagePageSize = 100
	// maxPages bounds paging loops against an API that never stops returning tokens.
	maxPages = 1000
)

// KnownRegions are the WUYING regions App Streaming images can be distributed to (inferred
// from the product's region list; override with Config.Regions). They are
// constraints.KnownRegions, which needs no SDK.
func KnownRegions() []string { return constraints.KnownRegions() }

// AdoptedTaskID is the TaskID of a copy imagerelay found through ListImage rather than
// started (FindCopy, or a region another distribution already covers). ListImage does not
// expose distribution task ids; CopyStatus follows copies by image, version and region, so
// it tracks these like any other.
func AdoptedTaskID(imageID, versionID string) string {
	return "listimage:" + imageID + "/" + versionID
}

// Provider replicates WUYING images with App Streaming. It implements the replicate
// MultiRegionCopier, the poller StatusReader and the fanout ConstraintChecker, and is safe for
// concurrent use.
type Provider struct {
	api         *api
	productType string
	rules       *constraints.Checker
}

// New builds the App Streaming provider. Credentials are read per call (see
// ContextWithCredentials), so New does not need them.
func New(cfg Config) (*Provider, error) {
	ep, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	if ep.host == "" {
		ep = endpoint{host: DefaultAppStreamEndpoint, protocol: "HTTPS"}
	}
	return &Provider{
		api:         newAPI(AppStreamVersion, func(string) endpoint { return ep }, cfg, ActionStartTaskForDistributeImage, ActionListImage),
		productType: cfg.ProductType,
		rules:       constraints.New(cfg.Regions),
	}, nil
}

// Name returns "alibaba".
func (p *Provider) Name() string { return ProviderName }

// MultiRegion reports that one StartTaskForDistributeImage call starts every destination.
func (p *Provider) MultiRegion() bool { return true }

// BatchSize is the most tasks one CopyStatus call takes.
func (p *Provider) BatchSize() int { return statusBatchSize }

// CheckCopy returns why src cannot be distributed to region, or "". It makes no API call
// (see constraints).
func (p *Provider) CheckCopy(src domain.Source, region string) string {
	return p.rules.CheckCopy(src, region)
}

func (p *Provider) productTypeOf(r domain.Image) string {
	if r.ProductType != "" {
		return r.ProductType
	}
	return p.productType
}

// destinations are the regions of a request, without repeats.
func destinations(req domain.StartRequest) []string {
	var out []string
	for _, r := range req.Regions {
		if r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// StartCopy distributes the image version to every destination region in one
// StartTaskForDistributeImage call. When the service answers RepeatedDistribution (some
// regions already have, or are getting, the version), it reads ListImage, reports those
// regions as found (AlreadyPresent when AVAILABLE) and starts only the others, in one more
// call; no region is ever asked for twice.
func (p *Provider) StartCopy(ctx context.Context, req domain.StartRequest) ([]domain.Handle, error) {
	regions := destinations(req)
	if len(regions) == 0 {
		return nil, &domain.ProviderError{Provider: ProviderName, Action: ActionStartTaskForDistributeImage,
			Code: "ImageDistribute.TargetDistributeRegionListEmpty", Message: "the copy request names no destination region",
			Class: domain.Terminal, Hint: codeRules["ImageDistribute.TargetDistributeRegionListEmpty"].hint}
	}
	productType := p.productTypeOf(req.Image)
	taskID, err := p.startTask(ctx, req, regions, productType)
	if err == nil {
		return p.started(req, regions, taskID), nil
	}
	if pe := classify(ActionStartTaskForDistributeImage, err); pe.Code != codeRepeatedDistribution {
		return nil, pe
	}
	rows, versionID, err := p.regionRows(ctx, req.ImageID, req.VersionID, productType)
	if err != nil {
		return nil, err
	}
	found := map[string]domain.Handle{}
	var missing []string
	for _, r := range regions {
		if row, ok := rows[r]; ok && row.Status != StatusCreateFailed {
			found[r] = domain.Handle{Region: r, TaskID: AdoptedTaskID(req.ImageID, versionID),
				DestinationImageID: req.ImageID, AlreadyPresent: rowDone(row)}
			continue
		}
		missing = append(missing, r)
	}
	if len(missing) > 0 {
		taskID, err := p.startTask(ctx, req, missing, productType)
		if err != nil {
			pe := classify(ActionStartTaskForDistributeImage, err)
			if pe.Code == codeRepeatedDistribution {
				// Someone started one of these regions between ListImage and now; the next
				// attempt will find it.
				pe.Class = domain.Retryable
				pe.Hint = "another distribution of this image started concurrently; imagerelay will look again"
			}
			return nil, pe
		}
		for _, h := range p.started(req, missing, taskID) {
			found[h.Region] = h
		}
	}
	out := make([]domain.Handle, 0, len(regions))
	for _, r := range regions {
		out = append(out, found[r])
	}
	return out, nil
}

func (p *Provider) started(req domain.StartRequest, regions []string, taskID string) []domain.Handle {
	out := make([]domain.Handle, 0, len(regions))
	for _, r := range regions {
		// A WUYING image keeps its id in every region it is distributed to.
		out = append(out, domain.Handle{Region: r, TaskID: taskID, DestinationImageID: req.ImageID})
	}
	return out
}

type startTaskResponse struct {
	RequestID string `json:"RequestId"`
	Data      string `json:"Data"`
	Success   *bool  `json:"Success"`
	Code      any    `json:"Code"`
	Message   string `json:"Message"`
}

func (p *Provider) startTask(ctx context.Context, req domain.StartRequest, regions []string, productType string) (string, error) {
	body := map[string]any{"ImageId": req.ImageID, "DestinationRegionList": regions}
	if req.VersionID != "" {
		body["VersionId"] = req.VersionID
	}
	if productType != "" {
		body["ProductType"] = productType
	}
	if req.SourceRegion != "" {
		body["SourceRegion"] = req.SourceRegion
	}
	raw, err := p.api.call(ctx, ActionStartTaskForDistributeImage, "", nil, body)
	if err != nil {
		return "", err
	}
	var resp startTaskResponse
	if err := decodeBody(ActionStartTaskForDistributeImage, raw, &resp); err != nil {
		return "", err
	}
	if (resp.Success != nil && !*resp.Success) || resp.Data == "" {
		code := fmt.Sprint(resp.Code)
		if resp.Code == nil || code == "200" {
			code = "TaskNotStarted"
		}
		return "", &domain.ProviderError{Provider: ProviderName, Action: ActionStartTaskForDistributeImage, Code: code,
			Message: resp.Message, RequestID: resp.RequestID, Class: domain.Retryable,
			Hint: "the service answered without a task id; imagerelay will look for the copy and retry"}
	}
	return resp.Data, nil
}

// FindCopy looks in ListImage for a distribution of req's version to its first destination
// that an interrupted attempt may have started. A CREATE_FAILED row does not count.
func (p *Provider) FindCopy(ctx context.Context, req domain.StartRequest) (domain.Handle, bool, error) {
	regions := destinations(req)
	if len(regions) == 0 {
		return domain.Handle{}, false, nil
	}
	rows, versionID, err := p.regionRows(ctx, req.ImageID, req.VersionID, p.productTypeOf(req.Image))
	if err != nil {
		return domain.Handle{}, false, err
	}
	// A CREATE_FAILED row is a copy too: the attempt that may have started it did start it,
	// and it failed. Adopting it reports that failure (the poller sees CREATE_FAILED); not
	// adopting it would distribute the image a second time for the same attempt.
	row, ok := rows[regions[0]]
	if !ok {
		return domain.Handle{}, false, nil
	}
	return domain.Handle{Region: regions[0], TaskID: AdoptedTaskID(req.ImageID, versionID),
		DestinationImageID: req.ImageID, AlreadyPresent: rowDone(row)}, true, nil
}

// CopyStatus reads the region rows of each task's image with ListImage (one call per image
// among the tasks) and maps them: CREATE_FAILED → failed; AVAILABLE or "100%" → succeeded;
// any other status → in progress with its percentage; no image or no row → not found.
//
// A ListImage call that fails affects only the copies of its own image: when another image
// of the batch could be read, the failed image's tasks are failed for a terminal error (with
// the provider's code and hint) and left with PhaseUnknown for a retryable one, so the poller
// checks them again at the next interval (and times them out at their deadline) while the
// rest of the batch moves on. Only when no image could be read does the call fail, as the
// cause is then most likely the account's (credentials, throttling, the endpoint) rather
// than an image's.
func (p *Provider) CopyStatus(ctx context.Context, tasks []domain.Task) ([]domain.CopyStatus, error) {
	type key struct{ imageID, productType string }
	type listing struct {
		images []listedImage
		err    error
	}
	listings := map[key]listing{}
	read := false
	var firstErr error
	for _, t := range tasks {
		k := key{t.ImageID, p.productTypeOf(t.Image)}
		if _, ok := listings[k]; ok {
			continue
		}
		images, err := p.listImage(ctx, k.imageID, k.productType)
		listings[k] = listing{images, err}
		if err == nil {
			read = true
		} else if firstErr == nil {
			firstErr = err
		}
	}
	if !read && firstErr != nil {
		return nil, firstErr
	}
	out := make([]domain.CopyStatus, len(tasks))
	for i, t := range tasks {
		l := listings[key{t.ImageID, p.productTypeOf(t.Image)}]
		if l.err != nil {
			out[i] = unreadStatus(t, l.err)
			continue
		}
		out[i] = taskStatus(t, l.images)
	}
	return out, nil
}

// PhaseUnknown is the phase of a copy whose status could not be read this time (its image's
// ListImage call failed for a retryable reason while the rest of the batch was read): the
// poller records nothing, checks again at the next interval and applies the deadline.
const PhaseUnknown domain.Phase = ""

// unreadStatus is the status of a task whose image could not be listed.
func unreadStatus(t domain.Task, err error) domain.CopyStatus {
	pe := classify(ActionListImage, err)
	msg := fmt.Sprintf("ListImage for %s failed: %s", t.ImageID, pe.Error()) // the error carries the hint
	if pe.Class == domain.Terminal {
		return domain.CopyStatus{Phase: domain.PhaseFailed, Code: pe.Code, Message: msg}
	}
	return domain.CopyStatus{Phase: PhaseUnknown, Code: pe.Code, Message: msg}
}

func taskStatus(t domain.Task, listed []listedImage) domain.CopyStatus {
	if len(listed) == 0 {
		return domain.CopyStatus{Phase: domain.PhaseNotFound, Message: fmt.Sprintf("ListImage does not know image %s", t.ImageID)}
	}
	versionID := t.VersionID
	if versionID == "" {
		versionID = listed[0].VersionID
	}
	row, ok := findRow(listed, versionID, t.DestinationRegion)
	if !ok {
		return domain.CopyStatus{Phase: domain.PhaseNotFound,
			Message: fmt.Sprintf("image %s version %s has no distribution row for %s", t.ImageID, versionID, t.DestinationRegion)}
	}
	st := domain.CopyStatus{ProviderStatus: row.Status, Percent: percent(row.Progress)}
	switch {
	case row.Status == StatusCreateFailed:
		st.Phase, st.Code = domain.PhaseFailed, "TaskFailed"
		st.Message = fmt.Sprintf("distribution of %s (%s) to %s ended in %s at %s", t.ImageID, versionID, t.DestinationRegion, row.Status, row.Progress)
	case rowDone(row):
		st.Phase, st.Percent, st.DestinationImageID = domain.PhaseSucceeded, 100, t.ImageID
	default:
		st.Phase, st.Percent = domain.PhaseInProgress, min(st.Percent, 99)
	}
	return st
}

// listedImage is a ListImage Data entry.
type listedImage struct {
	ImageID                   string    `json:"ImageId"`
	ImageName                 string    `json:"ImageName"`
	VersionID                 string    `json:"VersionId"`
	Status                    string    `json:"Status"`
	ProductType               string    `json:"ProductType"`
	ImageRegionList           []string  `json:"ImageRegionList"`
	ImageRegionDistributeList []distRow `json:"ImageRegionDistributeList"`
}

// distRow is one region row of ListImage.
type distRow struct {
	RegionID  string `json:"RegionId"`
	ImageID   string `json:"ImageId"`
	VersionID string `json:"VersionId"`
	Status    string `json:"Status"`
	Progress  string `json:"Progress"`
}

type listImageResponse struct {
	Count int           `json:"Count"`
	Data  []listedImage `json:"Data"`
}

func rowDone(r distRow) bool {
	return r.Status == StatusAvailable || (r.Status != StatusCreateFailed && percent(r.Progress) >= 100)
}

// percent parses "70%" (or "70", or "70.5%").
func percent(s string) int {
	s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return max(0, min(100, int(f)))
}

func findRow(listed []listedImage, versionID, region string) (distRow, bool) {
	for _, img := range listed {
		for _, r := range img.ImageRegionDistributeList {
			if r.RegionID == region && (r.VersionID == versionID || (r.VersionID == "" && img.VersionID == versionID)) {
				return r, true
			}
		}
	}
	return distRow{}, false
}

// listImage returns the ListImage entries of one image (every page).
func (p *Provider) listImage(ctx context.Context, imageID, productType string) ([]listedImage, error) {
	var out []listedImage
	for page := 1; page <= maxPages; page++ {
		body := map[string]any{"ImageId": imageID, "PageNumber": page, "PageSize": listImagePageSize}
		if productType != "" {
			body["ProductType"] = productType
		}
		raw, err := p.api.call(ctx, ActionListImage, "", nil, body)
		if err != nil {
			return nil, err
		}
		var resp listImageResponse
		if err := decodeBody(ActionListImage, raw, &resp); err != nil {
			return nil, err
		}
		for _, img := range resp.Data {
			if img.ImageID == imageID {
				out = append(out, img)
			}
		}
		if len(resp.Data) < listImagePageSize || page*listImagePageSize >= resp.Count {
			break
		}
	}
	return out, nil
}

// regionRows returns the rows of one version by region; an empty versionID means the
// image's current version, which is returned too.
func (p *Provider) regionRows(ctx context.Context, imageID, versionID, productType string) (map[string]distRow, string, error) {
	listed, err := p.listImage(ctx, imageID, productType)
	if err != nil {
		return nil, "", err
	}
	if versionID == "" && len(listed) > 0 {
		versionID = listed[0].VersionID
	}
	rows := map[string]distRow{}
	for _, img := range listed {
		for _, r := range img.ImageRegionDistributeList {
			if r.VersionID == versionID || (r.VersionID == "" && img.VersionID == versionID) {
				rows[r.RegionID] = r
			}
		}
	}
	return rows, versionID, nil
}

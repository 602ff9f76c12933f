package huawei

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/ims/v2/model"

	"github.com/imagerelay/imagerelay/shared/adapters/huawei/constraints"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// API actions, as they appear in errors.
const (
	ActionCopy       = "CopyImageCrossRegion"
	ActionShowJob    = "ShowJob"
	ActionListImages = "ListImages"
)

// imageTaskPrefix marks a TaskID that names the destination image rather than an IMS job:
// FindCopy finds a copy by name and cannot learn the job that makes it, so the poller follows
// the image's status instead.
const imageTaskPrefix = "image/"

// IMS image statuses (ImageInfo.status).
const (
	imageActive  = "active"
	imageKilled  = "killed"
	imageDeleted = "deleted"
)

// target returns the one destination region of req and the copy's IMS image name (req.Name
// made acceptable to IMS the same way every time, so FindCopy looks for the name StartCopy
// used), or a terminal error for a request that names no region or no copy name: IMS copies
// to one region per call, and a copy without a deterministic name could not be found again.
func target(action string, req domain.StartRequest) (region, name string, err error) {
	if len(req.Regions) != 1 || req.Regions[0] == "" {
		return "", "", &domain.ProviderError{Provider: Name, Action: action, Code: "NoDestination",
			Message: fmt.Sprintf("the copy request names %d destination regions; IMS copies to exactly one per call", len(req.Regions)),
			Class:   domain.Terminal, Hint: "this is an imagerelay bug: replicate must name one destination region per Huawei call"}
	}
	if req.Name == "" {
		return "", "", &domain.ProviderError{Provider: Name, Action: action, Code: "NoCopyName",
			Message: "the copy request names no copy", Class: domain.Terminal,
			Hint: "this is an imagerelay bug: replicate must name every copy (domain.CopyName)"}
	}
	return req.Regions[0], constraints.SanitizeName(req.Name), nil
}

// StartCopy makes one CopyImageCrossRegion call from the source region to req.Regions[0]
// and returns the IMS job id as the task id.
func (p *Provider) StartCopy(ctx context.Context, req domain.StartRequest) ([]domain.Handle, error) {
	dest, name, err := target(ActionCopy, req)
	if err != nil {
		return nil, err
	}
	if p.cfg.Agency == "" {
		return nil, &domain.ProviderError{Provider: Name, Action: ActionCopy, Code: "AgencyNotConfigured",
			Message: "no IAM agency is configured for cross-region copies", Class: domain.Terminal,
			Hint: "create an IAM agency that delegates IMS (e.g. ims_admin_agency) and set huawei.agency"}
	}
	if _, err := p.ProjectID(dest); err != nil {
		// Checked before the call: the project id of the destination is needed to find and
		// follow the copy later, so starting one without it would leave it untracked.
		return nil, &domain.ProviderError{Provider: Name, Action: ActionCopy, Code: "ProjectIdNotConfigured",
			Message: err.Error(), Class: domain.Terminal,
			Hint: "set huawei.projects." + dest + " to the account's project id in " + dest}
	}
	c, err := p.client(ActionCopy, req.SourceRegion)
	if err != nil {
		return nil, err
	}
	desc := constraints.Description(req.Image)
	body := &model.CopyImageCrossRegionRequestBody{
		Name:        name,
		Description: &desc,
		Region:      dest,
		ProjectName: p.projectName(dest),
		AgencyName:  p.cfg.Agency,
	}
	resp, err := call(ctx, p, ActionCopy, func() (*model.CopyImageCrossRegionResponse, error) {
		return c.CopyImageCrossRegion(&model.CopyImageCrossRegionRequest{ImageId: req.ImageID, Body: body})
	})
	if err != nil {
		return nil, err
	}
	if resp.JobId == nil || *resp.JobId == "" {
		// IMS accepted something without a job to follow; retrying goes through FindCopy,
		// which finds the copy by name if one was started.
		return nil, &domain.ProviderError{Provider: Name, Action: ActionCopy, Code: codeNoJobID,
			Message: "IMS answered without a job_id", Class: domain.Retryable,
			Hint: "imagerelay will look for the copy by name and retry"}
	}
	return []domain.Handle{{Region: dest, TaskID: *resp.JobId}}, nil
}

// FindCopy looks in the destination region for an image named like req's copy. A copy still
// being made is returned to follow (its task id names the image); a finished one comes back
// AlreadyPresent.
func (p *Provider) FindCopy(ctx context.Context, req domain.StartRequest) (domain.Handle, bool, error) {
	dest, name, err := target(ActionListImages, req)
	if err != nil {
		return domain.Handle{}, false, err
	}
	img, ok, err := p.findImage(ctx, dest, &model.ListImagesRequest{Name: &name}, func(i model.ImageInfo) bool { return i.Name == name })
	if err != nil || !ok {
		return domain.Handle{}, false, err
	}
	h := domain.Handle{Region: dest, TaskID: imageTaskPrefix + img.Id, DestinationImageID: img.Id}
	h.AlreadyPresent = img.Status.Value() == imageActive
	return h, true, nil
}

// findImage lists images in a region and returns the first that match accepts and that is
// not a failed or deleted copy.
func (p *Provider) findImage(ctx context.Context, regionID string, req *model.ListImagesRequest,
	match func(model.ImageInfo) bool) (model.ImageInfo, bool, error) {
	imgs, err := p.listImages(ctx, regionID, req)
	if err != nil {
		return model.ImageInfo{}, false, err
	}
	for _, img := range imgs {
		switch strings.ToLower(img.Status.Value()) {
		case imageKilled, imageDeleted:
			continue
		}
		if match(img) {
			return img, true, nil
		}
	}
	return model.ImageInfo{}, false, nil
}

func (p *Provider) listImages(ctx context.Context, regionID string, req *model.ListImagesRequest) ([]model.ImageInfo, error) {
	c, err := p.client(ActionListImages, regionID)
	if err != nil {
		return nil, err
	}
	resp, err := call(ctx, p, ActionListImages, func() (*model.ListImagesResponse, error) { return c.ListImages(req) })
	if err != nil || resp.Images == nil {
		return nil, err
	}
	return *resp.Images, nil
}

// isNotFound reports whether IMS answered 404 (an unknown job or image).
func isNotFound(err error) bool {
	var pe *domain.ProviderError
	return errors.As(err, &pe) && pe.HTTPStatus == http.StatusNotFound
}

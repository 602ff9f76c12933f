package alibaba

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/imagerelay/imagerelay/shared/domain"
)

// Limits of the Ecd APIs.
const (
	// MaxRebuildDesktops is the most desktops one RebuildDesktops call may name.
	MaxRebuildDesktops = 20
	// maxDescribeIDs is the most DesktopId one DescribeDesktops call may name, and its
	// largest MaxResults.
	maxDescribeIDs = 100
)

// RebuildSuccess is the per-desktop Code of an accepted rebuild (compared case-insensitively).
const RebuildSuccess = "success"

// Desktop is one Elastic Desktop Service cloud computer, as DescribeDesktops reports it.
type Desktop struct {
	ID       string
	Name     string
	Region   string
	Status   string // Pending, Starting, Running, Stopping, Stopped, Rebuilding, Expired, Deleted
	ImageID  string
	OSType   string // Windows or Linux
	Platform string
	// GPU is true for graphics desktops (GpuCount or GpuCategory non-zero); they take GPU
	// images only.
	GPU      bool
	GPUCount float64
	GroupID  string
	Tags     map[string]string
	// DataDisk is true when the desktop has a data disk besides its system disk.
	DataDisk bool
}

// DesktopFilter narrows ListDesktops; empty fields do not filter.
type DesktopFilter struct {
	DesktopIDs []string
	ImageIDs   []string
	Status     string
	GroupID    string
	// Tags must all match.
	Tags map[string]string
}

// RebuildResult is one desktop's answer to RebuildDesktops.
type RebuildResult struct {
	DesktopID string
	// Code is "success" when the rebuild started, else the reason (IncorrectDesktopStatus, ...).
	Code    string
	Message string
	// OK is true when Code is "success" (in any letter case).
	OK bool
}

// Desktops lists and rebuilds Elastic Desktop Service desktops. It is safe for concurrent use.
type Desktops struct {
	api *api
}

// NewDesktops builds the Ecd client. Credentials are read per call (see
// ContextWithCredentials).
func NewDesktops(cfg Config) (*Desktops, error) {
	ep, err := parseEndpoint(cfg.EcdEndpoint)
	if err != nil {
		return nil, err
	}
	resolve := func(region string) endpoint {
		if ep.host != "" {
			return ep
		}
		return endpoint{host: "ecd." + region + ".aliyuncs.com", protocol: "HTTPS"}
	}
	return &Desktops{api: newAPI(EcdVersion, resolve, cfg, ActionRebuildDesktops, ActionDescribeDesktops)}, nil
}

type describeDesktopsResponse struct {
	NextToken  string `json:"NextToken"`
	TotalCount int    `json:"TotalCount"`
	Desktops   []struct {
		DesktopID      string  `json:"DesktopId"`
		DesktopName    string  `json:"DesktopName"`
		DesktopStatus  string  `json:"DesktopStatus"`
		ImageID        string  `json:"ImageId"`
		OsType         string  `json:"OsType"`
		Platform       string  `json:"Platform"`
		GpuCount       float64 `json:"GpuCount"`
		GpuCategory    int64   `json:"GpuCategory"`
		DesktopGroupID string  `json:"DesktopGroupId"`
		Tags           []struct {
			Key   string `json:"Key"`
			Value string `json:"Value"`
		} `json:"Tags"`
		Disks []struct {
			DiskType string `json:"DiskType"`
		} `json:"Disks"`
	} `json:"Desktops"`
}

// ListDesktops returns every desktop of region that matches filter, following NextToken
// through all pages (100 a page; more than 100 DesktopIDs are asked for 100 at a time).
func (d *Desktops) ListDesktops(ctx context.Context, region string, filter DesktopFilter) ([]Desktop, error) {
	if region == "" {
		return nil, &domain.ProviderError{Provider: ProviderName, Action: ActionDescribeDesktops, Code: "MissingParameter",
			Message: "no region was given", Class: domain.Terminal, Hint: "DescribeDesktops needs a region"}
	}
	if len(filter.DesktopIDs) == 0 {
		return d.listPages(ctx, region, filter, nil)
	}
	var out []Desktop
	for chunk := range slices.Chunk(filter.DesktopIDs, maxDescribeIDs) {
		got, err := d.listPages(ctx, region, filter, chunk)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

func (d *Desktops) listPages(ctx context.Context, region string, filter DesktopFilter, ids []string) ([]Desktop, error) {
	query := map[string]any{"RegionId": region, "MaxResults": maxDescribeIDs}
	if len(ids) > 0 {
		query["DesktopId"] = ids
	}
	if len(filter.ImageIDs) > 0 {
		query["ImageId"] = filter.ImageIDs
	}
	if filter.Status != "" {
		query["DesktopStatus"] = filter.Status
	}
	if filter.GroupID != "" {
		query["DesktopGroupId"] = filter.GroupID
	}
	if len(filter.Tags) > 0 {
		var tags []map[string]string
		for _, k := range slices.Sorted(maps.Keys(filter.Tags)) {
			tags = append(tags, map[string]string{"Key": k, "Value": filter.Tags[k]})
		}
		query["Tag"] = tags
	}
	var out []Desktop
	seen := map[string]bool{}
	for range maxPages {
		raw, err := d.api.call(ctx, ActionDescribeDesktops, region, query, nil)
		if err != nil {
			return nil, err
		}
		var resp describeDesktopsResponse
		if err := decodeBody(ActionDescribeDesktops, raw, &resp); err != nil {
			return nil, err
		}
		for _, x := range resp.Desktops {
			dk := Desktop{ID: x.DesktopID, Name: x.DesktopName, Region: region, Status: x.DesktopStatus, ImageID: x.ImageID,
				OSType: x.OsType, Platform: x.Platform, GPU: x.GpuCount > 0 || x.GpuCategory != 0, GPUCount: x.GpuCount,
				GroupID: x.DesktopGroupID}
			for _, t := range x.Tags {
				if dk.Tags == nil {
					dk.Tags = map[string]string{}
				}
				dk.Tags[t.Key] = t.Value
			}
			for _, disk := range x.Disks {
				if strings.EqualFold(disk.DiskType, "DATA") {
					dk.DataDisk = true
				}
			}
			out = append(out, dk)
		}
		if resp.NextToken == "" {
			return out, nil
		}
		if seen[resp.NextToken] {
			return nil, &domain.ProviderError{Provider: ProviderName, Action: ActionDescribeDesktops, Code: "InvalidResponse",
				Message: "DescribeDesktops returned the same NextToken twice", Class: domain.Retryable,
				Hint: "the listing did not advance; imagerelay will retry"}
		}
		seen[resp.NextToken] = true
		query["NextToken"] = resp.NextToken
	}
	return nil, &domain.ProviderError{Provider: ProviderName, Action: ActionDescribeDesktops, Code: "InvalidResponse",
		Message: fmt.Sprintf("DescribeDesktops returned more than %d pages", maxPages), Class: domain.Terminal,
		Hint: "narrow the desktop filter"}
}

type rebuildDesktopsResponse struct {
	RequestID      string `json:"RequestId"`
	RebuildResults []struct {
		DesktopID string `json:"DesktopId"`
		Code      string `json:"Code"`
		Message   string `json:"Message"`
	} `json:"RebuildResults"`
}

// RebuildDesktops replaces the image of 1–20 desktops of one region (imageID "" rebuilds onto
// their current image; operateType "" or "replace" decides the data disk; language is for
// system images). It returns one result per desktop: a desktop the service refused has OK
// false and the service's code, which is not an error. Request-level refusals (bad ids,
// unknown image, throttling, ...) are a *domain.ProviderError.
func (d *Desktops) RebuildDesktops(ctx context.Context, region string, ids []string, imageID, operateType, language string) ([]RebuildResult, error) {
	if len(ids) == 0 || len(ids) > MaxRebuildDesktops {
		return nil, &domain.ProviderError{Provider: ProviderName, Action: ActionRebuildDesktops, Code: "InvalidParameter",
			Message: fmt.Sprintf("RebuildDesktops takes 1 to %d desktop ids, not %d", MaxRebuildDesktops, len(ids)),
			Class:   domain.Terminal, Hint: fmt.Sprintf("split the rebuild into batches of at most %d desktops", MaxRebuildDesktops)}
	}
	query := map[string]any{"RegionId": region, "DesktopId": ids}
	if imageID != "" {
		query["ImageId"] = imageID
	}
	if operateType != "" {
		query["OperateType"] = operateType
	}
	if language != "" {
		query["Language"] = language
	}
	raw, err := d.api.call(ctx, ActionRebuildDesktops, region, query, nil)
	if err != nil {
		return nil, err
	}
	var resp rebuildDesktopsResponse
	if err := decodeBody(ActionRebuildDesktops, raw, &resp); err != nil {
		return nil, err
	}
	out := make([]RebuildResult, 0, len(resp.RebuildResults))
	for _, r := range resp.RebuildResults {
		out = append(out, RebuildResult{DesktopID: r.DesktopID, Code: r.Code, Message: r.Message, OK: strings.EqualFold(r.Code, RebuildSuccess)})
	}
	return out, nil
}

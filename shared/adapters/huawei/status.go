package huawei

import (
	"context"
	"math"
	"strings"
	"sync"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/ims/v2/model"

	"github.com/imagerelay/imagerelay/shared/domain"
)

// IMS job statuses (ShowJobResponse.status).
const (
	jobSuccess = "SUCCESS"
	jobFail    = "FAIL"
)

// CopyStatus reads each task: ShowJob in the task's source region for a job id, or the
// destination image's status for a copy FindCopy found by name. IMS has no batch query, so a
// batch is up to statusParallel calls at a time; every call waits for the account's rate
// limiter, so a batch never bursts past the limit, while the latency of one call no longer
// adds up over the whole batch. A job or image IMS does not know is PhaseNotFound; any other
// failure fails the batch.
func (p *Provider) CopyStatus(ctx context.Context, tasks []domain.Task) ([]domain.CopyStatus, error) {
	out := make([]domain.CopyStatus, len(tasks))
	if len(tasks) == 1 {
		st, err := p.taskStatus(ctx, tasks[0])
		if err != nil {
			return nil, err
		}
		out[0] = st
		return out, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, statusParallel)
	for i, t := range tasks {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			st, err := p.taskStatus(ctx, t)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					cancel() // the batch fails: the calls not made yet are not needed
				}
				mu.Unlock()
				return
			}
			out[i] = st
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// statusParallel bounds the IMS calls one CopyStatus batch makes at once.
const statusParallel = 4

func (p *Provider) taskStatus(ctx context.Context, t domain.Task) (domain.CopyStatus, error) {
	if id, ok := strings.CutPrefix(t.TaskID, imageTaskPrefix); ok {
		return p.imageStatus(ctx, t.DestinationRegion, id)
	}
	if t.TaskID == "" {
		if t.DestinationImageID != "" {
			return p.imageStatus(ctx, t.DestinationRegion, t.DestinationImageID)
		}
		return domain.CopyStatus{Phase: domain.PhaseNotFound}, nil
	}
	c, err := p.client(ActionShowJob, t.SourceRegion)
	if err != nil {
		return domain.CopyStatus{}, err
	}
	job, err := call(ctx, p, ActionShowJob, func() (*model.ShowJobResponse, error) {
		return c.ShowJob(&model.ShowJobRequest{JobId: t.TaskID})
	})
	if isNotFound(err) {
		return domain.CopyStatus{Phase: domain.PhaseNotFound}, nil
	}
	if err != nil {
		return domain.CopyStatus{}, err
	}
	st := jobStatus(job)
	if st.Phase == domain.PhaseSucceeded && st.DestinationImageID == "" {
		// A job that succeeded without naming its image: look the copy up by name.
		st.DestinationImageID = t.DestinationImageID
		if name := str(entity(job).ImageName); st.DestinationImageID == "" && name != "" {
			img, ok, err := p.findImage(ctx, t.DestinationRegion, &model.ListImagesRequest{Name: &name},
				func(i model.ImageInfo) bool { return i.Name == name })
			if err != nil {
				return domain.CopyStatus{}, err
			}
			if ok {
				st.DestinationImageID = img.Id
			}
		}
	}
	return st, nil
}

// jobStatus maps an IMS job to a copy status.
func jobStatus(job *model.ShowJobResponse) domain.CopyStatus {
	e := entity(job)
	st := domain.CopyStatus{}
	if job.Status != nil {
		st.ProviderStatus = job.Status.Value()
	}
	switch st.ProviderStatus {
	case jobSuccess:
		st.Phase, st.Percent, st.DestinationImageID = domain.PhaseSucceeded, 100, str(e.ImageId)
	case jobFail:
		st.Phase = domain.PhaseFailed
		st.Code = firstNonEmpty(str(job.ErrorCode), str(e.ErrorCode), "TaskFailed")
		st.Message = firstNonEmpty(str(job.FailReason), str(e.Error), "the IMS copy job failed")
	default: // INIT, RUNNING and anything newer: still going
		st.Phase = domain.PhaseInProgress
		st.Percent = inProgressPercent(e.ProcessPercent)
	}
	return st
}

// inProgressPercent reads process_percent as a percentage, held below 100 until the job says
// SUCCESS.
func inProgressPercent(p *float64) int {
	if p == nil || math.IsNaN(*p) {
		return 0
	}
	return max(0, min(99, int(math.Round(*p))))
}

// imageStatus follows a copy by its destination image: active is done, queued or saving is
// under way, killed failed.
func (p *Provider) imageStatus(ctx context.Context, regionID, imageID string) (domain.CopyStatus, error) {
	imgs, err := p.listImages(ctx, regionID, &model.ListImagesRequest{Id: &imageID})
	if err != nil {
		return domain.CopyStatus{}, err
	}
	for _, img := range imgs {
		if img.Id != imageID {
			continue
		}
		status := img.Status.Value()
		st := domain.CopyStatus{ProviderStatus: status, DestinationImageID: img.Id}
		switch strings.ToLower(status) {
		case imageActive:
			st.Phase, st.Percent = domain.PhaseSucceeded, 100
		case imageKilled:
			st.Phase, st.Code, st.Message = domain.PhaseFailed, "ImageKilled", "IMS marked the copied image as failed (killed)"
		case imageDeleted:
			return domain.CopyStatus{Phase: domain.PhaseNotFound, ProviderStatus: status}, nil
		default: // queued, saving
			st.Phase = domain.PhaseInProgress
		}
		return st, nil
	}
	return domain.CopyStatus{Phase: domain.PhaseNotFound}, nil
}

func entity(job *model.ShowJobResponse) model.JobEntities {
	if job.Entities == nil {
		return model.JobEntities{}
	}
	return *job.Entities
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

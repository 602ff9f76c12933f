package poller_test

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/imagerelay/imagerelay/shared/dev/coretest"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// fakeReader is a test double of a provider's status API: it answers from a script per task
// and records every call.
type fakeReader struct {
	mu    sync.Mutex
	batch int
	// script holds the statuses of each task id, one per call; the last one repeats.
	// A task without a script is in progress at 0%.
	script map[string][]domain.CopyStatus
	// fail, when set, fails every call.
	fail func() error
	// short drops the last status of every answer (a provider bug the core must survive).
	short bool
	calls [][]domain.Task
}

func (f *fakeReader) CopyStatus(_ context.Context, tasks []domain.Task) ([]domain.CopyStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, slices.Clone(tasks))
	if f.fail != nil {
		return nil, f.fail()
	}
	out := make([]domain.CopyStatus, 0, len(tasks))
	for _, t := range tasks {
		st := domain.CopyStatus{Phase: domain.PhaseInProgress}
		if s := f.script[t.TaskID]; len(s) > 0 {
			st = s[0]
			if len(s) > 1 {
				f.script[t.TaskID] = s[1:]
			}
		}
		out = append(out, st)
	}
	if f.short {
		out = out[:len(out)-1]
	}
	return out, nil
}

func (f *fakeReader) BatchSize() int { return f.batch }

// set replaces the script of one task.
func (f *fakeReader) set(taskID string, sts ...domain.CopyStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.script == nil {
		f.script = map[string][]domain.CopyStatus{}
	}
	f.script[taskID] = sts
}

// callLog returns the tasks of every CopyStatus call so far.
func (f *fakeReader) callLog() [][]domain.Task {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func newClock() *coretest.Clock { return coretest.NewClock(time.Now().UTC().Truncate(time.Second)) }

func inProgress(pct int, status string) domain.CopyStatus {
	return domain.CopyStatus{Phase: domain.PhaseInProgress, Percent: pct, ProviderStatus: status}
}

func succeeded(imageID string) domain.CopyStatus {
	return domain.CopyStatus{Phase: domain.PhaseSucceeded, Percent: 100, ProviderStatus: "NORMAL", DestinationImageID: imageID}
}

func notFound() domain.CopyStatus {
	return domain.CopyStatus{Phase: domain.PhaseNotFound}
}

func providerError(class domain.Class, code string) func() error {
	return func() error {
		return &domain.ProviderError{Provider: "tencent", Action: "CopyStatus", Code: code, Message: code + " happened", Class: class, Hint: "check the account"}
	}
}

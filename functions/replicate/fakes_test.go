package replicate_test

import (
	"context"
	"slices"
	"sync"

	"github.com/imagerelay/imagerelay/shared/domain"
)

// fakeCopier is a test double of a provider's copy API: it counts calls per region, hands
// out deterministic handles and fails on demand.
type fakeCopier struct {
	mu sync.Mutex
	// startErrs are returned by successive StartCopy calls; once used up, calls succeed.
	// alwaysErr, when set, is returned by every call instead.
	startErrs []error
	alwaysErr func() error
	// found is what FindCopy reports; findErr fails it.
	found   *domain.Handle
	findErr error
	// onFind, when set, runs at the start of each FindCopy with its region (outside the
	// lock), so a test can let another worker act between a lookup and the claim after it.
	onFind func(region string)
	// lostAnswers StartCopy calls start the copy (FindCopy finds it from then on) and then
	// fail with lostErr, as when the answer to an accepted call is lost on the way back.
	lostAnswers int
	lostErr     error
	// skip lists regions StartCopy accepts without returning a handle for.
	skip map[string]bool
	// entered, when set, receives a value as each StartCopy call begins; the call then waits
	// until hold is closed, so a test can keep a copy "in flight" while others race it.
	entered chan struct{}
	hold    chan struct{}

	landed map[string]bool // regions a call with a lost answer started

	startCalls int
	starts     map[string]int // StartCopy calls naming each region
	finds      map[string]int // FindCopy calls per region
	requests   []domain.StartRequest
}

func (f *fakeCopier) StartCopy(_ context.Context, req domain.StartRequest) ([]domain.Handle, error) {
	if f.entered != nil {
		f.entered <- struct{}{}
		<-f.hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.startCalls++
	if f.starts == nil {
		f.starts = map[string]int{}
	}
	for _, r := range req.Regions {
		f.starts[r]++
	}
	f.requests = append(f.requests, req)
	if f.lostAnswers > 0 {
		f.lostAnswers--
		if f.landed == nil {
			f.landed = map[string]bool{}
		}
		for _, r := range req.Regions {
			f.landed[r] = true
		}
		return nil, f.lostErr
	}
	if f.alwaysErr != nil {
		return nil, f.alwaysErr()
	}
	if len(f.startErrs) > 0 {
		err := f.startErrs[0]
		f.startErrs = f.startErrs[1:]
		return nil, err
	}
	var hs []domain.Handle
	for _, r := range req.Regions {
		if f.skip[r] {
			continue
		}
		hs = append(hs, domain.Handle{Region: r, TaskID: "task-" + r, DestinationImageID: "m-" + r})
	}
	return hs, nil
}

func (f *fakeCopier) FindCopy(_ context.Context, req domain.StartRequest) (domain.Handle, bool, error) {
	if f.onFind != nil {
		f.onFind(req.Regions[0])
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.finds == nil {
		f.finds = map[string]int{}
	}
	f.finds[req.Regions[0]]++
	if f.findErr != nil {
		return domain.Handle{}, false, f.findErr
	}
	if r := req.Regions[0]; f.landed[r] {
		return domain.Handle{Region: r, TaskID: "task-" + r, DestinationImageID: "m-" + r}, true, nil
	}
	if f.found == nil {
		return domain.Handle{}, false, nil
	}
	return *f.found, true, nil
}

// counts returns the number of StartCopy calls, and per region the StartCopy and FindCopy calls.
func (f *fakeCopier) counts() (calls int, starts, finds map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	starts, finds = map[string]int{}, map[string]int{}
	for k, v := range f.starts {
		starts[k] = v
	}
	for k, v := range f.finds {
		finds[k] = v
	}
	return f.startCalls, starts, finds
}

func (f *fakeCopier) lastRequest() domain.StartRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

// multiCopier starts many regions in one call, like Alibaba StartTaskForDistributeImage.
type multiCopier struct{ *fakeCopier }

func (multiCopier) MultiRegion() bool { return true }

// limitedCopier allows two copies in flight per account, like Huawei IMS (which allows 5).
type limitedCopier struct{ *fakeCopier }

func (limitedCopier) MaxInFlight() int { return 2 }

func retryable(code string) func() error {
	return func() error {
		return &domain.ProviderError{Provider: "huawei", Action: "StartCopy", Code: code, Message: "slow down",
			Class: domain.Retryable, Hint: "imagerelay will retry"}
	}
}

func terminal(code, msg, hint string) error {
	return &domain.ProviderError{Provider: "huawei", Action: "StartCopy", Code: code, Message: msg,
		RequestID: "req-123", Class: domain.Terminal, Hint: hint}
}

// fakeWaker records the schedules a freed copy slot wakes, in place of the bus.
type fakeWaker struct {
	mu    sync.Mutex
	woken []string // function + " " + key
}

func (w *fakeWaker) Wake(_ context.Context, function, key string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.woken = append(w.woken, function+" "+key)
	return nil
}

func (w *fakeWaker) calls() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.woken)
}

package tencent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/imagerelay/imagerelay/shared/adapters/ratelimit"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// fakeLimits records the specs a provider asks for; its limiters fail with err.
type fakeLimits struct {
	mu    sync.Mutex
	specs []ratelimit.Spec
	err   error
}

func (f *fakeLimits) For(s ratelimit.Spec) ratelimit.Limiter {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.specs = append(f.specs, s)
	return f
}

func (f *fakeLimits) Wait(context.Context) error { return f.err }

// TestRateLimitLimitsArePerAccountAndInjectable checks the provider asks the injected factory for one
// limit per API of its account, at the configured rates with a burst of 1.
func TestRateLimitLimitsArePerAccountAndInjectable(t *testing.T) {
	f := &fakeLimits{}
	setup(t, seed(), Config{Account: "main", SyncRatePerSecond: 7, DescribeRatePerSecond: 30, Limits: f})
	want := fmt.Sprint([]ratelimit.Spec{
		{Provider: "tencent", API: "SyncImages", Account: "main", Rate: 7, Burst: 1},
		{Provider: "tencent", API: "DescribeImages", Account: "main", Rate: 30, Burst: 1},
	})
	if got := fmt.Sprint(f.specs); got != want {
		t.Errorf("specs %s, want %s", got, want)
	}
}

// TestRateLimitUnreachableLimitFailsRetryableWithoutCalling never calls Tencent when the shared limit
// cannot be read.
func TestRateLimitUnreachableLimitFailsRetryableWithoutCalling(t *testing.T) {
	f := &fakeLimits{err: fmt.Errorf("%w: nats: timeout", ratelimit.ErrUnavailable)}
	e := setup(t, seed(), Config{Limits: f})
	_, err := e.p.StartCopy(context.Background(), copyReq("img-base0001", "ap-guangzhou", "ap-shanghai"))
	pe := asProviderError(t, err)
	if pe.Code != "ClientError.RateLimitUnavailable" || !errors.Is(err, domain.ErrRetryable) {
		t.Errorf("StartCopy = %+v, want retryable ClientError.RateLimitUnavailable", pe)
	}
	if n := len(e.calls.Calls("tencent", "")); n != 0 {
		t.Errorf("%d calls reached Tencent without a rate-limit slot", n)
	}
}

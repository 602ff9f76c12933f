package huawei_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/imagerelay/imagerelay/shared/adapters/huawei"
	"github.com/imagerelay/imagerelay/shared/adapters/ratelimit"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/huaweiemu"
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

// TestRateLimitLimitIsPerAccountAndInjectable checks the provider asks the injected factory for the
// account's IMS limit at the configured rate with a burst of 1.
func TestRateLimitLimitIsPerAccountAndInjectable(t *testing.T) {
	f := &fakeLimits{}
	newEnv(t, nil, func(c *huawei.Config) { c.RatePerSecond, c.Limits = 3, f })
	want := fmt.Sprint([]ratelimit.Spec{{Provider: "huawei", API: "ims", Account: "demo", Rate: 3, Burst: 1}})
	if got := fmt.Sprint(f.specs); got != want {
		t.Errorf("specs %s, want %s", got, want)
	}
}

// TestRateLimitUnreachableLimitFailsRetryableWithoutCalling never calls IMS when the shared limit
// cannot be read, and says why.
func TestRateLimitUnreachableLimitFailsRetryableWithoutCalling(t *testing.T) {
	f := &fakeLimits{err: fmt.Errorf("%w: nats: timeout", ratelimit.ErrUnavailable)}
	e := newEnv(t, nil, func(c *huawei.Config) { c.Limits = f })
	_, err := e.p.StartCopy(context.Background(), request(huaweiemu.DemoImageLinux, "golden-ubuntu-22.04", dst))
	var pe *domain.ProviderError
	if !errors.As(err, &pe) || pe.Code != "RateLimitUnavailable" || !errors.Is(err, domain.ErrRetryable) {
		t.Errorf("StartCopy = %v, want retryable RateLimitUnavailable", err)
	}
	if n := len(e.calls.Calls("", "")); n != 0 {
		t.Errorf("%d calls reached IMS without a rate-limit slot", n)
	}
}

package alibaba

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/imagerelay/imagerelay/shared/adapters/ratelimit"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/alibabaemu"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// fakeLimits records the specs a client asks for; its limiters fail with err.
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

// limitedEnv starts the emulator and builds both clients with the limits f.
func limitedEnv(t *testing.T, f *fakeLimits, account string) (*Provider, *Desktops, *emucore.CallLog) {
	t.Helper()
	calls := &emucore.CallLog{}
	emu, err := alibabaemu.New(emuSeed(), calls, emucore.NewFaults(emucore.Rates{}, 1))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	t.Setenv(EnvAccessKeyID, alibabaemu.DemoAccessKeyID)
	t.Setenv(EnvAccessKeySecret, alibabaemu.DemoAccessKeySecret)
	t.Setenv(EnvSecurityToken, "")
	cfg := Config{Endpoint: srv.URL, EcdEndpoint: srv.URL, Account: account, ProductType: "CloudDesktop", RatePerSecond: 4, Limits: f}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDesktops(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, d, calls
}

// TestRateLimitLimitsArePerActionAndAccount checks each action asks the injected factory for its own
// limit of the account, at the configured rate with a burst of 1; no account is "default".
func TestRateLimitLimitsArePerActionAndAccount(t *testing.T) {
	f := &fakeLimits{}
	limitedEnv(t, f, "")
	var got []string
	for _, s := range f.specs {
		got = append(got, fmt.Sprintf("%s/%s/%s/%v/%d", s.Provider, s.API, s.Account, s.Rate, s.Burst))
	}
	want := []string{"alibaba/StartTaskForDistributeImage/default/4/1", "alibaba/ListImage/default/4/1",
		"alibaba/RebuildDesktops/default/4/1", "alibaba/DescribeDesktops/default/4/1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("specs %v, want %v", got, want)
	}
}

// TestRateLimitUnreachableLimitFailsRetryableWithoutCalling never calls Alibaba when the shared limit
// cannot be read.
func TestRateLimitUnreachableLimitFailsRetryableWithoutCalling(t *testing.T) {
	f := &fakeLimits{err: fmt.Errorf("%w: nats: timeout", ratelimit.ErrUnavailable)}
	p, _, calls := limitedEnv(t, f, "main")
	_, err := p.StartCopy(context.Background(), copyRequest("imgc-demodesk0001", "", "cn-beijing"))
	var pe *domain.ProviderError
	if !errors.As(err, &pe) || pe.Code != "RateLimitUnavailable" || !errors.Is(err, domain.ErrRetryable) {
		t.Errorf("StartCopy = %v, want retryable RateLimitUnavailable", err)
	}
	if n := len(calls.Calls("", "")); n != 0 {
		t.Errorf("%d calls reached Alibaba without a rate-limit slot", n)
	}
}

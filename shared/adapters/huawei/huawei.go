// Package huawei copies private images across regions with Huawei Cloud Image Management
// Service (IMS), through the official huaweicloud-sdk-go-v3 ImsClient.
//
// A copy is one CopyImageCrossRegion call made in the source region (one destination per
// call); it returns an asynchronous job that ShowJob follows, in the source region, from INIT
// through RUNNING to SUCCESS (entities.image_id is then the new image in the destination) or
// FAIL. IMS runs at most five cross-region copies per tenant at once, so the provider reports
// MaxInFlight 5 and replicate takes a cluster-wide slot before each start; a refusal for too
// many copies is classified retryable.
//
// Credentials come only from Huawei's usual environment variables, HUAWEICLOUD_SDK_AK and
// HUAWEICLOUD_SDK_SK (or CLOUD_SDK_AK and CLOUD_SDK_SK), plus HUAWEICLOUD_SDK_SECURITY_TOKEN for
// temporary keys. Every client is given the region's project id from Config.Projects: without
// it the SDK would call IAM to discover the project, which fails against an emulator and costs
// a round trip against the cloud.
//
// The SDK has no context parameter. Calls therefore run with the HTTP timeout of
// Config.Timeout (the SDK's http.Client timeout, which bounds the whole exchange). A call that
// starts a copy is always waited for, even when the context ends: if it were abandoned, its
// request could reach IMS after replicate had given up on it and looked for the copy, and
// the copy would be started twice. MaxCallDuration tells replicate how long that can take.
// Read-only calls (ShowJob, ListImages) return when the context ends; the abandoned read ends
// within the HTTP timeout and changes nothing.
package huawei

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/region"
	ims "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/ims/v2"

	"github.com/imagerelay/imagerelay/shared/adapters/huawei/constraints"
	"github.com/imagerelay/imagerelay/shared/adapters/ratelimit"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// Name is the provider's name in events, configuration and errors.
const Name = "huawei"

// Environment variables the credentials are read from, Huawei's usual names first.
const (
	EnvAK            = "HUAWEICLOUD_SDK_AK"
	EnvSK            = "HUAWEICLOUD_SDK_SK"
	EnvSecurityToken = "HUAWEICLOUD_SDK_SECURITY_TOKEN"
	EnvAltAK         = "CLOUD_SDK_AK"
	EnvAltSK         = "CLOUD_SDK_SK"
)

const (
	// maxInFlight is IMS's documented limit of concurrent cross-region copies per tenant.
	maxInFlight = 5
	// batchSize bounds one CopyStatus call; IMS has no batch job query, so each task is
	// one ShowJob made in turn.
	batchSize          = 20
	defaultRatePerSec  = 10
	defaultHTTPTimeout = 30 * time.Second
)

// ErrNoCredentials is returned by New when the access key environment variables are unset.
var ErrNoCredentials = errors.New("huawei: no access key: set " + EnvAK + " and " + EnvSK +
	" (or " + EnvAltAK + " and " + EnvAltSK + ")")

// ErrNoProject is matched by the error for a region that has no project id in Config.Projects.
var ErrNoProject = errors.New("huawei: no project id configured for the region")

// Config configures the provider. It holds no secrets.
type Config struct {
	// Endpoint, when set, is used for every region (an emulator, "http://127.0.0.1:PORT");
	// empty means the real https://ims.<region>.myhuaweicloud.com.
	Endpoint string `yaml:"endpoint,omitempty" json:"endpoint,omitempty"`
	// Account is the operator's label for the tenant (not a credential).
	Account string `yaml:"account,omitempty" json:"account,omitempty"`
	// Projects maps every source and destination region to the account's project id there.
	Projects map[string]string `yaml:"projects" json:"projects"`
	// ProjectNames optionally maps a destination region to the project name sent as
	// project_name; the default is the region id, which is the name of each region's default
	// project.
	ProjectNames map[string]string `yaml:"projectNames,omitempty" json:"projectNames,omitempty"`
	// Agency is the IAM agency that lets IMS act in the destination (agency_name).
	Agency string `yaml:"agency" json:"agency"`
	// RatePerSecond bounds the IMS calls of the account; 0 means 10.
	RatePerSecond float64 `yaml:"ratePerSecond,omitempty" json:"ratePerSecond,omitempty"`
	// Limits makes the limiter, keyed by (huawei, ims, Account); nil means a process-local
	// one (ratelimit.Local). Runtimes inject a cluster-wide one, so that every worker
	// together stays within RatePerSecond.
	Limits ratelimit.Factory `yaml:"-" json:"-"`
	// Timeout bounds one HTTP call; 0 means 30s.
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// Provider talks to IMS. It is safe for concurrent use.
type Provider struct {
	cfg     Config
	ak, sk  string
	token   string
	limiter ratelimit.Limiter
	// rules checks copies against IMS's limits before any call (fanout uses the same checker
	// without this package; see constraints).
	rules *constraints.Checker

	mu      sync.Mutex
	clients map[string]*ims.ImsClient
}

// New checks cfg, reads the access key from the environment and returns a provider. Clients
// are made per region on first use.
func New(cfg Config) (*Provider, error) {
	ak, sk, token, err := credentialsFromEnv()
	if err != nil {
		return nil, err
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("huawei: endpoint %q must be an http(s) URL such as http://127.0.0.1:8443", cfg.Endpoint)
		}
	}
	for r, pid := range cfg.Projects {
		if pid == "" {
			return nil, fmt.Errorf("huawei: projects.%s is empty: set the project id of region %s", r, r)
		}
	}
	if cfg.RatePerSecond < 0 {
		return nil, fmt.Errorf("huawei: ratePerSecond %v must not be negative", cfg.RatePerSecond)
	}
	perSec := cfg.RatePerSecond
	if perSec == 0 {
		perSec = defaultRatePerSec
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultHTTPTimeout
	}
	return &Provider{
		cfg: cfg, ak: ak, sk: sk, token: token,
		limiter: limiter{ratelimit.Or(cfg.Limits).For(ratelimit.Spec{Provider: Name, API: "ims", Account: limitAccount(cfg.Account), Rate: perSec, Burst: 1})},
		rules:   constraints.New(cfg.Projects),
		clients: map[string]*ims.ImsClient{},
	}, nil
}

// limiter reports a cluster-wide limit that could not be reached as a retryable provider
// error that says so (call classifies a *domain.ProviderError as it is); context
// errors pass through to call's own classification.
type limiter struct{ ratelimit.Limiter }

func (l limiter) Wait(ctx context.Context) error {
	err := l.Limiter.Wait(ctx)
	if errors.Is(err, ratelimit.ErrUnavailable) {
		return &domain.ProviderError{Provider: Name, Action: "RateLimit", Code: "RateLimitUnavailable", Message: err.Error(),
			Class: domain.Retryable, RetryAfter: time.Second,
			Hint: "the call was not made: the cluster-wide rate limit in NATS could not be reached; imagerelay retries once NATS answers"}
	}
	return err
}

// limitAccount is the account label a rate limit is keyed by.
func limitAccount(account string) string {
	if account == "" {
		return "default"
	}
	return account
}

func credentialsFromEnv() (ak, sk, token string, err error) {
	ak, sk = os.Getenv(EnvAK), os.Getenv(EnvSK)
	if ak == "" && sk == "" {
		ak, sk = os.Getenv(EnvAltAK), os.Getenv(EnvAltSK)
	}
	if ak == "" || sk == "" {
		return "", "", "", ErrNoCredentials
	}
	return ak, sk, os.Getenv(EnvSecurityToken), nil
}

// Name returns "huawei".
func (p *Provider) Name() string { return Name }

// CheckCopy returns why src cannot be copied to region by IMS, or "" when it can. It makes
// no API call: it checks IMS's documented limits and this provider's configuration.
func (p *Provider) CheckCopy(src domain.Source, region string) string {
	return p.rules.CheckCopy(src, region)
}

// MaxInFlight is IMS's limit of concurrent cross-region copies per tenant: 5.
func (p *Provider) MaxInFlight() int { return maxInFlight }

// BatchSize is the most tasks one CopyStatus call carries.
func (p *Provider) BatchSize() int { return batchSize }

// ProjectID returns the configured project id of region, or an error matching ErrNoProject
// that names the region.
func (p *Provider) ProjectID(regionID string) (string, error) {
	if pid := p.cfg.Projects[regionID]; pid != "" {
		return pid, nil
	}
	return "", fmt.Errorf("%w %s: add huawei.projects.%s (the project id is on the console's My Credentials page)",
		ErrNoProject, regionID, regionID)
}

func (p *Provider) projectName(regionID string) string {
	if n := p.cfg.ProjectNames[regionID]; n != "" {
		return n
	}
	return regionID
}

func (p *Provider) endpoint(regionID string) string {
	if p.cfg.Endpoint != "" {
		return p.cfg.Endpoint
	}
	return "https://ims." + regionID + ".myhuaweicloud.com"
}

// client returns the cached ImsClient of a region, making it on first use. Failures are
// terminal *domain.ProviderError values: they are configuration mistakes.
func (p *Provider) client(action, regionID string) (*ims.ImsClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[regionID]; ok {
		return c, nil
	}
	pid, err := p.ProjectID(regionID)
	if err != nil {
		return nil, &domain.ProviderError{Provider: Name, Action: action, Code: "ProjectIdNotConfigured",
			Message: err.Error(), Class: domain.Terminal,
			Hint: "set huawei.projects." + regionID + " to the account's project id in " + regionID}
	}
	b := basic.NewCredentialsBuilder().WithAk(p.ak).WithSk(p.sk).WithProjectId(pid)
	if p.token != "" {
		b = b.WithSecurityToken(p.token)
	}
	cred, err := b.SafeBuild()
	if err != nil {
		return nil, configError(action, fmt.Errorf("credentials: %w", err))
	}
	hc, err := ims.ImsClientBuilder().
		WithRegion(region.NewRegion(regionID, p.endpoint(regionID))).
		WithCredential(cred).
		WithHttpConfig(config.DefaultHttpConfig().WithTimeout(p.cfg.Timeout)).
		SafeBuild()
	if err != nil {
		return nil, configError(action, fmt.Errorf("IMS client for %s: %w", regionID, err))
	}
	c := ims.NewImsClient(hc)
	p.clients[regionID] = c
	return c, nil
}

func configError(action string, err error) *domain.ProviderError {
	return &domain.ProviderError{Provider: Name, Action: action, Code: "ClientConfig", Message: err.Error(),
		Class: domain.Terminal, Hint: "check the huawei provider configuration (endpoint, projects)"}
}

// MaxCallDuration is the longest a call can take: the rate limiter's wait, which call bounds
// by the HTTP timeout, plus the SDK's HTTP timeout. replicate trusts a "starting" claim at
// least that long (replicate.BoundedCopier).
func (p *Provider) MaxCallDuration() time.Duration { return 2 * p.cfg.Timeout }

// call waits for the rate limiter (at most the HTTP timeout, so that MaxCallDuration holds),
// then runs fn. A copy start (ActionCopy) is waited for to its end whatever ctx does, so it
// can never land after its caller gave up; reads return early when ctx ends.
func call[T any](ctx context.Context, p *Provider, action string, fn func() (T, error)) (T, error) {
	var zero T
	wait, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	if err := p.limiter.Wait(wait); err != nil {
		return zero, notExecuted(classify(action, err), "the call was not made: its context ended while waiting for the rate limiter")
	}
	if err := ctx.Err(); err != nil {
		return zero, notExecuted(classify(action, err), "the call was not made: its context had ended")
	}
	if action == ActionCopy {
		v, err := fn()
		if err != nil {
			return zero, classify(action, err)
		}
		return v, nil
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return zero, classify(action, r.err)
		}
		return r.v, nil
	case <-ctx.Done():
		return zero, classify(action, ctx.Err())
	}
}

// notExecuted marks pe as an error of a request that never left this process, so replicate
// knows nothing can have started (domain.MaybeStarted).
func notExecuted(pe *domain.ProviderError, hint string) *domain.ProviderError {
	c := *pe
	c.NotExecuted, c.Hint = true, hint+"; imagerelay will retry"
	return &c
}

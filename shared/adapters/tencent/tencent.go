// Package tencent copies Tencent Cloud CVM custom images across regions with SyncImages and
// follows the copies with DescribeImages, through the official tencentcloud-sdk-go client.
//
// One SyncImages call per copy request (ImageSetRequired=true, so the new image ids come back
// at once); the destination image id is the task handle the poller follows. Calls are paced by
// limiters at the documented limits (SyncImages 10/s, DescribeImages 40/s) per account,
// shared by every worker when the runtime injects cluster-wide limits, and every
// failure is classified as a *domain.ProviderError with a hint for the operator.
package tencent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"github.com/imagerelay/imagerelay/shared/adapters/ratelimit"
	"github.com/imagerelay/imagerelay/shared/adapters/tencent/constraints"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// ProviderName is the provider's name in events, records and the call log.
const ProviderName = "tencent"

// Environment variables the credentials come from (the SDK's usual names).
const (
	EnvSecretID     = "TENCENTCLOUD_SECRET_ID"
	EnvSecretKey    = "TENCENTCLOUD_SECRET_KEY"
	EnvSessionToken = "TENCENTCLOUD_SESSION_TOKEN"
)

// Documented limits.
const (
	// DefaultSyncRate is SyncImages' documented limit in requests per second.
	DefaultSyncRate = 10
	// DefaultDescribeRate is DescribeImages' documented limit in requests per second.
	DefaultDescribeRate = 40
	// DefaultTimeout bounds one API call.
	DefaultTimeout = 30 * time.Second
	// MaxDescribeIDs is the most image ids one DescribeImages call may name.
	MaxDescribeIDs = 100
	// MaxSyncSizeGB is the size from which SyncImages refuses an image.
	MaxSyncSizeGB = constraints.MaxSyncSizeGB
)

// ErrNoCredentials is returned by New when the credential environment variables are not set.
var ErrNoCredentials = errors.New("tencent: no credentials")

// imageIDPattern is the shape of a Tencent image id.
var imageIDPattern = regexp.MustCompile(`^img-[a-z0-9]{8}$`)

// Config configures the provider. Credentials never come from here: they are read from
// TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY and, for temporary keys,
// TENCENTCLOUD_SESSION_TOKEN.
type Config struct {
	// Endpoint is the API host ("host:port") or URL; empty means the real Tencent Cloud
	// (cvm.tencentcloudapi.com over HTTPS). A bare loopback host such as "127.0.0.1:9401"
	// (the emulator) is spoken to over HTTP, any other bare host over HTTPS.
	Endpoint string
	// Account labels the account in logs (never a credential).
	Account string
	// SyncRatePerSecond and DescribeRatePerSecond pace the calls; defaults 10 and 40.
	SyncRatePerSecond, DescribeRatePerSecond float64
	// Limits makes the limiters of the two APIs, keyed by (tencent, API, Account); nil means
	// process-local limiters (ratelimit.Local). Runtimes inject cluster-wide ones, because
	// the documented limits hold per account, across every worker.
	Limits ratelimit.Factory
	// Timeout bounds one API call; default 30s.
	Timeout time.Duration
	// Regions overrides the list of regions the provider knows; empty means KnownRegions.
	Regions []string
}

// Provider talks to Tencent Cloud CVM. It is safe for concurrent use.
type Provider struct {
	cred    common.CredentialIface
	host    string
	scheme  string
	timeout time.Duration
	rules   *constraints.Checker
	syncLim ratelimit.Limiter
	descLim ratelimit.Limiter
	log     *slog.Logger
	mu      sync.Mutex
	clients map[string]*cvm.Client
}

// KnownRegions are the Tencent Cloud regions with CVM, as the SDK's region list has them
// (constraints.KnownRegions, which needs no SDK).
func KnownRegions() []string { return constraints.KnownRegions() }

// New builds a provider, reading the credentials from the environment.
func New(cfg Config) (*Provider, error) {
	id, key := os.Getenv(EnvSecretID), os.Getenv(EnvSecretKey)
	if id == "" || key == "" {
		return nil, fmt.Errorf("%w: set %s and %s (and %s for temporary keys)", ErrNoCredentials, EnvSecretID, EnvSecretKey, EnvSessionToken)
	}
	var cred common.CredentialIface = common.NewCredential(id, key)
	if tok := os.Getenv(EnvSessionToken); tok != "" {
		cred = common.NewTokenCredential(id, key, tok)
	}
	host, scheme, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	syncRate, descRate := cfg.SyncRatePerSecond, cfg.DescribeRatePerSecond
	if syncRate <= 0 {
		syncRate = DefaultSyncRate
	}
	if descRate <= 0 {
		descRate = DefaultDescribeRate
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	account := cfg.Account
	if account == "" {
		account = "default"
	}
	limits := ratelimit.Or(cfg.Limits)
	return &Provider{
		cred:    cred,
		host:    host,
		scheme:  scheme,
		timeout: timeout,
		rules:   constraints.New(cfg.Regions),
		// A burst of 1 spaces the calls evenly, so a burst of work never trips the
		// provider's own per-second counter.
		syncLim: limits.For(ratelimit.Spec{Provider: ProviderName, API: "SyncImages", Account: account, Rate: syncRate, Burst: 1}),
		descLim: limits.For(ratelimit.Spec{Provider: ProviderName, API: "DescribeImages", Account: account, Rate: descRate, Burst: 1}),
		log:     slog.Default().With("provider", ProviderName, "account", account),
		clients: map[string]*cvm.Client{},
	}, nil
}

// parseEndpoint splits cfg.Endpoint into the SDK's Endpoint (a host) and Scheme.
func parseEndpoint(ep string) (host, scheme string, err error) {
	ep = strings.TrimSpace(ep)
	if ep == "" {
		return "", "HTTPS", nil
	}
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil {
			return "", "", fmt.Errorf("tencent: endpoint %q: %w", ep, err)
		}
		s := strings.ToUpper(u.Scheme)
		if (s != "HTTP" && s != "HTTPS") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return "", "", fmt.Errorf("tencent: endpoint %q must be host:port or http(s)://host:port with no path", ep)
		}
		return u.Host, s, nil
	}
	h := ep
	if hh, _, err := net.SplitHostPort(ep); err == nil {
		h = hh
	}
	if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) {
		return ep, "HTTP", nil
	}
	return ep, "HTTPS", nil
}

// Name returns "tencent".
func (p *Provider) Name() string { return ProviderName }

// Regions returns the regions the provider knows, sorted.
func (p *Provider) Regions() []string { return p.rules.Regions() }

// BatchSize is the most tasks one CopyStatus call should carry: DescribeImages takes 100 ids.
func (p *Provider) BatchSize() int { return MaxDescribeIDs }

// client returns the SDK client for region; the region travels as X-TC-Region, so each
// region needs its own client.
func (p *Provider) client(region string) (*cvm.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[region]; ok {
		return c, nil
	}
	prof := profile.NewClientProfile()
	prof.HttpProfile.Endpoint = p.host
	prof.HttpProfile.Scheme = p.scheme
	prof.HttpProfile.ReqTimeout = int(math.Ceil(p.timeout.Seconds()))
	prof.Language = "en-US"
	// The SDK's own retries are off: SyncImages has no ClientToken, so a blind retry could
	// start a second copy. Throttling is handled by the limiters and the caller's retry.
	prof.RateLimitExceededMaxRetries = 0
	prof.NetworkFailureMaxRetries = 0
	c, err := cvm.NewClient(p.cred, region, prof)
	if err != nil {
		return nil, fmt.Errorf("tencent: client for %s: %w", region, err)
	}
	c.WithRequestClient("imagerelay")
	p.clients[region] = c
	return c, nil
}

// StartCopy makes exactly one SyncImages call in the source region, naming the copy
// req.Name and asking for the new image ids. Each destination's handle carries the new image
// id as TaskID and DestinationImageID.
func (p *Provider) StartCopy(ctx context.Context, req domain.StartRequest) ([]domain.Handle, error) {
	const action = "SyncImages"
	if err := checkRequest(action, req); err != nil {
		return nil, err
	}
	name := req.Name
	sreq := cvm.NewSyncImagesRequest()
	sreq.ImageIds = common.StringPtrs([]string{req.ImageID})
	sreq.DestinationRegions = common.StringPtrs(req.Regions)
	sreq.ImageName = common.StringPtr(name)
	sreq.ImageSetRequired = common.BoolPtr(true)

	c, err := p.client(req.SourceRegion)
	if err != nil {
		return nil, classify(action, err)
	}
	// The slot is the last thing waited for, so the call leaves as close to it as it can.
	if err := p.syncLim.Wait(ctx); err != nil {
		return nil, waitError(action, err)
	}
	cctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	resp, err := c.SyncImagesWithContext(cctx, sreq)
	if err != nil {
		pe := classify(action, err)
		if pe.Code == codeNameDuplicate {
			// The deterministic name is taken: an earlier attempt whose answer was lost has
			// already started this copy. Follow that copy instead of failing.
			if hs, ok := p.adopt(ctx, req.Regions, name); ok {
				p.log.Info("copy already started by an earlier attempt", "image_id", req.ImageID, "name", name)
				return hs, nil
			}
		}
		return nil, pe
	}
	ids, reqID := map[string]string{}, ""
	if resp.Response != nil {
		reqID = deref(resp.Response.RequestId)
		for _, s := range resp.Response.ImageSet {
			if s != nil && s.Region != nil && s.ImageId != nil {
				ids[*s.Region] = *s.ImageId
			}
		}
	}
	handles := make([]domain.Handle, 0, len(req.Regions))
	for _, region := range req.Regions {
		id, ok := ids[region]
		if !ok {
			// SyncImages accepted the copy but did not say the new id; look it up by name.
			img, found, err := p.findByName(ctx, region, name)
			if err != nil || !found {
				return nil, &domain.ProviderError{Provider: ProviderName, Action: action, Code: "ClientError.MissingImageSet",
					Message: fmt.Sprintf("SyncImages accepted the copy but returned no image id for %s", region), Class: domain.Retryable,
					RequestID: reqID,
					Hint:      "imagerelay will retry; the retry finds the copy by its name instead of starting another"}
			}
			id = deref(img.ImageId)
		}
		handles = append(handles, domain.Handle{Region: region, TaskID: id, DestinationImageID: id})
	}
	p.log.Debug("SyncImages started", "image_id", req.ImageID, "source_region", req.SourceRegion, "regions", req.Regions, "name", name)
	return handles, nil
}

// adopt finds the copies named name in every region, or reports false.
func (p *Provider) adopt(ctx context.Context, regions []string, name string) ([]domain.Handle, bool) {
	var hs []domain.Handle
	for _, region := range regions {
		img, found, err := p.findByName(ctx, region, name)
		if err != nil || !found {
			return nil, false
		}
		hs = append(hs, handleFor(region, img))
	}
	return hs, true
}

// FindCopy looks in req.Regions[0] for a copy named req.Name, which an interrupted earlier
// attempt may have started.
func (p *Provider) FindCopy(ctx context.Context, req domain.StartRequest) (domain.Handle, bool, error) {
	if err := checkRequest("DescribeImages", req); err != nil {
		return domain.Handle{}, false, err
	}
	region := req.Regions[0]
	img, found, err := p.findByName(ctx, region, req.Name)
	if err != nil || !found {
		return domain.Handle{}, false, err
	}
	return handleFor(region, img), true, nil
}

// checkRequest refuses a request without a destination region or without a copy name: a
// copy is found again by its deterministic name only, so one started without it could be
// started twice.
func checkRequest(action string, req domain.StartRequest) error {
	switch {
	case len(req.Regions) == 0:
		return &domain.ProviderError{Provider: ProviderName, Action: action, Code: "ClientError.NoDestination",
			Message: "the copy request names no destination region", Class: domain.Terminal,
			Hint: "this is a bug in the caller: a copy request needs at least one destination region"}
	case req.Name == "":
		return &domain.ProviderError{Provider: ProviderName, Action: action, Code: "ClientError.NoCopyName",
			Message: "the copy request names no copy", Class: domain.Terminal,
			Hint: "this is a bug in the caller: a copy request needs its deterministic name (domain.CopyName)"}
	}
	return nil
}

func handleFor(region string, img *cvm.Image) domain.Handle {
	id := deref(img.ImageId)
	return domain.Handle{Region: region, TaskID: id, DestinationImageID: id, AlreadyPresent: deref(img.ImageState) == "NORMAL"}
}

// findByName returns the private image named name in region. When several carry the name
// (there should be one), a live copy wins over a failed one, then the newest.
func (p *Provider) findByName(ctx context.Context, region, name string) (*cvm.Image, bool, error) {
	req := cvm.NewDescribeImagesRequest()
	req.Filters = []*cvm.Filter{
		{Name: common.StringPtr("image-name"), Values: common.StringPtrs([]string{name})},
		{Name: common.StringPtr("image-type"), Values: common.StringPtrs([]string{"PRIVATE_IMAGE"})},
	}
	req.Limit = common.Uint64Ptr(MaxDescribeIDs)
	images, err := p.describe(ctx, region, req)
	if err != nil {
		return nil, false, err
	}
	var best *cvm.Image
	for _, img := range images {
		if img == nil || deref(img.ImageName) != name {
			continue
		}
		if best == nil || better(img, best) {
			best = img
		}
	}
	return best, best != nil, nil
}

func better(a, b *cvm.Image) bool {
	af, bf := failedState(deref(a.ImageState)), failedState(deref(b.ImageState))
	if af != bf {
		return !af
	}
	return deref(a.CreatedTime) > deref(b.CreatedTime)
}

// describe makes one rate-limited DescribeImages call in region.
func (p *Provider) describe(ctx context.Context, region string, req *cvm.DescribeImagesRequest) ([]*cvm.Image, error) {
	const action = "DescribeImages"
	c, err := p.client(region)
	if err != nil {
		return nil, classify(action, err)
	}
	if err := p.descLim.Wait(ctx); err != nil {
		return nil, waitError(action, err)
	}
	cctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	resp, err := c.DescribeImagesWithContext(cctx, req)
	if err != nil {
		return nil, classify(action, err)
	}
	if resp.Response == nil {
		return nil, nil
	}
	return resp.Response.ImageSet, nil
}

// CopyStatus reads the destination images of tasks with DescribeImages, up to 100 ids a call
// (tasks are split into as many calls as needed), and maps ImageState to a phase.
func (p *Provider) CopyStatus(ctx context.Context, tasks []domain.Task) ([]domain.CopyStatus, error) {
	out := make([]domain.CopyStatus, len(tasks))
	byRegion := map[string][]int{}
	var regions []string
	for i, t := range tasks {
		if _, seen := byRegion[t.DestinationRegion]; !seen {
			regions = append(regions, t.DestinationRegion)
		}
		byRegion[t.DestinationRegion] = append(byRegion[t.DestinationRegion], i)
	}
	for _, region := range regions {
		if err := p.regionStatus(ctx, region, tasks, byRegion[region], out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (p *Provider) regionStatus(ctx context.Context, region string, tasks []domain.Task, idx []int, out []domain.CopyStatus) error {
	var ids []string
	var byName []int
	for _, i := range idx {
		id := taskImageID(tasks[i])
		switch {
		case id == "":
			byName = append(byName, i)
		case !imageIDPattern.MatchString(id):
			out[i] = domain.CopyStatus{Phase: domain.PhaseNotFound, Message: fmt.Sprintf("%q is not a Tencent image id", id)}
		case !slices.Contains(ids, id):
			ids = append(ids, id)
		}
	}
	found := map[string]*cvm.Image{}
	for chunk := range slices.Chunk(ids, MaxDescribeIDs) {
		req := cvm.NewDescribeImagesRequest()
		req.ImageIds = common.StringPtrs(chunk)
		req.Limit = common.Uint64Ptr(MaxDescribeIDs)
		images, err := p.describe(ctx, region, req)
		if err != nil {
			return err
		}
		for _, img := range images {
			if img != nil && img.ImageId != nil {
				found[*img.ImageId] = img
			}
		}
	}
	for _, i := range idx {
		if id := taskImageID(tasks[i]); id != "" && imageIDPattern.MatchString(id) {
			out[i] = statusOf(found[id], region)
		}
	}
	// A task started without a known id is followed by its deterministic name.
	for _, i := range byName {
		img, ok, err := p.findByName(ctx, region, domain.CopyName(tasks[i].Copy))
		if err != nil {
			return err
		}
		if !ok {
			img = nil
		}
		out[i] = statusOf(img, region)
	}
	return nil
}

func taskImageID(t domain.Task) string {
	if t.DestinationImageID != "" {
		return t.DestinationImageID
	}
	return t.TaskID
}

func failedState(s string) bool { return s == "CREATEFAILED" || s == "IMPORTFAILED" }

// statusOf maps a destination image to the poller's view: NORMAL (or USING) is done,
// SYNCING/CREATING/IMPORTING is in progress with SyncPercent, CREATEFAILED/IMPORTFAILED
// failed, and an absent image not found.
func statusOf(img *cvm.Image, region string) domain.CopyStatus {
	if img == nil {
		return domain.CopyStatus{Phase: domain.PhaseNotFound}
	}
	id, state := deref(img.ImageId), deref(img.ImageState)
	pct := int(min(max(deref(img.SyncPercent), 0), 100))
	st := domain.CopyStatus{ProviderStatus: state, DestinationImageID: id, Percent: pct}
	switch {
	case state == "NORMAL" || state == "USING":
		st.Phase, st.Percent = domain.PhaseSucceeded, 100
	case failedState(state):
		st.Phase, st.Code = domain.PhaseFailed, "ImageState."+state
		st.Message = fmt.Sprintf("the copy %s in %s ended in state %s; delete it in the CVM console (Images) before copying again, since its name is reserved for this copy", id, region, state)
	default:
		// SYNCING, CREATING, IMPORTING and any state Tencent adds later: keep watching.
		st.Phase = domain.PhaseInProgress
		st.Percent = min(pct, 99)
	}
	return st
}

// CheckCopy returns why src cannot be copied to region with SyncImages, or "". It makes no
// API call (see constraints).
func (p *Provider) CheckCopy(src domain.Source, region string) string {
	return p.rules.CheckCopy(src, region)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

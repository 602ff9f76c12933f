// Package alibaba talks to Alibaba Cloud through the official darabonba-openapi client's
// generic CallApi: App Streaming (AppstreamCenter 2021-09-01) to replicate WUYING images
// across regions with StartTaskForDistributeImage and follow them with ListImage, and Elastic
// Desktop Service (Ecd 2020-09-30) to list desktops with DescribeDesktops and rebuild them
// with RebuildDesktops.
//
// Credentials are looked up on every call: from the context (ContextWithCredentials, which is
// how a Function Compute invocation hands over its STS keys) or else from the usual
// environment variables. They are never kept past the call. Every failure is classified as a
// *domain.ProviderError (retryable or terminal, with the provider's code, request id and
// a hint for the operator), and calls are paced by a limiter per API and account, shared by
// every worker when the runtime injects cluster-wide limits.
package alibaba

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	"github.com/alibabacloud-go/tea/dara"

	"github.com/imagerelay/imagerelay/shared/adapters/ratelimit"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// ProviderName is the provider's name in events, records and errors.
const ProviderName = "alibaba"

// Environment variables the default credentials come from (the SDK's usual names).
const (
	EnvAccessKeyID     = "ALIBABA_CLOUD_ACCESS_KEY_ID"
	EnvAccessKeySecret = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
	EnvSecurityToken   = "ALIBABA_CLOUD_SECURITY_TOKEN"
)

// API versions and actions.
const (
	AppStreamVersion = "2021-09-01"
	EcdVersion       = "2020-09-30"

	ActionStartTaskForDistributeImage = "StartTaskForDistributeImage"
	ActionListImage                   = "ListImage"
	ActionRebuildDesktops             = "RebuildDesktops"
	ActionDescribeDesktops            = "DescribeDesktops"
)

// Defaults.
const (
	// DefaultAppStreamEndpoint is App Streaming's single, central API host.
	DefaultAppStreamEndpoint = "appstream-center.aliyuncs.com"
	// DefaultRatePerSecond paces each API when Config.RatePerSecond is not set. Alibaba does
	// not publish these quotas (they live in Quota Center), so this is a conservative guess.
	DefaultRatePerSecond = 10
	// DefaultTimeout bounds one API call.
	DefaultTimeout = 30 * time.Second
)

// Config configures the App Streaming provider and the Ecd desktops client. Credentials never
// come from here.
type Config struct {
	// Endpoint is the AppstreamCenter host ("host:port") or URL; empty means
	// appstream-center.aliyuncs.com over HTTPS. A bare loopback host such as
	// "127.0.0.1:9402" (the emulator) is spoken to over HTTP, any other bare host over HTTPS;
	// an "http://" or "https://" prefix chooses explicitly.
	Endpoint string
	// EcdEndpoint is the Ecd host ("host:port") or URL used for every region; empty means
	// ecd.<region>.aliyuncs.com over HTTPS.
	EcdEndpoint string
	// Account labels the account in logs (never a credential).
	Account string
	// ProductType is the App Streaming product type (CloudApp, CloudDesktop, WuyingServer)
	// used when a request does not name one.
	ProductType string
	// RatePerSecond paces each API (one limiter per action and account); default
	// DefaultRatePerSecond.
	RatePerSecond float64
	// Limits makes the limiters, keyed by (alibaba, action, Account); nil means
	// process-local limiters (ratelimit.Local). Runtimes inject cluster-wide ones, because
	// Alibaba's quotas hold per account, across every worker.
	Limits ratelimit.Factory
	// Timeout bounds one API call; default DefaultTimeout.
	Timeout time.Duration
	// Regions overrides the regions CheckCopy knows; empty means KnownRegions.
	Regions []string
}

// Credentials are an AccessKey pair, with the token of temporary (STS) credentials.
type Credentials struct {
	AccessKeyID     string
	AccessKeySecret string
	SecurityToken   string
}

// String names the key without its secret, so credentials never leak into logs.
func (c Credentials) String() string { return "alibaba credentials " + c.AccessKeyID }

// GoString is String, so %#v does not print the secret either.
func (c Credentials) GoString() string { return c.String() }

// LogValue logs only the key id.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.AccessKeyID) }

// CredentialsFromEnv reads ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET and
// ALIBABA_CLOUD_SECURITY_TOKEN.
func CredentialsFromEnv() Credentials {
	return Credentials{
		AccessKeyID:     os.Getenv(EnvAccessKeyID),
		AccessKeySecret: os.Getenv(EnvAccessKeySecret),
		SecurityToken:   os.Getenv(EnvSecurityToken),
	}
}

type credentialsKey struct{}

// ContextWithCredentials returns a context whose calls use c instead of the environment's
// credentials. Function Compute hands each invocation its role's STS keys this way; they live
// only as long as the context.
func ContextWithCredentials(ctx context.Context, c Credentials) context.Context {
	return context.WithValue(ctx, credentialsKey{}, c)
}

// ErrNoCredentials is wrapped by the error a call returns when neither the context nor the
// environment has credentials.
var ErrNoCredentials = errors.New("alibaba: no credentials")

// credentialsFrom returns the context's credentials, else the environment's.
func credentialsFrom(ctx context.Context, action string) (Credentials, error) {
	c, ok := ctx.Value(credentialsKey{}).(Credentials)
	if !ok {
		c = CredentialsFromEnv()
	}
	if c.AccessKeyID == "" || c.AccessKeySecret == "" {
		return Credentials{}, &domain.ProviderError{Provider: ProviderName, Action: action, Code: "InvalidCredentials",
			Message: ErrNoCredentials.Error(), Class: domain.Terminal,
			Hint: fmt.Sprintf("set %s and %s (and %s for STS keys), or run where the function's role provides them", EnvAccessKeyID, EnvAccessKeySecret, EnvSecurityToken)}
	}
	return c, nil
}

// endpoint is where one product's API lives.
type endpoint struct {
	host     string
	protocol string // "HTTP" or "HTTPS"
}

// parseEndpoint reads a Config endpoint: empty, "host[:port]" or an http(s) URL.
func parseEndpoint(s string) (endpoint, error) {
	if s == "" {
		return endpoint{}, nil
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return endpoint{}, fmt.Errorf("alibaba: endpoint %q: %w", s, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return endpoint{}, fmt.Errorf("alibaba: endpoint %q must be host[:port] or http(s)://host[:port]", s)
		}
		return endpoint{host: u.Host, protocol: strings.ToUpper(u.Scheme)}, nil
	}
	host := s
	if h, _, err := net.SplitHostPort(s); err == nil {
		host = h
	}
	if host == "localhost" || net.ParseIP(host).IsLoopback() {
		return endpoint{host: s, protocol: "HTTP"}, nil
	}
	return endpoint{host: s, protocol: "HTTPS"}, nil
}

// api calls one Alibaba product through darabonba-openapi's generic CallApi.
type api struct {
	version  string
	endpoint func(region string) endpoint
	timeout  time.Duration
	limiters map[string]ratelimit.Limiter
	account  string
	// signatureAlgorithm is "" for the SDK default (ACS3-HMAC-SHA256) or "v2" for the legacy
	// HMAC-SHA1 RPC signature.
	signatureAlgorithm string
	// http sends every request of this API.
	http sdkHTTPClient
}

// sdkHTTPClient sends the SDK's requests through one http.Client that nothing mutates. The
// SDK's own pooled client (tea/dara v1.5.2) rewrites its Timeout before every request while
// concurrent requests read it — a data race under concurrent calls — so imagerelay brings its
// own; the per-call deadline comes from the request's context.
type sdkHTTPClient struct{ client *http.Client }

// Call implements dara.HttpClient. The SDK's per-request transport is not used: the shared
// one keeps connections alive across calls and honours the usual proxy variables.
func (c sdkHTTPClient) Call(req *http.Request, _ *http.Transport) (*http.Response, error) {
	return c.client.Do(req)
}

func newAPI(version string, ep func(string) endpoint, cfg Config, actions ...string) *api {
	r := cfg.RatePerSecond
	if r <= 0 {
		r = DefaultRatePerSecond
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	a := &api{version: version, endpoint: ep, timeout: timeout, limiters: map[string]ratelimit.Limiter{}, account: cfg.Account,
		http: sdkHTTPClient{client: &http.Client{Transport: http.DefaultTransport}}}
	account := cfg.Account
	if account == "" {
		account = "default"
	}
	limits := ratelimit.Or(cfg.Limits)
	for _, act := range actions {
		// A burst of 1 spaces the calls evenly, so no second holds more than r calls.
		a.limiters[act] = limits.For(ratelimit.Spec{Provider: ProviderName, API: act, Account: account, Rate: r, Burst: 1})
	}
	return a
}

// call runs one RPC action with params in the query and/or the form body, and returns the
// decoded JSON body.
func (a *api) call(ctx context.Context, action, region string, query, body map[string]any) (map[string]any, error) {
	creds, err := credentialsFrom(ctx, action)
	if err != nil {
		return nil, err
	}
	ep := a.endpoint(region)
	cfg := &openapi.Config{
		AccessKeyId:     dara.String(creds.AccessKeyID),
		AccessKeySecret: dara.String(creds.AccessKeySecret),
		Endpoint:        dara.String(ep.host),
		Protocol:        dara.String(ep.protocol),
		ReadTimeout:     dara.Int(int(a.timeout / time.Millisecond)),
		ConnectTimeout:  dara.Int(int(min(a.timeout, 10*time.Second) / time.Millisecond)),
		HttpClient:      a.http,
	}
	if region != "" {
		cfg.RegionId = dara.String(region)
	}
	if creds.SecurityToken != "" {
		cfg.SecurityToken = dara.String(creds.SecurityToken)
	}
	if a.signatureAlgorithm != "" {
		cfg.SignatureAlgorithm = dara.String(a.signatureAlgorithm)
	}
	// A client per call keeps the caller's credentials no longer than the call; the SDK
	// shares HTTP connections per host underneath, so this costs no new connection.
	cli, err := openapi.NewClient(cfg)
	if err != nil {
		return nil, &domain.ProviderError{Provider: ProviderName, Action: action, Code: "InvalidCredentials",
			Message: err.Error(), Class: domain.Terminal, Hint: "the credentials could not be used to build an API client"}
	}
	// Typed errors (ClientError, ServerError, ThrottlingError with RetryAfter) instead of the
	// flattened tea.SDKError.
	cli.DisableSDKError = dara.Bool(true)
	params := &openapi.Params{
		Action: dara.String(action), Version: dara.String(a.version), Protocol: dara.String("HTTPS"),
		Pathname: dara.String("/"), Method: dara.String("POST"), AuthType: dara.String("AK"),
		Style: dara.String("RPC"), ReqBodyType: dara.String("formData"), BodyType: dara.String("json"),
	}
	req := &openapi.OpenApiRequest{}
	if len(query) > 0 {
		req.Query = openapiutil.Query(query)
	}
	if len(body) > 0 {
		req.Body = body
	}
	// The slot is the last thing waited for, so the call leaves as close to it as it can.
	if lim := a.limiters[action]; lim != nil {
		if err := lim.Wait(ctx); errors.Is(err, ratelimit.ErrUnavailable) {
			return nil, &domain.ProviderError{Provider: ProviderName, Action: action, Code: "RateLimitUnavailable",
				Message: err.Error(), Class: domain.Retryable, RetryAfter: time.Second,
				Hint: "the call was not made: the cluster-wide rate limit in NATS could not be reached; imagerelay retries once NATS answers"}
		} else if err != nil {
			return nil, &domain.ProviderError{Provider: ProviderName, Action: action, Code: "RateLimitWait",
				Message: err.Error(), Class: domain.Retryable, Hint: "the call was not made: its context ended while waiting for the rate limiter"}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	start := time.Now()
	out, err := cli.CallApiWithCtx(ctx, params, req, &dara.RuntimeOptions{})
	if err != nil {
		pe := classify(action, err)
		slog.Debug("alibaba call failed", "provider", ProviderName, "account", a.account, "action", action, "region", region, "code", pe.Code, "requestId", pe.RequestID, "retryable", pe.Class == domain.Retryable)
		return nil, pe
	}
	respBody, _ := out["body"].(map[string]any)
	if respBody == nil {
		return nil, &domain.ProviderError{Provider: ProviderName, Action: action, Code: "InvalidResponse",
			Message: "the response has no JSON body", Class: domain.Retryable, Hint: "the API answered something unexpected; imagerelay will retry"}
	}
	slog.Debug("alibaba call", "provider", ProviderName, "account", a.account, "action", action, "region", region, "requestId", respBody["RequestId"], "duration", time.Since(start))
	return respBody, nil
}

// decodeBody converts a response body into a typed struct through JSON.
func decodeBody(action string, body map[string]any, v any) error {
	raw, err := json.Marshal(body)
	if err == nil {
		err = json.Unmarshal(raw, v)
	}
	if err != nil {
		return &domain.ProviderError{Provider: ProviderName, Action: action, Code: "InvalidResponse",
			Message: fmt.Sprintf("the response could not be decoded: %v", err), Class: domain.Terminal,
			Hint: "the API answered in a shape imagerelay does not understand; report it with the request id"}
	}
	return nil
}

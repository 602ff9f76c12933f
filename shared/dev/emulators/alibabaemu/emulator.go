// Package alibabaemu is a local Alibaba Cloud OpenAPI server for two RPC-style products on one
// HTTP handler: AppstreamCenter 2021-09-01 (StartTaskForDistributeImage, ListImage) and
// Elastic Desktop Service Ecd 2020-09-30 (RebuildDesktops, DescribeDesktops). The official
// darabonba-openapi client works against it unchanged (Config.Endpoint = "127.0.0.1:PORT",
// Config.Protocol = "HTTP").
//
// Requests are routed by the x-acs-version / x-acs-action headers (ACS3 signature) or the
// Version / Action query parameters (legacy v2 RPC signature). The emulator verifies both
// signature forms, answers errors in Alibaba's JSON error shape with 4xx/5xx statuses,
// enforces the documented constraints with the seed page's error codes, lets distributions
// progress INIT → CREATING → AVAILABLE and desktops go through Rebuilding over configurable
// durations, throttles per action and AccessKeyId, injects emucore faults and records every
// call it receives.
package alibabaemu

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
)

// Provider names the calls are recorded under: "alibaba" for AppstreamCenter and "ecd" for
// Elastic Desktop Service.
const (
	ProviderAppStream = "alibaba"
	ProviderEcd       = "ecd"
)

// API versions the emulator speaks.
const (
	AppStreamVersion = "2021-09-01"
	EcdVersion       = "2020-09-30"
)

// Actions the emulator implements.
const (
	ActionStartTaskForDistributeImage = "StartTaskForDistributeImage"
	ActionListImage                   = "ListImage"
	ActionRebuildDesktops             = "RebuildDesktops"
	ActionDescribeDesktops            = "DescribeDesktops"
)

const (
	maxBodyBytes = 1 << 20
	// timestampSkew is how far a request's timestamp may be from the emulator's clock.
	timestampSkew = 15 * time.Minute
	appStreamHost = "appstream-center.aliyuncs.com"
)

// product is one of the two APIs behind the handler.
type product struct {
	provider string
	version  string
	code     string // product code used in Recommend links
	actions  map[string]string
}

var (
	appStream = product{provider: ProviderAppStream, version: AppStreamVersion, code: "appstream-center", actions: map[string]string{
		ActionStartTaskForDistributeImage: "appstreaming:StartTaskForDistributeImage",
		ActionListImage:                   "appstreaming:ListImage",
	}}
	ecd = product{provider: ProviderEcd, version: EcdVersion, code: "ecd", actions: map[string]string{
		ActionRebuildDesktops:  "ecd:RebuildDesktops",
		ActionDescribeDesktops: "ecd:DescribeDesktops",
	}}
)

// Emulator serves both products. It is safe for concurrent use.
type Emulator struct {
	calls           *emucore.CallLog
	faults          *emucore.Faults
	creds           map[string]Credential
	rates           RateLimits
	retryAfter      time.Duration
	copyDuration    time.Duration
	rebuildDuration time.Duration
	maxDistribution int
	asRegions       map[string]bool
	ecdRegions      map[string]bool
	now             func() time.Time

	mu           sync.Mutex
	nonces       map[string]time.Time
	noncesPruned time.Time
	limiters     map[string]*rate.Limiter
	images       map[string]*appImage
	desktops     map[string]*desktop
	ecdImages    map[string]EcdImage // key region + "/" + id
}

// New builds an emulator from seed. calls and faults may be nil (a private log and no faults).
func New(seed Seed, calls *emucore.CallLog, faults *emucore.Faults) (*Emulator, error) {
	calls, faults = emucore.Shared(calls, faults)
	e := &Emulator{
		calls:           calls,
		faults:          faults,
		creds:           map[string]Credential{},
		rates:           seed.RateLimits,
		retryAfter:      seed.ThrottleRetryAfter.Std(),
		copyDuration:    seed.AppStream.CopyDuration.Std(),
		rebuildDuration: seed.Ecd.RebuildDuration.Std(),
		maxDistribution: seed.AppStream.MaxConcurrentDistributions,
		asRegions:       map[string]bool{},
		ecdRegions:      map[string]bool{},
		now:             time.Now,
		nonces:          map[string]time.Time{},
		limiters:        map[string]*rate.Limiter{},
		images:          map[string]*appImage{},
		desktops:        map[string]*desktop{},
		ecdImages:       map[string]EcdImage{},
	}
	if e.retryAfter <= 0 {
		e.retryAfter = DefaultThrottleRetryAfter
	}
	if e.copyDuration <= 0 {
		e.copyDuration = DefaultCopyDuration
	}
	if e.rebuildDuration <= 0 {
		e.rebuildDuration = DefaultRebuildDuration
	}
	setDefault(&e.rates.StartTaskForDistributeImage, DefaultDistributeRate)
	setDefault(&e.rates.ListImage, DefaultListImageRate)
	setDefault(&e.rates.RebuildDesktops, DefaultRebuildRate)
	setDefault(&e.rates.DescribeDesktops, DefaultDescribeRate)
	for i, c := range seed.Credentials {
		if c.AccessKeyID == "" || c.AccessKeySecret == "" {
			return nil, fmt.Errorf("alibabaemu: credentials[%d]: accessKeyId and accessKeySecret are both required", i)
		}
		e.creds[c.AccessKeyID] = c
	}
	regions := seed.AppStream.Regions
	if len(regions) == 0 {
		regions = DefaultAppStreamRegions()
	}
	for _, r := range regions {
		e.asRegions[r] = true
	}
	start := e.now().UTC()
	for i, img := range seed.AppStream.Images {
		if err := e.addAppImage(img, start); err != nil {
			return nil, fmt.Errorf("alibabaemu: appStream.images[%d]: %w", i, err)
		}
	}
	for _, r := range seed.Ecd.Regions {
		e.ecdRegions[r] = true
	}
	for i, img := range seed.Ecd.Images {
		if err := e.addEcdImage(img); err != nil {
			return nil, fmt.Errorf("alibabaemu: ecd.images[%d]: %w", i, err)
		}
	}
	for i, d := range seed.Ecd.Desktops {
		if err := e.AddDesktop(d); err != nil {
			return nil, fmt.Errorf("alibabaemu: ecd.desktops[%d]: %w", i, err)
		}
	}
	if len(e.ecdRegions) == 0 {
		for _, r := range DefaultEcdRegions() {
			e.ecdRegions[r] = true
		}
	}
	return e, nil
}

func setDefault(v *float64, d float64) {
	if *v <= 0 {
		*v = d
	}
}

// CallLog returns the log the emulator records calls in.
func (e *Emulator) CallLog() *emucore.CallLog { return e.calls }

// apiError is an error answer in Alibaba's shape.
type apiError struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, when positive, is sent as x-acs-retry-after in milliseconds.
	RetryAfter time.Duration
	// AccessDenied is the AccessDeniedDetail object of a permission error.
	AccessDenied map[string]any
}

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// errDropped asks ServeHTTP to close the connection without answering.
var errDropped = &apiError{Code: "dropped"}

// request is one parsed call.
type request struct {
	product  product
	action   string
	params   params
	cred     Credential
	call     *emucore.Call
	now      time.Time
	failKeys map[string]bool // elements (regions, desktops) a fail-copy fault hit
}

// ServeHTTP answers OpenAPI RPC requests (emulators.Start adds the admin endpoint).
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	call := emucore.Call{Provider: ProviderAppStream}
	host := appStreamHost
	resp, aerr := e.handle(r, &call, &host)
	if aerr == errDropped {
		call.Outcome = "dropped"
		e.calls.Record(call)
		emucore.Drop(w)
		return
	}
	reqID := newRequestID()
	status := http.StatusOK
	if aerr != nil {
		status = aerr.Status
		call.Outcome = aerr.Code
		resp = map[string]any{
			"HostId":    host,
			"Code":      aerr.Code,
			"Message":   aerr.Message,
			"Recommend": recommend(aerr.Code, call.Provider, reqID),
		}
		if aerr.AccessDenied != nil {
			resp["AccessDeniedDetail"] = aerr.AccessDenied
		}
		if aerr.RetryAfter > 0 {
			ms := int64(math.Ceil(float64(aerr.RetryAfter) / float64(time.Millisecond)))
			w.Header().Set("x-acs-retry-after", strconv.FormatInt(max(1, ms), 10))
		}
	} else {
		call.Outcome = "ok"
	}
	if call.Fault == emucore.FaultLoseAnswer {
		// The call was carried out; only its answer is lost.
		e.calls.Record(call)
		emucore.Drop(w)
		return
	}
	resp["RequestId"] = reqID
	call.HTTPStatus = status
	e.calls.Record(call)
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Header().Set("x-acs-request-id", reqID)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(resp)
}

func recommend(code, provider, reqID string) string {
	p := appStream.code
	if provider == ProviderEcd {
		p = ecd.code
	}
	return "https://api.aliyun.com/troubleshoot?q=" + url.QueryEscape(code) + "&product=" + p + "&requestId=" + reqID
}

func (e *Emulator) handle(r *http.Request, call *emucore.Call, host *string) (map[string]any, *apiError) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return nil, errf(http.StatusBadRequest, "UnsupportedHTTPMethod", "The HTTP method %s is not supported; use POST or GET.", r.Method)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, errf(http.StatusBadRequest, "InvalidParameter", "The request body could not be read.")
	}
	if len(body) > maxBodyBytes {
		return nil, errf(http.StatusBadRequest, "InvalidParameter", "The request body is larger than 1 MiB.")
	}
	query := r.URL.Query()
	var form url.Values
	if len(body) > 0 {
		if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
			return nil, errf(http.StatusBadRequest, "InvalidParameter", "The request body must be application/x-www-form-urlencoded, not %s.", ct)
		}
		if form, err = url.ParseQuery(string(body)); err != nil {
			return nil, errf(http.StatusBadRequest, "InvalidParameter", "The form body could not be parsed: %v.", err)
		}
	}
	legacy := query.Has("Signature")
	action, version := r.Header.Get("x-acs-action"), r.Header.Get("x-acs-version")
	if legacy {
		action, version = query.Get("Action"), query.Get("Version")
	}
	call.Action = action
	p := newParams(query, form)
	var prod product
	switch version {
	case AppStreamVersion:
		prod = appStream
	case EcdVersion:
		prod = ecd
		call.Provider = ProviderEcd
		call.Region = p.get("RegionId")
		*host = "ecd.aliyuncs.com"
		if call.Region != "" {
			*host = "ecd." + call.Region + ".aliyuncs.com"
		}
	case "":
		return nil, errf(http.StatusBadRequest, "MissingParameter", "The input parameter Version (header x-acs-version) that is mandatory for processing this request is not supplied.")
	default:
		return nil, errf(http.StatusBadRequest, "InvalidVersion", "Specified parameter Version %q is not valid; this endpoint serves AppstreamCenter %s and Ecd %s.", version, AppStreamVersion, EcdVersion)
	}
	call.Params = logParams(action, p)
	if action == "" {
		return nil, errf(http.StatusBadRequest, "MissingParameter", "The input parameter Action (header x-acs-action) that is mandatory for processing this request is not supplied.")
	}
	ramAction, ok := prod.actions[action]
	if !ok {
		return nil, errf(http.StatusNotFound, "InvalidAction.NotFound", "Specified api %s is not found in %s %s, please check your url and method.", action, prod.code, prod.version)
	}
	now := e.now()
	var cred Credential
	var aerr *apiError
	if legacy {
		cred, aerr = e.verifyV2(r, query, form, now)
	} else {
		cred, aerr = e.verifyACS3(r, body, now)
	}
	if aerr != nil {
		return nil, aerr
	}
	if denied(cred, ramAction) {
		return nil, &apiError{Status: http.StatusForbidden, Code: "Forbidden.RAM",
			Message:      fmt.Sprintf("User not authorized to operate on the specified resource, or this API doesn't support RAM. (RAM action %s is denied)", ramAction),
			AccessDenied: map[string]any{"AuthAction": ramAction, "AuthPrincipalType": "SubUser", "PolicyType": "AccountLevelIdentityBasedPolicy", "NoPermissionType": "ExplicitDeny"}}
	}
	if d, limited := e.limit(action, cred.AccessKeyID, now); limited {
		return nil, &apiError{Status: http.StatusBadRequest, Code: "Throttling.User",
			Message:    fmt.Sprintf("Request was denied due to user flow control (%s is limited to %s requests per second per AccessKey).", action, strconv.FormatFloat(e.rateFor(action), 'f', -1, 64)),
			RetryAfter: d}
	}
	req := &request{product: prod, action: action, params: p, cred: cred, call: call, now: now}
	if aerr := e.injectFault(r, req); aerr != nil {
		return nil, aerr
	}
	switch action {
	case ActionStartTaskForDistributeImage:
		return e.startTaskForDistributeImage(req)
	case ActionListImage:
		return e.listImage(req)
	case ActionRebuildDesktops:
		return e.rebuildDesktops(req)
	default:
		return e.describeDesktops(req)
	}
}

func denied(c Credential, ramAction string) bool {
	return slices.ContainsFunc(c.Denied, func(d string) bool { return d == "*" || strings.EqualFold(d, ramAction) })
}

// faultKeys returns the keys every fault decision of a call sees, and the elements (regions
// or desktops) that get their own decision so a fail-copy rule can hit one of them.
func faultKeys(action string, p params) (common, elements []string) {
	switch action {
	case ActionStartTaskForDistributeImage:
		return nonEmpty(p.get("ImageId"), p.get("VersionId"), p.get("SourceRegion")), p.list("DestinationRegionList")
	case ActionListImage:
		return nonEmpty(p.get("ImageId")), nil
	case ActionRebuildDesktops:
		return nonEmpty(p.get("RegionId"), p.get("ImageId")), p.list("DesktopId")
	default:
		return append(nonEmpty(p.get("RegionId")), append(p.list("DesktopId"), p.list("ImageId")...)...), nil
	}
}

func nonEmpty(vals ...string) []string {
	return slices.DeleteFunc(vals, func(s string) bool { return s == "" })
}

// injectFault applies the configured latency and the faults emucore decides. Calls that name
// regions or desktops get one decision per element (so a rule matching one region or desktop
// hits only it); the first throttle, server error or drop ends the call, fail-copy marks
// the element whose copy or rebuild will fail, and lose-answer on any element loses the
// answer of the whole call (there is one connection), after it has been carried out.
func (e *Emulator) injectFault(r *http.Request, req *request) *apiError {
	if d := e.faults.Latency(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	common, elements := faultKeys(req.action, req.params)
	decide := func(keys ...string) (emucore.FaultKind, *apiError) {
		kind := e.faults.Decide(req.product.provider, req.action, keys...)
		if kind == emucore.FaultFailCopy && len(elements) == 0 {
			kind = emucore.FaultNone // only a copy or a rebuild can fail; a read has nothing to fail
		}
		if kind != emucore.FaultNone && req.call.Fault != emucore.FaultLoseAnswer {
			req.call.Fault = kind // a lost answer outweighs the other marks: the client saw nothing
		}
		switch kind {
		case emucore.FaultThrottle:
			return kind, &apiError{Status: http.StatusBadRequest, Code: "Throttling.User",
				Message: "Request was denied due to user flow control (injected fault).", RetryAfter: e.retryAfter}
		case emucore.FaultServer:
			return kind, errf(http.StatusInternalServerError, "InternalError", "The request processing has failed due to some unknown error, exception or failure (injected fault).")
		case emucore.FaultDrop:
			return kind, errDropped
		}
		return kind, nil
	}
	if len(elements) == 0 {
		_, aerr := decide(common...)
		return aerr
	}
	// A call whose elements are all decided carries out; one that ends early reports the
	// fault that ended it.
	req.failKeys = map[string]bool{}
	for _, el := range elements {
		kind, aerr := decide(append(slices.Clone(common), el)...)
		if aerr != nil {
			req.call.Fault = kind
			return aerr
		}
		if kind == emucore.FaultFailCopy {
			req.failKeys[el] = true
		}
	}
	return nil
}

func (e *Emulator) rateFor(action string) float64 {
	switch action {
	case ActionStartTaskForDistributeImage:
		return e.rates.StartTaskForDistributeImage
	case ActionListImage:
		return e.rates.ListImage
	case ActionRebuildDesktops:
		return e.rates.RebuildDesktops
	default:
		return e.rates.DescribeDesktops
	}
}

// limit takes a token from the action's bucket for the AccessKeyId; when none is left it
// reports how long until one is.
func (e *Emulator) limit(action, keyID string, now time.Time) (time.Duration, bool) {
	r := e.rateFor(action)
	key := action + "\x00" + keyID
	e.mu.Lock()
	defer e.mu.Unlock()
	lim, ok := e.limiters[key]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(r), max(1, int(r)))
		e.limiters[key] = lim
	}
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return time.Second, true
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, true
	}
	return 0, false
}

// params are a call's parameters from the query and the form body, with Name.N lists.
type params struct{ v url.Values }

func newParams(query, form url.Values) params {
	v := url.Values{}
	for k, vals := range query {
		v[k] = slices.Clone(vals)
	}
	for k, vals := range form {
		v[k] = append(v[k], vals...)
	}
	return params{v: v}
}

func (p params) get(k string) string { return p.v.Get(k) }

func (p params) has(k string) bool { return p.v.Has(k) }

// list returns the values of the flattened list k.1, k.2, ... in index order.
func (p params) list(k string) []string {
	type item struct {
		i int
		v string
	}
	var items []item
	for key, vals := range p.v {
		rest, ok := strings.CutPrefix(key, k+".")
		if !ok || len(vals) == 0 {
			continue
		}
		if i, err := strconv.Atoi(rest); err == nil && i > 0 {
			items = append(items, item{i, vals[0]})
		}
	}
	sort.Slice(items, func(a, b int) bool { return items[a].i < items[b].i })
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, it.v)
	}
	return out
}

// listMaps returns the flattened list of objects k.N.Field in index order.
func (p params) listMaps(k string) []map[string]string {
	byIndex := map[int]map[string]string{}
	for key, vals := range p.v {
		rest, ok := strings.CutPrefix(key, k+".")
		if !ok || len(vals) == 0 {
			continue
		}
		idx, field, ok := strings.Cut(rest, ".")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(idx)
		if err != nil || i <= 0 {
			continue
		}
		if byIndex[i] == nil {
			byIndex[i] = map[string]string{}
		}
		byIndex[i][field] = vals[0]
	}
	keys := slices.Sorted(maps.Keys(byIndex))
	out := make([]map[string]string, 0, len(keys))
	for _, i := range keys {
		out = append(out, byIndex[i])
	}
	return out
}

// intParam parses an optional integer parameter within [lo, hi]; def when absent.
func (p params) intParam(k string, def, lo, hi int) (int, *apiError) {
	s := p.get(k)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, errf(http.StatusBadRequest, "InvalidParameter", "The specified parameter %s (%q) is not valid; it must be an integer from %d to %d.", k, s, lo, hi)
	}
	return n, nil
}

// logParams picks the key parameters of a call for the call log (never credentials).
func logParams(action string, p params) map[string]any {
	out := map[string]any{}
	put := func(k string) {
		if v := p.get(k); v != "" {
			out[k] = v
		}
	}
	putList := func(k string) {
		if l := p.list(k); len(l) > 0 {
			out[k] = l
		}
	}
	switch action {
	case ActionStartTaskForDistributeImage:
		put("ImageId")
		put("VersionId")
		putList("DestinationRegionList")
		put("ProductType")
		put("SourceRegion")
	case ActionListImage:
		put("ImageId")
		put("ProductType")
		put("PageNumber")
		put("PageSize")
	case ActionRebuildDesktops:
		put("RegionId")
		putList("DesktopId")
		put("ImageId")
		put("OperateType")
	case ActionDescribeDesktops:
		put("RegionId")
		putList("DesktopId")
		putList("ImageId")
		put("DesktopStatus")
		put("DesktopGroupId")
		put("MaxResults")
		put("NextToken")
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func newRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := strings.ToUpper(hex.EncodeToString(b))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// newID returns prefix followed by n random lowercase letters and digits.
func newID(prefix string, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b)
}

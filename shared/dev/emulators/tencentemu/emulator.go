// Package tencentemu is a local Tencent Cloud API 3.0 server for CVM 2017-03-12 that speaks
// enough of SyncImages and DescribeImages for the official tencentcloud-sdk-go client to work
// against it unchanged (HttpProfile.Endpoint = "127.0.0.1:PORT", Scheme "HTTP").
//
// It verifies TC3-HMAC-SHA256 signatures, enforces the documented SyncImages constraints with
// the documented error codes (always inside an HTTP 200 body, as Tencent does), throttles per
// action and SecretId at the documented rates, lets copies progress from SYNCING to NORMAL over
// a configurable time, injects faults through emucore, and records every call it receives.
package tencentemu

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
)

// Provider is the provider name the emulator records calls under.
const Provider = "tencent"

// APIVersion is the CVM API version the emulator speaks.
const APIVersion = "2017-03-12"

const (
	stateNormal       = "NORMAL"
	stateSyncing      = "SYNCING"
	stateCreateFailed = "CREATEFAILED"
	typePrivate       = "PRIVATE_IMAGE"
	typeShared        = "SHARED_IMAGE"
	maxImageNameLen   = 60
	maxSyncSizeGB     = 50
	maxDescribeIDs    = 100
	maxDescribeLimit  = 100
	defaultLimit      = 20
	maxFilters        = 10
	maxFilterValues   = 5
	maxBodyBytes      = 1 << 20
	tencentTime       = "2006-01-02T15:04:05Z"
)

// imageIDPattern is the shape of a Tencent image id.
var imageIDPattern = regexp.MustCompile(`^img-[a-z0-9]{8}$`)

// kmsKeyIDPattern is the shape of a KMS key id (a UUID).
var kmsKeyIDPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Emulator is a Tencent Cloud CVM API server. It is safe for concurrent use.
type Emulator struct {
	calls        *emucore.CallLog
	faults       *emucore.Faults
	creds        map[string]Credential
	regions      map[string]bool
	unsupported  map[string]bool
	quota        int
	copyDuration time.Duration
	rates        RateLimits
	now          func() time.Time

	mu       sync.Mutex
	images   map[string]*image
	byRegion map[string]*regionImages // the images of each region, indexed (see put)
	limiters map[string]*rate.Limiter
}

// image is the emulator's record of one image, with the copy's progress.
type image struct {
	Image
	imageType string
	syncing   bool
	copyStart time.Time
	failCopy  bool
	fromSync  bool
}

// apiError is a Tencent error code and message.
type apiError struct {
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errf(code, format string, args ...any) *apiError {
	return &apiError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// New builds an emulator from seed. calls and faults may be nil (a private log and no faults).
func New(seed Seed, calls *emucore.CallLog, faults *emucore.Faults) (*Emulator, error) {
	calls, faults = emucore.Shared(calls, faults)
	e := &Emulator{
		calls:        calls,
		faults:       faults,
		creds:        map[string]Credential{},
		regions:      map[string]bool{},
		unsupported:  map[string]bool{},
		quota:        seed.Quota,
		copyDuration: seed.CopyDuration.Std(),
		rates:        seed.RateLimits,
		now:          time.Now,
		images:       map[string]*image{},
		limiters:     map[string]*rate.Limiter{},
	}
	if e.quota <= 0 {
		e.quota = DefaultQuota
	}
	if e.copyDuration <= 0 {
		e.copyDuration = DefaultCopyDuration
	}
	if e.rates.SyncImages <= 0 {
		e.rates.SyncImages = DefaultSyncImagesRate
	}
	if e.rates.DescribeImages <= 0 {
		e.rates.DescribeImages = DefaultDescribeImagesRate
	}
	for i, c := range seed.Credentials {
		if c.SecretID == "" || c.SecretKey == "" {
			return nil, fmt.Errorf("tencentemu: credentials[%d]: secretId and secretKey are both required", i)
		}
		e.creds[c.SecretID] = c
	}
	regions := seed.Regions
	if len(regions) == 0 {
		regions = DefaultRegions()
	}
	for _, r := range regions {
		e.regions[r] = true
	}
	for _, r := range seed.UnsupportedRegions {
		if !e.regions[r] {
			return nil, fmt.Errorf("tencentemu: unsupportedRegions: %q is not one of the regions", r)
		}
		e.unsupported[r] = true
	}
	start := e.now().UTC()
	for i, img := range seed.Images {
		if err := e.addImage(img, start); err != nil {
			return nil, fmt.Errorf("tencentemu: images[%d]: %w", i, err)
		}
	}
	return e, nil
}

// AddImage adds a custom image, for example one a build pipeline just made.
func (e *Emulator) AddImage(img Image) error {
	return e.addImage(img, e.now().UTC())
}

func (e *Emulator) addImage(img Image, created time.Time) error {
	if !imageIDPattern.MatchString(img.ID) {
		return fmt.Errorf("image id %q must be img- followed by 8 lowercase letters or digits", img.ID)
	}
	if !e.regions[img.Region] {
		return fmt.Errorf("image %s: region %q is not one of the regions", img.ID, img.Region)
	}
	if img.State == "" {
		img.State = stateNormal
	}
	if img.State == stateNormal {
		img.SyncPercent = 100
	}
	if img.CreatedTime.IsZero() {
		img.CreatedTime = created
	}
	t := typePrivate
	if img.Shared {
		t = typeShared
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, dup := e.images[img.ID]; dup {
		return fmt.Errorf("image id %s is used twice", img.ID)
	}
	e.put(&image{Image: img, imageType: t})
	return nil
}

// Image returns the current state of one image.
func (e *Emulator) Image(id string) (Image, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	img, ok := e.images[id]
	if !ok {
		return Image{}, false
	}
	e.refresh(img, e.now())
	return img.Image, true
}

// Images returns the current state of every image in region ("" = every region), oldest first.
func (e *Emulator) Images(region string) []Image {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	var out []Image
	for _, img := range e.images {
		if region == "" || img.Region == region {
			e.refresh(img, now)
			out = append(out, img.Image)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedTime.Equal(out[j].CreatedTime) {
			return out[i].CreatedTime.Before(out[j].CreatedTime)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// CallLog returns the log the emulator records calls in.
func (e *Emulator) CallLog() *emucore.CallLog { return e.calls }

// refresh advances a copy: SYNCING with SyncPercent rising to 100 over the copy duration,
// then NORMAL (or CREATEFAILED half-way when a fail-copy fault hit it). Callers hold e.mu.
func (e *Emulator) refresh(img *image, now time.Time) {
	if !img.syncing {
		return
	}
	p := emucore.Progress(img.copyStart, e.copyDuration, now)
	switch {
	case img.failCopy && p >= 50:
		img.syncing, img.State, img.SyncPercent = false, stateCreateFailed, 50
	case p >= 100:
		img.syncing, img.State, img.SyncPercent = false, stateNormal, 100
	default:
		img.SyncPercent = p
	}
}

// ServeHTTP answers Tencent Cloud API 3.0 requests (emulators.Start adds the admin endpoint).
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	call := emucore.Call{Provider: Provider, Action: r.Header.Get("X-TC-Action"), Region: r.Header.Get("X-TC-Region")}
	resp, aerr := e.handle(r, &call)
	if aerr == errDropped {
		call.Outcome = "dropped"
		e.calls.Record(call)
		emucore.Drop(w)
		return
	}
	reqID := newRequestID()
	if aerr != nil {
		call.Outcome = aerr.Code
		resp = map[string]any{"Error": map[string]string{"Code": aerr.Code, "Message": aerr.Message}}
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
	call.HTTPStatus = http.StatusOK
	e.calls.Record(call)
	// Tencent answers errors with HTTP 200 too; the SDK only parses Error out of 200 bodies.
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-TC-RequestId", reqID)
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(map[string]any{"Response": resp})
}

// errDropped asks ServeHTTP to close the connection without answering.
var errDropped = &apiError{Code: "dropped"}

func (e *Emulator) handle(r *http.Request, call *emucore.Call) (map[string]any, *apiError) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return nil, errf("InvalidParameter", "HTTP method %s is not supported; use POST or GET.", r.Method)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, errf("InvalidParameter", "The request body could not be read.")
	}
	if len(body) > maxBodyBytes {
		return nil, errf("InvalidParameter", "The request body is larger than 1 MiB.")
	}
	now := e.now()
	secretID, code, msg := e.verify(r, body, now)
	if code != "" {
		return nil, &apiError{Code: code, Message: msg}
	}
	action := call.Action
	switch {
	case action == "":
		return nil, errf("MissingParameter", "The request is missing a required parameter `Action` (header X-TC-Action).")
	case action != "SyncImages" && action != "DescribeImages":
		return nil, errf("InvalidAction", "The action %q is not supported by this emulator of CVM %s (SyncImages, DescribeImages).", action, APIVersion)
	}
	if v := r.Header.Get("X-TC-Version"); v != APIVersion {
		return nil, errf("NoSuchVersion", "The API version %q does not exist for CVM; use %s.", v, APIVersion)
	}
	if !e.allow(action, secretID) {
		return nil, errf("RequestLimitExceeded", "Your current request times equals to `%s` in a second, which exceeds the frequency limit for %s. Please reduce the frequency of calls.", e.limitFor(action), action)
	}
	fields, aerr := requestFields(r, body)
	if aerr != nil {
		return nil, aerr
	}
	switch action {
	case "SyncImages":
		var p syncImagesParams
		if aerr := decodeParams(fields, &p); aerr != nil {
			return nil, aerr
		}
		call.Params = p.logParams()
		if aerr := e.injectFault(r, call, p.faultKeys(call.Region)); aerr != nil {
			return nil, aerr
		}
		p.failCopy = call.Fault == emucore.FaultFailCopy
		return e.syncImages(call.Region, p, now)
	default:
		var p describeImagesParams
		if aerr := decodeParams(fields, &p); aerr != nil {
			return nil, aerr
		}
		call.Params = p.logParams()
		if aerr := e.injectFault(r, call, p.faultKeys(call.Region)); aerr != nil {
			return nil, aerr
		}
		return e.describeImages(call.Region, p, now)
	}
}

// injectFault applies the configured latency and the fault emucore decides for this call,
// and notes the fault in the call: SyncImages remembers a fail-copy fault, and ServeHTTP
// loses the answer of a lose-answer call after carrying it out.
func (e *Emulator) injectFault(r *http.Request, call *emucore.Call, keys []string) *apiError {
	if d := e.faults.Latency(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	action := call.Action
	kind := e.faults.Decide(Provider, action, keys...)
	if kind == emucore.FaultFailCopy && action != "SyncImages" {
		kind = emucore.FaultNone // only a copy can fail; a read has nothing to fail
	}
	call.Fault = kind
	switch kind {
	case emucore.FaultThrottle:
		return errf("RequestLimitExceeded", "The request frequency of %s exceeds the limit (injected fault). Please reduce the frequency of calls.", action)
	case emucore.FaultServer:
		return errf("InternalError", "An internal error occurred (injected fault). Please try again later.")
	case emucore.FaultDrop:
		return errDropped
	}
	return nil
}

// allow takes a token from the action's bucket for secretID.
func (e *Emulator) allow(action, secretID string) bool {
	r := e.rates.DescribeImages
	if action == "SyncImages" {
		r = e.rates.SyncImages
	}
	key := action + "\x00" + secretID
	e.mu.Lock()
	lim, ok := e.limiters[key]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(r), max(1, int(r)))
		e.limiters[key] = lim
	}
	e.mu.Unlock()
	return lim.AllowN(e.now(), 1)
}

func (e *Emulator) limitFor(action string) string {
	if action == "SyncImages" {
		return strconv.FormatFloat(e.rates.SyncImages, 'f', -1, 64)
	}
	return strconv.FormatFloat(e.rates.DescribeImages, 'f', -1, 64)
}

// checkRegion validates the X-TC-Region header.
func (e *Emulator) checkRegion(region string) *apiError {
	if region == "" {
		return errf("MissingParameter", "The request is missing a required parameter `Region` (header X-TC-Region).")
	}
	if !e.regions[region] {
		return errf("InvalidRegion.NotFound", "The region `%s` does not exist.", region)
	}
	return nil
}

// requestFields returns the action parameters as JSON: the POST body, or for GET the query
// string with its flattened names ("ImageIds.0", "Filters.0.Values.1") turned into JSON.
func requestFields(r *http.Request, body []byte) ([]byte, *apiError) {
	if r.Method == http.MethodPost {
		if len(bytes.TrimSpace(body)) == 0 {
			return []byte("{}"), nil
		}
		return body, nil
	}
	q := r.URL.Query()
	// Common parameters travel as headers with TC3 signing; drop them if a client sent them.
	for _, k := range []string{"Action", "Version", "Region", "Timestamp", "Nonce", "RequestClient", "Language", "Token", "SecretId", "Signature", "SignatureMethod"} {
		q.Del(k)
	}
	tree, err := unflatten(q)
	if err != nil {
		return nil, errf("InvalidParameter", "%s", err.Error())
	}
	b, err := json.Marshal(tree)
	if err != nil {
		return nil, errf("InvalidParameter", "The query string could not be read.")
	}
	return b, nil
}

// unflatten turns API 3.0 flattened query names into nested maps and lists.
func unflatten(q url.Values) (any, error) {
	root := map[string]any{}
	for key, vals := range q {
		parts := strings.Split(key, ".")
		var node any = root
		for i, part := range parts {
			m := node.(map[string]any)
			if i == len(parts)-1 {
				m[part] = vals[len(vals)-1]
				break
			}
			next, ok := m[part].(map[string]any)
			if !ok {
				if _, leaf := m[part]; leaf {
					return nil, fmt.Errorf("parameter %q conflicts with another parameter", key)
				}
				next = map[string]any{}
				m[part] = next
			}
			node = next
		}
	}
	return listify(root)
}

// listify turns maps whose keys are all 0..n-1 into lists.
func listify(v any) (any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return v, nil
	}
	numeric := len(m) > 0
	for k := range m {
		if _, err := strconv.Atoi(k); err != nil {
			numeric = false
			break
		}
	}
	if !numeric {
		for k, c := range m {
			lc, err := listify(c)
			if err != nil {
				return nil, err
			}
			m[k] = lc
		}
		return m, nil
	}
	list := make([]any, len(m))
	for k, c := range m {
		i, _ := strconv.Atoi(k)
		if i < 0 || i >= len(m) {
			return nil, fmt.Errorf("list index %d is out of order: indexes must run from 0 without gaps", i)
		}
		lc, err := listify(c)
		if err != nil {
			return nil, err
		}
		list[i] = lc
	}
	return list, nil
}

// decodeParams reads the action parameters into dst, answering unknown names with
// UnknownParameter and wrong types with InvalidParameter, as the API gateway does.
func decodeParams(fields []byte, dst any) *apiError {
	dec := json.NewDecoder(bytes.NewReader(fields))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return errf("InvalidParameter", "The value of parameter `%s` has the wrong type (want %s).", typeErr.Field, typeErr.Type)
	case errors.As(err, &syntaxErr):
		return errf("InvalidParameter", "The request body is not valid JSON.")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return errf("UnknownParameter", "The parameter `%s` is not recognized.", name)
	}
	return errf("InvalidParameter", "%s", err.Error())
}

// flexBool is a boolean parameter that also accepts "true"/"false" (GET requests).
type flexBool struct{ Set, V bool }

// UnmarshalJSON implements json.Unmarshaler.
func (b *flexBool) UnmarshalJSON(data []byte) error {
	s := strings.Trim(string(data), `"`)
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("a boolean parameter must be true or false, not %s", data)
	}
	b.Set, b.V = true, v
	return nil
}

// flexUint is an unsigned integer parameter that also accepts a numeric string.
type flexUint struct {
	Set bool
	V   uint64
}

// UnmarshalJSON implements json.Unmarshaler.
func (u *flexUint) UnmarshalJSON(data []byte) error {
	v, err := strconv.ParseUint(strings.Trim(string(data), `"`), 10, 64)
	if err != nil {
		return fmt.Errorf("an integer parameter must be a non-negative whole number, not %s", data)
	}
	u.Set, u.V = true, v
	return nil
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// newImageID returns an unused "img-" + 8 lowercase letters or digits. Callers hold e.mu.
func (e *Emulator) newImageID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		for i := range b {
			b[i] = alphabet[int(b[i])%len(alphabet)]
		}
		id := "img-" + string(b[:])
		if _, used := e.images[id]; !used {
			return id
		}
	}
}

// firstDuplicate reports the first value that appears twice.
func firstDuplicate(vals []string) (string, bool) {
	seen := map[string]bool{}
	for _, v := range vals {
		if seen[v] {
			return v, true
		}
		seen[v] = true
	}
	return "", false
}

package huaweiemu

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
)

// Provider is the provider name the emulator records calls and matches fault rules under.
const Provider = "huawei"

// Action names as recorded in the call log and matched by fault rules.
const (
	ActionCopyImageCrossRegion = "CopyImageCrossRegion"
	ActionShowJob              = "ShowJob"
	ActionListImages           = "ListImages"
)

// Error codes the emulator answers with; see the package documentation for the table.
const (
	CodeBadRequest         = "IMG.0001"
	CodeBadName            = "IMG.0002"
	CodeBadNameFormat      = "IMG.0003"
	CodeDescriptionTooLong = "IMG.0004"
	CodeEmptyBody          = "IMG.0007"
	CodeImageNotFound      = "IMG.0027"
	CodeBadProject         = "IMG.0030"
	CodeSameRegion         = "IMG.0450"
	CodeUnknownRegion      = "IMG.0451"
	CodeEncrypted          = "IMG.0452"
	CodeTooLarge           = "IMG.0453"
	CodeFromISO            = "IMG.0454"
	CodeUnknownAgency      = "IMG.0455"
	CodeProjectMismatch    = "IMG.0456"
	CodeTooManyCopies      = "IMG.0457"
	CodeDescriptionInvalid = "IMG.0458"
	CodeJobNotFound        = "IMG.0459"
	CodeCopyFailed         = "IMG.0460"
	CodeInternalError      = "IMG.0461"
	CodeAuthFailed         = "APIGW.0301"
	CodeThrottled          = "APIGW.0308"
	CodeAPINotFound        = "APIGW.0101"
)

const (
	defaultCopyDuration     = 3 * time.Second
	defaultMaxCopies        = 5
	maxImageSizeGB          = 128
	maxNameLen              = 128
	maxDescriptionLen       = 1024
	maxBodyBytes            = 1 << 20
	jobTypeCrossRegionCopy  = "copyImageCrossRegion"
	timeLayout              = "2006-01-02T15:04:05.000Z"
	imageStatusActive       = "active"
	imageStatusSaving       = "saving"
	jobStatusInit           = "INIT"
	jobStatusRunning        = "RUNNING"
	jobStatusSuccess        = "SUCCESS"
	jobStatusFail           = "FAIL"
	copyFailedReason        = "Failed to replicate the image data to the destination region."
	tooManyCopiesMessageFmt = "A maximum of %d images can be replicated across regions at a time."
)

// Emulator is an IMS endpoint for every seeded region. It is safe for concurrent use.
type Emulator struct {
	calls        *emucore.CallLog
	faults       *emucore.Faults
	copyDuration time.Duration
	maxCopies    int

	secrets  map[string]string // AK → SK
	regions  map[string]bool
	projects map[string]string // region → project id
	regionOf map[string]string // project id → region
	agencies map[string]bool

	mu     sync.Mutex
	images map[string]*image
	order  []string // image ids in creation order, so listings are stable
	jobs   map[string]*job
	peak   map[string]int // tenant → most copies observed in flight at once
}

type image struct {
	Image
	CreatedAt time.Time
	// job is the copy that makes this image; its status follows the job.
	job *job
}

type job struct {
	ID                string
	Tenant            string
	SourceRegion      string
	SourceProject     string
	DestinationRegion string
	ImageID           string
	Name              string
	NewImageID        string
	Begin             time.Time
	Duration          time.Duration
	Fail              bool
}

func (j *job) end() time.Time { return j.Begin.Add(j.Duration) }

func (j *job) inFlight(now time.Time) bool { return now.Before(j.end()) }

// status is the job's state at now: INIT for the first tenth of the copy, RUNNING until it
// ends, then SUCCESS or FAIL.
func (j *job) status(now time.Time) (string, int) {
	switch {
	case !j.inFlight(now) && j.Fail:
		return jobStatusFail, emucore.Progress(j.Begin, j.Duration, now)
	case !j.inFlight(now):
		return jobStatusSuccess, 100
	case now.Sub(j.Begin) < j.Duration/10:
		return jobStatusInit, 0
	default:
		return jobStatusRunning, emucore.Progress(j.Begin, j.Duration, now)
	}
}

// New builds an emulator from seed. calls and faults may be nil.
func New(seed Seed, calls *emucore.CallLog, faults *emucore.Faults) (*Emulator, error) {
	calls, faults = emucore.Shared(calls, faults)
	e := &Emulator{
		calls:        calls,
		faults:       faults,
		copyDuration: seed.CopyDuration.Std(),
		maxCopies:    seed.MaxConcurrentCopies,
		secrets:      map[string]string{},
		regions:      map[string]bool{},
		projects:     map[string]string{},
		regionOf:     map[string]string{},
		agencies:     map[string]bool{},
		images:       map[string]*image{},
		jobs:         map[string]*job{},
		peak:         map[string]int{},
	}
	if e.copyDuration <= 0 {
		e.copyDuration = defaultCopyDuration
	}
	if e.maxCopies <= 0 {
		e.maxCopies = defaultMaxCopies
	}
	if len(seed.Credentials) == 0 {
		return nil, errors.New("huaweiemu: the seed has no credentials")
	}
	for i, c := range seed.Credentials {
		if c.AK == "" || c.SK == "" {
			return nil, fmt.Errorf("huaweiemu: credentials[%d] needs both ak and sk", i)
		}
		e.secrets[c.AK] = c.SK
	}
	for _, r := range seed.Regions {
		e.regions[r] = true
	}
	for r, p := range seed.Projects {
		if !e.regions[r] {
			return nil, fmt.Errorf("huaweiemu: projects names region %q, which is not in regions", r)
		}
		if other, dup := e.regionOf[p]; dup {
			return nil, fmt.Errorf("huaweiemu: project id %q is used by both %s and %s", p, other, r)
		}
		e.projects[r] = p
		e.regionOf[p] = r
	}
	for _, r := range seed.Regions {
		if e.projects[r] == "" {
			return nil, fmt.Errorf("huaweiemu: region %s has no project id in projects", r)
		}
	}
	for _, a := range seed.Agencies {
		e.agencies[a] = true
	}
	start := time.Now().UTC()
	for i, img := range seed.Images {
		if img.ID == "" || img.Name == "" {
			return nil, fmt.Errorf("huaweiemu: images[%d] needs an id and a name", i)
		}
		if !e.regions[img.Region] {
			return nil, fmt.Errorf("huaweiemu: image %s is in region %q, which is not in regions", img.ID, img.Region)
		}
		if _, dup := e.images[img.ID]; dup {
			return nil, fmt.Errorf("huaweiemu: image id %s appears twice", img.ID)
		}
		e.images[img.ID] = &image{Image: img, CreatedAt: start}
		e.order = append(e.order, img.ID)
	}
	return e, nil
}

// JobInfo is one cross-region copy as the emulator saw it, for tests and the admin view.
type JobInfo struct {
	ID                string    `json:"id"`
	Tenant            string    `json:"tenant"`
	SourceRegion      string    `json:"sourceRegion"`
	DestinationRegion string    `json:"destinationRegion"`
	ImageID           string    `json:"imageId"`
	Name              string    `json:"name"`
	NewImageID        string    `json:"newImageId"`
	Status            string    `json:"status"`
	Begin             time.Time `json:"begin"`
	// End is when the copy finishes (or finished): the job is in flight on [Begin, End).
	End time.Time `json:"end"`
}

// Jobs returns every copy job, oldest first, with its status now.
func (e *Emulator) Jobs() []JobInfo {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]JobInfo, 0, len(e.jobs))
	for _, j := range e.jobs {
		st, _ := j.status(now)
		out = append(out, JobInfo{ID: j.ID, Tenant: j.Tenant, SourceRegion: j.SourceRegion,
			DestinationRegion: j.DestinationRegion, ImageID: j.ImageID, Name: j.Name,
			NewImageID: j.NewImageID, Status: st, Begin: j.Begin, End: j.end()})
	}
	slices.SortFunc(out, func(a, b JobInfo) int { return a.Begin.Compare(b.Begin) })
	return out
}

// MaxObservedConcurrent is the most cross-region copies one tenant had in flight at the same
// time, over the emulator's life. Copies only start when accepted, so the peak is measured
// exactly at each acceptance.
func (e *Emulator) MaxObservedConcurrent() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := 0
	for _, p := range e.peak {
		m = max(m, p)
	}
	return m
}

// apiError is an error answer: IMS style ({"error":{"code","message"}}) or, for gateway
// errors, API Gateway style ({"error_code","error_msg","request_id"}).
type apiError struct {
	Status  int
	Code    string
	Message string
	Gateway bool
}

func imsErr(status int, code, msg string) *apiError {
	return &apiError{Status: status, Code: code, Message: msg}
}

func gatewayErr(status int, code, msg string) *apiError {
	return &apiError{Status: status, Code: code, Message: msg, Gateway: true}
}

// call is one request being served.
type call struct {
	r         *http.Request
	body      []byte
	requestID string
	action    string
	region    string
	tenant    string
	params    map[string]any
	keys      []string
	failCopy  bool
	// fault is the fault injected into this call, for the call log.
	fault emucore.FaultKind
}

// ServeHTTP serves the IMS API.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{r: r, requestID: newHexID(), params: map[string]any{}}
	w.Header().Set("X-Request-Id", c.requestID)

	handler := e.route(c)
	status, resp, apiErr, dropped := e.serve(w, c, handler)
	if dropped {
		return
	}
	outcome := "ok"
	if apiErr != nil {
		outcome = apiErr.Code
		status = apiErr.Status
		if apiErr.Gateway {
			resp = map[string]string{"error_code": apiErr.Code, "error_msg": apiErr.Message, "request_id": c.requestID}
		} else {
			resp = map[string]any{"error": map[string]string{"code": apiErr.Code, "message": apiErr.Message}}
		}
	}
	if c.fault == emucore.FaultLoseAnswer {
		// The call was carried out; only its answer is lost.
		e.calls.Record(emucore.Call{Provider: Provider, Action: c.action, Region: c.region, Params: c.params,
			Outcome: outcome, Fault: c.fault})
		emucore.Drop(w)
		return
	}
	e.calls.Record(emucore.Call{Provider: Provider, Action: c.action, Region: c.region, Params: c.params,
		Outcome: outcome, HTTPStatus: status, Fault: c.fault})
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(resp)
}

type handlerFunc func(c *call) (int, any, *apiError)

// route picks the action from the method and path; the path parameters go into the call.
func (e *Emulator) route(c *call) handlerFunc {
	segs := strings.Split(strings.Trim(c.r.URL.Path, "/"), "/")
	switch {
	case c.r.Method == http.MethodPost && len(segs) == 4 && segs[0] == "v1" && segs[1] == "cloudimages" && segs[3] == "cross_region_copy":
		c.action = ActionCopyImageCrossRegion
		c.params["imageId"] = segs[2]
		c.keys = append(c.keys, segs[2])
		return e.copyImage
	case c.r.Method == http.MethodGet && len(segs) == 4 && segs[0] == "v1" && segs[2] == "jobs":
		c.action = ActionShowJob
		c.params["projectId"] = segs[1]
		c.params["jobId"] = segs[3]
		c.keys = append(c.keys, segs[3])
		return e.showJob
	case c.r.Method == http.MethodGet && len(segs) == 2 && segs[0] == "v2" && segs[1] == "cloudimages":
		c.action = ActionListImages
		q := c.r.URL.Query()
		for _, k := range []string{"name", "id", "status"} {
			if v := q.Get(k); v != "" {
				c.params[k] = v
				c.keys = append(c.keys, v)
			}
		}
		return e.listImages
	}
	c.action = "Unknown"
	c.params["path"] = c.r.Method + " " + c.r.URL.Path
	return func(*call) (int, any, *apiError) {
		return 0, nil, gatewayErr(http.StatusNotFound, CodeAPINotFound,
			"The API does not exist or has not been published in the environment")
	}
}

// serve authenticates, injects faults and runs the handler. dropped means the connection
// was closed and nothing must be written.
func (e *Emulator) serve(w http.ResponseWriter, c *call, h handlerFunc) (status int, resp any, apiErr *apiError, dropped bool) {
	body, err := io.ReadAll(io.LimitReader(c.r.Body, maxBodyBytes))
	if err != nil {
		return 0, nil, imsErr(http.StatusBadRequest, CodeBadRequest, "The request message format is invalid."), false
	}
	c.body = body
	if d := e.faults.Latency(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-c.r.Context().Done():
			t.Stop()
		}
	}
	if apiErr := e.authenticate(c); apiErr != nil {
		return 0, nil, apiErr, false
	}
	if c.action == ActionCopyImageCrossRegion {
		// The destination and name are fault-match keys, so read them before deciding.
		var b copyBody
		if json.Unmarshal(c.body, &b) == nil {
			c.params["destinationRegion"] = b.Region
			c.params["name"] = b.Name
			c.keys = append(c.keys, b.Region, b.Name)
		}
	}
	c.keys = append(c.keys, c.region)
	c.fault = e.faults.Decide(Provider, c.action, c.keys...)
	if c.fault == emucore.FaultFailCopy && c.action != ActionCopyImageCrossRegion {
		c.fault = emucore.FaultNone // only a copy can fail; a read has nothing to fail
	}
	switch c.fault {
	case emucore.FaultThrottle:
		return 0, nil, gatewayErr(http.StatusTooManyRequests, CodeThrottled,
			"The throttling threshold has been reached: policy user over ratelimit, limit:20, time:1 second"), false
	case emucore.FaultServer:
		return 0, nil, imsErr(http.StatusInternalServerError, CodeInternalError, "Internal service error. Try again later."), false
	case emucore.FaultDrop:
		e.calls.Record(emucore.Call{Provider: Provider, Action: c.action, Region: c.region, Params: c.params, Outcome: "dropped", Fault: c.fault})
		emucore.Drop(w)
		return 0, nil, nil, true
	case emucore.FaultFailCopy:
		c.failCopy = true
	}
	status, resp, apiErr = h(c)
	return status, resp, apiErr, false
}

// authenticate checks the SDK-HMAC-SHA256 signature and works out the tenant and region.
func (e *Emulator) authenticate(c *call) *apiError {
	fail := func(why string) *apiError {
		return gatewayErr(http.StatusUnauthorized, CodeAuthFailed, "Incorrect IAM authentication information: "+why)
	}
	auth, ok := parseAuthorization(c.r.Header.Get("Authorization"))
	if !ok {
		return fail("the Authorization header is missing or is not SDK-HMAC-SHA256")
	}
	sk, ok := e.secrets[auth.AK]
	if !ok {
		return fail("ak " + auth.AK + " not exist")
	}
	date := c.r.Header.Get("X-Sdk-Date")
	t, err := time.Parse(sdkDateFormat, date)
	if err != nil {
		return fail("the X-Sdk-Date header is missing or malformed")
	}
	if d := time.Since(t); d > clockSkew || d < -clockSkew {
		return fail("the request has expired: X-Sdk-Date is more than 15 minutes from the server time")
	}
	if !slices.Contains(auth.SignedHeaders, "x-sdk-date") {
		return fail("x-sdk-date is not a signed header")
	}
	want := signature(sk, date, canonicalRequest(c.r, auth.SignedHeaders, c.body))
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(auth.Signature))) {
		return fail("verify aksk signature fail: the signature does not match the request")
	}
	c.tenant = auth.AK
	if pid := c.r.Header.Get("X-Project-Id"); pid != "" {
		region, ok := e.regionOf[pid]
		if !ok {
			return fail("project id " + pid + " does not belong to this account")
		}
		c.region = region
		return nil
	}
	// Without X-Project-Id (a domain-scoped client), fall back to the real host name.
	if rest, ok := strings.CutPrefix(c.r.Host, "ims."); ok {
		if region, _, ok := strings.Cut(rest, "."); ok && e.regions[region] {
			c.region = region
			return nil
		}
	}
	return fail("no project: send X-Project-Id (set ProjectId on the credentials)")
}

type copyBody struct {
	Name        string  `json:"name"`
	Description *string `json:"description"`
	Region      string  `json:"region"`
	ProjectName string  `json:"project_name"`
	AgencyName  string  `json:"agency_name"`
	VaultID     *string `json:"vault_id"`
}

func (e *Emulator) copyImage(c *call) (int, any, *apiError) {
	if len(strings.TrimSpace(string(c.body))) == 0 {
		return 0, nil, imsErr(http.StatusBadRequest, CodeEmptyBody, "The request body is empty.")
	}
	var b copyBody
	if err := json.Unmarshal(c.body, &b); err != nil {
		return 0, nil, imsErr(http.StatusBadRequest, CodeBadRequest, "The request message format is invalid.")
	}
	imageID, _ := c.params["imageId"].(string)
	now := time.Now()

	e.mu.Lock()
	defer e.mu.Unlock()
	src, ok := e.images[imageID]
	if !ok || src.Region != c.region {
		return 0, nil, imsErr(http.StatusNotFound, CodeImageNotFound, "The image ID in the request does not exist.")
	}
	switch {
	case src.Encrypted:
		return 0, nil, imsErr(http.StatusBadRequest, CodeEncrypted, "Encrypted images cannot be replicated across regions.")
	case src.SizeGB > maxImageSizeGB:
		return 0, nil, imsErr(http.StatusBadRequest, CodeTooLarge,
			fmt.Sprintf("The image size is %d GB. Images larger than %d GB cannot be replicated across regions.", src.SizeGB, maxImageSizeGB))
	case src.FromISO:
		return 0, nil, imsErr(http.StatusBadRequest, CodeFromISO, "Images created from ISO files cannot be replicated across regions.")
	}
	if n := utf8.RuneCountInString(b.Name); n == 0 || n > maxNameLen {
		return 0, nil, imsErr(http.StatusBadRequest, CodeBadName, "The image name is empty or contains more than 128 characters.")
	}
	if !validName(b.Name) {
		return 0, nil, imsErr(http.StatusBadRequest, CodeBadNameFormat, "The image name format is invalid.")
	}
	if b.Description != nil {
		if utf8.RuneCountInString(*b.Description) > maxDescriptionLen {
			return 0, nil, imsErr(http.StatusBadRequest, CodeDescriptionTooLong, "The description contains more than 1024 characters.")
		}
		if strings.ContainsAny(*b.Description, "<>\r\n") {
			return 0, nil, imsErr(http.StatusBadRequest, CodeDescriptionInvalid,
				"The description cannot contain carriage returns, line feeds or angle brackets (< >).")
		}
	}
	switch {
	case b.Region == "":
		return 0, nil, imsErr(http.StatusBadRequest, CodeBadRequest, "The request message format is invalid: region is required.")
	case b.Region == c.region:
		return 0, nil, imsErr(http.StatusBadRequest, CodeSameRegion, "The destination region cannot be the same as the source region.")
	case !e.regions[b.Region]:
		return 0, nil, imsErr(http.StatusBadRequest, CodeUnknownRegion, "The destination region "+b.Region+" does not exist.")
	case b.ProjectName == "":
		return 0, nil, imsErr(http.StatusBadRequest, CodeBadRequest, "The request message format is invalid: project_name is required.")
	case b.ProjectName != b.Region:
		return 0, nil, imsErr(http.StatusBadRequest, CodeProjectMismatch,
			"The project "+b.ProjectName+" does not exist in the destination region "+b.Region+".")
	case b.AgencyName == "":
		return 0, nil, imsErr(http.StatusBadRequest, CodeBadRequest, "The request message format is invalid: agency_name is required.")
	case !e.agencies[b.AgencyName]:
		return 0, nil, imsErr(http.StatusBadRequest, CodeUnknownAgency,
			"The agency "+b.AgencyName+" does not exist or does not authorize IMS.")
	}
	running := 0
	for _, j := range e.jobs {
		if j.Tenant == c.tenant && j.inFlight(now) {
			running++
		}
	}
	if running >= e.maxCopies {
		return 0, nil, imsErr(http.StatusBadRequest, CodeTooManyCopies, fmt.Sprintf(tooManyCopiesMessageFmt, e.maxCopies))
	}
	e.peak[c.tenant] = max(e.peak[c.tenant], running+1)

	j := &job{ID: newHexID(), Tenant: c.tenant, SourceRegion: c.region, SourceProject: e.projects[c.region],
		DestinationRegion: b.Region, ImageID: imageID, Name: b.Name, NewImageID: newUUID(),
		Begin: now, Duration: e.copyDuration, Fail: c.failCopy}
	e.jobs[j.ID] = j
	e.images[j.NewImageID] = &image{
		Image:     Image{ID: j.NewImageID, Name: b.Name, Region: b.Region, SizeGB: src.SizeGB, OSType: src.OSType},
		CreatedAt: now.UTC(),
		job:       j,
	}
	e.order = append(e.order, j.NewImageID)
	c.params["jobId"] = j.ID
	return http.StatusOK, map[string]string{"job_id": j.ID}, nil
}

func (e *Emulator) showJob(c *call) (int, any, *apiError) {
	project, _ := c.params["projectId"].(string)
	jobID, _ := c.params["jobId"].(string)
	if e.regionOf[project] != c.region {
		return 0, nil, imsErr(http.StatusBadRequest, CodeBadProject, "The project ID and token in the request are invalid.")
	}
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	j, ok := e.jobs[jobID]
	if !ok || j.SourceProject != project || j.Tenant != c.tenant {
		return 0, nil, imsErr(http.StatusNotFound, CodeJobNotFound, "The job "+jobID+" does not exist.")
	}
	status, percent := j.status(now)
	entities := map[string]any{
		"image_name":      j.Name,
		"process_percent": float64(percent),
		"current_task":    currentTask(status),
	}
	resp := map[string]any{
		"status":      status,
		"job_id":      j.ID,
		"job_type":    jobTypeCrossRegionCopy,
		"begin_time":  j.Begin.UTC().Format(timeLayout),
		"end_time":    "",
		"error_code":  nil,
		"fail_reason": nil,
		"entities":    entities,
	}
	switch status {
	case jobStatusSuccess:
		resp["end_time"] = j.end().UTC().Format(timeLayout)
		entities["image_id"] = j.NewImageID
	case jobStatusFail:
		resp["end_time"] = j.end().UTC().Format(timeLayout)
		resp["error_code"] = CodeCopyFailed
		resp["fail_reason"] = copyFailedReason
	}
	c.params["status"] = status
	return http.StatusOK, resp, nil
}

// validName applies the IMS name rules: letters (Chinese included), digits, spaces, '-', '_'
// and '.', not starting or ending with a space.
func validName(name string) bool {
	if strings.TrimSpace(name) != name {
		return false
	}
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune(" -_.", r) {
			return false
		}
	}
	return true
}

func currentTask(status string) string {
	switch status {
	case jobStatusInit:
		return "initializing"
	case jobStatusRunning:
		return "replicating image data"
	}
	return ""
}

// imageStatus is the status of img now, and whether it is still listed (a failed copy's image
// is deleted).
func imageStatus(img *image, now time.Time) (string, bool) {
	if img.job == nil {
		return imageStatusActive, true
	}
	switch st, _ := img.job.status(now); st {
	case jobStatusSuccess:
		return imageStatusActive, true
	case jobStatusFail:
		return "", false
	}
	return imageStatusSaving, true
}

func (e *Emulator) listImages(c *call) (int, any, *apiError) {
	q := c.r.URL.Query()
	limit := 500
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return 0, nil, imsErr(http.StatusBadRequest, CodeBadRequest, "The request message format is invalid: limit must be 1 to 1000.")
		}
		limit = n
	}
	if t := q.Get("__imagetype"); t != "" && t != "private" {
		// The emulator holds private images only.
		return http.StatusOK, map[string]any{"images": []any{}}, nil
	}
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	images := []map[string]any{}
	for _, id := range e.order {
		img := e.images[id]
		status, listed := imageStatus(img, now)
		if !listed || img.Region != c.region ||
			q.Has("name") && img.Name != q.Get("name") ||
			q.Has("id") && img.ID != q.Get("id") ||
			q.Has("status") && status != q.Get("status") {
			continue
		}
		if len(images) == limit {
			break
		}
		osType := img.OSType
		if osType == "" {
			osType = "Linux"
		}
		updated := img.CreatedAt
		if img.job != nil && status == imageStatusActive {
			updated = img.job.end().UTC()
		}
		images = append(images, map[string]any{
			"id":                  img.ID,
			"name":                img.Name,
			"status":              status,
			"visibility":          "private",
			"__imagetype":         "private",
			"__os_type":           osType,
			"__isregistered":      "true",
			"__image_source_type": "uds",
			"__image_size":        strconv.FormatInt(int64(img.SizeGB)<<30, 10),
			"min_disk":            max(img.SizeGB, 1),
			"min_ram":             0,
			"owner":               e.projects[img.Region],
			"protected":           false,
			"self":                "/v2/images/" + img.ID,
			"tags":                []string{},
			"container_format":    "bare",
			"disk_format":         "zvhd2",
			"virtual_env_type":    "FusionCompute",
			"created_at":          img.CreatedAt.Format(time.RFC3339),
			"updated_at":          updated.Format(time.RFC3339),
			"active_at":           updated.Format(time.RFC3339),
		})
	}
	c.params["count"] = len(images)
	return http.StatusOK, map[string]any{"images": images}, nil
}

// newHexID returns 32 random hex digits, the shape of IMS job ids and request ids.
func newHexID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// newUUID returns a random version-4 UUID, the shape of IMS image ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

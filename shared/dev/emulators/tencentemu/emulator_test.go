package tencentemu

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	tchttp "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/http"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
)

const (
	testID  = "AKIDtest0001"
	testKey = "test-secret-key-0001"
	otherID = "AKIDtest0002"
	otherKy = "test-secret-key-0002"
)

var newIDPattern = regexp.MustCompile(`^img-[a-z0-9]{8}$`)

// testSeed has one image for every constraint and generous rate limits, so constraint tests
// are not throttled.
func testSeed() Seed {
	return Seed{
		Credentials:        []Credential{{SecretID: testID, SecretKey: testKey}, {SecretID: otherID, SecretKey: otherKy}},
		UnsupportedRegions: []string{"ap-shanghai-fsi"},
		Images: []Image{
			{ID: "img-ok000001", Name: "base", Region: "ap-guangzhou", SizeGB: 20, Platform: "TencentOS"},
			{ID: "img-big00001", Name: "big", Region: "ap-guangzhou", SizeGB: 50},
			{ID: "img-enc00001", Name: "enc", Region: "ap-guangzhou", SizeGB: 20, Encrypted: true},
			{ID: "img-crt00001", Name: "creating", Region: "ap-guangzhou", SizeGB: 20, State: "CREATING"},
			{ID: "img-shr00001", Name: "shared", Region: "ap-guangzhou", SizeGB: 20, Shared: true},
			{ID: "img-ins00001", Name: "instance", Region: "ap-guangzhou", SizeGB: 20, InstanceImage: true},
			{ID: "img-sh000001", Name: "taken-name", Region: "ap-shanghai", SizeGB: 20},
		},
		CopyDuration: emucore.Duration(300 * time.Millisecond),
		RateLimits:   RateLimits{SyncImages: 1000, DescribeImages: 1000},
	}
}

type fixture struct {
	emu    *Emulator
	srv    *httptest.Server
	calls  *emucore.CallLog
	faults *emucore.Faults
}

func newFixture(t *testing.T, seed Seed) *fixture {
	t.Helper()
	calls, faults := &emucore.CallLog{}, &emucore.Faults{}
	emu, err := New(seed, calls, faults)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return &fixture{emu: emu, srv: srv, calls: calls, faults: faults}
}

// stepClock makes every request move the emulator's clock 20ms on until the test ends, so a
// 300ms copy is followed over a fixed number of calls however fast the machine is (a loop on
// the real clock can outrun the emulated DescribeImages rate limit).
func (f *fixture) stepClock(t *testing.T) {
	var ticks atomic.Int64
	start := time.Now()
	f.emu.now = func() time.Time { return start.Add(time.Duration(ticks.Add(1)) * 20 * time.Millisecond) }
	t.Cleanup(func() { f.emu.now = time.Now })
}

func (f *fixture) profile(method string) *profile.ClientProfile {
	prof := profile.NewClientProfile()
	prof.HttpProfile.Endpoint = strings.TrimPrefix(f.srv.URL, "http://")
	prof.HttpProfile.Scheme = "HTTP"
	prof.HttpProfile.ReqMethod = method
	prof.HttpProfile.ReqTimeout = 5
	prof.Language = "en-US"
	return prof
}

func (f *fixture) client(t *testing.T, region string, cred common.CredentialIface) *cvm.Client {
	t.Helper()
	c, err := cvm.NewClient(cred, region, f.profile("POST"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) cvm(t *testing.T, region string) *cvm.Client {
	return f.client(t, region, common.NewCredential(testID, testKey))
}

// common sends any action with any parameters through the SDK's generic client.
func (f *fixture) common(t *testing.T, region, action string, params map[string]any) error {
	t.Helper()
	cc := common.NewCommonClient(common.NewCredential(testID, testKey), region, f.profile("POST"))
	req := tchttp.NewCommonRequest("cvm", APIVersion, action)
	if err := req.SetActionParameters(params); err != nil {
		t.Fatal(err)
	}
	return cc.Send(req, tchttp.NewCommonResponse())
}

func code(err error) string {
	var e *tcerr.TencentCloudSDKError
	if errors.As(err, &e) {
		return e.Code
	}
	if err != nil {
		return "non-sdk: " + err.Error()
	}
	return ""
}

func strs(v ...string) []*string { return common.StringPtrs(v) }

func syncReq(id string, regions ...string) *cvm.SyncImagesRequest {
	req := cvm.NewSyncImagesRequest()
	req.ImageIds = strs(id)
	req.DestinationRegions = strs(regions...)
	return req
}

func describe1(t *testing.T, c *cvm.Client, id string) *cvm.Image {
	t.Helper()
	req := cvm.NewDescribeImagesRequest()
	req.ImageIds = strs(id)
	resp, err := c.DescribeImages(req)
	if err != nil {
		t.Fatalf("DescribeImages(%s): %v", id, err)
	}
	if len(resp.Response.ImageSet) != 1 {
		t.Fatalf("DescribeImages(%s) returned %d images", id, len(resp.Response.ImageSet))
	}
	return resp.Response.ImageSet[0]
}

func TestSignatureAcceptedPOSTAndGET(t *testing.T) {
	f := newFixture(t, testSeed())
	for _, method := range []string{"POST", "GET"} {
		t.Run(method, func(t *testing.T) {
			c, err := cvm.NewClient(common.NewCredential(testID, testKey), "ap-guangzhou", f.profile(method))
			if err != nil {
				t.Fatal(err)
			}
			req := cvm.NewDescribeImagesRequest()
			req.Filters = []*cvm.Filter{{Name: common.StringPtr("image-name"), Values: strs("base", "big")}}
			req.Limit = common.Uint64Ptr(100)
			resp, err := c.DescribeImages(req)
			if err != nil {
				t.Fatalf("DescribeImages: %v", err)
			}
			if got := *resp.Response.TotalCount; got != 2 {
				t.Errorf("TotalCount = %d, want 2", got)
			}
			if resp.Response.RequestId == nil || *resp.Response.RequestId == "" {
				t.Error("no RequestId")
			}
			// A SyncImages dry run over GET exercises booleans in the query string.
			dry := syncReq("img-ok000001", "ap-shanghai")
			dry.DryRun = common.BoolPtr(true)
			if _, err := c.SyncImages(dry); code(err) != "DryRunOperation" {
				t.Errorf("SyncImages dry run over %s: got %v, want DryRunOperation", method, err)
			}
		})
	}
}

func TestAuthFailures(t *testing.T) {
	seed := testSeed()
	seed.Credentials = append(seed.Credentials, Credential{SecretID: "AKIDsts", SecretKey: "sts-key", Token: "good-token"})
	f := newFixture(t, seed)
	tests := []struct {
		name string
		cred common.CredentialIface
		skew time.Duration
		want string
	}{
		{"wrong key", common.NewCredential(testID, "not-the-key"), 0, "AuthFailure.SignatureFailure"},
		{"unknown id", common.NewCredential("AKIDnobody", testKey), 0, "AuthFailure.SecretIdNotFound"},
		{"clock skew", common.NewCredential(testID, testKey), 6 * time.Minute, "AuthFailure.SignatureExpire"},
		{"small skew is fine", common.NewCredential(testID, testKey), 4 * time.Minute, ""},
		{"wrong token", common.NewTokenCredential("AKIDsts", "sts-key", "bad-token"), 0, "AuthFailure.TokenFailure"},
		{"right token", common.NewTokenCredential("AKIDsts", "sts-key", "good-token"), 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.emu.now = func() time.Time { return time.Now().Add(tt.skew) }
			defer func() { f.emu.now = time.Now }()
			_, err := f.client(t, "ap-guangzhou", tt.cred).DescribeImages(cvm.NewDescribeImagesRequest())
			if got := code(err); got != tt.want {
				t.Errorf("code = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("missing Authorization", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-TC-Action", "DescribeImages")
		req.Header.Set("X-TC-Region", "ap-guangzhou")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Response struct {
				Error     struct{ Code string }
				RequestId string
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || body.Response.Error.Code != "AuthFailure.InvalidAuthorization" || body.Response.RequestId == "" {
			t.Errorf("got HTTP %d %+v, want 200 AuthFailure.InvalidAuthorization with a RequestId", resp.StatusCode, body.Response)
		}
	})
	if calls := f.calls.Calls(Provider, "DescribeImages"); len(calls) == 0 || calls[0].Outcome != "AuthFailure.SignatureFailure" {
		t.Errorf("first call logged as %+v, want outcome AuthFailure.SignatureFailure", calls)
	}
}

func TestSyncImagesConstraints(t *testing.T) {
	long := strings.Repeat("n", 61)
	tests := []struct {
		name   string
		region string
		req    func() *cvm.SyncImagesRequest
		params map[string]any // sent through the generic client instead of req
		want   string
	}{
		{"missing image ids", "ap-guangzhou", func() *cvm.SyncImagesRequest { r := syncReq("x", "ap-shanghai"); r.ImageIds = nil; return r }, nil, "MissingParameter"},
		{"empty image id", "ap-guangzhou", func() *cvm.SyncImagesRequest { return syncReq("", "ap-shanghai") }, nil, "InvalidParameter"},
		{"missing destinations", "ap-guangzhou", func() *cvm.SyncImagesRequest { return syncReq("img-ok000001") }, nil, "MissingParameter"},
		{"two images", "ap-guangzhou", func() *cvm.SyncImagesRequest {
			r := syncReq("img-ok000001", "ap-shanghai")
			r.ImageIds = strs("img-ok000001", "img-big00001")
			return r
		}, nil, "InvalidParameterValue.LimitExceeded"},
		{"malformed id", "ap-guangzhou", func() *cvm.SyncImagesRequest { return syncReq("image-1", "ap-shanghai") }, nil, "InvalidImageId.Malformed"},
		{"not found", "ap-guangzhou", func() *cvm.SyncImagesRequest { return syncReq("img-zzzzzzzz", "ap-shanghai") }, nil, "InvalidImageId.NotFound"},
		{"image of another region", "ap-guangzhou", func() *cvm.SyncImagesRequest { return syncReq("img-sh000001", "ap-beijing") }, nil, "InvalidImageId.NotFound"},
		{"not NORMAL", "ap-guangzhou", func() *cvm.SyncImagesRequest { return syncReq("img-crt00001", "ap-shanghai") }, nil, "InvalidImageId.IncorrectState"},
		{"50 GB", "ap-guangzhou", func() *cvm.SyncImagesRequest { return syncReq("img-big00001", "ap-shanghai") }, nil, "InvalidImageId.TooLarge"},
		{"destination is source", "ap-guangzhou", func() *cvm.SyncImagesRequest { return syncReq("img-ok000001", "ap-guangzhou") }, nil, "InvalidParameterValue.InvalidRegion"},
		{"unknown destination", "ap-guangzhou", func() *cvm.SyncImagesRequest { return syncReq("img-ok000001", "ap-atlantis") }, nil, "InvalidRegion.NotFound"},
		{"unsupported destination", "ap-guangzhou", func() *cvm.SyncImagesRequest { return syncReq("img-ok000001", "ap-shanghai-fsi") }, nil, "UnsupportedOperation.Region"},
		{"unsupported source", "ap-shanghai-fsi", func() *cvm.SyncImagesRequest { return syncReq("img-ok000001", "ap-shanghai") }, nil, "InvalidRegion.Unavailable"},
		{"unknown source", "ap-atlantis", func() *cvm.SyncImagesRequest { return syncReq("img-ok000001", "ap-shanghai") }, nil, "InvalidRegion.NotFound"},
		{"encrypted source", "ap-guangzhou", func() *cvm.SyncImagesRequest { return syncReq("img-enc00001", "ap-shanghai") }, nil, "UnsupportedOperation.EncryptedImagesNotSupported"},
		{"shared image to another region", "ap-guangzhou", func() *cvm.SyncImagesRequest { return syncReq("img-shr00001", "ap-shanghai") }, nil, "InvalidParameterValue.InvalidRegion"},
		{"shared image in place", "ap-guangzhou", func() *cvm.SyncImagesRequest {
			r := syncReq("img-shr00001", "ap-guangzhou")
			r.ImageName = common.StringPtr("shared-copy")
			r.DryRun = common.BoolPtr(true)
			return r
		}, nil, "DryRunOperation"},
		{"instance image", "ap-guangzhou", func() *cvm.SyncImagesRequest { return syncReq("img-ins00001", "ap-shanghai") }, nil, "InvalidParameter.InstanceImageNotSupport"},
		{"duplicate name", "ap-guangzhou", func() *cvm.SyncImagesRequest {
			r := syncReq("img-ok000001", "ap-shanghai")
			r.ImageName = common.StringPtr("taken-name")
			return r
		}, nil, "InvalidImageName.Duplicate"},
		{"name too long", "ap-guangzhou", func() *cvm.SyncImagesRequest {
			r := syncReq("img-ok000001", "ap-shanghai")
			r.ImageName = common.StringPtr(long)
			return r
		}, nil, "InvalidParameterValue"},
		{"dry run", "ap-guangzhou", func() *cvm.SyncImagesRequest {
			r := syncReq("img-ok000001", "ap-shanghai", "ap-beijing")
			r.DryRun = common.BoolPtr(true)
			return r
		}, nil, "DryRunOperation"},
		{"encrypted copy to another region", "ap-guangzhou", nil, map[string]any{
			"ImageIds": []string{"img-ok000001"}, "DestinationRegions": []string{"ap-shanghai"}, "Encrypt": true,
		}, "UnsupportedOperation.SyncEncryptImageNotSupport"},
		{"encrypted copy in place", "ap-guangzhou", nil, map[string]any{
			"ImageIds": []string{"img-ok000001"}, "DestinationRegions": []string{"ap-guangzhou"}, "Encrypt": true,
			"ImageName": "base-encrypted", "DryRun": true,
		}, "DryRunOperation"},
		{"kms key without encrypt", "ap-guangzhou", nil, map[string]any{
			"ImageIds": []string{"img-ok000001"}, "DestinationRegions": []string{"ap-shanghai"}, "KmsKeyId": "1b9e1a8a-0000-4000-8000-000000000001",
		}, "InvalidParameter.InvalidKmsKeyId"},
		{"unknown parameter", "ap-guangzhou", nil, map[string]any{
			"ImageIds": []string{"img-ok000001"}, "DestinationRegions": []string{"ap-shanghai"}, "Colour": "blue",
		}, "UnknownParameter"},
		{"wrong type", "ap-guangzhou", nil, map[string]any{"ImageIds": "img-ok000001", "DestinationRegions": []string{"ap-shanghai"}}, "InvalidParameter"},
	}
	f := newFixture(t, testSeed())
	before := len(f.emu.Images(""))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.params != nil {
				err = f.common(t, tt.region, "SyncImages", tt.params)
			} else {
				_, err = f.cvm(t, tt.region).SyncImages(tt.req())
			}
			if got := code(err); got != tt.want {
				t.Errorf("code = %q (%v), want %q", got, err, tt.want)
			}
			calls := f.calls.Calls(Provider, "SyncImages")
			if last := calls[len(calls)-1]; last.Outcome != tt.want || last.Region != tt.region {
				t.Errorf("logged outcome %q region %q, want %q %q", last.Outcome, last.Region, tt.want, tt.region)
			}
		})
	}
	if after := len(f.emu.Images("")); after != before {
		t.Errorf("refused and dry-run calls created %d images", after-before)
	}

	t.Run("quota", func(t *testing.T) {
		seed := testSeed()
		seed.Quota = 1 // ap-shanghai already holds one custom image
		q := newFixture(t, seed)
		_, err := q.cvm(t, "ap-guangzhou").SyncImages(syncReq("img-ok000001", "ap-shanghai"))
		if got := code(err); got != "ImageQuotaLimitExceeded" {
			t.Errorf("code = %q, want ImageQuotaLimitExceeded", got)
		}
		if _, err := q.cvm(t, "ap-guangzhou").SyncImages(syncReq("img-ok000001", "ap-beijing")); err != nil {
			t.Errorf("copy into an empty region: %v", err)
		}
	})
}

func TestDescribeImagesValidation(t *testing.T) {
	f := newFixture(t, testSeed())
	many := make([]string, 101)
	for i := range many {
		many[i] = "img-ok000001"
	}
	tests := []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"ids and filters", map[string]any{"ImageIds": []string{"img-ok000001"}, "Filters": []map[string]any{{"Name": "image-name", "Values": []string{"base"}}}}, "InvalidParameter.InvalidParameterCoexistImageIdsFilters"},
		{"101 ids", map[string]any{"ImageIds": many}, "InvalidParameterValue.LimitExceeded"},
		{"limit 101", map[string]any{"Limit": 101}, "InvalidParameterValue.InvalidParameterValueLimit"},
		{"malformed id", map[string]any{"ImageIds": []string{"IMG-1"}}, "InvalidImageId.Malformed"},
		{"unknown filter", map[string]any{"Filters": []map[string]any{{"Name": "colour", "Values": []string{"blue"}}}}, "InvalidFilter"},
		{"six values", map[string]any{"Filters": []map[string]any{{"Name": "image-id", "Values": []string{"a", "b", "c", "d", "e", "f"}}}}, "InvalidFilterValue.LimitExceeded"},
		{"100 ids", map[string]any{"ImageIds": many[:100]}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := code(f.common(t, "ap-guangzhou", "DescribeImages", tt.params)); got != tt.want {
				t.Errorf("code = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("unknown action", func(t *testing.T) {
		if got := code(f.common(t, "ap-guangzhou", "DeleteImages", map[string]any{})); got != "InvalidAction" {
			t.Errorf("code = %q, want InvalidAction", got)
		}
	})
	t.Run("paging and fields", func(t *testing.T) {
		req := cvm.NewDescribeImagesRequest()
		req.Limit = common.Uint64Ptr(2)
		req.Offset = common.Uint64Ptr(1)
		resp, err := f.cvm(t, "ap-guangzhou").DescribeImages(req)
		if err != nil {
			t.Fatal(err)
		}
		if *resp.Response.TotalCount != 6 || len(resp.Response.ImageSet) != 2 {
			t.Errorf("TotalCount %d, page %d; want 6 and 2", *resp.Response.TotalCount, len(resp.Response.ImageSet))
		}
		img := describe1(t, f.cvm(t, "ap-guangzhou"), "img-ok000001")
		if *img.ImageState != "NORMAL" || *img.ImageType != "PRIVATE_IMAGE" || *img.ImageSize != 20 || *img.Platform != "TencentOS" || *img.ImageName != "base" || img.CreatedTime == nil {
			b, _ := json.Marshal(img)
			t.Errorf("image = %s", b)
		}
	})
}

func TestSyncProgressesToNormal(t *testing.T) {
	f := newFixture(t, testSeed())
	f.stepClock(t)
	req := syncReq("img-ok000001", "ap-shanghai", "ap-beijing")
	req.ImageName = common.StringPtr("base-copy")
	req.ImageSetRequired = common.BoolPtr(true)
	resp, err := f.cvm(t, "ap-guangzhou").SyncImages(req)
	if err != nil {
		t.Fatalf("SyncImages: %v", err)
	}
	set := resp.Response.ImageSet
	if len(set) != 2 || *set[0].Region != "ap-shanghai" || *set[1].Region != "ap-beijing" {
		t.Fatalf("ImageSet = %s", resp.ToJsonString())
	}
	for _, s := range set {
		if !newIDPattern.MatchString(*s.ImageId) {
			t.Errorf("new image id %q is not img- + 8 lowercase alphanumerics", *s.ImageId)
		}
	}
	c := f.cvm(t, "ap-shanghai")
	id := *set[0].ImageId
	sawSyncing, last := false, int64(-1)
	for range 100 {
		img := describe1(t, c, id)
		if *img.ImageName != "base-copy" {
			t.Fatalf("copy named %q, want base-copy", *img.ImageName)
		}
		if *img.SyncPercent < last {
			t.Fatalf("SyncPercent went back from %d to %d", last, *img.SyncPercent)
		}
		last = *img.SyncPercent
		if *img.ImageState == "SYNCING" {
			sawSyncing = true
		} else if *img.ImageState == "NORMAL" {
			if *img.SyncPercent != 100 {
				t.Errorf("NORMAL with SyncPercent %d", *img.SyncPercent)
			}
			break
		} else {
			t.Fatalf("unexpected state %s", *img.ImageState)
		}
	}
	if last != 100 {
		t.Fatal("copy never reached NORMAL")
	}
	if !sawSyncing {
		t.Error("never observed SYNCING before NORMAL")
	}
	// Without ImageSetRequired the response carries no ImageSet.
	plain := syncReq("img-ok000001", "ap-tokyo")
	resp, err = f.cvm(t, "ap-guangzhou").SyncImages(plain)
	if err != nil || resp.Response.ImageSet != nil {
		t.Errorf("SyncImages without ImageSetRequired: %v, %s", err, resp.ToJsonString())
	}
	calls := f.calls.Calls(Provider, "SyncImages")
	p := calls[0].Params
	if calls[0].Outcome != "ok" || calls[0].Region != "ap-guangzhou" || p["ImageName"] != "base-copy" || len(p["DestinationRegions"].([]string)) != 2 {
		t.Errorf("call logged as %+v", calls[0])
	}
}

func TestRateLimitPerSecretID(t *testing.T) {
	seed := testSeed()
	seed.RateLimits = RateLimits{} // the documented defaults: 10/s and 40/s
	f := newFixture(t, seed)
	dry := func(cred common.CredentialIface) string {
		r := syncReq("img-ok000001", "ap-shanghai")
		r.DryRun = common.BoolPtr(true)
		_, err := f.client(t, "ap-guangzhou", cred).SyncImages(r)
		return code(err)
	}
	limited := 0
	for range 25 {
		switch c := dry(common.NewCredential(testID, testKey)); c {
		case "RequestLimitExceeded":
			limited++
		case "DryRunOperation":
		default:
			t.Fatalf("unexpected code %q", c)
		}
	}
	if limited == 0 {
		t.Error("25 SyncImages calls in a burst were never throttled at 10/s")
	}
	// Another SecretId has its own bucket.
	if c := dry(common.NewCredential(otherID, otherKy)); c != "DryRunOperation" {
		t.Errorf("other SecretId got %q, want DryRunOperation", c)
	}
	// DescribeImages has its own, larger bucket.
	if _, err := f.cvm(t, "ap-guangzhou").DescribeImages(cvm.NewDescribeImagesRequest()); err != nil {
		t.Errorf("DescribeImages after SyncImages throttling: %v", err)
	}
}

func TestFaults(t *testing.T) {
	f := newFixture(t, testSeed())
	c := f.cvm(t, "ap-guangzhou")
	tests := []struct {
		kind emucore.FaultKind
		want string
	}{
		{emucore.FaultThrottle, "RequestLimitExceeded"},
		{emucore.FaultServer, "InternalError"},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			f.faults.Add(emucore.Rule{Provider: Provider, Action: "DescribeImages", Kind: tt.kind, Count: 1})
			_, err := c.DescribeImages(cvm.NewDescribeImagesRequest())
			if got := code(err); got != tt.want {
				t.Errorf("code = %q, want %q", got, tt.want)
			}
			if _, err := c.DescribeImages(cvm.NewDescribeImagesRequest()); err != nil {
				t.Errorf("the fault outlived its count: %v", err)
			}
		})
	}
	t.Run("drop", func(t *testing.T) {
		f.faults.Add(emucore.Rule{Provider: Provider, Action: "DescribeImages", Kind: emucore.FaultDrop, Count: 1})
		_, err := c.DescribeImages(cvm.NewDescribeImagesRequest())
		// The SDK reports a connection closed without an answer as ClientError.NetworkError.
		if got := code(err); got != "ClientError.NetworkError" {
			t.Errorf("code = %q (%v), want ClientError.NetworkError", got, err)
		}
		calls := f.calls.Calls(Provider, "DescribeImages")
		if calls[len(calls)-1].Outcome != "dropped" {
			t.Errorf("logged outcome %q, want dropped", calls[len(calls)-1].Outcome)
		}
	})
	t.Run("fail-copy", func(t *testing.T) {
		f.faults.Add(emucore.Rule{Provider: Provider, Action: "SyncImages", Kind: emucore.FaultFailCopy, Count: 1, Match: "ap-seoul"})
		req := syncReq("img-ok000001", "ap-seoul")
		req.ImageSetRequired = common.BoolPtr(true)
		resp, err := c.SyncImages(req)
		if err != nil {
			t.Fatalf("SyncImages: %v", err)
		}
		id := *resp.Response.ImageSet[0].ImageId
		f.stepClock(t)
		state := ""
		for range 100 {
			if state = *describe1(t, f.cvm(t, "ap-seoul"), id).ImageState; state != "SYNCING" {
				break
			}
		}
		if state != "CREATEFAILED" {
			t.Fatalf("state %s; want SYNCING until CREATEFAILED", state)
		}
	})
}

// TestLoseAnswer checks that a lose-answer fault carries the sync out — the copy exists and
// the call log counts it as accepted — while the client sees only a closed connection, and
// that a second attempt then meets the copy's name.
func TestLoseAnswer(t *testing.T) {
	f := newFixture(t, testSeed())
	c := f.cvm(t, "ap-guangzhou")
	f.faults.Add(emucore.Rule{Provider: Provider, Action: "SyncImages", Kind: emucore.FaultLoseAnswer, Count: 1})
	req := syncReq("img-ok000001", "ap-tokyo")
	req.ImageName = common.StringPtr("lost-answer-copy")
	_, err := c.SyncImages(req)
	if got := code(err); got != "ClientError.NetworkError" {
		t.Fatalf("code = %q (%v), want ClientError.NetworkError: the answer must be lost", got, err)
	}
	calls := f.calls.Calls(Provider, "SyncImages")
	last := calls[len(calls)-1]
	if last.Outcome != "ok" || last.Fault != emucore.FaultLoseAnswer || last.HTTPStatus != 0 {
		t.Errorf("logged %+v; want outcome ok, fault lose-answer, no HTTP status", last)
	}
	var copies []Image
	for _, img := range f.emu.Images("ap-tokyo") {
		if img.Name == "lost-answer-copy" {
			copies = append(copies, img)
		}
	}
	if len(copies) != 1 {
		t.Fatalf("%d copies named lost-answer-copy in ap-tokyo, want 1: the sync must have started", len(copies))
	}
	if _, err := c.SyncImages(req); code(err) != "InvalidImageName.Duplicate" {
		t.Errorf("second sync: %v; want InvalidImageName.Duplicate (the first one started)", err)
	}
}

func TestSeedDecoding(t *testing.T) {
	y := []byte("credentials:\n  - secretId: a\n    secretKey: b\ncopyDuration: 1500ms\nquota: 7\nrateLimits:\n  syncImages: 2\nimages:\n  - id: img-abcdefgh\n    name: n\n    region: ap-tokyo\n    sizeGB: 3\n")
	var ys Seed
	if err := yaml.UnmarshalWithOptions(y, &ys, yaml.Strict()); err != nil {
		t.Fatal(err)
	}
	var js Seed
	if err := json.Unmarshal([]byte(`{"credentials":[{"secretId":"a","secretKey":"b"}],"copyDuration":"1500ms","quota":7,"rateLimits":{"syncImages":2},"images":[{"id":"img-abcdefgh","name":"n","region":"ap-tokyo","sizeGB":3}]}`), &js); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]Seed{"yaml": ys, "json": js} {
		if s.CopyDuration.Std() != 1500*time.Millisecond || s.Quota != 7 || s.RateLimits.SyncImages != 2 || len(s.Images) != 1 || s.Images[0].SizeGB != 3 || s.Credentials[0].SecretKey != "b" {
			t.Errorf("%s seed = %+v", name, s)
		}
		if _, err := New(s, nil, nil); err != nil {
			t.Errorf("%s seed: New: %v", name, err)
		}
	}
	if _, err := New(Seed{Images: []Image{{ID: "bad", Region: "ap-tokyo"}}}, nil, nil); err == nil {
		t.Error("New accepted a malformed image id")
	}
	if _, err := New(DefaultSeed(), nil, nil); err != nil {
		t.Errorf("DefaultSeed: %v", err)
	}
}

func TestDefaultSeedDemo(t *testing.T) {
	f := newFixture(t, DefaultSeed())
	c := f.client(t, "ap-guangzhou", common.NewCredential(DemoSecretID, DemoSecretKey))
	tests := []struct {
		id, want string
	}{
		{"img-demo0001", ""},
		{"img-demoenc1", "UnsupportedOperation.EncryptedImagesNotSupported"},
		{"img-demobig1", "InvalidImageId.TooLarge"},
		{"img-demonew1", "InvalidImageId.IncorrectState"},
	}
	for _, tt := range tests {
		_, err := c.SyncImages(syncReq(tt.id, "ap-singapore"))
		if got := code(err); got != tt.want {
			t.Errorf("%s: code %q, want %q", tt.id, got, tt.want)
		}
	}
}

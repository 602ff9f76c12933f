package alibabaemu

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	"github.com/alibabacloud-go/tea/dara"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
)

// harness is an emulator behind an httptest server.
type harness struct {
	emu    *Emulator
	srv    *httptest.Server
	calls  *emucore.CallLog
	faults *emucore.Faults
}

// newHarness starts an emulator; configure runs before the server starts, so tests can swap
// the clock or durations without racing the handler goroutines.
func newHarness(t *testing.T, seed Seed, configure ...func(*Emulator)) *harness {
	t.Helper()
	calls, faults := &emucore.CallLog{}, emucore.NewFaults(emucore.Rates{}, 1)
	emu, err := New(seed, calls, faults)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, c := range configure {
		c(emu)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return &harness{emu: emu, srv: srv, calls: calls, faults: faults}
}

// testSeed is DefaultSeed with short durations.
func testSeed() Seed {
	s := DefaultSeed()
	s.AppStream.CopyDuration = emucore.Duration(300 * time.Millisecond)
	s.Ecd.RebuildDuration = emucore.Duration(200 * time.Millisecond)
	s.ThrottleRetryAfter = emucore.Duration(250 * time.Millisecond)
	// Generous limits, so only the rate-limit test meets them.
	s.RateLimits = RateLimits{StartTaskForDistributeImage: 1000, ListImage: 1000, RebuildDesktops: 1000, DescribeDesktops: 1000}
	return s
}

type clientOpts struct {
	keyID, secret, token string
	v2                   bool
}

func demoKey() clientOpts {
	return clientOpts{keyID: DemoAccessKeyID, secret: DemoAccessKeySecret}
}

// client builds the official darabonba client pointed at the emulator.
func (h *harness) client(t *testing.T, o clientOpts) *openapi.Client {
	t.Helper()
	cfg := &openapi.Config{
		AccessKeyId:     dara.String(o.keyID),
		AccessKeySecret: dara.String(o.secret),
		Endpoint:        dara.String(strings.TrimPrefix(h.srv.URL, "http://")),
		Protocol:        dara.String("HTTP"),
		RegionId:        dara.String("cn-shanghai"),
	}
	if o.token != "" {
		cfg.SecurityToken = dara.String(o.token)
	}
	if o.v2 {
		cfg.SignatureAlgorithm = dara.String("v2")
	}
	cli, err := openapi.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	cli.DisableSDKError = dara.Bool(true)
	return cli
}

// call runs one RPC action; query and body are flattened by the SDK.
func call(cli *openapi.Client, version, action string, query, body map[string]any) (map[string]any, error) {
	params := &openapi.Params{
		Action: dara.String(action), Version: dara.String(version), Protocol: dara.String("HTTPS"),
		Pathname: dara.String("/"), Method: dara.String("POST"), AuthType: dara.String("AK"),
		Style: dara.String("RPC"), ReqBodyType: dara.String("formData"), BodyType: dara.String("json"),
	}
	req := &openapi.OpenApiRequest{}
	if query != nil {
		req.Query = openapiutil.Query(query)
	}
	if body != nil {
		req.Body = body
	}
	out, err := cli.CallApi(params, req, &dara.RuntimeOptions{})
	if err != nil {
		return nil, err
	}
	b, _ := out["body"].(map[string]any)
	return b, nil
}

// decode turns a response body into a typed struct through JSON.
func decode[T any](t *testing.T, body map[string]any) T {
	t.Helper()
	var v T
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("unmarshal %s: %v", raw, err)
	}
	return v
}

// errCode returns the Alibaba error code, HTTP status and retry-after (ms) of an SDK error.
func errCode(t *testing.T, err error) (code string, status int, retryAfter int64) {
	t.Helper()
	var ce *openapi.ClientError
	var se *openapi.ServerError
	var te *openapi.ThrottlingError
	switch {
	case errors.As(err, &te):
		return dara.StringValue(te.Code), dara.IntValue(te.StatusCode), dara.Int64Value(te.RetryAfter)
	case errors.As(err, &ce):
		return dara.StringValue(ce.Code), dara.IntValue(ce.StatusCode), 0
	case errors.As(err, &se):
		return dara.StringValue(se.Code), dara.IntValue(se.StatusCode), 0
	}
	t.Fatalf("error %T %v is not an OpenAPI error", err, err)
	return "", 0, 0
}

type listImageResp struct {
	Count int
	Data  []struct {
		ImageId                   string
		ImageName                 string
		VersionId                 string
		Status                    string
		ProductType               string
		ImageRegionList           []string
		ImageRegionDistributeList []struct {
			RegionId, ImageId, VersionId, Status, Progress string
		}
	}
}

type describeResp struct {
	TotalCount int
	NextToken  string
	Desktops   []struct {
		DesktopId, DesktopName, DesktopStatus, ImageId, OsType, DesktopGroupId string
		GpuCount                                                               float64
		GpuCategory                                                            int
		Tags                                                                   []struct{ Key, Value string }
		Disks                                                                  []struct{ DiskType string }
	}
}

type rebuildResp struct {
	RebuildResults []struct{ DesktopId, Code, Message string }
}

// fakeClock is a clock tests move by hand; it starts at the real time so the SDK's signature
// timestamps stay valid.
type fakeClock struct {
	base   time.Time
	offset atomic.Int64
}

func newFakeClock() *fakeClock { return &fakeClock{base: time.Now()} }

func (c *fakeClock) now() time.Time           { return c.base.Add(time.Duration(c.offset.Load())) }
func (c *fakeClock) set(d time.Duration)      { c.offset.Store(int64(d)) }
func (c *fakeClock) install() func(*Emulator) { return func(e *Emulator) { e.now = c.now } }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package tencent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/tencentemu"
	"github.com/imagerelay/imagerelay/shared/domain"
)

const (
	testID  = "AKIDprovidertest"
	testKey = "provider-test-secret"
)

type env struct {
	p      *Provider
	emu    *tencentemu.Emulator
	calls  *emucore.CallLog
	faults *emucore.Faults
	srv    *httptest.Server
}

func seed() tencentemu.Seed {
	return tencentemu.Seed{
		Credentials: []tencentemu.Credential{{SecretID: testID, SecretKey: testKey}},
		Images: []tencentemu.Image{
			{ID: "img-base0001", Name: "base", Region: "ap-guangzhou", SizeGB: 20, Platform: "TencentOS"},
		},
		CopyDuration: emucore.Duration(300 * time.Millisecond),
		RateLimits:   tencentemu.RateLimits{SyncImages: 1000, DescribeImages: 1000},
	}
}

// setup runs an emulator and a provider pointed at it with the test credentials in the
// environment.
func setup(t *testing.T, s tencentemu.Seed, cfg Config) *env {
	t.Helper()
	calls, faults := &emucore.CallLog{}, &emucore.Faults{}
	emu, err := tencentemu.New(s, calls, faults)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	t.Setenv(EnvSecretID, testID)
	t.Setenv(EnvSecretKey, testKey)
	t.Setenv(EnvSessionToken, "")
	if cfg.Endpoint == "" {
		cfg.Endpoint = srv.URL
	}
	if cfg.SyncRatePerSecond == 0 {
		cfg.SyncRatePerSecond = 1000
	}
	if cfg.DescribeRatePerSecond == 0 {
		cfg.DescribeRatePerSecond = 1000
	}
	cfg.Timeout = 5 * time.Second
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{p: p, emu: emu, calls: calls, faults: faults, srv: srv}
}

func copyReq(imageID, src, dst string) domain.StartRequest {
	c := domain.Copy{
		Image:             domain.Image{Provider: ProviderName, ImageID: imageID, ImageName: "base", SourceRegion: src},
		DestinationRegion: dst,
	}
	return domain.StartRequest{Source: domain.Source{Image: c.Image}, Regions: []string{dst}, Name: domain.CopyName(c)}
}

// copyOf is the copy req asks for in its first region.
func copyOf(req domain.StartRequest) domain.Copy {
	return domain.Copy{Image: req.Image, DestinationRegion: req.Regions[0]}
}

func taskFor(req domain.StartRequest, h domain.Handle) domain.Task {
	return domain.Task{Copy: copyOf(req), TaskID: h.TaskID, DestinationImageID: h.DestinationImageID}
}

func asProviderError(t *testing.T, err error) *domain.ProviderError {
	t.Helper()
	var pe *domain.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), want *domain.ProviderError", err, err)
	}
	return pe
}

func TestStartAndPollToSuccess(t *testing.T) {
	e := setup(t, seed(), Config{})
	ctx := context.Background()
	req := copyReq("img-base0001", "ap-guangzhou", "ap-shanghai")
	handles, err := e.p.StartCopy(ctx, req)
	if err != nil {
		t.Fatalf("StartCopy: %v", err)
	}
	if len(handles) != 1 || handles[0].Region != "ap-shanghai" || !imageIDPattern.MatchString(handles[0].TaskID) ||
		handles[0].TaskID != handles[0].DestinationImageID || handles[0].AlreadyPresent {
		t.Fatalf("handles = %+v", handles)
	}
	calls := e.calls.Calls("tencent", "SyncImages")
	if len(calls) != 1 {
		t.Fatalf("%d SyncImages calls, want exactly 1", len(calls))
	}
	p := calls[0].Params
	if calls[0].Region != "ap-guangzhou" || !slices.Equal(p["ImageIds"].([]string), []string{"img-base0001"}) ||
		!slices.Equal(p["DestinationRegions"].([]string), []string{"ap-shanghai"}) || p["ImageName"] != req.Name || p["ImageSetRequired"] != true {
		t.Errorf("SyncImages call = %+v", calls[0])
	}

	task := taskFor(req, handles[0])
	sawProgress := false
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := e.p.CopyStatus(ctx, []domain.Task{task})
		if err != nil {
			t.Fatalf("CopyStatus: %v", err)
		}
		if len(st) != 1 {
			t.Fatalf("%d statuses for 1 task", len(st))
		}
		if st[0].Phase == domain.PhaseSucceeded {
			if st[0].Percent != 100 || st[0].DestinationImageID != handles[0].TaskID || st[0].ProviderStatus != "NORMAL" {
				t.Errorf("success status = %+v", st[0])
			}
			break
		}
		if st[0].Phase != domain.PhaseInProgress || st[0].ProviderStatus != "SYNCING" || st[0].Percent > 99 {
			t.Fatalf("status = %+v, want in progress while SYNCING", st[0])
		}
		sawProgress = true
		if time.Now().After(deadline) {
			t.Fatal("the copy never succeeded")
		}
	}
	if !sawProgress {
		t.Error("never saw the copy in progress")
	}
	if n := len(e.calls.Calls("tencent", "SyncImages")); n != 1 {
		t.Errorf("%d SyncImages calls after polling, want 1", n)
	}
}

func TestFindCopyAndDuplicateStart(t *testing.T) {
	e := setup(t, seed(), Config{})
	ctx := context.Background()
	req := copyReq("img-base0001", "ap-guangzhou", "ap-tokyo")

	if _, found, err := e.p.FindCopy(ctx, req); err != nil || found {
		t.Fatalf("FindCopy before any start: found=%v err=%v", found, err)
	}
	handles, err := e.p.StartCopy(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	h, found, err := e.p.FindCopy(ctx, req)
	if err != nil || !found || h.TaskID != handles[0].TaskID || h.Region != "ap-tokyo" {
		t.Fatalf("FindCopy = %+v found=%v err=%v, want the started copy %s", h, found, err, handles[0].TaskID)
	}
	if other := copyReq("img-base0001", "ap-guangzhou", "ap-seoul"); true {
		if _, found, err := e.p.FindCopy(ctx, other); err != nil || found {
			t.Errorf("FindCopy for a region never started: found=%v err=%v", found, err)
		}
	}
	// A second start of the same request (its first answer lost) follows the existing copy.
	again, err := e.p.StartCopy(ctx, req)
	if err != nil || len(again) != 1 || again[0].TaskID != handles[0].TaskID {
		t.Fatalf("second StartCopy = %+v, %v; want the first copy %s", again, err, handles[0].TaskID)
	}
	if n := len(e.emu.Images("ap-tokyo")); n != 1 {
		t.Errorf("ap-tokyo holds %d images, want 1", n)
	}
	calls := e.calls.Calls("tencent", "SyncImages")
	if len(calls) != 2 || calls[1].Outcome != "InvalidImageName.Duplicate" {
		t.Errorf("SyncImages calls = %+v", calls)
	}
}

func TestStartCopyErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("wrong key is terminal with a hint", func(t *testing.T) {
		e := setup(t, seed(), Config{})
		t.Setenv(EnvSecretKey, "wrong-key")
		p, err := New(Config{Endpoint: e.srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.StartCopy(ctx, copyReq("img-base0001", "ap-guangzhou", "ap-shanghai"))
		pe := asProviderError(t, err)
		if pe.Code != "AuthFailure.SignatureFailure" || !errors.Is(err, domain.ErrTerminal) || !strings.Contains(pe.Hint, "TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY") || pe.RequestID == "" {
			t.Errorf("err = %+v", pe)
		}
		if strings.Contains(pe.Error(), "wrong-key") {
			t.Error("the error message leaks the secret key")
		}
	})
	t.Run("throttle is retryable", func(t *testing.T) {
		e := setup(t, seed(), Config{})
		e.faults.Add(emucore.Rule{Provider: "tencent", Action: "SyncImages", Kind: emucore.FaultThrottle, Count: 1})
		_, err := e.p.StartCopy(ctx, copyReq("img-base0001", "ap-guangzhou", "ap-shanghai"))
		pe := asProviderError(t, err)
		if pe.Code != "RequestLimitExceeded" || !errors.Is(err, domain.ErrRetryable) || pe.RetryAfter <= 0 {
			t.Errorf("err = %+v", pe)
		}
	})
	t.Run("dropped connection is retryable", func(t *testing.T) {
		e := setup(t, seed(), Config{})
		e.faults.Add(emucore.Rule{Provider: "tencent", Action: "DescribeImages", Kind: emucore.FaultDrop, Count: 1})
		_, _, err := e.p.FindCopy(ctx, copyReq("img-base0001", "ap-guangzhou", "ap-shanghai"))
		if pe := asProviderError(t, err); pe.Class != domain.Retryable {
			t.Errorf("err = %+v", pe)
		}
	})
	t.Run("constraint is terminal", func(t *testing.T) {
		e := setup(t, seed(), Config{})
		_, err := e.p.StartCopy(ctx, copyReq("img-base0001", "ap-guangzhou", "ap-guangzhou"))
		if pe := asProviderError(t, err); pe.Code != "InvalidParameterValue.InvalidRegion" || pe.Class != domain.Terminal || pe.Hint == "" {
			t.Errorf("err = %+v", pe)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		e := setup(t, seed(), Config{})
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := e.p.StartCopy(cctx, copyReq("img-base0001", "ap-guangzhou", "ap-shanghai"))
		if pe := asProviderError(t, err); pe.Class != domain.Retryable {
			t.Errorf("err = %+v", pe)
		}
		if n := len(e.calls.Calls("tencent", "SyncImages")); n != 0 {
			t.Errorf("%d calls went out after cancellation", n)
		}
	})
}

func TestCopyStatusSplitsBatches(t *testing.T) {
	s := seed()
	for i := range 150 {
		s.Images = append(s.Images, tencentemu.Image{ID: fmt.Sprintf("img-b%07d", i), Name: fmt.Sprintf("copy-%d", i), Region: "ap-beijing", SizeGB: 10})
	}
	e := setup(t, s, Config{})
	var tasks []domain.Task
	for i := range 150 {
		id := fmt.Sprintf("img-b%07d", i)
		tasks = append(tasks, domain.Task{Copy: domain.Copy{DestinationRegion: "ap-beijing"}, TaskID: id, DestinationImageID: id})
	}
	tasks = append(tasks,
		domain.Task{Copy: domain.Copy{DestinationRegion: "ap-beijing"}, TaskID: "img-gone0001"},
		domain.Task{Copy: domain.Copy{DestinationRegion: "ap-beijing"}, TaskID: "not-an-id"},
	)
	st, err := e.p.CopyStatus(context.Background(), tasks)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != len(tasks) {
		t.Fatalf("%d statuses for %d tasks", len(st), len(tasks))
	}
	for i := range 150 {
		if st[i].Phase != domain.PhaseSucceeded || st[i].DestinationImageID != tasks[i].TaskID {
			t.Fatalf("status %d = %+v", i, st[i])
		}
	}
	if st[150].Phase != domain.PhaseNotFound || st[151].Phase != domain.PhaseNotFound {
		t.Errorf("unknown tasks: %+v, %+v", st[150], st[151])
	}
	calls := e.calls.Calls("tencent", "DescribeImages")
	if len(calls) != 2 {
		t.Fatalf("%d DescribeImages calls, want 2", len(calls))
	}
	for _, c := range calls {
		if n := len(c.Params["ImageIds"].([]string)); n > MaxDescribeIDs || c.Region != "ap-beijing" {
			t.Errorf("DescribeImages call with %d ids in %s", n, c.Region)
		}
	}
	if e.p.BatchSize() != 100 {
		t.Errorf("BatchSize = %d", e.p.BatchSize())
	}
}

func TestCopyStatusFailedAndByName(t *testing.T) {
	e := setup(t, seed(), Config{})
	ctx := context.Background()
	e.faults.Add(emucore.Rule{Provider: "tencent", Action: "SyncImages", Kind: emucore.FaultFailCopy, Count: 1})
	req := copyReq("img-base0001", "ap-guangzhou", "ap-singapore")
	handles, err := e.p.StartCopy(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// The second task has no id: it is followed by its deterministic name.
	tasks := []domain.Task{taskFor(req, handles[0]), {Copy: copyOf(req)}}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := e.p.CopyStatus(ctx, tasks)
		if err != nil {
			t.Fatal(err)
		}
		if st[0].DestinationImageID != handles[0].TaskID || st[1].DestinationImageID != handles[0].TaskID {
			t.Fatalf("statuses %+v and %+v do not both follow %s", st[0], st[1], handles[0].TaskID)
		}
		// The two reads are a moment apart, so only stop once both saw the failure.
		if st[0].Phase == domain.PhaseFailed && st[1].Phase == domain.PhaseFailed {
			if st[0].Code != "ImageState.CREATEFAILED" || !strings.Contains(st[0].Message, handles[0].TaskID) {
				t.Errorf("failed status = %+v", st[0])
			}
			break
		}
		for _, x := range st {
			if x.Phase != domain.PhaseInProgress && x.Phase != domain.PhaseFailed {
				t.Fatalf("status = %+v, want in progress until failed", x)
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the copy never failed")
		}
	}
}

func TestClientRateLimitKeepsUnderEmulatorLimit(t *testing.T) {
	s := seed()
	s.RateLimits = tencentemu.RateLimits{SyncImages: 10, DescribeImages: 5}
	tests := []struct {
		name      string
		rate      float64
		throttled bool
	}{
		{"paced at the limit", 5, false},
		{"unpaced", 100000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, s, Config{DescribeRatePerSecond: tt.rate})
			task := []domain.Task{{Copy: domain.Copy{DestinationRegion: "ap-guangzhou"}, TaskID: "img-base0001"}}
			throttled := false
			// 10 calls: paced, they take 1.8 s; unpaced, they drain the bucket of 5 at once.
			for range 10 {
				if _, err := e.p.CopyStatus(context.Background(), task); err != nil {
					if pe := asProviderError(t, err); pe.Code != "RequestLimitExceeded" {
						t.Fatalf("err = %v", err)
					}
					throttled = true
				}
			}
			if throttled != tt.throttled {
				t.Errorf("throttled = %v, want %v", throttled, tt.throttled)
			}
		})
	}
}

func TestCheckCopy(t *testing.T) {
	e := setup(t, seed(), Config{})
	img := domain.Source{Image: domain.Image{Provider: "tencent", ImageID: "img-base0001", SourceRegion: "ap-guangzhou"}, SizeGB: 20}
	tests := []struct {
		name   string
		mod    func(*domain.Source)
		region string
		want   string
	}{
		{"ok", nil, "ap-shanghai", ""},
		{"unknown region", nil, "ap-atlantis", "not a Tencent Cloud region"},
		{"same region", nil, "ap-guangzhou", "own region"},
		{"encrypted", func(i *domain.Source) { i.Encrypted = true }, "ap-shanghai", "encrypted"},
		{"50 GB", func(i *domain.Source) { i.SizeGB = 50 }, "ap-shanghai", "smaller than 50 GB"},
		{"49 GB", func(i *domain.Source) { i.SizeGB = 49 }, "ap-shanghai", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := img
			if tt.mod != nil {
				tt.mod(&i)
			}
			got := e.p.CheckCopy(i, tt.region)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("CheckCopy = %q, want %q", got, tt.want)
			}
		})
	}
	if len(e.calls.Calls("", "")) != 0 {
		t.Error("CheckCopy called the API")
	}
	if e.p.Name() != "tencent" || !slices.Contains(e.p.Regions(), "eu-frankfurt") {
		t.Errorf("Name %q Regions %v", e.p.Name(), e.p.Regions())
	}
}

func TestNewAndEndpoints(t *testing.T) {
	t.Run("missing credentials", func(t *testing.T) {
		t.Setenv(EnvSecretID, "")
		t.Setenv(EnvSecretKey, "")
		_, err := New(Config{})
		if !errors.Is(err, ErrNoCredentials) || !strings.Contains(err.Error(), EnvSecretID) || !strings.Contains(err.Error(), EnvSecretKey) {
			t.Errorf("err = %v", err)
		}
	})
	tests := []struct {
		in, host, scheme string
		bad              bool
	}{
		{"", "", "HTTPS", false},
		{"127.0.0.1:9401", "127.0.0.1:9401", "HTTP", false},
		{"localhost:9401", "localhost:9401", "HTTP", false},
		{"cvm.ap-guangzhou.tencentcloudapi.com", "cvm.ap-guangzhou.tencentcloudapi.com", "HTTPS", false},
		{"http://10.0.0.5:9401", "10.0.0.5:9401", "HTTP", false},
		{"https://cvm.tencentcloudapi.com/", "cvm.tencentcloudapi.com", "HTTPS", false},
		{"ftp://x", "", "", true},
		{"http://x/path", "", "", true},
	}
	for _, tt := range tests {
		host, scheme, err := parseEndpoint(tt.in)
		if (err != nil) != tt.bad || host != tt.host || scheme != tt.scheme {
			t.Errorf("parseEndpoint(%q) = %q, %q, %v", tt.in, host, scheme, err)
		}
	}
	t.Run("session token", func(t *testing.T) {
		s := seed()
		s.Credentials = []tencentemu.Credential{{SecretID: testID, SecretKey: testKey, Token: "sts-token"}}
		e := setup(t, s, Config{})
		if _, _, err := e.p.FindCopy(context.Background(), copyReq("img-base0001", "ap-guangzhou", "ap-tokyo")); err == nil {
			t.Error("a call without the session token was accepted")
		}
		t.Setenv(EnvSessionToken, "sts-token")
		p, err := New(Config{Endpoint: strings.TrimPrefix(e.srv.URL, "http://")})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := p.FindCopy(context.Background(), copyReq("img-base0001", "ap-guangzhou", "ap-tokyo")); err != nil {
			t.Errorf("with the session token: %v", err)
		}
	})
}

// TestStartCopyWithoutImageSet covers an answer that accepted the copy but named no image id:
// the provider finds the copy by its name instead of failing (and so never copying twice).
func TestStartCopyWithoutImageSet(t *testing.T) {
	e := setup(t, seed(), Config{})
	strip := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		e.emu.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if r.Header.Get("X-TC-Action") == "SyncImages" {
			var m map[string]map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Errorf("emulator answer: %v", err)
			}
			delete(m["Response"], "ImageSet")
			body, _ = json.Marshal(m)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	defer strip.Close()
	p, err := New(Config{Endpoint: strip.URL})
	if err != nil {
		t.Fatal(err)
	}
	req := copyReq("img-base0001", "ap-guangzhou", "ap-hongkong")
	handles, err := p.StartCopy(context.Background(), req)
	if err != nil {
		t.Fatalf("StartCopy: %v", err)
	}
	imgs := e.emu.Images("ap-hongkong")
	if len(imgs) != 1 || len(handles) != 1 || handles[0].TaskID != imgs[0].ID || imgs[0].Name != req.Name {
		t.Errorf("handles %+v, images in ap-hongkong %+v", handles, imgs)
	}
}

package huawei_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/functions/fanout"
	"github.com/imagerelay/imagerelay/functions/poller"
	"github.com/imagerelay/imagerelay/functions/replicate"
	"github.com/imagerelay/imagerelay/shared/adapters/huawei"
	"github.com/imagerelay/imagerelay/shared/adapters/huawei/constraints"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/huaweiemu"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// The provider fills the ports of the three function cores.
var (
	_ replicate.Copier               = (*huawei.Provider)(nil)
	_ interface{ MaxInFlight() int } = (*huawei.Provider)(nil)
	_ poller.StatusReader            = (*huawei.Provider)(nil)
	_ fanout.ConstraintChecker       = (*huawei.Provider)(nil)
	_ interface{ Name() string }     = (*huawei.Provider)(nil)
)

const (
	src = "cn-north-4"
	dst = "cn-east-3"
)

type env struct {
	p      *huawei.Provider
	emu    *huaweiemu.Emulator
	calls  *emucore.CallLog
	faults *emucore.Faults
	cfg    huawei.Config
	url    string
}

// setKeys puts the access key in Huawei's environment variables, and clears the alternative
// names so the host's environment cannot leak in.
func setKeys(t *testing.T, ak, sk string) {
	t.Setenv(huawei.EnvAK, ak)
	t.Setenv(huawei.EnvSK, sk)
	t.Setenv(huawei.EnvAltAK, "")
	t.Setenv(huawei.EnvAltSK, "")
	t.Setenv(huawei.EnvSecurityToken, "")
}

func newEnv(t *testing.T, mutateSeed func(*huaweiemu.Seed), mutateCfg func(*huawei.Config)) *env {
	t.Helper()
	seed := huaweiemu.DefaultSeed()
	seed.CopyDuration = emucore.Duration(400 * time.Millisecond)
	if mutateSeed != nil {
		mutateSeed(&seed)
	}
	calls := &emucore.CallLog{}
	faults := emucore.NewFaults(emucore.Rates{}, 7)
	emu, err := huaweiemu.New(seed, calls, faults)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	setKeys(t, huaweiemu.DemoAK, huaweiemu.DemoSK)
	projects := map[string]string{}
	for r, pid := range seed.Projects {
		projects[r] = pid
	}
	cfg := huawei.Config{Endpoint: srv.URL, Account: "demo", Projects: projects, Agency: "ims_admin_agency", RatePerSecond: 1000}
	if mutateCfg != nil {
		mutateCfg(&cfg)
	}
	p, err := huawei.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &env{p: p, emu: emu, calls: calls, faults: faults, cfg: cfg, url: srv.URL}
}

func request(imageID, imageName, dest string) domain.StartRequest {
	c := domain.Copy{Image: domain.Image{Provider: huawei.Name, Account: "demo", ImageID: imageID,
		ImageName: imageName, SourceRegion: src}, DestinationRegion: dest}
	return domain.StartRequest{Source: domain.Source{Image: c.Image}, Regions: []string{dest}, Name: domain.CopyName(c)}
}

// copyOf is the copy req asks for in its one region.
func copyOf(req domain.StartRequest) domain.Copy {
	return domain.Copy{Image: req.Image, DestinationRegion: req.Regions[0]}
}

func task(req domain.StartRequest, h domain.Handle) domain.Task {
	return domain.Task{Copy: copyOf(req), TaskID: h.TaskID, DestinationImageID: h.DestinationImageID}
}

func providerErr(t *testing.T, err error) *domain.ProviderError {
	t.Helper()
	var pe *domain.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("want a *domain.ProviderError, got %T: %v", err, err)
	}
	return pe
}

// waitFor polls the status of tk until it leaves PhaseInProgress, checking that progress never
// goes backwards (a failed copy reports no progress).
func waitFor(t *testing.T, e *env, tk domain.Task) (domain.CopyStatus, []domain.CopyStatus) {
	t.Helper()
	var seen []domain.CopyStatus
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		sts, err := e.p.CopyStatus(context.Background(), []domain.Task{tk})
		if err != nil {
			t.Fatalf("CopyStatus: %v", err)
		}
		if len(sts) != 1 {
			t.Fatalf("CopyStatus returned %d statuses for 1 task", len(sts))
		}
		st := sts[0]
		if n := len(seen); n > 0 && st.Phase != domain.PhaseFailed && st.Percent < seen[n-1].Percent {
			t.Fatalf("progress went back from %d to %d", seen[n-1].Percent, st.Percent)
		}
		seen = append(seen, st)
		if st.Phase != domain.PhaseInProgress {
			return st, seen
		}
		time.Sleep(25 * time.Millisecond) // poll interval; the loop re-checks the status
	}
	t.Fatalf("task %s still in progress at the deadline: %+v", tk.TaskID, seen[len(seen)-1])
	return domain.CopyStatus{}, nil
}

func TestStartCopyAndPollToSuccess(t *testing.T) {
	e := newEnv(t, nil, nil)
	req := request(huaweiemu.DemoImageLinux, "golden-ubuntu-22.04", dst)
	hs, err := e.p.StartCopy(context.Background(), req)
	if err != nil {
		t.Fatalf("StartCopy: %v", err)
	}
	if len(hs) != 1 || hs[0].Region != dst || len(hs[0].TaskID) != 32 || hs[0].AlreadyPresent {
		t.Fatalf("handles = %+v, want one job handle for %s", hs, dst)
	}
	final, seen := waitFor(t, e, task(req, hs[0]))
	if final.Phase != domain.PhaseSucceeded || final.Percent != 100 || final.ProviderStatus != "SUCCESS" {
		t.Fatalf("final status %+v", final)
	}
	if seen[0].Phase != domain.PhaseInProgress || (seen[0].ProviderStatus != "INIT" && seen[0].ProviderStatus != "RUNNING") {
		t.Fatalf("first status %+v, want INIT or RUNNING", seen[0])
	}
	jobs := e.emu.Jobs()
	if len(jobs) != 1 || final.DestinationImageID != jobs[0].NewImageID || jobs[0].ID != hs[0].TaskID {
		t.Fatalf("destination image %q, emulator jobs %+v", final.DestinationImageID, jobs)
	}
	copies := e.calls.Calls("huawei", huaweiemu.ActionCopyImageCrossRegion)
	if len(copies) != 1 || copies[0].Region != src || copies[0].Params["name"] != req.Name ||
		copies[0].Params["destinationRegion"] != dst || copies[0].Params["imageId"] != huaweiemu.DemoImageLinux {
		t.Fatalf("copy calls %+v", copies)
	}
	for _, c := range e.calls.Calls("huawei", huaweiemu.ActionShowJob) {
		if c.Region != src {
			t.Fatalf("ShowJob went to %s, want the source region %s", c.Region, src)
		}
	}
}

func TestFindCopy(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx := context.Background()
	req := request(huaweiemu.DemoImageLinux, "golden-ubuntu-22.04", dst)

	if h, found, err := e.p.FindCopy(ctx, req); err != nil || found {
		t.Fatalf("before any copy: %+v %v %v, want not found", h, found, err)
	}
	hs, err := e.p.StartCopy(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	h, found, err := e.p.FindCopy(ctx, req)
	if err != nil || !found {
		t.Fatalf("while copying: found=%v err=%v", found, err)
	}
	newImage := e.emu.Jobs()[0].NewImageID
	if h.Region != dst || h.DestinationImageID != newImage || h.AlreadyPresent || !strings.HasPrefix(h.TaskID, "image/") {
		t.Fatalf("in-flight handle %+v, want image %s in progress", h, newImage)
	}
	// The found copy can be followed by its image even though its job id is unknown.
	final, _ := waitFor(t, e, task(req, h))
	if final.Phase != domain.PhaseSucceeded || final.DestinationImageID != newImage {
		t.Fatalf("following the found copy: %+v", final)
	}
	h, found, err = e.p.FindCopy(ctx, req)
	if err != nil || !found || !h.AlreadyPresent || h.DestinationImageID != newImage {
		t.Fatalf("after the copy: %+v found=%v err=%v, want AlreadyPresent %s", h, found, err, newImage)
	}
	// Another version of the image has another name: not found.
	other := request(huaweiemu.DemoImageLinux, "golden-ubuntu-22.04", "cn-south-1")
	if _, found, err := e.p.FindCopy(ctx, other); err != nil || found {
		t.Fatalf("copy to another region: found=%v err=%v", found, err)
	}
	if hs[0].TaskID == h.TaskID {
		t.Fatal("a job id was mistaken for an image task")
	}
}

func TestStatusOfFailedAndUnknownTasks(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.faults.Add(emucore.Rule{Provider: "huawei", Action: huaweiemu.ActionCopyImageCrossRegion, Kind: emucore.FaultFailCopy, Count: 1})
	req := request(huaweiemu.DemoImageLinux, "golden-ubuntu-22.04", dst)
	hs, err := e.p.StartCopy(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	final, _ := waitFor(t, e, task(req, hs[0]))
	if final.Phase != domain.PhaseFailed || final.Code != huaweiemu.CodeCopyFailed || final.Message == "" || final.ProviderStatus != "FAIL" {
		t.Fatalf("failed job status %+v", final)
	}

	rep := copyOf(req)
	tasks := []domain.Task{
		{Copy: rep, TaskID: "0123456789abcdef0123456789abcdef"},
		{Copy: rep, TaskID: "image/00000000-0000-4000-8000-000000000000"},
		{Copy: rep},
	}
	sts, err := e.p.CopyStatus(context.Background(), tasks)
	if err != nil {
		t.Fatalf("CopyStatus: %v", err)
	}
	for i, st := range sts {
		if st.Phase != domain.PhaseNotFound {
			t.Fatalf("task %d: %+v, want not found", i, st)
		}
	}
}

func TestCopyStatusBatchKeepsOrder(t *testing.T) {
	e := newEnv(t, nil, func(c *huawei.Config) {})
	ctx := context.Background()
	var tasks []domain.Task
	for _, d := range []string{dst, "cn-south-1", "ap-southeast-1"} {
		req := request(huaweiemu.DemoImageLinux, "golden-ubuntu-22.04", d)
		hs, err := e.p.StartCopy(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, task(req, hs[0]))
	}
	tasks = append(tasks, domain.Task{Copy: tasks[0].Copy, TaskID: "ffffffffffffffffffffffffffffffff"})
	if len(tasks) > e.p.BatchSize() {
		t.Fatalf("test batch of %d exceeds BatchSize %d", len(tasks), e.p.BatchSize())
	}
	sts, err := e.p.CopyStatus(ctx, tasks)
	if err != nil || len(sts) != len(tasks) {
		t.Fatalf("CopyStatus: %d statuses, %v", len(sts), err)
	}
	for i := range 3 {
		if sts[i].Phase != domain.PhaseInProgress {
			t.Fatalf("task %d: %+v, want in progress", i, sts[i])
		}
	}
	if sts[3].Phase != domain.PhaseNotFound {
		t.Fatalf("unknown job: %+v", sts[3])
	}
}

func TestConcurrentUseIsSafe(t *testing.T) {
	e := newEnv(t, nil, nil)
	req := request(huaweiemu.DemoImageLinux, "golden-ubuntu-22.04", dst)
	hs, err := e.p.StartCopy(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			// Different regions make the provider build clients concurrently.
			if _, _, err := e.p.FindCopy(context.Background(), request(huaweiemu.DemoImageLinux, "x", "cn-south-1")); err != nil {
				errs <- err
			}
			if _, err := e.p.CopyStatus(context.Background(), []domain.Task{task(req, hs[0])}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestSixthConcurrentCopyIsRetryable(t *testing.T) {
	e := newEnv(t, func(s *huaweiemu.Seed) { s.CopyDuration = emucore.Duration(time.Second) }, nil)
	if e.p.MaxInFlight() != 5 {
		t.Fatalf("MaxInFlight = %d, want 5", e.p.MaxInFlight())
	}
	regions := []string{dst, "cn-south-1", "ap-southeast-1", "ap-southeast-3", "af-south-1"}
	for _, d := range regions {
		if _, err := e.p.StartCopy(context.Background(), request(huaweiemu.DemoImageLinux, "golden", d)); err != nil {
			t.Fatalf("copy to %s: %v", d, err)
		}
	}
	_, err := e.p.StartCopy(context.Background(), request(huaweiemu.DemoImageWindows, "windows", dst))
	pe := providerErr(t, err)
	if !errors.Is(err, domain.ErrRetryable) || pe.Code != huaweiemu.CodeTooManyCopies || !strings.Contains(pe.Hint, "5") {
		t.Fatalf("6th copy: %+v, want retryable %s with a hint about the 5-copy limit", pe, huaweiemu.CodeTooManyCopies)
	}
	if got := e.emu.MaxObservedConcurrent(); got != 5 {
		t.Fatalf("emulator saw %d copies at once, want 5", got)
	}
}

func TestErrorClassification(t *testing.T) {
	cases := []struct {
		name      string
		setup     func(t *testing.T, e *env)
		req       domain.StartRequest
		class     error
		code      string
		status    int
		hintWords string
	}{
		{name: "wrong secret key", setup: func(t *testing.T, e *env) {
			setKeys(t, huaweiemu.DemoAK, "wrong-secret")
			p, err := huawei.New(e.cfg)
			if err != nil {
				t.Fatal(err)
			}
			e.p = p
		}, class: domain.ErrTerminal, code: huaweiemu.CodeAuthFailed, status: 401, hintWords: huawei.EnvAK},
		{name: "unknown access key", setup: func(t *testing.T, e *env) {
			setKeys(t, "HWNOBODY", huaweiemu.DemoSK)
			p, err := huawei.New(e.cfg)
			if err != nil {
				t.Fatal(err)
			}
			e.p = p
		}, class: domain.ErrTerminal, code: huaweiemu.CodeAuthFailed, status: 401, hintWords: huawei.EnvSK},
		{name: "throttled", setup: fault(emucore.FaultThrottle), class: domain.ErrRetryable, code: huaweiemu.CodeThrottled, status: 429, hintWords: "retry"},
		{name: "server error", setup: fault(emucore.FaultServer), class: domain.ErrRetryable, code: huaweiemu.CodeInternalError, status: 500, hintWords: "retry"},
		{name: "dropped connection", setup: fault(emucore.FaultDrop), class: domain.ErrRetryable, code: "NetworkError", hintWords: "retry"},
		{name: "image not found", req: request("00000000-0000-4000-8000-000000000000", "gone", dst),
			class: domain.ErrTerminal, code: huaweiemu.CodeImageNotFound, status: 404, hintWords: "image id"},
		{name: "same region", req: request(huaweiemu.DemoImageLinux, "golden", src),
			class: domain.ErrTerminal, code: huaweiemu.CodeSameRegion, status: 400, hintWords: "policy"},
		{name: "encrypted", req: request(huaweiemu.DemoImageEncrypted, "enc", dst),
			class: domain.ErrTerminal, code: huaweiemu.CodeEncrypted, status: 400, hintWords: "unencrypted"},
		{name: "too large", req: request(huaweiemu.DemoImageLarge, "big", dst),
			class: domain.ErrTerminal, code: huaweiemu.CodeTooLarge, status: 400, hintWords: "128 GB"},
		{name: "from ISO", req: request(huaweiemu.DemoImageISO, "iso", dst),
			class: domain.ErrTerminal, code: huaweiemu.CodeFromISO, status: 400, hintWords: "ISO"},
		{name: "unknown agency", setup: func(t *testing.T, e *env) {
			e.cfg.Agency = "not_an_agency"
			p, err := huawei.New(e.cfg)
			if err != nil {
				t.Fatal(err)
			}
			e.p = p
		}, class: domain.ErrTerminal, code: huaweiemu.CodeUnknownAgency, status: 400, hintWords: "huawei.agency"},
		{name: "wrong project name", setup: func(t *testing.T, e *env) {
			e.cfg.ProjectNames = map[string]string{dst: "cn-east-3_sub"}
			p, err := huawei.New(e.cfg)
			if err != nil {
				t.Fatal(err)
			}
			e.p = p
		}, class: domain.ErrTerminal, code: huaweiemu.CodeProjectMismatch, status: 400, hintWords: "projectNames"},
		{name: "no agency configured", setup: func(t *testing.T, e *env) {
			e.cfg.Agency = ""
			p, err := huawei.New(e.cfg)
			if err != nil {
				t.Fatal(err)
			}
			e.p = p
		}, class: domain.ErrTerminal, code: "AgencyNotConfigured", hintWords: "huawei.agency"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			if tc.setup != nil {
				tc.setup(t, e)
			}
			req := tc.req
			if req.ImageID == "" {
				req = request(huaweiemu.DemoImageLinux, "golden", dst)
			}
			_, err := e.p.StartCopy(context.Background(), req)
			pe := providerErr(t, err)
			if !errors.Is(err, tc.class) || pe.Code != tc.code || pe.HTTPStatus != tc.status || pe.Provider != "huawei" ||
				pe.Action != huawei.ActionCopy || !strings.Contains(pe.Hint, tc.hintWords) {
				t.Fatalf("got %+v (class ok: %v), want %v %s HTTP %d with a hint mentioning %q",
					pe, errors.Is(err, tc.class), tc.class, tc.code, tc.status, tc.hintWords)
			}
			if tc.status != 0 && pe.RequestID == "" {
				t.Fatal("the provider's request id was lost")
			}
			if strings.Contains(pe.Error(), huaweiemu.DemoSK) || strings.Contains(pe.Error(), "wrong-secret") {
				t.Fatal("the secret key leaked into the error")
			}
		})
	}
}

func fault(kind emucore.FaultKind) func(*testing.T, *env) {
	return func(_ *testing.T, e *env) {
		e.faults.Add(emucore.Rule{Provider: "huawei", Action: huaweiemu.ActionCopyImageCrossRegion, Kind: kind, Count: 1})
	}
}

func TestStatusErrorsFailTheBatch(t *testing.T) {
	e := newEnv(t, nil, nil)
	req := request(huaweiemu.DemoImageLinux, "golden", dst)
	hs, err := e.p.StartCopy(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	e.faults.Add(emucore.Rule{Provider: "huawei", Action: huaweiemu.ActionShowJob, Kind: emucore.FaultThrottle, Count: 1})
	_, err = e.p.CopyStatus(context.Background(), []domain.Task{task(req, hs[0])})
	if pe := providerErr(t, err); !errors.Is(err, domain.ErrRetryable) || pe.Action != huawei.ActionShowJob || pe.Code != huaweiemu.CodeThrottled {
		t.Fatalf("throttled ShowJob: %+v, want a retryable ShowJob error", pe)
	}
}

func TestMissingProjectID(t *testing.T) {
	e := newEnv(t, nil, func(c *huawei.Config) { delete(c.Projects, dst) })
	_, err := e.p.StartCopy(context.Background(), request(huaweiemu.DemoImageLinux, "golden", dst))
	pe := providerErr(t, err)
	if !errors.Is(err, domain.ErrTerminal) || !strings.Contains(pe.Message, dst) || !strings.Contains(pe.Hint, "huawei.projects."+dst) {
		t.Fatalf("StartCopy without a project for %s: %+v", dst, pe)
	}
	if n := len(e.calls.Calls("huawei", "")); n != 0 {
		t.Fatalf("%d calls reached IMS, want none", n)
	}
	if _, err := e.p.ProjectID(dst); !errors.Is(err, huawei.ErrNoProject) || !strings.Contains(err.Error(), dst) {
		t.Fatalf("ProjectID(%s) = %v, want ErrNoProject naming the region", dst, err)
	}
	// Following a copy whose source region has no project is refused the same way.
	e2 := newEnv(t, nil, func(c *huawei.Config) { delete(c.Projects, src) })
	rep := copyOf(request(huaweiemu.DemoImageLinux, "golden", dst))
	_, err = e2.p.CopyStatus(context.Background(), []domain.Task{{Copy: rep, TaskID: "0123456789abcdef0123456789abcdef"}})
	if pe := providerErr(t, err); !errors.Is(err, domain.ErrTerminal) || !strings.Contains(pe.Message, src) {
		t.Fatalf("CopyStatus without a project for %s: %+v", src, pe)
	}
}

func TestNewConfiguration(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		cfg     huawei.Config
		wantErr string
	}{
		{"no keys", map[string]string{}, huawei.Config{}, "HUAWEICLOUD_SDK_AK"},
		{"AK without SK", map[string]string{huawei.EnvAK: "AK"}, huawei.Config{}, "HUAWEICLOUD_SDK_SK"},
		{"alternative names", map[string]string{huawei.EnvAltAK: "AK", huawei.EnvAltSK: "SK"}, huawei.Config{}, ""},
		{"huawei names", map[string]string{huawei.EnvAK: "AK", huawei.EnvSK: "SK"}, huawei.Config{}, ""},
		{"bad endpoint", map[string]string{huawei.EnvAK: "AK", huawei.EnvSK: "SK"}, huawei.Config{Endpoint: "127.0.0.1:80"}, "endpoint"},
		{"empty project id", map[string]string{huawei.EnvAK: "AK", huawei.EnvSK: "SK"},
			huawei.Config{Projects: map[string]string{"cn-north-4": ""}}, "projects.cn-north-4"},
		{"negative rate", map[string]string{huawei.EnvAK: "AK", huawei.EnvSK: "SK"}, huawei.Config{RatePerSecond: -1}, "ratePerSecond"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{huawei.EnvAK, huawei.EnvSK, huawei.EnvAltAK, huawei.EnvAltSK, huawei.EnvSecurityToken} {
				t.Setenv(k, tc.env[k])
			}
			p, err := huawei.New(tc.cfg)
			if tc.wantErr == "" {
				if err != nil || p.Name() != "huawei" {
					t.Fatalf("New = %v, %v", p, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New = %v, want an error naming %q", err, tc.wantErr)
			}
		})
	}
	for _, k := range []string{huawei.EnvAK, huawei.EnvSK, huawei.EnvAltAK, huawei.EnvAltSK} {
		t.Setenv(k, "")
	}
	if _, err := huawei.New(huawei.Config{}); !errors.Is(err, huawei.ErrNoCredentials) {
		t.Fatalf("New without keys = %v, want ErrNoCredentials", err)
	}
}

func TestCancelledContext(t *testing.T) {
	e := newEnv(t, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.p.StartCopy(ctx, request(huaweiemu.DemoImageLinux, "golden", dst))
	if pe := providerErr(t, err); !errors.Is(err, domain.ErrRetryable) || pe.Code != "Canceled" {
		t.Fatalf("cancelled StartCopy: %+v", pe)
	}
	if n := len(e.calls.Calls("huawei", "")); n != 0 {
		t.Fatalf("a cancelled call reached IMS %d times", n)
	}
}

func TestCheckCopy(t *testing.T) {
	e := newEnv(t, nil, func(c *huawei.Config) { delete(c.Projects, "af-south-1") })
	img := func(mut func(*domain.Source)) domain.Source {
		i := domain.Source{Image: domain.Image{Provider: "huawei", ImageID: huaweiemu.DemoImageLinux,
			ImageName: "golden", SourceRegion: src}, SizeGB: 40}
		if mut != nil {
			mut(&i)
		}
		return i
	}
	cases := []struct {
		name   string
		img    domain.Source
		region string
		want   string // substring of the reason; "" means allowed
	}{
		{"allowed", img(nil), dst, ""},
		{"exactly 128 GB", img(func(i *domain.Source) { i.SizeGB = 128 }), dst, ""},
		{"unknown region", img(nil), "mars-north-1", "no region"},
		{"same region", img(nil), src, "source region"},
		{"encrypted", img(func(i *domain.Source) { i.Encrypted = true }), dst, "encrypted"},
		{"too large", img(func(i *domain.Source) { i.SizeGB = 129 }), dst, "128 GB"},
		{"from ISO", img(func(i *domain.Source) { i.FromISO = true }), dst, "ISO"},
		{"no project for destination", img(nil), "af-south-1", "huawei.projects.af-south-1"},
		{"description is sanitised", img(func(i *domain.Source) { i.ImageName = "<gold>\r\nimage" }), dst, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := e.p.CheckCopy(tc.img, tc.region)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("CheckCopy = %q, want %q", got, tc.want)
			}
		})
	}
	if n := len(e.calls.Calls("", "")); n != 0 {
		t.Fatalf("CheckCopy made %d API calls, want none", n)
	}
}

func TestSanitisedDescriptionIsAccepted(t *testing.T) {
	// A source image name with characters IMS refuses in a description must not break the copy.
	e := newEnv(t, func(s *huaweiemu.Seed) { s.Images[0].Name = "gold<en>" }, nil)
	req := request(huaweiemu.DemoImageLinux, "gold<en>\nimage", dst)
	if _, err := e.p.StartCopy(context.Background(), req); err != nil {
		t.Fatalf("StartCopy with an unsafe image name: %v", err)
	}
	copies := e.calls.Calls("huawei", huaweiemu.ActionCopyImageCrossRegion)
	if name := copies[0].Params["name"]; name != constraints.SanitizeName(req.Name) || strings.ContainsAny(name.(string), "<>\n") {
		t.Fatalf("copy named %q", name)
	}
	// FindCopy looks for the name StartCopy used.
	if _, found, err := e.p.FindCopy(context.Background(), req); err != nil || !found {
		t.Fatalf("FindCopy after a sanitised start: found=%v err=%v", found, err)
	}
}

func TestUnreachableEndpointIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	setKeys(t, huaweiemu.DemoAK, huaweiemu.DemoSK)
	p, err := huawei.New(huawei.Config{Endpoint: url, Projects: huaweiemu.DefaultSeed().Projects, Agency: "ims_admin_agency"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.StartCopy(context.Background(), request(huaweiemu.DemoImageLinux, "golden", dst))
	if pe := providerErr(t, err); !errors.Is(err, domain.ErrRetryable) || pe.Code != "NetworkError" {
		t.Fatalf("unreachable endpoint: %+v", pe)
	}
}

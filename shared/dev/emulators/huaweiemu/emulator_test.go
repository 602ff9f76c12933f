package huaweiemu_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/region"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	ims "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/ims/v2"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/ims/v2/model"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/huaweiemu"
)

const (
	src = "cn-north-4"
	dst = "cn-east-3"
)

type env struct {
	emu    *huaweiemu.Emulator
	srv    *httptest.Server
	calls  *emucore.CallLog
	faults *emucore.Faults
	seed   huaweiemu.Seed
}

func newEnv(t *testing.T, mutate func(*huaweiemu.Seed)) *env {
	t.Helper()
	seed := huaweiemu.DefaultSeed()
	seed.CopyDuration = emucore.Duration(400 * time.Millisecond)
	if mutate != nil {
		mutate(&seed)
	}
	calls := &emucore.CallLog{}
	faults := emucore.NewFaults(emucore.Rates{}, 1)
	emu, err := huaweiemu.New(seed, calls, faults)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return &env{emu: emu, srv: srv, calls: calls, faults: faults, seed: seed}
}

// client builds the official ImsClient for one region, the way an operator would, with the
// project id set so the SDK never calls IAM.
func (e *env) client(t *testing.T, regionID, ak, sk string) *ims.ImsClient {
	t.Helper()
	cred, err := basic.NewCredentialsBuilder().WithAk(ak).WithSk(sk).WithProjectId(e.seed.Projects[regionID]).SafeBuild()
	if err != nil {
		t.Fatalf("credentials: %v", err)
	}
	hc, err := ims.ImsClientBuilder().WithRegion(region.NewRegion(regionID, e.srv.URL)).WithCredential(cred).SafeBuild()
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return ims.NewImsClient(hc)
}

func (e *env) demo(t *testing.T, regionID string) *ims.ImsClient {
	return e.client(t, regionID, huaweiemu.DemoAK, huaweiemu.DemoSK)
}

func copyReq(imageID, name, dest string) *model.CopyImageCrossRegionRequest {
	desc := "copied by imagerelay"
	return &model.CopyImageCrossRegionRequest{ImageId: imageID, Body: &model.CopyImageCrossRegionRequestBody{
		Name: name, Description: &desc, Region: dest, ProjectName: dest, AgencyName: "ims_admin_agency"}}
}

func serviceErr(t *testing.T, err error) *sdkerr.ServiceResponseError {
	t.Helper()
	var se *sdkerr.ServiceResponseError
	if !errors.As(err, &se) {
		t.Fatalf("want a *sdkerr.ServiceResponseError, got %T: %v", err, err)
	}
	return se
}

func listByName(t *testing.T, c *ims.ImsClient, name string) []model.ImageInfo {
	t.Helper()
	resp, err := c.ListImages(&model.ListImagesRequest{Name: &name})
	if err != nil {
		t.Fatalf("ListImages: %v", err)
	}
	if resp.Images == nil {
		return nil
	}
	return *resp.Images
}

func TestSignedListImages(t *testing.T) {
	e := newEnv(t, nil)
	imgs := listByName(t, e.demo(t, src), "golden-ubuntu-22.04")
	if len(imgs) != 1 || imgs[0].Id != huaweiemu.DemoImageLinux || imgs[0].Status.Value() != "active" {
		t.Fatalf("ListImages = %+v, want the seeded Linux image, active", imgs)
	}
	// Images are regional: the same name is unknown in another region.
	if other := listByName(t, e.demo(t, dst), "golden-ubuntu-22.04"); len(other) != 0 {
		t.Fatalf("%s lists %d images named like a %s image", dst, len(other), src)
	}
	calls := e.calls.Calls("huawei", huaweiemu.ActionListImages)
	if len(calls) != 2 || calls[0].Region != src || calls[1].Region != dst || calls[0].Outcome != "ok" {
		t.Fatalf("calls = %+v, want two ok ListImages for %s then %s", calls, src, dst)
	}
}

func TestAuthenticationFailures(t *testing.T) {
	e := newEnv(t, nil)
	cases := []struct {
		name    string
		client  func() *ims.ImsClient
		message string
	}{
		{"wrong SK", func() *ims.ImsClient { return e.client(t, src, huaweiemu.DemoAK, "not-the-secret") }, "signature"},
		{"unknown AK", func() *ims.ImsClient { return e.client(t, src, "HWUNKNOWNAK", huaweiemu.DemoSK) }, "HWUNKNOWNAK"},
		{"project of another account", func() *ims.ImsClient {
			cred, err := basic.NewCredentialsBuilder().WithAk(huaweiemu.DemoAK).WithSk(huaweiemu.DemoSK).WithProjectId("ffffffffffffffffffffffffffffffff").SafeBuild()
			if err != nil {
				t.Fatal(err)
			}
			hc, err := ims.ImsClientBuilder().WithRegion(region.NewRegion(src, e.srv.URL)).WithCredential(cred).SafeBuild()
			if err != nil {
				t.Fatal(err)
			}
			return ims.NewImsClient(hc)
		}, "project"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := "x"
			_, err := tc.client().ListImages(&model.ListImagesRequest{Name: &name})
			se := serviceErr(t, err)
			if se.StatusCode != http.StatusUnauthorized || se.ErrorCode != huaweiemu.CodeAuthFailed {
				t.Fatalf("got %d %s, want 401 %s", se.StatusCode, se.ErrorCode, huaweiemu.CodeAuthFailed)
			}
			if !strings.HasPrefix(se.ErrorMessage, "Incorrect IAM authentication information") || !strings.Contains(se.ErrorMessage, tc.message) {
				t.Fatalf("message %q does not explain %q", se.ErrorMessage, tc.message)
			}
			if se.RequestId == "" {
				t.Fatal("no X-Request-Id on the error answer")
			}
		})
	}
	if n := len(e.calls.Calls("huawei", "")); n != len(cases) {
		t.Fatalf("recorded %d calls, want %d", n, len(cases))
	}
}

func TestUnsignedRequestRejected(t *testing.T) {
	e := newEnv(t, nil)
	resp, err := http.Get(e.srv.URL + "/v2/cloudimages")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnauthorized || body["error_code"] != huaweiemu.CodeAuthFailed || body["request_id"] == "" ||
		resp.Header.Get("X-Request-Id") != body["request_id"] {
		t.Fatalf("got %d %v (X-Request-Id %q), want 401 APIGW.0301 with the request id", resp.StatusCode, body, resp.Header.Get("X-Request-Id"))
	}
}

func TestCopyConstraints(t *testing.T) {
	e := newEnv(t, nil)
	c := e.demo(t, src)
	ok := func() *model.CopyImageCrossRegionRequest { return copyReq(huaweiemu.DemoImageLinux, "copy-1", dst) }
	cases := []struct {
		name   string
		req    func() *model.CopyImageCrossRegionRequest
		status int
		code   string
	}{
		{"image not found", func() *model.CopyImageCrossRegionRequest {
			return copyReq("00000000-0000-4000-8000-000000000000", "copy-1", dst)
		}, 404, huaweiemu.CodeImageNotFound},
		{"destination is the source", func() *model.CopyImageCrossRegionRequest {
			return copyReq(huaweiemu.DemoImageLinux, "copy-1", src)
		}, 400, huaweiemu.CodeSameRegion},
		{"unknown destination", func() *model.CopyImageCrossRegionRequest {
			return copyReq(huaweiemu.DemoImageLinux, "copy-1", "eu-west-0")
		}, 400, huaweiemu.CodeUnknownRegion},
		{"encrypted", func() *model.CopyImageCrossRegionRequest {
			return copyReq(huaweiemu.DemoImageEncrypted, "copy-1", dst)
		}, 400, huaweiemu.CodeEncrypted},
		{"larger than 128 GB", func() *model.CopyImageCrossRegionRequest {
			return copyReq(huaweiemu.DemoImageLarge, "copy-1", dst)
		}, 400, huaweiemu.CodeTooLarge},
		{"made from an ISO file", func() *model.CopyImageCrossRegionRequest {
			return copyReq(huaweiemu.DemoImageISO, "copy-1", dst)
		}, 400, huaweiemu.CodeFromISO},
		{"name missing", func() *model.CopyImageCrossRegionRequest {
			r := ok()
			r.Body.Name = ""
			return r
		}, 400, huaweiemu.CodeBadName},
		{"name of 129 characters", func() *model.CopyImageCrossRegionRequest {
			r := ok()
			r.Body.Name = strings.Repeat("n", 129)
			return r
		}, 400, huaweiemu.CodeBadName},
		{"name with a slash", func() *model.CopyImageCrossRegionRequest {
			r := ok()
			r.Body.Name = "golden/copy"
			return r
		}, 400, huaweiemu.CodeBadNameFormat},
		{"description of 1025 characters", func() *model.CopyImageCrossRegionRequest {
			r := ok()
			d := strings.Repeat("d", 1025)
			r.Body.Description = &d
			return r
		}, 400, huaweiemu.CodeDescriptionTooLong},
		{"description with angle brackets", func() *model.CopyImageCrossRegionRequest {
			r := ok()
			d := "<b>gold</b>"
			r.Body.Description = &d
			return r
		}, 400, huaweiemu.CodeDescriptionInvalid},
		{"description with a line feed", func() *model.CopyImageCrossRegionRequest {
			r := ok()
			d := "line one\nline two"
			r.Body.Description = &d
			return r
		}, 400, huaweiemu.CodeDescriptionInvalid},
		{"description with a carriage return", func() *model.CopyImageCrossRegionRequest {
			r := ok()
			d := "line one\rline two"
			r.Body.Description = &d
			return r
		}, 400, huaweiemu.CodeDescriptionInvalid},
		{"unknown agency", func() *model.CopyImageCrossRegionRequest {
			r := ok()
			r.Body.AgencyName = "no_such_agency"
			return r
		}, 400, huaweiemu.CodeUnknownAgency},
		{"agency missing", func() *model.CopyImageCrossRegionRequest {
			r := ok()
			r.Body.AgencyName = ""
			return r
		}, 400, huaweiemu.CodeBadRequest},
		{"project of another region", func() *model.CopyImageCrossRegionRequest {
			r := ok()
			r.Body.ProjectName = "cn-south-1"
			return r
		}, 400, huaweiemu.CodeProjectMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CopyImageCrossRegion(tc.req())
			se := serviceErr(t, err)
			if se.StatusCode != tc.status || se.ErrorCode != tc.code || se.ErrorMessage == "" {
				t.Fatalf("got %d %s %q, want %d %s", se.StatusCode, se.ErrorCode, se.ErrorMessage, tc.status, tc.code)
			}
		})
	}
	if jobs := e.emu.Jobs(); len(jobs) != 0 {
		t.Fatalf("refused copies left %d jobs", len(jobs))
	}
	// The image exists, but only in its own region.
	_, err := e.demo(t, dst).CopyImageCrossRegion(copyReq(huaweiemu.DemoImageLinux, "copy-1", "cn-south-1"))
	if se := serviceErr(t, err); se.ErrorCode != huaweiemu.CodeImageNotFound {
		t.Fatalf("copy from the wrong source region: %s, want %s", se.ErrorCode, huaweiemu.CodeImageNotFound)
	}
}

func TestCopyProgressesToSuccess(t *testing.T) {
	e := newEnv(t, nil)
	c := e.demo(t, src)
	resp, err := c.CopyImageCrossRegion(copyReq(huaweiemu.DemoImageLinux, "golden-ubuntu-ir-0001", dst))
	if err != nil {
		t.Fatalf("CopyImageCrossRegion: %v", err)
	}
	if resp.JobId == nil || len(*resp.JobId) != 32 {
		t.Fatalf("job id %v, want 32 hex digits", resp.JobId)
	}
	jobID := *resp.JobId

	// The copy is listed in the destination while it runs, so a restarted worker finds it.
	dest := e.demo(t, dst)
	inFlight := listByName(t, dest, "golden-ubuntu-ir-0001")
	if len(inFlight) != 1 || inFlight[0].Status.Value() != "saving" {
		t.Fatalf("destination lists %+v while copying, want one saving image", inFlight)
	}

	seen := map[string]bool{}
	lastPercent := -1.0
	var final *model.ShowJobResponse
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		job, err := c.ShowJob(&model.ShowJobRequest{JobId: jobID})
		if err != nil {
			t.Fatalf("ShowJob: %v", err)
		}
		st := job.Status.Value()
		seen[st] = true
		if job.Entities == nil || job.Entities.ProcessPercent == nil || *job.Entities.ProcessPercent < lastPercent {
			t.Fatalf("progress went from %v to %+v", lastPercent, job.Entities)
		}
		lastPercent = *job.Entities.ProcessPercent
		if st == "SUCCESS" || st == "FAIL" {
			final = job
			break
		}
		time.Sleep(20 * time.Millisecond) // poll interval; the loop re-checks the job each time
	}
	if final == nil {
		t.Fatal("job did not finish before the deadline")
	}
	if final.Status.Value() != "SUCCESS" || !seen["RUNNING"] {
		t.Fatalf("status %s after %v, want SUCCESS after RUNNING", final.Status.Value(), seen)
	}
	if *final.JobId != jobID || final.JobType == nil || final.BeginTime == nil || final.EndTime == nil || *final.EndTime == "" ||
		final.Entities.ImageId == nil || *final.Entities.ImageName != "golden-ubuntu-ir-0001" || *final.Entities.ProcessPercent != 100 {
		t.Fatalf("final job %s lacks fields", final)
	}
	done := listByName(t, dest, "golden-ubuntu-ir-0001")
	if len(done) != 1 || done[0].Id != *final.Entities.ImageId || done[0].Status.Value() != "active" {
		t.Fatalf("destination lists %+v, want the job's image %s active", done, *final.Entities.ImageId)
	}
	jobs := e.emu.Jobs()
	if len(jobs) != 1 || jobs[0].Status != "SUCCESS" || jobs[0].NewImageID != *final.Entities.ImageId {
		t.Fatalf("Jobs() = %+v", jobs)
	}
	copies := e.calls.Calls("huawei", huaweiemu.ActionCopyImageCrossRegion)
	if len(copies) != 1 || copies[0].Region != src || copies[0].Params["imageId"] != huaweiemu.DemoImageLinux ||
		copies[0].Params["destinationRegion"] != dst || copies[0].Params["name"] != "golden-ubuntu-ir-0001" || copies[0].Outcome != "ok" {
		t.Fatalf("recorded copy calls %+v", copies)
	}
}

func TestShowJobNotFound(t *testing.T) {
	e := newEnv(t, nil)
	resp, err := e.demo(t, src).CopyImageCrossRegion(copyReq(huaweiemu.DemoImageLinux, "copy-nf", dst))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		client *ims.ImsClient
		jobID  string
	}{
		{"unknown job", e.demo(t, src), "0123456789abcdef0123456789abcdef"},
		// Jobs are regional: the destination region's project does not know the job.
		{"job of another region", e.demo(t, dst), *resp.JobId},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.ShowJob(&model.ShowJobRequest{JobId: tc.jobID})
			se := serviceErr(t, err)
			if se.StatusCode != http.StatusNotFound || se.ErrorCode != huaweiemu.CodeJobNotFound {
				t.Fatalf("got %d %s, want 404 %s", se.StatusCode, se.ErrorCode, huaweiemu.CodeJobNotFound)
			}
		})
	}
}

func TestSixthConcurrentCopyRejected(t *testing.T) {
	e := newEnv(t, func(s *huaweiemu.Seed) {
		s.CopyDuration = emucore.Duration(time.Second)
		s.Credentials = append(s.Credentials, huaweiemu.Credential{AK: "HWOTHERTENANT", SK: "other-secret"})
	})
	c := e.demo(t, src)
	for i := range 5 {
		if _, err := c.CopyImageCrossRegion(copyReq(huaweiemu.DemoImageLinux, "par-"+string(rune('a'+i)), dst)); err != nil {
			t.Fatalf("copy %d: %v", i+1, err)
		}
	}
	_, err := c.CopyImageCrossRegion(copyReq(huaweiemu.DemoImageLinux, "par-f", dst))
	se := serviceErr(t, err)
	if se.StatusCode != http.StatusBadRequest || se.ErrorCode != huaweiemu.CodeTooManyCopies || !strings.Contains(se.ErrorMessage, "5") {
		t.Fatalf("6th copy: %d %s %q, want 400 %s", se.StatusCode, se.ErrorCode, se.ErrorMessage, huaweiemu.CodeTooManyCopies)
	}
	// The limit is per tenant: another key still has all its slots.
	if _, err := e.client(t, src, "HWOTHERTENANT", "other-secret").CopyImageCrossRegion(copyReq(huaweiemu.DemoImageLinux, "other-a", dst)); err != nil {
		t.Fatalf("other tenant: %v", err)
	}
	if got := e.emu.MaxObservedConcurrent(); got != 5 {
		t.Fatalf("MaxObservedConcurrent = %d, want 5", got)
	}
	if jobs := e.emu.Jobs(); len(jobs) != 6 {
		t.Fatalf("%d jobs, want 6 (5 + the other tenant's)", len(jobs))
	}
	// Once the first copies finish, a slot opens again.
	deadline := time.Now().Add(6 * time.Second)
	for {
		_, err := c.CopyImageCrossRegion(copyReq(huaweiemu.DemoImageLinux, "par-g", dst))
		if err == nil {
			break
		}
		if se := serviceErr(t, err); se.ErrorCode != huaweiemu.CodeTooManyCopies || time.Now().After(deadline) {
			t.Fatalf("waiting for a slot: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // a poll interval, not synchronisation: the condition is re-checked
	}
	if got := e.emu.MaxObservedConcurrent(); got != 5 {
		t.Fatalf("MaxObservedConcurrent = %d after the 7th copy, want 5", got)
	}
}

func TestFaults(t *testing.T) {
	cases := []struct {
		kind   emucore.FaultKind
		action string
		check  func(t *testing.T, e *env, err error)
	}{
		{emucore.FaultThrottle, huaweiemu.ActionCopyImageCrossRegion, func(t *testing.T, _ *env, err error) {
			se := serviceErr(t, err)
			if se.StatusCode != http.StatusTooManyRequests || se.ErrorCode != huaweiemu.CodeThrottled {
				t.Fatalf("got %d %s, want 429 %s", se.StatusCode, se.ErrorCode, huaweiemu.CodeThrottled)
			}
		}},
		{emucore.FaultServer, huaweiemu.ActionCopyImageCrossRegion, func(t *testing.T, _ *env, err error) {
			se := serviceErr(t, err)
			if se.StatusCode != http.StatusInternalServerError || se.ErrorCode != huaweiemu.CodeInternalError {
				t.Fatalf("got %d %s, want 500 %s", se.StatusCode, se.ErrorCode, huaweiemu.CodeInternalError)
			}
		}},
		{emucore.FaultDrop, huaweiemu.ActionCopyImageCrossRegion, func(t *testing.T, _ *env, err error) {
			var se *sdkerr.ServiceResponseError
			if err == nil || errors.As(err, &se) {
				t.Fatalf("got %v, want a transport error", err)
			}
		}},
		{emucore.FaultFailCopy, huaweiemu.ActionCopyImageCrossRegion, func(t *testing.T, e *env, err error) {
			if err != nil {
				t.Fatalf("fail-copy must accept the copy: %v", err)
			}
			jobs := e.emu.Jobs()
			if len(jobs) != 1 {
				t.Fatalf("%d jobs", len(jobs))
			}
			c := e.demo(t, src)
			deadline := time.Now().Add(5 * time.Second)
			for {
				job, err := c.ShowJob(&model.ShowJobRequest{JobId: jobs[0].ID})
				if err != nil {
					t.Fatal(err)
				}
				if st := job.Status.Value(); st == "FAIL" {
					if job.ErrorCode == nil || *job.ErrorCode != huaweiemu.CodeCopyFailed || job.FailReason == nil || *job.FailReason == "" {
						t.Fatalf("failed job %s lacks error_code/fail_reason", job)
					}
					break
				} else if st == "SUCCESS" || time.Now().After(deadline) {
					t.Fatalf("job status %s, want FAIL", st)
				}
				time.Sleep(20 * time.Millisecond) // poll interval
			}
			if imgs := listByName(t, e.demo(t, dst), "fault-copy"); len(imgs) != 0 {
				t.Fatalf("a failed copy left %+v in the destination", imgs)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(string(tc.kind), func(t *testing.T) {
			e := newEnv(t, nil)
			e.faults.Add(emucore.Rule{Provider: "huawei", Action: tc.action, Kind: tc.kind, Count: 1})
			_, err := e.demo(t, src).CopyImageCrossRegion(copyReq(huaweiemu.DemoImageLinux, "fault-copy", dst))
			tc.check(t, e, err)
			calls := e.calls.Calls("huawei", tc.action)
			if len(calls) == 0 {
				t.Fatal("the call was not recorded")
			}
			want := map[emucore.FaultKind]string{emucore.FaultThrottle: huaweiemu.CodeThrottled, emucore.FaultServer: huaweiemu.CodeInternalError,
				emucore.FaultDrop: "dropped", emucore.FaultFailCopy: "ok"}[tc.kind]
			if calls[0].Outcome != want {
				t.Fatalf("recorded outcome %q, want %q", calls[0].Outcome, want)
			}
			// The rule had Count 1: the next call goes through.
			if tc.kind != emucore.FaultFailCopy {
				if _, err := e.demo(t, src).CopyImageCrossRegion(copyReq(huaweiemu.DemoImageLinux, "after-fault", dst)); err != nil {
					t.Fatalf("call after the fault: %v", err)
				}
			}
		})
	}
}

// TestLoseAnswer checks that a lose-answer fault carries the copy out — the job runs, its
// image appears in the destination and the call log counts the call as accepted — while the
// client sees only a closed connection. IMS does not refuse a second copy with the same name,
// which is why a client must look for the copy before it starts again.
func TestLoseAnswer(t *testing.T) {
	e := newEnv(t, nil)
	e.faults.Add(emucore.Rule{Provider: "huawei", Action: huaweiemu.ActionCopyImageCrossRegion, Kind: emucore.FaultLoseAnswer, Count: 1})
	_, err := e.demo(t, src).CopyImageCrossRegion(copyReq(huaweiemu.DemoImageLinux, "lost-answer", dst))
	var se *sdkerr.ServiceResponseError
	if err == nil || errors.As(err, &se) {
		t.Fatalf("got %v, want a transport error (the answer is lost)", err)
	}
	calls := e.calls.Calls("huawei", huaweiemu.ActionCopyImageCrossRegion)
	if len(calls) != 1 || calls[0].Outcome != "ok" || calls[0].Fault != emucore.FaultLoseAnswer || calls[0].HTTPStatus != 0 {
		t.Fatalf("call log %+v; want one call, outcome ok, fault lose-answer, no HTTP status", calls)
	}
	if jobs := e.emu.Jobs(); len(jobs) != 1 || jobs[0].Name != "lost-answer" {
		t.Fatalf("jobs %+v; want the one copy the lost call started", jobs)
	}
	if imgs := listByName(t, e.demo(t, dst), "lost-answer"); len(imgs) != 1 {
		t.Fatalf("%d images named lost-answer in %s, want 1", len(imgs), dst)
	}
	if _, err := e.demo(t, src).CopyImageCrossRegion(copyReq(huaweiemu.DemoImageLinux, "lost-answer", dst)); err != nil {
		t.Fatalf("second copy: %v", err)
	}
	if jobs := e.emu.Jobs(); len(jobs) != 2 {
		t.Fatalf("%d jobs after a blind retry, want 2: IMS starts a second copy", len(jobs))
	}
}

func TestFaultMatchesDestination(t *testing.T) {
	e := newEnv(t, nil)
	e.faults.Add(emucore.Rule{Provider: "huawei", Action: huaweiemu.ActionCopyImageCrossRegion, Kind: emucore.FaultServer, Match: "cn-south-1"})
	c := e.demo(t, src)
	if _, err := c.CopyImageCrossRegion(copyReq(huaweiemu.DemoImageLinux, "to-east", dst)); err != nil {
		t.Fatalf("copy to %s hit a fault meant for cn-south-1: %v", dst, err)
	}
	_, err := c.CopyImageCrossRegion(copyReq(huaweiemu.DemoImageLinux, "to-south", "cn-south-1"))
	if se := serviceErr(t, err); se.StatusCode != http.StatusInternalServerError {
		t.Fatalf("copy to cn-south-1: %d, want 500", se.StatusCode)
	}
}

func TestSeedValidation(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*huaweiemu.Seed)
		want   string
	}{
		{"no credentials", func(s *huaweiemu.Seed) { s.Credentials = nil }, "credentials"},
		{"region without project", func(s *huaweiemu.Seed) { delete(s.Projects, "af-south-1") }, "af-south-1"},
		{"image in unknown region", func(s *huaweiemu.Seed) { s.Images[0].Region = "mars-1" }, "mars-1"},
		{"duplicate project id", func(s *huaweiemu.Seed) { s.Projects["af-south-1"] = s.Projects["cn-north-4"] }, "used by both"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seed := huaweiemu.DefaultSeed()
			tc.mutate(&seed)
			_, err := huaweiemu.New(seed, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestSeedJSONDuration(t *testing.T) {
	cases := map[string]time.Duration{`"1500ms"`: 1500 * time.Millisecond, `2000000000`: 2 * time.Second}
	for in, want := range cases {
		var s huaweiemu.Seed
		if err := json.Unmarshal([]byte(`{"regions":["cn-north-4"],"copyDuration":`+in+`,"maxConcurrentCopies":3}`), &s); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if s.CopyDuration.Std() != want || s.MaxConcurrentCopies != 3 || len(s.Regions) != 1 {
			t.Fatalf("%s: got %+v", in, s)
		}
	}
	var s huaweiemu.Seed
	if err := json.Unmarshal([]byte(`{"copyDuration":"soon"}`), &s); err == nil {
		t.Fatal("a bad duration was accepted")
	}
}

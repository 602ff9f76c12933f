package alibabaemu

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/goccy/go-yaml"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
)

func TestSignaturesAndCredentials(t *testing.T) {
	seed := testSeed()
	seed.Credentials = append(seed.Credentials,
		Credential{AccessKeyID: "STS.imagerelaytest", AccessKeySecret: "sts-secret", SecurityToken: "sts-token"},
		Credential{AccessKeyID: "LTAIreadonly", AccessKeySecret: "ro-secret", Denied: []string{"appstreaming:StartTaskForDistributeImage", "ecd:RebuildDesktops"}},
	)
	h := newHarness(t, seed)
	tests := []struct {
		name     string
		opts     clientOpts
		version  string
		action   string
		query    map[string]any
		body     map[string]any
		wantCode string // "" = success
		status   int
		msg      string // the error message contains it (tells which signature form was checked)
	}{
		{name: "acs3 ListImage", opts: demoKey(), version: AppStreamVersion, action: ActionListImage, body: map[string]any{"ImageId": "imgc-demodesk0001"}},
		{name: "v2 ListImage", opts: clientOpts{keyID: DemoAccessKeyID, secret: DemoAccessKeySecret, v2: true}, version: AppStreamVersion, action: ActionListImage,
			query: map[string]any{"TagList": []map[string]string{{"Key": "team", "Value": "dev"}}}, body: map[string]any{"ImageName": "dev desktop*"}},
		{name: "acs3 DescribeDesktops with list", opts: demoKey(), version: EcdVersion, action: ActionDescribeDesktops,
			query: map[string]any{"RegionId": "cn-shanghai", "DesktopId": []string{"ecd-demo000001", "ecd-demo000002"}}},
		{name: "v2 DescribeDesktops", opts: clientOpts{keyID: DemoAccessKeyID, secret: DemoAccessKeySecret, v2: true}, version: EcdVersion, action: ActionDescribeDesktops,
			query: map[string]any{"RegionId": "cn-shanghai", "Tag": []map[string]string{{"Key": "team", "Value": "ops"}}}},
		{name: "sts acs3", opts: clientOpts{keyID: "STS.imagerelaytest", secret: "sts-secret", token: "sts-token"}, version: AppStreamVersion, action: ActionListImage},
		{name: "sts v2", opts: clientOpts{keyID: "STS.imagerelaytest", secret: "sts-secret", token: "sts-token", v2: true}, version: AppStreamVersion, action: ActionListImage},
		{name: "sts wrong token", opts: clientOpts{keyID: "STS.imagerelaytest", secret: "sts-secret", token: "other"}, version: AppStreamVersion, action: ActionListImage,
			wantCode: "InvalidSecurityToken.MismatchWithAccessKey", status: 400},
		{name: "unknown key acs3", opts: clientOpts{keyID: "LTAIunknown", secret: "x"}, version: AppStreamVersion, action: ActionListImage,
			wantCode: "InvalidAccessKeyId.NotFound", status: 404},
		{name: "unknown key v2", opts: clientOpts{keyID: "LTAIunknown", secret: "x", v2: true}, version: EcdVersion, action: ActionDescribeDesktops,
			query: map[string]any{"RegionId": "cn-shanghai"}, wantCode: "InvalidAccessKeyId.NotFound", status: 404},
		{name: "wrong secret acs3", opts: clientOpts{keyID: DemoAccessKeyID, secret: "wrong"}, version: AppStreamVersion, action: ActionListImage,
			body: map[string]any{"ImageId": "imgc-demodesk0001"}, wantCode: "SignatureDoesNotMatch", status: 400, msg: "ACS3-HMAC-SHA256\n"},
		{name: "wrong secret v2", opts: clientOpts{keyID: DemoAccessKeyID, secret: "wrong", v2: true}, version: AppStreamVersion, action: ActionListImage,
			body: map[string]any{"ImageId": "imgc-demodesk0001"}, wantCode: "SignatureDoesNotMatch", status: 400, msg: "POST&%2F&"},
		{name: "RAM deny", opts: clientOpts{keyID: "LTAIreadonly", secret: "ro-secret"}, version: EcdVersion, action: ActionRebuildDesktops,
			query: map[string]any{"RegionId": "cn-shanghai", "DesktopId": []string{"ecd-demo000001"}}, wantCode: "Forbidden.RAM", status: 403},
		{name: "RAM allows the rest", opts: clientOpts{keyID: "LTAIreadonly", secret: "ro-secret"}, version: AppStreamVersion, action: ActionListImage},
		{name: "unknown action", opts: demoKey(), version: EcdVersion, action: "DeleteDesktops", wantCode: "InvalidAction.NotFound", status: 404},
		{name: "unknown version", opts: demoKey(), version: "2019-01-01", action: ActionListImage, wantCode: "InvalidVersion", status: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, err := call(h.client(t, tc.opts), tc.version, tc.action, tc.query, tc.body)
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("call: %v", err)
				}
				if body["RequestId"] == "" || body["RequestId"] == nil {
					t.Fatalf("response has no RequestId: %v", body)
				}
				return
			}
			code, status, _ := errCode(t, err)
			if code != tc.wantCode || status != tc.status {
				t.Fatalf("got %s/%d, want %s/%d (%v)", code, status, tc.wantCode, tc.status, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("message %q lacks %q", err.Error(), tc.msg)
			}
		})
	}
	// The RAM denial carries the action in AccessDeniedDetail, as the SDK exposes it.
	_, err := call(h.client(t, clientOpts{keyID: "LTAIreadonly", secret: "ro-secret"}), AppStreamVersion, ActionStartTaskForDistributeImage, nil,
		map[string]any{"ImageId": "imgc-demodesk0001", "DestinationRegionList": []string{"cn-beijing"}})
	var ce *openapi.ClientError
	if !errors.As(err, &ce) || ce.AccessDeniedDetail["AuthAction"] != "appstreaming:StartTaskForDistributeImage" {
		t.Fatalf("want AccessDeniedDetail naming the RAM action, got %v", err)
	}
}

func TestV2ListParamsAreSignedAndParsed(t *testing.T) {
	h := newHarness(t, testSeed())
	cli := h.client(t, clientOpts{keyID: DemoAccessKeyID, secret: DemoAccessKeySecret, v2: true})
	body, err := call(cli, EcdVersion, ActionDescribeDesktops, map[string]any{
		"RegionId": "cn-shanghai", "DesktopId": []string{"ecd-demo000005", "ecd-demo000001"}, "MaxResults": 100,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp := decode[describeResp](t, body)
	if resp.TotalCount != 2 || resp.Desktops[0].DesktopId != "ecd-demo000001" || resp.Desktops[1].DesktopId != "ecd-demo000005" {
		t.Fatalf("unexpected desktops: %+v", resp)
	}
	calls := h.calls.Calls(ProviderEcd, ActionDescribeDesktops)
	if len(calls) != 1 || calls[0].Region != "cn-shanghai" || calls[0].Outcome != "ok" {
		t.Fatalf("call log: %+v", calls)
	}
	if ids, _ := calls[0].Params["DesktopId"].([]string); len(ids) != 2 || ids[0] != "ecd-demo000005" {
		t.Fatalf("call log params: %+v", calls[0].Params)
	}
}

func TestRawRequests(t *testing.T) {
	h := newHarness(t, testSeed())
	tests := []struct {
		name   string
		header map[string]string
		query  string
		code   string
		status int
	}{
		{name: "no signature", header: map[string]string{"x-acs-action": ActionListImage, "x-acs-version": AppStreamVersion}, code: "MissingParameter", status: 400},
		{name: "bad algorithm", header: map[string]string{"x-acs-action": ActionListImage, "x-acs-version": AppStreamVersion, "Authorization": "HMAC abc"}, code: "IncompleteSignature", status: 400},
		{name: "v2 stale timestamp", query: "Action=ListImage&Version=2021-09-01&AccessKeyId=" + DemoAccessKeyID +
			"&SignatureMethod=HMAC-SHA1&SignatureVersion=1.0&SignatureNonce=n1&Timestamp=2020-01-01T00:00:00Z&Signature=x", code: "IllegalTimestamp", status: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/?"+tc.query, nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]string
			raw, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatalf("body %s: %v", raw, err)
			}
			if resp.StatusCode != tc.status || body["Code"] != tc.code {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, raw, tc.status, tc.code)
			}
			for _, k := range []string{"RequestId", "HostId", "Message", "Recommend"} {
				if body[k] == "" {
					t.Errorf("error body lacks %s: %s", k, raw)
				}
			}
		})
	}
}

func TestThrottlingFaultCarriesRetryAfter(t *testing.T) {
	h := newHarness(t, testSeed())
	h.faults.Add(emucore.Rule{Provider: ProviderAppStream, Action: ActionListImage, Kind: emucore.FaultThrottle, Count: 1})
	cli := h.client(t, demoKey())
	_, err := call(cli, AppStreamVersion, ActionListImage, nil, map[string]any{"ImageId": "imgc-demodesk0001"})
	var te *openapi.ThrottlingError
	if !errors.As(err, &te) {
		t.Fatalf("want *ThrottlingError, got %T %v", err, err)
	}
	if dara.StringValue(te.Code) != "Throttling.User" || dara.Int64Value(te.RetryAfter) != 250 {
		t.Fatalf("code %s retry-after %d", dara.StringValue(te.Code), dara.Int64Value(te.RetryAfter))
	}
	if _, err := call(cli, AppStreamVersion, ActionListImage, nil, nil); err != nil {
		t.Fatalf("the rule should be used up: %v", err)
	}
	calls := h.calls.Calls(ProviderAppStream, ActionListImage)
	if len(calls) != 2 || calls[0].Outcome != "Throttling.User" || calls[1].Outcome != "ok" {
		t.Fatalf("call log: %+v", calls)
	}
}

func TestRateLimitThrottles(t *testing.T) {
	seed := testSeed()
	seed.RateLimits.DescribeDesktops = 2
	seed.Credentials = append(seed.Credentials, Credential{AccessKeyID: "LTAIsecond", AccessKeySecret: "s2"})
	h := newHarness(t, seed, newFakeClock().install()) // a frozen clock: the bucket never refills
	cli := h.client(t, demoKey())
	q := map[string]any{"RegionId": "cn-shanghai"}
	for i := range 2 {
		if _, err := call(cli, EcdVersion, ActionDescribeDesktops, q, nil); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	_, err := call(cli, EcdVersion, ActionDescribeDesktops, q, nil)
	code, status, retryAfter := errCode(t, err)
	if code != "Throttling.User" || status != 400 || retryAfter <= 0 || retryAfter > 500 {
		t.Fatalf("got %s/%d retry-after %dms", code, status, retryAfter)
	}
	// Another key has its own bucket.
	if _, err := call(h.client(t, clientOpts{keyID: "LTAIsecond", secret: "s2"}), EcdVersion, ActionDescribeDesktops, q, nil); err != nil {
		t.Fatalf("second key: %v", err)
	}
}

func TestServerFaultAndDrop(t *testing.T) {
	h := newHarness(t, testSeed())
	cli := h.client(t, demoKey())
	h.faults.Add(emucore.Rule{Provider: ProviderEcd, Kind: emucore.FaultServer, Count: 1})
	_, err := call(cli, EcdVersion, ActionDescribeDesktops, map[string]any{"RegionId": "cn-shanghai"}, nil)
	if code, status, _ := errCode(t, err); code != "InternalError" || status != 500 {
		t.Fatalf("got %s/%d", code, status)
	}
	h.faults.Add(emucore.Rule{Provider: ProviderEcd, Kind: emucore.FaultDrop, Count: 1})
	_, err = call(cli, EcdVersion, ActionDescribeDesktops, map[string]any{"RegionId": "cn-shanghai"}, nil)
	var ce *openapi.ClientError
	var se *openapi.ServerError
	if err == nil || errors.As(err, &ce) || errors.As(err, &se) {
		t.Fatalf("want a transport error, got %T %v", err, err)
	}
	calls := h.calls.Calls(ProviderEcd, "")
	if len(calls) != 2 || calls[0].Outcome != "InternalError" || calls[1].Outcome != "dropped" {
		t.Fatalf("call log: %+v", calls)
	}
}

func TestSeedDecoding(t *testing.T) {
	const y = `
credentials:
  - accessKeyId: LTAIyaml
    accessKeySecret: yaml-secret
appStream:
  copyDuration: 2s
  images:
    - imageId: imgc-yaml00001
      versionId: iv-yaml00001
      regions: [cn-shanghai]
ecd:
  rebuildDuration: 1500ms
  desktops:
    - desktopId: ecd-yaml00001
      region: cn-shanghai
      imageId: m-yaml00001
throttleRetryAfter: 100ms
`
	var fromYAML Seed
	if err := yaml.Unmarshal([]byte(y), &fromYAML); err != nil {
		t.Fatal(err)
	}
	const j = `{"credentials":[{"accessKeyId":"LTAIyaml","accessKeySecret":"yaml-secret"}],
"appStream":{"copyDuration":"2s","images":[{"imageId":"imgc-yaml00001","versionId":"iv-yaml00001","regions":["cn-shanghai"]}]},
"ecd":{"rebuildDuration":1500000000,"desktops":[{"desktopId":"ecd-yaml00001","region":"cn-shanghai","imageId":"m-yaml00001"}]},
"throttleRetryAfter":"100ms"}`
	var fromJSON Seed
	if err := json.Unmarshal([]byte(j), &fromJSON); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]Seed{"yaml": fromYAML, "json": fromJSON} {
		if s.AppStream.CopyDuration.Std() != 2*time.Second || s.Ecd.RebuildDuration.Std() != 1500*time.Millisecond || s.ThrottleRetryAfter.Std() != 100*time.Millisecond {
			t.Errorf("%s: durations %v %v %v", name, s.AppStream.CopyDuration, s.Ecd.RebuildDuration, s.ThrottleRetryAfter)
		}
		e, err := New(s, nil, nil)
		if err != nil {
			t.Fatalf("%s: New: %v", name, err)
		}
		if d, ok := e.Desktop("ecd-yaml00001"); !ok || d.Status != DesktopRunning || d.OSType != "Windows" {
			t.Errorf("%s: desktop %+v", name, d)
		}
	}
	bad := []Seed{
		{Credentials: []Credential{{AccessKeyID: "x"}}},
		{AppStream: AppStreamSeed{Images: []AppImage{{ImageID: "img-1", VersionID: "iv-1"}}}},
		{AppStream: AppStreamSeed{Images: []AppImage{{ImageID: "imgc-1", VersionID: "iv-1", Regions: []string{"mars-1"}}}}},
		{Ecd: EcdSeed{Desktops: []Desktop{{DesktopID: "ecd-1", Region: "cn-shanghai", ImageID: "m-1", Status: "Sleeping"}}}},
	}
	for i, s := range bad {
		if _, err := New(s, nil, nil); err == nil {
			t.Errorf("bad seed %d accepted", i)
		}
	}
	if !strings.Contains(DefaultSeed().Credentials[0].AccessKeyID, "DEMO") {
		t.Error("default seed lacks the demo key")
	}
}

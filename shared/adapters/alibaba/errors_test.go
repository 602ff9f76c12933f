package alibaba

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	"github.com/alibabacloud-go/tea/dara"

	"github.com/imagerelay/imagerelay/shared/domain"
)

func TestClassifyCodes(t *testing.T) {
	const R, T = domain.Retryable, domain.Terminal
	tests := []struct {
		action string
		code   string
		status int
		class  domain.Class
		hint   string // the hint contains it
	}{
		// The seed page's StartTaskForDistributeImage table.
		{ActionStartTaskForDistributeImage, "Instance.NotFound", 400, T, "instance"},
		{ActionStartTaskForDistributeImage, "DesktopInstance.NotFound", 400, T, "cloud computer"},
		{ActionStartTaskForDistributeImage, "Instance.ImageUnsupported", 400, T, "non-centralized"},
		{ActionStartTaskForDistributeImage, "Instance.PhysicalNodeNotExist", 400, T, "physical node"},
		{ActionStartTaskForDistributeImage, "ImageCreateByInstance.TaskExist", 400, R, "still being created"},
		{ActionStartTaskForDistributeImage, "ExceedBuilderQuota", 400, R, "quota"},
		{ActionStartTaskForDistributeImage, "InvalidBaseImage.NotConfigured", 400, T, "base image"},
		{ActionStartTaskForDistributeImage, "CreateDesktopImageRecord.Failed", 400, T, "creation failed"},
		{ActionStartTaskForDistributeImage, "Image.NotExist", 400, T, "does not exist"},
		{ActionStartTaskForDistributeImage, "ImageRegionDistribute.NotAllow", 400, T, "cannot be distributed"},
		{ActionStartTaskForDistributeImage, "ImageUpdateFailed.NotAllow", 400, T, "may not be modified"},
		{ActionStartTaskForDistributeImage, "ImageUpdateSharedImageFailed.NotAllow", 400, T, "shared image"},
		{ActionStartTaskForDistributeImage, "ParentImageRegionDistribute.NotExist", 400, T, "parent image"},
		{ActionStartTaskForDistributeImage, "InternalError", 400, R, "retry"},
		{ActionStartTaskForDistributeImage, "ImageDistribute.TargetDistributeRegionListEmpty", 400, T, "no destination"},
		{ActionStartTaskForDistributeImage, "ImageDistribute.ImageNotSupport", 400, T, "encrypted"},
		{ActionStartTaskForDistributeImage, "ImageDistribute.RepeatedDistribution", 400, T, "already"},
		{ActionStartTaskForDistributeImage, "ImageDistribute.Undistributed", 400, T, "source region"},
		{ActionStartTaskForDistributeImage, "ImageRegion.NotConfigured", 400, T, "region configuration"},
		// Common codes.
		{ActionListImage, "InvalidAccessKeyId.NotFound", 404, T, EnvAccessKeyID},
		{ActionListImage, "SignatureDoesNotMatch", 400, T, EnvAccessKeySecret},
		{ActionListImage, "IncompleteSignature", 400, T, EnvAccessKeyID},
		{ActionListImage, "InvalidSecurityToken.MismatchWithAccessKey", 400, T, EnvSecurityToken},
		{ActionListImage, "InvalidSecurityToken.Expired", 400, R, EnvSecurityToken},
		{ActionStartTaskForDistributeImage, "Forbidden.RAM", 403, T, "appstreaming:StartTaskForDistributeImage"},
		{ActionListImage, "Forbidden.RAM", 403, T, "appstreaming:ListImage"},
		{ActionRebuildDesktops, "Forbidden.RAM", 403, T, "ecd:RebuildDesktops"},
		{ActionDescribeDesktops, "NoPermission", 403, T, "ecd:DescribeDesktops"},
		{ActionDescribeDesktops, "Forbidden.Unknown", 403, T, "ecd:DescribeDesktops"},
		{ActionListImage, "Throttling", 400, R, "throttling"},
		{ActionListImage, "Throttling.User", 400, R, "throttling"},
		{ActionListImage, "Throttling.Api", 503, R, "throttling"},
		{ActionListImage, "InternalError", 500, R, "retry"},
		{ActionListImage, "ServiceUnavailable", 503, R, "retry"},
		{ActionListImage, "SomethingNew", 502, R, "HTTP 502"},
		{ActionListImage, "SomethingElse", 400, T, "refused"},
		{ActionListImage, "", 429, R, "throttling"},
		{ActionListImage, "IllegalTimestamp", 400, T, "clock"},
		{ActionListImage, "SignatureNonceUsed", 400, R, "nonce"},
		{ActionListImage, "MissingParameter", 400, T, "missing"},
		{ActionListImage, "InvalidParameter.PageSize", 400, T, "not valid"},
		{ActionRebuildDesktops, "InvalidRegionId", 400, T, "region"},
		{ActionRebuildDesktops, "InvalidImageId.NotFound", 400, T, "replicate it there"},
		{ActionRebuildDesktops, "InvalidAction.NotFound", 404, T, "endpoint"},
	}
	for _, tc := range tests {
		t.Run(tc.action+"/"+tc.code+"/"+fmt.Sprint(tc.status), func(t *testing.T) {
			pe := classifyCode(tc.action, tc.code, "msg", "req-1", tc.status, 0)
			if pe.Class != tc.class {
				t.Fatalf("class %v, want %v", pe.Class, tc.class)
			}
			if !strings.Contains(pe.Hint, tc.hint) || strings.Contains(pe.Hint, "%!") {
				t.Fatalf("hint %q lacks %q", pe.Hint, tc.hint)
			}
			wantIs := domain.ErrTerminal
			if tc.class == domain.Retryable {
				wantIs = domain.ErrRetryable
			}
			if !errors.Is(pe, wantIs) || pe.Provider != ProviderName || pe.RequestID != "req-1" || pe.HTTPStatus != tc.status {
				t.Fatalf("error %+v", pe)
			}
		})
	}
	// Every code of the seed page's table has its own rule.
	for _, code := range []string{"Instance.NotFound", "DesktopInstance.NotFound", "Instance.ImageUnsupported", "Instance.PhysicalNodeNotExist",
		"ImageCreateByInstance.TaskExist", "ExceedBuilderQuota", "InvalidBaseImage.NotConfigured", "CreateDesktopImageRecord.Failed",
		"Image.NotExist", "ImageRegionDistribute.NotAllow", "ImageUpdateFailed.NotAllow", "ImageUpdateSharedImageFailed.NotAllow",
		"ParentImageRegionDistribute.NotExist", "InternalError", "ImageDistribute.TargetDistributeRegionListEmpty",
		"ImageDistribute.ImageNotSupport", "ImageDistribute.RepeatedDistribution", "ImageDistribute.Undistributed", "ImageRegion.NotConfigured"} {
		if _, ok := codeRules[code]; !ok {
			t.Errorf("no rule for seed code %s", code)
		}
	}
}

func TestClassifySDKErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		code       string
		class      domain.Class
		retryAfter time.Duration
		message    string
	}{
		{"throttling", &openapi.ThrottlingError{Code: dara.String("Throttling.User"), StatusCode: dara.Int(400), RetryAfter: dara.Int64(1500),
			Message: dara.String("code: 400, flow control request id: r1"), RequestId: dara.String("r1"), Data: map[string]any{"Message": "flow control"}},
			"Throttling.User", domain.Retryable, 1500 * time.Millisecond, "flow control"},
		{"client", &openapi.ClientError{Code: dara.String("Image.NotExist"), StatusCode: dara.Int(400), Message: dara.String("code: 400, The image does not exist. request id: r2"),
			Data: map[string]any{"Message": "The image does not exist."}}, "Image.NotExist", domain.Terminal, 0, "The image does not exist."},
		{"server", &openapi.ServerError{Code: dara.String("InternalError"), StatusCode: dara.Int(500), Message: dara.String("boom")},
			"InternalError", domain.Retryable, 0, "boom"},
		{"wrapped client", fmt.Errorf("calling: %w", &openapi.ClientError{Code: dara.String("Forbidden.RAM"), StatusCode: dara.Int(403)}),
			"Forbidden.RAM", domain.Terminal, 0, ""},
		{"deadline", fmt.Errorf("dial: %w", context.DeadlineExceeded), "Timeout", domain.Retryable, 0, "deadline"},
		{"network", errors.New("connection reset by peer"), "NetworkError", domain.Retryable, 0, "reset"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pe := classify(ActionListImage, tc.err)
			if pe.Code != tc.code || pe.Class != tc.class || pe.RetryAfter != tc.retryAfter || !strings.Contains(pe.Message, tc.message) {
				t.Fatalf("got %+v", pe)
			}
		})
	}
	already := &domain.ProviderError{Code: "X", Class: domain.Terminal}
	if classify(ActionListImage, already) != already {
		t.Fatal("a ProviderError must pass through unchanged")
	}
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in, host, protocol string
		bad                bool
	}{
		{in: ""},
		{in: "127.0.0.1:9402", host: "127.0.0.1:9402", protocol: "HTTP"},
		{in: "localhost:9402", host: "localhost:9402", protocol: "HTTP"},
		{in: "[::1]:9402", host: "[::1]:9402", protocol: "HTTP"},
		{in: "ecd.cn-shanghai.aliyuncs.com", host: "ecd.cn-shanghai.aliyuncs.com", protocol: "HTTPS"},
		{in: "http://emulator:9402", host: "emulator:9402", protocol: "HTTP"},
		{in: "https://appstream-center.aliyuncs.com/", host: "appstream-center.aliyuncs.com", protocol: "HTTPS"},
		{in: "ftp://x", bad: true},
		{in: "http://x/path", bad: true},
	}
	for _, tc := range tests {
		ep, err := parseEndpoint(tc.in)
		if (err != nil) != tc.bad || ep.host != tc.host || ep.protocol != tc.protocol {
			t.Errorf("%q: %+v %v", tc.in, ep, err)
		}
	}
}

func TestCredentialsNeverPrintSecrets(t *testing.T) {
	c := Credentials{AccessKeyID: "LTAIkey", AccessKeySecret: "top-secret", SecurityToken: "tok-secret"}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%v", struct{ C Credentials }{c})} {
		if strings.Contains(s, "secret") || !strings.Contains(s, "LTAIkey") {
			t.Errorf("%q", s)
		}
	}
}

package huawei

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"

	"github.com/imagerelay/imagerelay/shared/domain"
)

// TestClassifyRealCloudShapes covers answers the emulator does not produce but the real cloud
// may: codes the emulator does not use, errors by status only, and the SDK's value-typed error.
func TestClassifyRealCloudShapes(t *testing.T) {
	cases := []struct {
		name  string
		err   error
		class domain.Class
		code  string
		hint  string
	}{
		{"auth by code", &sdkerr.ServiceResponseError{StatusCode: 401, ErrorCode: "APIGW.0301", ErrorMessage: "Incorrect IAM authentication information"},
			domain.Terminal, "APIGW.0301", EnvAK},
		{"API gateway: no such API", &sdkerr.ServiceResponseError{StatusCode: 404, ErrorCode: "APIGW.0101", ErrorMessage: "The API does not exist"},
			domain.Terminal, "APIGW.0101", EnvSK},
		{"throttled by status only", &sdkerr.ServiceResponseError{StatusCode: 429, ErrorMessage: "too many requests"},
			domain.Retryable, "HTTP429", "retry"},
		{"throttled by code on a 400", &sdkerr.ServiceResponseError{StatusCode: 400, ErrorCode: "APIGW.0308", ErrorMessage: "The throttling threshold has been reached"},
			domain.Retryable, "APIGW.0308", "retry"},
		{"service unavailable", &sdkerr.ServiceResponseError{StatusCode: 503, ErrorMessage: "Service Unavailable"},
			domain.Retryable, "HTTP503", "retry"},
		{"value-typed SDK error", sdkerr.ServiceResponseError{StatusCode: 502, ErrorCode: "APIGW.0202"},
			domain.Retryable, "APIGW.0202", "retry"},
		{"concurrency limit by message", &sdkerr.ServiceResponseError{StatusCode: 400, ErrorCode: "IMG.0999",
			ErrorMessage: "A maximum of five images can be replicated at a time."}, domain.Retryable, "IMG.0999", "5 cross-region copies"},
		{"forbidden", &sdkerr.ServiceResponseError{StatusCode: 403, ErrorCode: "IMS.0403", ErrorMessage: "Policy doesn't allow ims:images:copy"},
			domain.Terminal, "IMS.0403", "permissions"},
		{"unknown IMS refusal", &sdkerr.ServiceResponseError{StatusCode: 400, ErrorCode: "IMG.0105", ErrorMessage: "The operation is not supported."},
			domain.Terminal, "IMG.0105", "policy"},
		{"wrapped SDK error", fmt.Errorf("calling IMS: %w", &sdkerr.ServiceResponseError{StatusCode: 400, ErrorCode: "IMG.0452", ErrorMessage: "encrypted"}),
			domain.Terminal, "IMG.0452", "unencrypted"},
		{"deadline", context.DeadlineExceeded, domain.Retryable, "Timeout", "retry"},
		{"connection error", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), domain.Retryable, "NetworkError", "retry"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pe := classify(ActionCopy, tc.err)
			if pe.Class != tc.class || pe.Code != tc.code || !strings.Contains(pe.Hint, tc.hint) || pe.Provider != Name {
				t.Fatalf("classify = %+v, want class %v code %s hint mentioning %q", pe, tc.class, tc.code, tc.hint)
			}
		})
	}
	pe := &domain.ProviderError{Code: "Kept"}
	if got := classify(ActionCopy, fmt.Errorf("x: %w", pe)); got != pe {
		t.Fatalf("an already classified error was reclassified: %+v", got)
	}
}

func TestInProgressPercent(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	cases := []struct {
		in   *float64
		want int
	}{{nil, 0}, {f(-3), 0}, {f(0), 0}, {f(42.4), 42}, {f(99.7), 99}, {f(100), 99}, {f(250), 99}}
	for _, tc := range cases {
		if got := inProgressPercent(tc.in); got != tc.want {
			t.Errorf("inProgressPercent(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

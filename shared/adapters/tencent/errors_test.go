package tencent

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"

	"github.com/imagerelay/imagerelay/shared/domain"
)

// documentedSyncImagesCodes are the 19 SyncImages error codes of providers.md §2.2.
var documentedSyncImagesCodes = []string{
	"FailedOperation.InvalidImageState", "ImageQuotaLimitExceeded", "InvalidImageId.IncorrectState",
	"InvalidImageId.Malformed", "InvalidImageId.NotFound", "InvalidImageId.TooLarge",
	"InvalidImageName.Duplicate", "InvalidParameter.InstanceImageNotSupport", "InvalidParameter.InvalidKmsKeyId",
	"InvalidParameterValue.InvalidImageId", "InvalidParameterValue.InvalidImageState", "InvalidParameterValue.InvalidRegion",
	"InvalidParameterValue.LimitExceeded", "InvalidRegion.NotFound", "InvalidRegion.Unavailable",
	"UnsupportedOperation.EncryptedImagesNotSupported", "UnsupportedOperation.LocationImageNotSupported",
	"UnsupportedOperation.Region", "UnsupportedOperation.SyncEncryptImageNotSupport",
}

func TestEveryDocumentedCodeHasAClassAndHint(t *testing.T) {
	if len(documentedSyncImagesCodes) != 19 {
		t.Fatalf("the documented list has %d codes, want 19", len(documentedSyncImagesCodes))
	}
	for _, code := range documentedSyncImagesCodes {
		info, ok := codes[code]
		if !ok {
			t.Errorf("%s is not in the table", code)
			continue
		}
		if len(info.Hint) < 20 {
			t.Errorf("%s: hint %q is too thin to help an operator", code, info.Hint)
		}
	}
	for code, info := range codes {
		if info.Hint == "" {
			t.Errorf("%s has no hint", code)
		}
		if info.Class != domain.Terminal && info.Class != domain.Retryable {
			t.Errorf("%s has class %d", code, info.Class)
		}
		if info.Class == domain.Terminal && info.RetryAfter != 0 {
			t.Errorf("%s is terminal but has a RetryAfter", code)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		code      string
		class     domain.Class
		hintHas   string
		retryWait bool
	}{
		// Documented SyncImages codes: the source image's state can still change, the rest cannot.
		{"InvalidImageId.IncorrectState", domain.Retryable, "NORMAL", true},
		{"FailedOperation.InvalidImageState", domain.Retryable, "NORMAL", true},
		{"InvalidParameterValue.InvalidImageState", domain.Retryable, "state", true},
		{"ImageQuotaLimitExceeded", domain.Terminal, "quota", false},
		{"InvalidImageId.TooLarge", domain.Terminal, "50 GB", false},
		{"UnsupportedOperation.EncryptedImagesNotSupported", domain.Terminal, "encrypted", false},
		{"InvalidRegion.Unavailable", domain.Terminal, "policy", false},
		// Common codes.
		{"AuthFailure.SignatureFailure", domain.Terminal, "TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY", false},
		{"AuthFailure.SecretIdNotFound", domain.Terminal, "TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY", false},
		{"AuthFailure.SignatureExpire", domain.Terminal, "clock", false},
		{"AuthFailure.SomethingNew", domain.Terminal, "TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY", false},
		{"UnauthorizedOperation.Whatever", domain.Terminal, "cvm:SyncImages", false},
		{"RequestLimitExceeded", domain.Retryable, "throttled", true},
		{"RequestLimitExceeded.UinLimitExceeded", domain.Retryable, "rate", true},
		{"RequestLimitExceeded.SomethingNew", domain.Retryable, "throttled", true},
		{"InternalError", domain.Retryable, "retries", true},
		{"InternalError.Unknown", domain.Retryable, "retries", true},
		{"ResourceUnavailable", domain.Retryable, "retries", true},
		{"ResourceUnavailable.Image", domain.Retryable, "retries", true},
		{"ClientError.NetworkError", domain.Retryable, "network", true},
		{"ClientError.HttpStatusCodeError", domain.Retryable, "proxy", true},
		{"InvalidParameter", domain.Terminal, "parameter", false},
		{"MissingParameter", domain.Terminal, "bug", false},
		{"SomeBrandNewCode", domain.Terminal, "SomeBrandNewCode", false},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			err := fmt.Errorf("wrapped: %w", tcerr.NewTencentCloudSDKError(tt.code, "msg", "req-1"))
			pe := classify("SyncImages", err)
			if pe.Class != tt.class || pe.Code != tt.code || pe.RequestID != "req-1" || pe.Provider != ProviderName || pe.Action != "SyncImages" {
				t.Errorf("classify = %+v", pe)
			}
			if !strings.Contains(pe.Hint, tt.hintHas) {
				t.Errorf("hint %q does not mention %q", pe.Hint, tt.hintHas)
			}
			if (pe.RetryAfter > 0) != tt.retryWait {
				t.Errorf("RetryAfter = %v", pe.RetryAfter)
			}
			want := domain.ErrTerminal
			if tt.class == domain.Retryable {
				want = domain.ErrRetryable
			}
			if !errors.Is(pe, want) {
				t.Errorf("errors.Is(%v) is false", want)
			}
		})
	}
	t.Run("every AuthFailure names the variables", func(t *testing.T) {
		for code, info := range codes {
			if strings.HasPrefix(code, "AuthFailure.") && (info.Class != domain.Terminal || !strings.Contains(info.Hint, EnvSecretID) || !strings.Contains(info.Hint, EnvSecretKey)) {
				t.Errorf("%s: %+v", code, info)
			}
		}
	})
	t.Run("plain network error", func(t *testing.T) {
		pe := classify("DescribeImages", errors.New("dial tcp: connection refused"))
		if pe.Class != domain.Retryable || pe.Code != "ClientError.NetworkError" {
			t.Errorf("classify = %+v", pe)
		}
	})
}

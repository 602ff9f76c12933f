package tencent

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"

	"github.com/imagerelay/imagerelay/shared/replication"
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
		if info.Class != replication.Terminal && info.Class != replication.Retryable {
			t.Errorf("%s has class %d", code, info.Class)
		}
		if info.Class == replication.Terminal && info.RetryAfter != 0 {
			t.Errorf("%s is terminal but has a RetryAfter", code)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		code      string
		class     replication.Class
		hintHas   string
		retryWait bool
	}{
		// Documented SyncImages codes: the source image's state can still change, the rest cannot.
		{"InvalidImageId.IncorrectState", replication.Retryable, "NORMAL", true},
		{"FailedOperation.InvalidImageState", replication.Retryable, "NORMAL", true},
		{"InvalidParameterValue.InvalidImageState", replication.Retryable, "state", true},
		{"ImageQuotaLimitExceeded", replication.Terminal, "quota", false},
		{"InvalidImageId.TooLarge", replication.Terminal, "50 GB", false},
		{"UnsupportedOperation.EncryptedImagesNotSupported", replication.Terminal, "encrypted", false},
		{"InvalidRegion.Unavailable", replication.Terminal, "policy", false},
		// Common codes.
		{"AuthFailure.SignatureFailure", replication.Terminal, "TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY", false},
		{"AuthFailure.SecretIdNotFound", replication.Terminal, "TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY", false},
		{"AuthFailure.SignatureExpire", replication.Terminal, "clock", false},
		{"AuthFailure.SomethingNew", replication.Terminal, "TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY", false},
		{"UnauthorizedOperation.Whatever", replication.Terminal, "cvm:SyncImages", false},
		{"RequestLimitExceeded", replication.Retryable, "throttled", true},
		{"RequestLimitExceeded.UinLimitExceeded", replication.Retryable, "rate", true},
		{"RequestLimitExceeded.SomethingNew", replication.Retryable, "throttled", true},
		{"InternalError", replication.Retryable, "retries", true},
		{"InternalError.Unknown", replication.Retryable, "retries", true},
		{"ResourceUnavailable", replication.Retryable, "retries", true},
		{"ResourceUnavailable.Image", replication.Retryable, "retries", true},
		{"ClientError.NetworkError", replication.Retryable, "network", true},
		{"ClientError.HttpStatusCodeError", replication.Retryable, "proxy", true},
		{"InvalidParameter", replication.Terminal, "parameter", false},
		{"MissingParameter", replication.Terminal, "bug", false},
		{"SomeBrandNewCode", replication.Terminal, "SomeBrandNewCode", false},
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
			want := replication.ErrTerminal
			if tt.class == replication.Retryable {
				want = replication.ErrRetryable
			}
			if !errors.Is(pe, want) {
				t.Errorf("errors.Is(%v) is false", want)
			}
		})
	}
	t.Run("every AuthFailure names the variables", func(t *testing.T) {
		for code, info := range codes {
			if strings.HasPrefix(code, "AuthFailure.") && (info.Class != replication.Terminal || !strings.Contains(info.Hint, EnvSecretID) || !strings.Contains(info.Hint, EnvSecretKey)) {
				t.Errorf("%s: %+v", code, info)
			}
		}
	})
	t.Run("plain network error", func(t *testing.T) {
		pe := classify("DescribeImages", errors.New("dial tcp: connection refused"))
		if pe.Class != replication.Retryable || pe.Code != "ClientError.NetworkError" {
			t.Errorf("classify = %+v", pe)
		}
	})
}

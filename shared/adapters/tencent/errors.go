package tencent

import (
	"context"
	"errors"
	"strings"
	"time"

	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"

	"github.com/imagerelay/imagerelay/shared/adapters/ratelimit"
	"github.com/imagerelay/imagerelay/shared/domain"
)

const codeNameDuplicate = "InvalidImageName.Duplicate"

// codeInfo says what to do about one Tencent error code.
type codeInfo struct {
	Class domain.Class
	Hint  string
	// RetryAfter is how long to wait before trying again, for retryable codes.
	RetryAfter time.Duration
}

const credHint = "check " + EnvSecretID + " / " + EnvSecretKey + " (and " + EnvSessionToken + " for temporary keys)"

func terminal(hint string) codeInfo { return codeInfo{Class: domain.Terminal, Hint: hint} }

func retryable(hint string, after time.Duration) codeInfo {
	return codeInfo{Class: domain.Retryable, Hint: hint, RetryAfter: after}
}

// stateRetry is how long to wait when the source image is not ready to be copied yet.
const stateRetry = 30 * time.Second

// codes classifies every documented SyncImages error code (CVM 2017-03-12), the DescribeImages
// codes imagerelay can meet, and the common API 3.0 codes.
var codes = map[string]codeInfo{
	// SyncImages (tencentcloud.com/document/api/213/33267 and the SDK's list).
	"FailedOperation.InvalidImageState":                       retryable("the source image is not in state NORMAL yet (still being created or busy); imagerelay retries, and if it never becomes NORMAL check the image in the CVM console", stateRetry),
	"ImageQuotaLimitExceeded":                                 terminal("the destination region already holds the maximum number of custom images (500 per region): delete unused images there or ask Tencent Cloud for a higher quota, then publish the image again"),
	"InvalidImageId.IncorrectState":                           retryable("the source image is not in state NORMAL yet (still being created or busy); imagerelay retries, and if it never becomes NORMAL check the image in the CVM console", stateRetry),
	"InvalidImageId.Malformed":                                terminal("the image id is not a Tencent image id (img-xxxxxxxx): fix the image id in the image.published event"),
	"InvalidImageId.NotFound":                                 terminal("the image does not exist in the source region: check the image id and sourceRegion in the image.published event, and that the key's account owns the image"),
	"InvalidImageId.TooLarge":                                 terminal("the image is 50 GB or larger, which SyncImages does not copy: make a smaller image, or copy it another way (export to COS and import)"),
	codeNameDuplicate:                                         terminal("an image with the copy's name already exists in the destination region and is not the copy imagerelay started: rename or delete that image, then retry"),
	"InvalidParameter.InstanceImageNotSupport":                terminal("the image is a whole-instance image, which SyncImages does not copy: make a system-disk custom image instead"),
	"InvalidParameter.InvalidKmsKeyId":                        terminal("the KMS key id is not valid in this region: check the key in the KMS console"),
	"InvalidParameterValue.InvalidImageId":                    terminal("this image cannot be synced (public, marketplace or otherwise unsupported image): copy a custom image you own"),
	"InvalidParameterValue.InvalidImageState":                 retryable("the source image is not in a state that can be synced yet; imagerelay retries, and if it persists check the image in the CVM console", stateRetry),
	"InvalidParameterValue.InvalidRegion":                     terminal("the destination region is not allowed for this image (a custom image cannot be synced to its own region, a shared image only to its own): fix the replication policy's regions"),
	"InvalidParameterValue.LimitExceeded":                     terminal("too many values in one call (SyncImages takes one image per call, DescribeImages at most 100 ids): this is a bug in imagerelay, please report it"),
	"InvalidRegion.NotFound":                                  terminal("the region does not exist: fix the region name in the replication policy or the image.published event"),
	"InvalidRegion.Unavailable":                               terminal("this region does not support image sync: remove it from the replication policy"),
	"UnsupportedOperation.EncryptedImagesNotSupported":        terminal("the image is encrypted and Tencent Cloud cannot sync encrypted images to another region: publish an unencrypted image, or rebuild the image in each region"),
	"UnsupportedOperation.LocationImageNotSupported":          terminal("this kind of image (a local or location-bound image) cannot be synced: make a standard custom image instead"),
	"UnsupportedOperation.Region":                             terminal("the destination region does not support image sync: remove it from the replication policy"),
	"UnsupportedOperation.SyncEncryptImageNotSupport":         terminal("an encrypted copy can only be made in the image's own region, not across regions: copy unencrypted, then encrypt in the destination"),
	"InvalidParameter.InvalidParameterCoexistImageIdsFilters": terminal("DescribeImages got both ImageIds and Filters: this is a bug in imagerelay, please report it"),
	"InvalidParameterValue.InvalidParameterValueLimit":        terminal("a DescribeImages Limit above 100 was sent: this is a bug in imagerelay, please report it"),
	"InvalidFilter":                                           terminal("DescribeImages rejected a filter name: this is a bug in imagerelay, please report it"),
	"InvalidFilterValue.LimitExceeded":                        terminal("DescribeImages got too many filter values: this is a bug in imagerelay, please report it"),

	// Common API 3.0 codes.
	"AuthFailure.SecretIdNotFound":                      terminal("Tencent Cloud does not know this SecretId: " + credHint + " — the key may be deleted or disabled in the CAM console"),
	"AuthFailure.InvalidSecretId":                       terminal("the SecretId is not a valid API key id (they start with AKID): " + credHint),
	"AuthFailure.SignatureFailure":                      terminal("the signature did not match: " + credHint + " — the SecretKey must belong to the SecretId"),
	"AuthFailure.SignatureExpire":                       terminal("the request's timestamp is more than 5 minutes off Tencent Cloud's clock: sync this host's clock (NTP); if the clock is right, " + credHint),
	"AuthFailure.TokenFailure":                          terminal("the temporary credentials' token is wrong or expired: refresh the STS credentials and " + credHint),
	"AuthFailure.InvalidAuthorization":                  terminal("the Authorization header was malformed: " + credHint + " — they must not contain spaces or quotes"),
	"AuthFailure.MFAFailure":                            terminal("the API key requires MFA, which imagerelay cannot provide: " + credHint + " and use a key without MFA protection"),
	"AuthFailure.UnauthorizedOperation":                 terminal("the key is not allowed to call this API: grant cvm:SyncImages and cvm:DescribeImages in CAM, and " + credHint + " point at that key"),
	"UnauthorizedOperation":                             terminal("the key is not allowed to call this API: grant cvm:SyncImages and cvm:DescribeImages to the key's CAM user or role"),
	"UnauthorizedOperation.PermissionDenied":            terminal("the key is not allowed to call this API: grant cvm:SyncImages and cvm:DescribeImages to the key's CAM user or role"),
	"UnauthorizedOperation.InvalidToken":                terminal("the temporary credentials' token is invalid: refresh the STS credentials and " + credHint),
	"ActionOffline":                                     terminal("Tencent Cloud has retired this API action: upgrade imagerelay"),
	"InvalidAction":                                     terminal("the API action does not exist at this endpoint: check the configured Tencent endpoint points at CVM (cvm.tencentcloudapi.com)"),
	"NoSuchVersion":                                     terminal("the API version is not served at this endpoint: check the configured Tencent endpoint points at CVM (cvm.tencentcloudapi.com)"),
	"InvalidParameter":                                  terminal("Tencent Cloud rejected a parameter: read the message; if it names a value from the event or policy fix it there, otherwise report a bug"),
	"InvalidParameterValue":                             terminal("Tencent Cloud rejected a parameter value (for example a copy name longer than 60 characters): read the message and fix the value in the event or policy"),
	"MissingParameter":                                  terminal("a required parameter was missing: this is a bug in imagerelay, please report it"),
	"UnknownParameter":                                  terminal("Tencent Cloud does not know a parameter imagerelay sent: check the endpoint points at the real CVM API or a current emulator"),
	"InvalidRequest":                                    terminal("Tencent Cloud could not read the request: check the endpoint configuration"),
	"UnsupportedOperation":                              terminal("Tencent Cloud does not support this operation for this image or region: read the message"),
	"UnsupportedRegion":                                 terminal("the API is not available in this region: remove the region from the replication policy"),
	"ResourceNotFound":                                  terminal("a resource named in the call does not exist: check the image id and regions"),
	"LimitExceeded":                                     terminal("an account limit was reached: read the message and raise the limit in the console"),
	"DryRunOperation":                                   terminal("a dry run passed and nothing was copied: this is a bug in imagerelay, please report it"),
	"RequestSizeLimitExceeded":                          terminal("the request was too large: this is a bug in imagerelay, please report it"),
	"ResponseSizeLimitExceeded":                         terminal("the answer was too large: this is a bug in imagerelay, please report it"),
	"RequestLimitExceeded":                              retryable("Tencent Cloud throttled the call (SyncImages allows 10 and DescribeImages 40 requests a second per account); imagerelay retries — lower the configured rates if other tools share the account", time.Second),
	"RequestLimitExceeded.UinLimitExceeded":             retryable("the account's request rate was exceeded; imagerelay retries — lower the configured rates if other tools share the account", time.Second),
	"RequestLimitExceeded.GlobalRegionUinLimitExceeded": retryable("the account's request rate across regions was exceeded; imagerelay retries — lower the configured rates if other tools share the account", time.Second),
	"RequestLimitExceeded.IPLimitExceeded":              retryable("this host's request rate was exceeded; imagerelay retries", time.Second),
	"InternalError":                                     retryable("Tencent Cloud had an internal error; imagerelay retries — if it persists, contact Tencent Cloud support with the request id", 5*time.Second),
	"ResourceUnavailable":                               retryable("the resource is temporarily unavailable; imagerelay retries", 5*time.Second),
	"ResourceInUse":                                     retryable("the image is busy with another operation; imagerelay retries", stateRetry),
	"ResourceBusy":                                      retryable("the image is busy with another operation; imagerelay retries", stateRetry),
	"ResourceInsufficient":                              retryable("Tencent Cloud is short of resources for this operation; imagerelay retries", stateRetry),
	"ClientError.NetworkError":                          retryable("Tencent Cloud could not be reached (network error or dropped connection); imagerelay retries — check the network and the configured endpoint if it persists", 2*time.Second),
	"ClientError.IOError":                               retryable("the answer from Tencent Cloud could not be read; imagerelay retries", 2*time.Second),
	"ClientError.HttpStatusCodeError":                   retryable("Tencent Cloud (or a proxy in between) answered with an HTTP error; imagerelay retries — check any proxy and the configured endpoint if it persists", 5*time.Second),
	"ClientError.ParseJsonError":                        retryable("the answer from Tencent Cloud was not valid JSON (often a proxy or captive portal); imagerelay retries — check the configured endpoint if it persists", 5*time.Second),
	"ClientError.CircuitBreakerError":                   retryable("the SDK's region circuit breaker tripped; imagerelay retries", 5*time.Second),
	"ClientError.CredentialError":                       terminal("the SDK could not load credentials: " + credHint),
	"ClientError.Canceled":                              retryable("the call was cancelled or timed out before Tencent Cloud answered; imagerelay retries", 0),
}

// prefixes classify codes the table does not name, by their family.
var prefixes = []struct {
	prefix string
	info   codeInfo
}{
	{"AuthFailure", terminal("Tencent Cloud refused the credentials: " + credHint)},
	{"UnauthorizedOperation", codes["UnauthorizedOperation"]},
	{"RequestLimitExceeded", codes["RequestLimitExceeded"]},
	{"InternalError", codes["InternalError"]},
	{"ResourceUnavailable", codes["ResourceUnavailable"]},
	{"ResourceBusy", codes["ResourceBusy"]},
	{"ResourceInUse", codes["ResourceInUse"]},
	{"ResourceInsufficient", codes["ResourceInsufficient"]},
}

// lookup returns the class and hint of a Tencent error code. Codes nobody listed are
// terminal: retrying an unknown refusal would only repeat it.
func lookup(code string) codeInfo {
	if info, ok := codes[code]; ok {
		return info
	}
	for _, p := range prefixes {
		if code == p.prefix || strings.HasPrefix(code, p.prefix+".") {
			return p.info
		}
	}
	return terminal("Tencent Cloud refused the call with " + code + ": read the message; the CVM API error code list explains it")
}

// classify turns an SDK error into a *domain.ProviderError.
func classify(action string, err error) *domain.ProviderError {
	var pe *domain.ProviderError
	if errors.As(err, &pe) {
		return pe
	}
	var sdkErr *tcerr.TencentCloudSDKError
	if errors.As(err, &sdkErr) {
		info := lookup(sdkErr.Code)
		return &domain.ProviderError{Provider: ProviderName, Action: action, Code: sdkErr.Code, Message: sdkErr.Message,
			RequestID: sdkErr.RequestId, Class: info.Class, RetryAfter: info.RetryAfter, Hint: info.Hint}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return waitError(action, err)
	}
	info := codes["ClientError.NetworkError"]
	return &domain.ProviderError{Provider: ProviderName, Action: action, Code: "ClientError.NetworkError", Message: err.Error(),
		Class: info.Class, RetryAfter: info.RetryAfter, Hint: info.Hint}
}

// waitError reports a call that never went out because ctx ended first, or because the
// cluster-wide rate limit could not be reached (the limit is never skipped).
func waitError(action string, err error) *domain.ProviderError {
	if errors.Is(err, ratelimit.ErrUnavailable) {
		return &domain.ProviderError{Provider: ProviderName, Action: action, Code: "ClientError.RateLimitUnavailable", Message: err.Error(),
			Class: domain.Retryable, RetryAfter: time.Second,
			Hint: "the call was not made: the cluster-wide rate limit in NATS could not be reached; imagerelay retries once NATS answers"}
	}
	info := codes["ClientError.Canceled"]
	return &domain.ProviderError{Provider: ProviderName, Action: action, Code: "ClientError.Canceled", Message: err.Error(),
		Class: info.Class, RetryAfter: info.RetryAfter, Hint: info.Hint}
}

package alibaba

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/imagerelay/imagerelay/shared/domain"
)

// ramActions are the RAM actions each API needs.
var ramActions = map[string]string{
	ActionStartTaskForDistributeImage: "appstreaming:StartTaskForDistributeImage",
	ActionListImage:                   "appstreaming:ListImage",
	ActionRebuildDesktops:             "ecd:RebuildDesktops",
	ActionDescribeDesktops:            "ecd:DescribeDesktops",
}

// RAMAction returns the RAM action an API call needs ("ecd:RebuildDesktops"), "" if unknown.
func RAMAction(action string) string { return ramActions[action] }

// codeRule says how to treat one Alibaba error code.
type codeRule struct {
	class domain.Class
	hint  string // may contain %[1]s for the RAM action
}

var (
	credentialHint = "check the AccessKey in " + EnvAccessKeyID + " / " + EnvAccessKeySecret + " (and " + EnvSecurityToken + " for STS keys), or the function role's keys"
	ramHint        = "grant the RAM user or role the action %[1]s"
)

// codeRules covers the seed page's error table, the common Alibaba error codes and the Ecd
// codes the emulator documents. Codes not listed fall back on the HTTP status: 5xx retryable,
// 4xx terminal.
var codeRules = map[string]codeRule{
	// Credentials and signing.
	"InvalidAccessKeyId.NotFound":                {domain.Terminal, "the AccessKey id does not exist: " + credentialHint},
	"InvalidAccessKeyId.Inactive":                {domain.Terminal, "the AccessKey is disabled: enable it or use another; " + credentialHint},
	"InvalidAccessKeyId":                         {domain.Terminal, credentialHint},
	"SignatureDoesNotMatch":                      {domain.Terminal, "the AccessKey secret is wrong: " + credentialHint},
	"IncompleteSignature":                        {domain.Terminal, "the request signature is malformed: " + credentialHint},
	"InvalidCredentials":                         {domain.Terminal, credentialHint},
	"InvalidSecurityToken.Malformed":             {domain.Terminal, "the STS security token is missing or malformed: " + credentialHint},
	"InvalidSecurityToken.MismatchWithAccessKey": {domain.Terminal, "the STS security token belongs to another AccessKey: " + credentialHint},
	"InvalidSecurityToken.Expired":               {domain.Retryable, "the STS security token expired; the next invocation brings fresh keys, otherwise refresh " + EnvSecurityToken},
	"IllegalTimestamp":                           {domain.Terminal, "the request time is more than 15 minutes off: synchronise this machine's clock (NTP)"},
	"SignatureNonceUsed":                         {domain.Retryable, "the request nonce was reused; a new call uses a new one"},
	// Permissions.
	"Forbidden.RAM":          {domain.Terminal, ramHint},
	"Forbidden":              {domain.Terminal, ramHint},
	"NoPermission":           {domain.Terminal, ramHint},
	"Forbidden.AccessDenied": {domain.Terminal, ramHint},
	// Transient.
	"InternalError":      {domain.Retryable, "Alibaba Cloud had an internal error; imagerelay will retry"},
	"ServiceUnavailable": {domain.Retryable, "the service is unavailable; imagerelay will retry"},
	// Request shape.
	"MissingParameter":       {domain.Terminal, "a required parameter is missing; this is a bug in the caller"},
	"InvalidParameter":       {domain.Terminal, "a parameter is not valid; check the policy's regions, image and desktop ids"},
	"InvalidAction.NotFound": {domain.Terminal, "the API action does not exist at this endpoint; check the endpoint configuration"},
	"InvalidAction":          {domain.Terminal, "the API action does not exist at this endpoint; check the endpoint configuration"},
	"InvalidVersion":         {domain.Terminal, "the API version is not served at this endpoint; check the endpoint configuration"},
	"InvalidRegionId":        {domain.Terminal, "the region does not exist or the product is not offered there; remove it from the policy"},
	// StartTaskForDistributeImage (seed page error table).
	"Instance.NotFound":                               {domain.Terminal, "the instance behind the image does not exist"},
	"DesktopInstance.NotFound":                        {domain.Terminal, "the cloud computer behind the image does not exist"},
	"Instance.ImageUnsupported":                       {domain.Terminal, "this is a non-centralized (regional) image, which cannot be distributed; publish it to the image center first"},
	"Instance.PhysicalNodeNotExist":                   {domain.Terminal, "the instance's physical node no longer exists"},
	"ImageCreateByInstance.TaskExist":                 {domain.Retryable, "the image is still being created; imagerelay retries until it is AVAILABLE"},
	"ExceedBuilderQuota":                              {domain.Retryable, "the account's builder quota is used up; imagerelay retries as running tasks finish, or raise the quota"},
	"InvalidBaseImage.NotConfigured":                  {domain.Terminal, "Vhd/Container images need their base image configured before they can be distributed"},
	"CreateDesktopImageRecord.Failed":                 {domain.Terminal, "the image's creation failed; rebuild the image and publish it again"},
	"Image.NotExist":                                  {domain.Terminal, "the image (or version, or product type) does not exist; check the image id, version and product type"},
	"ImageRegionDistribute.NotAllow":                  {domain.Terminal, "this image cannot be distributed (system or community images); copy it into a custom image first"},
	"ImageUpdateFailed.NotAllow":                      {domain.Terminal, "the image may not be modified now (for example while it is being deleted)"},
	"ImageUpdateSharedImageFailed.NotAllow":           {domain.Terminal, "a shared image cannot be distributed by the account it was shared with; distribute it from the owner account"},
	"ParentImageRegionDistribute.NotExist":            {domain.Terminal, "the parent image is not in the destination region; distribute the parent image there first"},
	"ImageDistribute.TargetDistributeRegionListEmpty": {domain.Terminal, "no destination region was given; check the replication policy"},
	"ImageDistribute.ImageNotSupport":                 {domain.Terminal, "the image does not support region distribution (for example an encrypted image); exclude it from the policy"},
	"ImageDistribute.RepeatedDistribution":            {domain.Terminal, "the image version is already in (or being copied to) the region"},
	"ImageDistribute.Undistributed":                   {domain.Terminal, "the image is not in any (or in the given source) region yet; wait until it is AVAILABLE in its source region"},
	"ImageRegion.NotConfigured":                       {domain.Terminal, "the image has no region configuration; finish publishing it first"},
	// RebuildDesktops request-level errors.
	"InvalidImageId.NotFound": {domain.Terminal, "the image is not available in the desktops' region; replicate it there before rebuilding"},
}

// classify turns an SDK error into a *domain.ProviderError.
func classify(action string, err error) *domain.ProviderError {
	var pe *domain.ProviderError
	if errors.As(err, &pe) {
		return pe
	}
	var te *openapi.ThrottlingError
	var ce *openapi.ClientError
	var se *openapi.ServerError
	var ae *openapi.AlibabaCloudError
	var sdk *tea.SDKError
	var dsdk *dara.SDKError
	switch {
	case errors.As(err, &te):
		return classifyCode(action, dara.StringValue(te.Code), dataMessage(te.Data, te.Message), dara.StringValue(te.RequestId),
			dara.IntValue(te.StatusCode), time.Duration(dara.Int64Value(te.RetryAfter))*time.Millisecond)
	case errors.As(err, &ce):
		return classifyCode(action, dara.StringValue(ce.Code), dataMessage(ce.Data, ce.Message), dara.StringValue(ce.RequestId),
			dara.IntValue(ce.StatusCode), time.Duration(dara.Int64Value(ce.RetryAfter))*time.Millisecond)
	case errors.As(err, &se):
		return classifyCode(action, dara.StringValue(se.Code), dataMessage(se.Data, se.Message), dara.StringValue(se.RequestId),
			dara.IntValue(se.StatusCode), time.Duration(dara.Int64Value(se.RetryAfter))*time.Millisecond)
	case errors.As(err, &ae):
		return classifyCode(action, dara.StringValue(ae.Code), dataMessage(ae.Data, ae.Message), dara.StringValue(ae.RequestId),
			dara.IntValue(ae.StatusCode), time.Duration(dara.Int64Value(ae.RetryAfter))*time.Millisecond)
	case errors.As(err, &sdk):
		return classifyCode(action, tea.StringValue(sdk.Code), tea.StringValue(sdk.Message), "", tea.IntValue(sdk.StatusCode), 0)
	case errors.As(err, &dsdk):
		return classifyCode(action, dara.StringValue(dsdk.Code), dara.StringValue(dsdk.Message), "", dara.IntValue(dsdk.StatusCode), 0)
	case errors.Is(err, context.DeadlineExceeded):
		return &domain.ProviderError{Provider: ProviderName, Action: action, Code: "Timeout", Message: err.Error(),
			Class: domain.Retryable, Hint: "the call timed out; imagerelay will retry"}
	case errors.Is(err, context.Canceled):
		return &domain.ProviderError{Provider: ProviderName, Action: action, Code: "Canceled", Message: err.Error(),
			Class: domain.Retryable, Hint: "the call was cancelled before it finished; imagerelay will retry"}
	}
	return &domain.ProviderError{Provider: ProviderName, Action: action, Code: "NetworkError", Message: err.Error(),
		Class: domain.Retryable, Hint: "Alibaba Cloud could not be reached; imagerelay will retry"}
}

// dataMessage prefers the service's own Message from the error body over the SDK's
// "code: 400, ... request id: ..." rendering.
func dataMessage(data map[string]any, fallback *string) string {
	for _, k := range []string{"Message", "message"} {
		if s, ok := data[k].(string); ok && s != "" {
			return s
		}
	}
	return dara.StringValue(fallback)
}

// classifyCode classifies an Alibaba error by code, then by HTTP status.
func classifyCode(action, code, message, requestID string, status int, retryAfter time.Duration) *domain.ProviderError {
	pe := &domain.ProviderError{Provider: ProviderName, Action: action, Code: code, Message: message,
		RequestID: requestID, HTTPStatus: status, RetryAfter: retryAfter}
	if pe.Code == "" {
		pe.Code = fmt.Sprintf("HTTP%d", status)
	}
	rule, known := codeRules[code]
	switch {
	case known:
		pe.Class = rule.class
		pe.Hint = rule.hint
	case strings.HasPrefix(code, "Throttling"):
		pe.Class, pe.Hint = domain.Retryable, "the API is throttling this account; imagerelay backs off and retries (raise the quota in Quota Center if it persists)"
	case strings.HasPrefix(code, "Forbidden"):
		pe.Class, pe.Hint = domain.Terminal, ramHint
	case strings.HasPrefix(code, "InvalidAccessKeyId"), strings.HasPrefix(code, "InvalidSecurityToken"):
		pe.Class, pe.Hint = domain.Terminal, credentialHint
	case strings.HasPrefix(code, "InvalidParameter"), strings.HasPrefix(code, "MissingParameter"):
		pe.Class, pe.Hint = domain.Terminal, codeRules["InvalidParameter"].hint
	case status >= http.StatusInternalServerError || status == 0:
		pe.Class, pe.Hint = domain.Retryable, "the service failed (HTTP "+fmt.Sprint(status)+"); imagerelay will retry"
	case status == http.StatusTooManyRequests:
		pe.Class, pe.Hint = domain.Retryable, "the API is throttling this account; imagerelay backs off and retries"
	default:
		pe.Class, pe.Hint = domain.Terminal, "Alibaba Cloud refused the request; see the code and message"
	}
	if strings.Contains(pe.Hint, "%[1]s") {
		ram := ramActions[action]
		if ram == "" {
			ram = "for " + action
		}
		pe.Hint = fmt.Sprintf(pe.Hint, ram)
	}
	return pe
}

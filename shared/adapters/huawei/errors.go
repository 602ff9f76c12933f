package huawei

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"

	"github.com/imagerelay/imagerelay/shared/domain"
)

// Codes the provider recognises. The IMG.045x block is what the imagerelay emulator answers
// for the cross-region constraints (the public IMS table names no codes for them); against the
// real cloud, the HTTP status and message classify those refusals as terminal all the same.
const (
	codeAuthFailed      = "APIGW.0301"
	codeAPINotFound     = "APIGW.0101"
	codeThrottled       = "APIGW.0308"
	codeTooManyCopies   = "IMG.0457"
	codeImageNotFound   = "IMG.0027"
	codeNoJobID         = "NoJobId"
	credentialsHint     = "check the access key in " + EnvAK + " / " + EnvSK + " (or " + EnvAltAK + " / " + EnvAltSK + ") and that the project ids in huawei.projects belong to its account"
	tooManyCopiesHint   = "IMS runs at most 5 cross-region copies per tenant at once; imagerelay waits for one to finish and retries"
	genericTerminalHint = "IMS refused the copy; see the message, fix the image or the policy, then publish the image again"
)

// hints explains IMS refusals to the operator, by code.
var hints = map[string]string{
	"IMG.0001": "IMS found the request malformed; this is an imagerelay bug, please report it with the request id",
	"IMG.0002": "the copy's name is empty or longer than 128 characters; shorten the source image name",
	"IMG.0003": "the copy's name has characters IMS does not allow (letters, digits, spaces, - _ . and Chinese characters only); rename the source image",
	"IMG.0004": "the description is longer than 1024 characters",
	"IMG.0007": "IMS received an empty body; this is an imagerelay bug, please report it with the request id",
	"IMG.0027": "the source image does not exist in the source region; check the image id and source region of the published event",
	"IMG.0030": "the project id does not match the credentials; check huawei.projects",
	"IMG.0450": "the destination is the source region; remove it from the replication policy",
	"IMG.0451": "IMS does not know the destination region; check the region id in the replication policy",
	"IMG.0452": "IMS does not copy encrypted images across regions; copy it within the region to an unencrypted image and publish that",
	"IMG.0453": "IMS copies images of at most 128 GB across regions; shrink the image or exclude it from the policy",
	"IMG.0454": "IMS does not copy images created from ISO files across regions; create an ECS from it and make a system-disk image",
	"IMG.0455": "the IAM agency in huawei.agency does not exist or does not delegate IMS; create it in IAM (e.g. ims_admin_agency) and set huawei.agency",
	"IMG.0456": "project_name is not a project of the destination region; set huawei.projectNames for it or leave the default (the region id)",
	"IMG.0458": "the description contains '<', '>', a carriage return or a line feed",
	"IMG.0460": "the copy job failed at IMS; publish the image again to retry",
}

// classify turns any error from an IMS call into a *domain.ProviderError.
func classify(action string, err error) *domain.ProviderError {
	var pe *domain.ProviderError
	if errors.As(err, &pe) {
		return pe
	}
	if se := serviceError(err); se != nil {
		return classifyService(action, se)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &domain.ProviderError{Provider: Name, Action: action, Code: "Timeout", Message: err.Error(),
			Class: domain.Retryable, Hint: "the call to IMS did not finish in time; imagerelay will retry"}
	case errors.Is(err, context.Canceled):
		return &domain.ProviderError{Provider: Name, Action: action, Code: "Canceled", Message: err.Error(),
			Class: domain.Retryable, Hint: "the call was cancelled; imagerelay will retry"}
	}
	// Connection refused, reset, dropped, DNS: the network, so retryable.
	return domain.AsProviderError(Name, action, err)
}

func serviceError(err error) *sdkerr.ServiceResponseError {
	var p *sdkerr.ServiceResponseError
	if errors.As(err, &p) {
		return p
	}
	var v sdkerr.ServiceResponseError
	if errors.As(err, &v) {
		return &v
	}
	return nil
}

func classifyService(action string, se *sdkerr.ServiceResponseError) *domain.ProviderError {
	pe := &domain.ProviderError{Provider: Name, Action: action, Code: se.ErrorCode, Message: se.ErrorMessage,
		RequestID: se.RequestId, HTTPStatus: se.StatusCode, Class: domain.Terminal}
	if pe.Code == "" {
		pe.Code = "HTTP" + strconv.Itoa(se.StatusCode)
	}
	msg := strings.ToLower(se.ErrorMessage)
	switch {
	case se.ErrorCode == codeAuthFailed || se.StatusCode == http.StatusUnauthorized:
		pe.Hint = credentialsHint
	case se.ErrorCode == codeAPINotFound:
		pe.Hint = "the endpoint does not serve this IMS API; check huawei.endpoint, then " + credentialsHint
	case se.ErrorCode == codeThrottled || se.StatusCode == http.StatusTooManyRequests:
		pe.Class, pe.Hint = domain.Retryable, "IMS throttled the call; imagerelay will retry"
	case se.StatusCode >= 500:
		pe.Class, pe.Hint = domain.Retryable, "IMS had an internal error; imagerelay will retry"
	case se.ErrorCode == codeTooManyCopies ||
		strings.Contains(msg, "at a time") || strings.Contains(msg, "concurrent"):
		pe.Class, pe.Hint = domain.Retryable, tooManyCopiesHint
	case se.StatusCode == http.StatusForbidden:
		pe.Hint = "the IAM user lacks IMS permissions (e.g. IMS FullAccess) in this project, or the account is restricted"
	case hints[se.ErrorCode] != "":
		pe.Hint = hints[se.ErrorCode]
	default:
		pe.Hint = genericTerminalHint
	}
	return pe
}

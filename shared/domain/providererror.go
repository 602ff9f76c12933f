package domain

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Class says what to do about a provider error.
type Class int

const (
	// Terminal errors will not go away by retrying: report replication.failed.
	Terminal Class = iota
	// Retryable errors are throttling, 5xx and transient states: try again later.
	Retryable
)

// ErrRetryable is matched (with errors.Is) by retryable provider errors.
var ErrRetryable = errors.New("retryable provider error")

// ErrTerminal is matched (with errors.Is) by terminal provider errors.
var ErrTerminal = errors.New("terminal provider error")

// ProviderError is a classified error from a cloud API, carrying the provider's own code and
// message and a hint for the operator. Secrets never appear in it.
type ProviderError struct {
	Provider   string
	Action     string
	Code       string
	Message    string
	RequestID  string
	HTTPStatus int
	Class      Class
	// RetryAfter is the provider's requested wait, when it said one.
	RetryAfter time.Duration
	// Hint tells the operator what to do.
	Hint string
	// NotExecuted is set by a provider that knows the request did nothing: it never left
	// this process (the context ended while waiting for the rate limiter, say), or the
	// provider answered that it refused it. See [MaybeStarted].
	NotExecuted bool
}

// Error implements error.
func (e *ProviderError) Error() string {
	s := fmt.Sprintf("%s %s: %s: %s", e.Provider, e.Action, e.Code, e.Message)
	if e.RequestID != "" {
		s += " (request id " + e.RequestID + ")"
	}
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// Is matches ErrRetryable or ErrTerminal by class.
func (e *ProviderError) Is(target error) bool {
	return (target == ErrRetryable && e.Class == Retryable) || (target == ErrTerminal && e.Class == Terminal)
}

// AsProviderError returns err as a *ProviderError, classifying anything else (network
// failures, context deadlines) as retryable.
func AsProviderError(provider, action string, err error) *ProviderError {
	var pe *ProviderError
	if errors.As(err, &pe) {
		return pe
	}
	return &ProviderError{Provider: provider, Action: action, Code: "NetworkError", Message: err.Error(), Class: Retryable,
		Hint: "the provider could not be reached; imagerelay will retry"}
}

// MaybeStarted reports whether a start call that failed with err may nonetheless have
// started the copy: the request may have reached the provider, and the answer was lost or
// was a server error (a timeout, a dropped connection, a 5xx). The next attempt must then look
// for the copy before it calls again, or a provider without a duplicate check (Huawei IMS)
// makes a second copy.
//
// It is false for answers that say the request was refused, not executed: any terminal
// error, throttling that the provider documents as not executed (Tencent
// RequestLimitExceeded, Alibaba Throttling.*, Huawei APIGW.0308 or HTTP 429), Huawei's
// refusal for too many copies in flight (IMG.0457), and errors marked NotExecuted.
// Anything it does not recognise counts as maybe started: a needless lookup costs one
// read, a missed one a duplicate copy.
func MaybeStarted(err error) bool {
	var pe *ProviderError
	if !errors.As(err, &pe) {
		return true
	}
	switch {
	case pe.Class == Terminal, pe.NotExecuted, pe.HTTPStatus == http.StatusTooManyRequests:
		return false
	case pe.Code == "RequestLimitExceeded", strings.HasPrefix(pe.Code, "RequestLimitExceeded."): // Tencent
		return false
	case strings.HasPrefix(pe.Code, "Throttling"): // Alibaba: Throttling, Throttling.User, Throttling.Api
		return false
	case pe.Code == "RateLimitWait": // Alibaba: the rate limiter's wait ended; nothing was sent
		return false
	case pe.Code == "APIGW.0308", pe.Code == "IMG.0457": // Huawei: throttled; too many copies at once
		return false
	}
	return true
}

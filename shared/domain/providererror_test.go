package domain_test

import (
	"context"
	"errors"
	"testing"

	"github.com/imagerelay/imagerelay/shared/domain"
)

func TestMaybeStarted(t *testing.T) {
	pe := func(code string, status int, class domain.Class) error {
		return &domain.ProviderError{Provider: "p", Action: "StartCopy", Code: code, HTTPStatus: status, Class: class}
	}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"plain network error", errors.New("connection reset by peer"), true},
		{"deadline", context.DeadlineExceeded, true},
		{"classified network error", pe("NetworkError", 0, domain.Retryable), true},
		{"5xx", pe("HTTP502", 502, domain.Retryable), true},
		{"terminal refusal", pe("InvalidImageId.NotFound", 0, domain.Terminal), false},
		{"Tencent throttling", pe("RequestLimitExceeded", 0, domain.Retryable), false},
		{"Tencent throttling subcode", pe("RequestLimitExceeded.UinLimitExceeded", 0, domain.Retryable), false},
		{"Alibaba throttling", pe("Throttling.User", 400, domain.Retryable), false},
		{"Huawei throttling", pe("APIGW.0308", 429, domain.Retryable), false},
		{"any 429", pe("SlowDown", 429, domain.Retryable), false},
		{"Huawei too many copies", pe("IMG.0457", 400, domain.Retryable), false},
		{"never sent", &domain.ProviderError{Code: "Canceled", Class: domain.Retryable, NotExecuted: true}, false},
	}
	for _, tc := range cases {
		if got := domain.MaybeStarted(tc.err); got != tc.want {
			t.Errorf("%s: MaybeStarted = %v, want %v", tc.name, got, tc.want)
		}
	}
}

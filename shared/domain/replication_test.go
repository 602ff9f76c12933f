package domain_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/imagerelay/imagerelay/events"
	"github.com/imagerelay/imagerelay/shared/adapters/tencent"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
	"github.com/imagerelay/imagerelay/shared/dev/emulators/tencentemu"
	"github.com/imagerelay/imagerelay/shared/domain"
)

// cjkName is "a" followed by 30 × "镜": 91 bytes, 31 characters. Cut by bytes to fit the
// suffix, it used to end inside a character.
var cjkName = "a" + strings.Repeat("镜", 30)

func TestCopyNameCutsByCharacters(t *testing.T) {
	for _, name := range []string{cjkName, strings.Repeat("é", 70), strings.Repeat("n", 100), "short", "", "bad\xffbyte"} {
		r := events.Replication{Image: events.Image{Provider: events.ProviderTencent, ImageID: "img-1", ImageName: name, SourceRegion: "ap-guangzhou"},
			DestinationRegion: "ap-shanghai"}
		got := domain.CopyName(r)
		if !utf8.ValidString(got) {
			t.Errorf("CopyName(%q) = %q is not valid UTF-8", name, got)
		}
		if n := utf8.RuneCountInString(got); n > domain.MaxCopyNameLen {
			t.Errorf("CopyName(%q) has %d characters, want at most %d", name, n, domain.MaxCopyNameLen)
		}
		if !strings.Contains(got, "-ir-") || got != domain.CopyName(r) {
			t.Errorf("CopyName(%q) = %q: want the deterministic -ir- suffix", name, got)
		}
		if base := strings.Split(got, "-ir-")[0]; name != "" && utf8.ValidString(name) && !strings.HasPrefix(name, base) {
			t.Errorf("CopyName(%q) = %q does not keep the name's first characters", name, got)
		}
	}
	// 31 characters fit in 60 with the 12-character suffix: nothing is cut, though 91 bytes
	// did not fit in 60 bytes.
	r := events.Replication{Image: events.Image{ImageName: cjkName}}
	if got := domain.CopyName(r); !strings.HasPrefix(got, cjkName+"-ir-") || utf8.RuneCountInString(got) != 43 {
		t.Errorf("CopyName(cjk) = %q (%d characters), want the whole name and the suffix", got, utf8.RuneCountInString(got))
	}
}

// A worker that crashed after SyncImages accepted a copy of an image with a CJK name must
// find that copy by name instead of starting it again (which Tencent refuses for good with
// InvalidImageName.Duplicate).
func TestCopyWithCJKNameIsFoundAfterACrash(t *testing.T) {
	const id, key = "AKIDreplicationtest", "replication-test-secret"
	emu, err := tencentemu.New(tencentemu.Seed{
		Credentials:  []tencentemu.Credential{{SecretID: id, SecretKey: key}},
		Images:       []tencentemu.Image{{ID: "img-cjk00001", Name: cjkName, Region: "ap-guangzhou", SizeGB: 20, Platform: "TencentOS"}},
		CopyDuration: emucore.Duration(time.Hour),
		RateLimits:   tencentemu.RateLimits{SyncImages: 1000, DescribeImages: 1000},
	}, &emucore.CallLog{}, &emucore.Faults{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	t.Setenv(tencent.EnvSecretID, id)
	t.Setenv(tencent.EnvSecretKey, key)
	t.Setenv(tencent.EnvSessionToken, "")
	p, err := tencent.New(tencent.Config{Endpoint: srv.URL, SyncRatePerSecond: 1000, DescribeRatePerSecond: 1000, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rep := events.Replication{Image: events.Image{Provider: events.ProviderTencent, ImageID: "img-cjk00001", ImageName: cjkName,
		SourceRegion: "ap-guangzhou"}, DestinationRegion: "ap-shanghai"}
	req := domain.CopyRequest{ReplicationRequested: events.ReplicationRequested{Replication: rep},
		DestinationRegions: []string{"ap-shanghai"}, Name: domain.CopyName(rep)}
	ctx := context.Background()
	hs, err := p.StartCopy(ctx, req)
	if err != nil || len(hs) != 1 {
		t.Fatalf("StartCopy: %v %+v", err, hs)
	}
	// The worker crashes here: the handle is lost. The next one looks for the copy by name.
	imgs := emu.Images("ap-shanghai")
	if len(imgs) != 1 || imgs[0].Name != req.Name {
		t.Fatalf("copies in ap-shanghai %+v, want one named %q", imgs, req.Name)
	}
	h, found, err := p.FindCopy(ctx, req)
	if err != nil || !found || h.DestinationImageID != hs[0].DestinationImageID {
		t.Fatalf("FindCopy after a crash: %+v found=%v err=%v, want the copy %s", h, found, err, hs[0].DestinationImageID)
	}
}

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

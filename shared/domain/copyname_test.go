package domain_test

import (
	"context"
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
		r := domain.Copy{Image: domain.Image{Provider: events.ProviderTencent, ImageID: "img-1", ImageName: name, SourceRegion: "ap-guangzhou"},
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
	r := domain.Copy{Image: domain.Image{ImageName: cjkName}}
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
	rep := domain.Copy{Image: domain.Image{Provider: events.ProviderTencent, ImageID: "img-cjk00001", ImageName: cjkName,
		SourceRegion: "ap-guangzhou"}, DestinationRegion: "ap-shanghai"}
	req := domain.StartRequest{Source: domain.Source{Image: rep.Image}, Regions: []string{"ap-shanghai"}, Name: domain.CopyName(rep)}
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

// eventsCopyName is CopyName as it was written over the event contract's types before the
// domain had its own: the names of copies in flight were made by it, so CopyName must agree.
func eventsCopyName(r events.Replication) string {
	base := r.ImageName
	if base == "" {
		base = r.ImageID
	}
	base = strings.ToValidUTF8(base, "-")
	suffix := "-ir-" + events.DeriveID(events.ReplicationKey(r), "copy")[:8]
	if keep := domain.MaxCopyNameLen - utf8.RuneCountInString(suffix); utf8.RuneCountInString(base) > keep {
		base = string([]rune(base)[:keep])
	}
	return base + suffix
}

// checkAgainstEvents compares the domain's names and keys of one copy with the event
// contract's.
func checkAgainstEvents(t *testing.T, r events.Replication) {
	t.Helper()
	c := domain.Copy{Image: domain.Image(r.Image), DestinationRegion: r.DestinationRegion}
	if got, want := c.Key(), events.ReplicationKey(r); got != want {
		t.Errorf("Copy.Key() = %q, events.ReplicationKey = %q", got, want)
	}
	if got, want := c.Image.Key(), events.ImageKey(r.Image); got != want {
		t.Errorf("Image.Key() = %q, events.ImageKey = %q", got, want)
	}
	if got, want := domain.CopyName(c), eventsCopyName(r); got != want {
		t.Errorf("CopyName(%+v) = %q, the event contract names it %q", r, got, want)
	}
}

func TestCopyNameAndKeysMatchTheEventContract(t *testing.T) {
	names := []string{"", "base", cjkName, strings.Repeat("é", 70), strings.Repeat("n", 100), "bad\xffbyte", "a/b.c d", "镜像-01"}
	for _, provider := range []string{"tencent", "alibaba", "huawei", ""} {
		for _, account := range []string{"", "default", "acme", "acme.cn"} {
			for _, version := range []string{"", "-", "iv-1", "v1.0"} {
				for _, name := range names {
					for _, region := range []string{"", "ap-shanghai", "cn-north-4"} {
						checkAgainstEvents(t, events.Replication{Image: events.Image{Provider: provider, Account: account, ImageID: "img-" + name,
							VersionID: version, ImageName: name, SourceRegion: "src", ProductType: "CloudDesktop"}, DestinationRegion: region})
					}
				}
			}
		}
	}
}

func FuzzCopyNameMatchesTheEventContract(f *testing.F) {
	f.Add("tencent", "", "img-1", "", "base", "ap-guangzhou", "ap-shanghai")
	f.Add("alibaba", "acme", "imgc-1", "iv-1", cjkName, "cn-shanghai", "cn-beijing")
	f.Add("huawei", "x/y", "", "v.1", "bad\xffbyte", "", "")
	f.Fuzz(func(t *testing.T, provider, account, imageID, version, name, src, dst string) {
		checkAgainstEvents(t, events.Replication{Image: events.Image{Provider: provider, Account: account, ImageID: imageID,
			VersionID: version, ImageName: name, SourceRegion: src}, DestinationRegion: dst})
	})
}

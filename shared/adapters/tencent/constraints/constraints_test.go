package constraints_test

import (
	"strings"
	"testing"

	"github.com/imagerelay/imagerelay/shared/adapters/tencent/constraints"
	"github.com/imagerelay/imagerelay/shared/domain"
)

func TestCheckCopy(t *testing.T) {
	c := constraints.New(nil)
	src := domain.Source{Image: domain.Image{Provider: "tencent", ImageID: "img-base0001", SourceRegion: "ap-guangzhou"}, SizeGB: 20}
	cases := []struct {
		name   string
		mut    func(*domain.Source)
		region string
		want   string // substring of the reason; "" means allowed
	}{
		{"allowed", nil, "ap-shanghai", ""},
		{"unknown region", nil, "ap-mars", "not a Tencent Cloud region"},
		{"same region", nil, "ap-guangzhou", "own region"},
		{"encrypted", func(s *domain.Source) { s.Encrypted = true }, "ap-shanghai", "encrypted"},
		{"49 GB", func(s *domain.Source) { s.SizeGB = 49 }, "ap-shanghai", ""},
		{"50 GB", func(s *domain.Source) { s.SizeGB = 50 }, "ap-shanghai", "the image is 50 GB; Tencent Cloud SyncImages copies only images smaller than 50 GB"},
		{"from ISO is no Tencent rule", func(s *domain.Source) { s.FromISO = true }, "ap-shanghai", ""},
	}
	for _, tc := range cases {
		s := src
		if tc.mut != nil {
			tc.mut(&s)
		}
		got := c.CheckCopy(s, tc.region)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: CheckCopy = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestRegions(t *testing.T) {
	if got := constraints.New([]string{"b", "a", "b"}).Regions(); strings.Join(got, ",") != "a,b" {
		t.Errorf("configured regions %v, want sorted without repeats", got)
	}
	if got := constraints.New(nil).Regions(); len(got) != len(constraints.KnownRegions()) {
		t.Errorf("default regions %v", got)
	}
}

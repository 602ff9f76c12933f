package constraints_test

import (
	"strings"
	"testing"

	"github.com/imagerelay/imagerelay/shared/adapters/alibaba/constraints"
	"github.com/imagerelay/imagerelay/shared/domain"
)

func TestCheckCopy(t *testing.T) {
	c := constraints.New(nil)
	src := domain.Source{Image: domain.Image{Provider: "alibaba", ImageID: "imgc-x", SourceRegion: "cn-shanghai"}}
	cases := []struct {
		name   string
		mut    func(*domain.Source)
		region string
		want   string // substring of the reason; "" means allowed
	}{
		{"allowed", nil, "cn-beijing", ""},
		{"no region", nil, "", "no destination region"},
		{"unknown region", nil, "mars-north-1", "unknown region"},
		{"same region", nil, "cn-shanghai", "same as the source region"},
		{"encrypted", func(s *domain.Source) { s.Encrypted = true }, "cn-beijing", "ImageDistribute.ImageNotSupport"},
		{"no size limit", func(s *domain.Source) { s.SizeGB = 4096 }, "cn-beijing", ""},
		{"from ISO is no Alibaba rule", func(s *domain.Source) { s.FromISO = true }, "cn-beijing", ""},
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
	custom := constraints.New([]string{"cn-wulanchabu"})
	if custom.CheckCopy(src, "cn-wulanchabu") != "" || custom.CheckCopy(src, "cn-beijing") == "" {
		t.Error("configured regions must replace the known regions")
	}
}

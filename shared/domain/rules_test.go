package domain_test

import (
	"testing"

	"github.com/imagerelay/imagerelay/shared/domain"
)

func TestCheckCommon(t *testing.T) {
	rules := domain.CopyRules{SameRegion: "same", Encrypted: "encrypted", MaxSizeGB: 128, TooLarge: "at most 128 GB", FromISO: "iso"}
	src := domain.Source{Image: domain.Image{SourceRegion: "a"}, SizeGB: 128}
	cases := []struct {
		name   string
		mut    func(*domain.Source)
		region string
		rules  domain.CopyRules
		want   string
	}{
		{"allowed", nil, "b", rules, ""},
		{"same region", nil, "a", rules, "same"},
		{"encrypted", func(s *domain.Source) { s.Encrypted = true }, "b", rules, "encrypted"},
		{"encrypted allowed", func(s *domain.Source) { s.Encrypted = true }, "b", domain.CopyRules{SameRegion: "same"}, ""},
		{"too large", func(s *domain.Source) { s.SizeGB = 129 }, "b", rules, "the image is 129 GB; at most 128 GB"},
		{"no size limit", func(s *domain.Source) { s.SizeGB = 1 << 20 }, "b", domain.CopyRules{SameRegion: "same"}, ""},
		{"from ISO", func(s *domain.Source) { s.FromISO = true }, "b", rules, "iso"},
		// The first rule broken is the one named.
		{"same region first", func(s *domain.Source) { s.Encrypted, s.SizeGB, s.FromISO = true, 500, true }, "a", rules, "same"},
		{"encrypted before size", func(s *domain.Source) { s.Encrypted, s.SizeGB = true, 500 }, "b", rules, "encrypted"},
	}
	for _, tc := range cases {
		s := src
		if tc.mut != nil {
			tc.mut(&s)
		}
		if got := domain.CheckCommon(s, tc.region, tc.rules); got != tc.want {
			t.Errorf("%s: CheckCommon = %q, want %q", tc.name, got, tc.want)
		}
	}
}

package policy

import (
	"errors"
	"path"
	"testing"

	"github.com/imagerelay/imagerelay/events"
)

func TestMatch(t *testing.T) {
	img := events.Image{Provider: "tencent", ImageID: "img-1", ImageName: "office-2024-win", ProductType: ""}
	ali := events.Image{Provider: "alibaba", ImageID: "img-2", ImageName: "desk", ProductType: "CloudDesktop"}
	prod := map[string]string{"env": "prod", "team": "design"}
	tests := []struct {
		name    string
		m       Match
		img     events.Image
		tags    map[string]string
		want    bool
		explain string
	}{
		{name: "zero matches all", m: Match{}, img: img, tags: nil, want: true},
		{name: "provider", m: Match{Provider: "tencent"}, img: img, want: true},
		{name: "wrong provider", m: Match{Provider: "huawei"}, img: img, explain: `provider is "tencent", policy wants "huawei"`},
		{name: "product type", m: Match{ProductType: "CloudDesktop"}, img: ali, want: true},
		{name: "wrong product type", m: Match{ProductType: "CloudApp"}, img: ali, explain: `product type is "CloudDesktop", policy wants "CloudApp"`},
		{name: "missing product type", m: Match{ProductType: "CloudApp"}, img: img, explain: `image has no product type, policy wants "CloudApp"`},
		{name: "tags subset", m: Match{Tags: map[string]string{"env": "prod"}}, img: img, tags: prod, want: true},
		{name: "tag differs", m: Match{Tags: map[string]string{"env": "prod"}}, img: img, tags: map[string]string{"env": "dev"}, explain: `tag env is "dev", policy wants "prod"`},
		{name: "tag missing", m: Match{Tags: map[string]string{"env": "prod"}}, img: img, tags: nil, explain: `image has no tag env, policy wants "prod"`},
		{name: "empty tag value must be present", m: Match{Tags: map[string]string{"env": ""}}, img: img, tags: nil, explain: `image has no tag env, policy wants ""`},
		{name: "empty tag value present", m: Match{Tags: map[string]string{"env": ""}}, img: img, tags: map[string]string{"env": ""}, want: true},
		{name: "pattern", m: Match{NamePattern: "office-*"}, img: img, want: true},
		{name: "pattern miss", m: Match{NamePattern: "linux-*"}, img: img, explain: `name "office-2024-win" does not match pattern "linux-*"`},
		{name: "bad pattern", m: Match{NamePattern: "office-["}, img: img, explain: `name pattern "office-[" is malformed`},
		{
			name: "all reasons in order",
			m:    Match{Provider: "alibaba", Tags: map[string]string{"team": "ops", "env": "prod", "a": "1"}, NamePattern: "x*"},
			img:  img, tags: prod,
			explain: `provider is "tencent", policy wants "alibaba"; image has no tag a, policy wants "1"; tag team is "design", policy wants "ops"; name "office-2024-win" does not match pattern "x*"`,
		},
		{name: "everything holds", m: Match{Provider: "alibaba", ProductType: "CloudDesktop", Tags: map[string]string{"team": "design"}, NamePattern: "de*"}, img: ali, tags: prod, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.Matches(tt.img, tt.tags); got != tt.want {
				t.Errorf("Matches = %v, want %v", got, tt.want)
			}
			if got := tt.m.Explain(tt.img, tt.tags); got != tt.explain {
				t.Errorf("Explain = %q, want %q", got, tt.explain)
			}
		})
	}
}

func TestIsZero(t *testing.T) {
	if !(Match{}).IsZero() {
		t.Error("zero Match is not IsZero")
	}
	if (Match{Tags: map[string]string{"a": "b"}}).IsZero() {
		t.Error("Match with tags is IsZero")
	}
}

func TestValidPattern(t *testing.T) {
	for _, p := range []string{"", "*", "win-*", "a?c", "[a-z]*", `\*`} {
		if err := ValidPattern(p); err != nil {
			t.Errorf("ValidPattern(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"[", "a[", "[a-", `x\`, "[]"} {
		if err := ValidPattern(p); !errors.Is(err, path.ErrBadPattern) {
			t.Errorf("ValidPattern(%q) = %v, want ErrBadPattern", p, err)
		}
	}
}

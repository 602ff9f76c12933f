package memkv_test

import (
	"testing"

	"github.com/imagerelay/imagerelay/shared/adapters/state"
	"github.com/imagerelay/imagerelay/shared/adapters/state/memkv"
	"github.com/imagerelay/imagerelay/shared/adapters/state/statetest"
)

func TestConformance(t *testing.T) {
	statetest.Run(t, func(*testing.T) state.Bucket { return memkv.New() })
}

func TestMatchFollowsNATSSubjectRules(t *testing.T) {
	cases := []struct {
		filter, key string
		want        bool
	}{
		{">", "a", true},
		{">", "a.b", true},
		{"a.>", "a", false},
		{"a.>", "a.b.c", true},
		{"a.>", "ab.c", false},
		{"*", "a", true},
		{"*", "a.b", false},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.b.d", false},
		{"a.b", "a.b", true},
		{"a.b", "a.b.c", false},
		{"a.b.c", "a.b", false},
	}
	for _, c := range cases {
		if got := memkv.Match(c.filter, c.key); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.filter, c.key, got, c.want)
		}
	}
}

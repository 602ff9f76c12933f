package constraints_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/imagerelay/imagerelay/shared/adapters/huawei/constraints"
)

func TestCheckDescription(t *testing.T) {
	cases := []struct {
		in   string
		want error
	}{
		{"imagerelay copy of golden from cn-north-4", nil},
		{strings.Repeat("d", 1024), nil},
		{strings.Repeat("é", 1024), nil}, // characters, not bytes
		{strings.Repeat("d", 1025), constraints.ErrDescriptionTooLong},
		{"a <b>", constraints.ErrDescriptionChars},
		{"a > b", constraints.ErrDescriptionChars},
		{"line\nbreak", constraints.ErrDescriptionChars},
		{"carriage\rreturn", constraints.ErrDescriptionChars},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%.20q", tc.in), func(t *testing.T) {
			if err := constraints.CheckDescription(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("CheckDescription = %v, want %v", err, tc.want)
			}
			if err := constraints.CheckDescription(constraints.SanitizeDescription(tc.in)); err != nil {
				t.Fatalf("sanitised description still fails: %v", err)
			}
		})
	}
}

func TestSanitizeName(t *testing.T) {
	cases := map[string]string{
		"golden-ubuntu_22.04 v2": "golden-ubuntu_22.04 v2",
		"镜像-金":                   "镜像-金",
		"a/b:c<d>":               "a-b-c-d-",
		"  padded  ":             "padded",
		strings.Repeat("n", 130): strings.Repeat("n", 128),
	}
	for in, want := range cases {
		if got := constraints.SanitizeName(in); got != want {
			t.Errorf("SanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

package state

import (
	"errors"
	"math/rand"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/quick"
)

func TestKeyEscapesEveryByteAKeyTokenCannotHold(t *testing.T) {
	cases := map[string][]string{
		"repl.tencent.default.img_201_2A_3E.-.ap_2Ex": {"repl", "tencent", "default", "img 1*>", "-", "ap.x"},
		"a._.b":              {"a", "", "b"},
		"_5F":                {"_"},
		"_":                  {""},
		"_E9_95_9C":          {"镜"},
		"x_2Fy":              {"x/y"},
		"img-bad_2E0032":     {"img-bad.0032"},
		"img-bad_5F0032":     {"img-bad_0032"},
		"rebuild.on.r1.d_3D": {"rebuild", "on", "r1", "d="},
	}
	for want, parts := range cases {
		if got := Key(parts...); got != want {
			t.Errorf("Key(%q) = %q, want %q", parts, got, want)
		}
		back, err := ParseKey(want)
		if err != nil || !slices.Equal(back, parts) {
			t.Errorf("ParseKey(%q) = %q (%v), want %q", want, back, err, parts)
		}
	}
	for _, bad := range []string{"", "a..b", ".a", "a_", "a_2", "a_2e", "a_41", "a/b", "a b", "__"} {
		if parts, err := ParseKey(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParseKey(%q) = %q, %v; want ErrBadKey", bad, parts, err)
		}
	}
}

// validKey is the key syntax of the JetStream KV client (nats.go jetstream keyValid).
var validKey = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)

func checkKeyRoundTrip(t *testing.T, parts []string) {
	t.Helper()
	if len(parts) == 0 {
		return
	}
	k := Key(parts...)
	if !validKey.MatchString(k) || strings.HasPrefix(k, ".") || strings.HasSuffix(k, ".") || strings.Contains(k, "..") {
		t.Fatalf("Key(%q) = %q is not a valid KV key", parts, k)
	}
	if strings.Count(k, ".") != len(parts)-1 {
		t.Fatalf("Key(%q) = %q has %d tokens, want one per part", parts, k, strings.Count(k, ".")+1)
	}
	back, err := ParseKey(k)
	if err != nil || !slices.Equal(back, parts) {
		t.Fatalf("ParseKey(Key(%q)) = %q (%v): Key is not injective", parts, back, err)
	}
}

// Key is injective: every list of parts decodes back from its key, so two lists that share a
// key are equal. Random lists are drawn from an alphabet rich in the characters that used
// to collide.
func TestKeyIsInjective(t *testing.T) {
	alphabet := []string{"a", "Z", "0", "-", "_", ".", "/", "*", ">", " ", "=", "_5F", "_2E", "镜", "é", "\x00", "\xff", ""}
	gen := func(vals []reflect.Value, r *rand.Rand) {
		parts := make([]string, 1+r.Intn(6))
		for i := range parts {
			var b strings.Builder
			for range r.Intn(5) {
				b.WriteString(alphabet[r.Intn(len(alphabet))])
			}
			parts[i] = b.String()
		}
		vals[0] = reflect.ValueOf(parts)
	}
	seen := map[string][]string{}
	prop := func(parts []string) bool {
		checkKeyRoundTrip(t, parts)
		k := Key(parts...)
		if prev, ok := seen[k]; ok && !slices.Equal(prev, parts) {
			t.Fatalf("Key(%q) == Key(%q) == %q", prev, parts, k)
		}
		seen[k] = parts
		return true
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 20000, Values: gen, Rand: rand.New(rand.NewSource(8))}); err != nil {
		t.Fatal(err)
	}
}

// FuzzKey checks the round trip on arbitrary bytes (go test -fuzz=FuzzKey ./shared/adapters/state/).
func FuzzKey(f *testing.F) {
	for _, seed := range [][2]string{{"img-bad.0032", "img-bad_0032"}, {"", "_"}, {"a/b", "镜\xff"}, {"_41", "."}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		checkKeyRoundTrip(t, []string{a, b})
		checkKeyRoundTrip(t, []string{a + "." + b})
		if (Key(a, b) == Key(b, a)) != (a == b) {
			t.Fatalf("Key(%q, %q) and Key(%q, %q) collide", a, b, b, a)
		}
	})
}

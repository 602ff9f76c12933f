package emucore_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/imagerelay/imagerelay/shared/dev/emulators/emucore"
)

// durSeed stands in for an emulator seed: one duration field with a default, next to
// another field, decoded the way seeds are.
type durSeed struct {
	Wait  emucore.Duration `yaml:"wait,omitempty" json:"wait,omitempty"`
	Other int              `yaml:"other,omitempty" json:"other,omitempty"`
}

const defaultWait = emucore.Duration(3 * time.Second)

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		name, in string
		want     time.Duration
		wantErr  bool
	}{
		{"string", `{"wait":"1500ms"}`, 1500 * time.Millisecond, false},
		{"string compound", `{"wait":"1m30s"}`, 90 * time.Second, false},
		{"string negative", `{"wait":"-2s"}`, -2 * time.Second, false},
		{"string zero", `{"wait":"0"}`, 0, false},
		{"number of nanoseconds", `{"wait":2000000000}`, 2 * time.Second, false},
		{"number zero", `{"wait":0}`, 0, false},
		{"null keeps the default", `{"wait":null}`, defaultWait.Std(), false},
		{"absent keeps the default", `{"other":1}`, defaultWait.Std(), false},
		{"string without unit", `{"wait":"3"}`, 0, true},
		{"bad string", `{"wait":"soon"}`, 0, true},
		{"empty string", `{"wait":""}`, 0, true},
		{"fractional number", `{"wait":1.5}`, 0, true},
		{"bool", `{"wait":true}`, 0, true},
		{"object", `{"wait":{"seconds":3}}`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := durSeed{Wait: defaultWait}
			err := json.Unmarshal([]byte(tt.in), &s)
			if tt.wantErr {
				if !errors.Is(err, emucore.ErrInvalidDuration) {
					t.Fatalf("err = %v; want ErrInvalidDuration", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Wait.Std() != tt.want {
				t.Errorf("wait = %v; want %v", s.Wait, tt.want)
			}
		})
	}
}

// TestDurationYAML checks that goccy/go-yaml, with the Strict option LoadSeed uses, decodes
// Duration through encoding.TextUnmarshaler.
func TestDurationYAML(t *testing.T) {
	tests := []struct {
		name, in string
		want     time.Duration
		wantErr  bool
	}{
		{"string", "wait: 1500ms", 1500 * time.Millisecond, false},
		{"quoted string", `wait: "2s"`, 2 * time.Second, false},
		{"compound", "wait: 1h2m", time.Hour + 2*time.Minute, false},
		{"zero", "wait: 0", 0, false},
		{"null keeps the default", "wait: null", defaultWait.Std(), false},
		{"empty keeps the default", "wait:", defaultWait.Std(), false},
		{"absent keeps the default", "other: 1", defaultWait.Std(), false},
		{"JSON document", `{"wait": "250ms"}`, 250 * time.Millisecond, false},
		{"number without unit", "wait: 2000000000", 0, true},
		{"bad string", "wait: soon", 0, true},
		{"empty string", `wait: ""`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := durSeed{Wait: defaultWait}
			err := yaml.UnmarshalWithOptions([]byte(tt.in), &s, yaml.Strict())
			if tt.wantErr {
				if !errors.Is(err, emucore.ErrInvalidDuration) {
					t.Fatalf("err = %v; want ErrInvalidDuration", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Wait.Std() != tt.want {
				t.Errorf("wait = %v; want %v", s.Wait, tt.want)
			}
		})
	}
}

// TestDurationEncode checks that a Duration is written as a string and reads back the same
// from JSON and YAML.
func TestDurationEncode(t *testing.T) {
	tests := []struct {
		d        time.Duration
		wantText string
	}{
		{1500 * time.Millisecond, "1.5s"},
		{3 * time.Second, "3s"},
		{90 * time.Second, "1m30s"},
		{-time.Millisecond, "-1ms"},
	}
	for _, tt := range tests {
		t.Run(tt.wantText, func(t *testing.T) {
			d := emucore.Duration(tt.d)
			if d.Std() != tt.d || d.String() != tt.wantText {
				t.Errorf("Std() = %v, String() = %q; want %v, %q", d.Std(), d.String(), tt.d, tt.wantText)
			}
			text, err := d.MarshalText()
			if err != nil || string(text) != tt.wantText {
				t.Errorf("MarshalText = %q, %v; want %q", text, err, tt.wantText)
			}
			js, err := json.Marshal(durSeed{Wait: d})
			if err != nil {
				t.Fatal(err)
			}
			if want := `{"wait":"` + tt.wantText + `"}`; string(js) != want {
				t.Errorf("json = %s; want %s", js, want)
			}
			ys, err := yaml.Marshal(durSeed{Wait: d})
			if err != nil {
				t.Fatal(err)
			}
			for name, dec := range map[string]func(*durSeed) error{
				"json": func(s *durSeed) error { return json.Unmarshal(js, s) },
				"yaml": func(s *durSeed) error { return yaml.UnmarshalWithOptions(ys, s, yaml.Strict()) },
			} {
				var back durSeed
				if err := dec(&back); err != nil || back.Wait != d {
					t.Errorf("%s round trip of %s = %v, %v; want %v", name, ys, back.Wait, err, d)
				}
			}
		})
	}
	// The zero value is left out, as a zero time.Duration was, so a written seed keeps the
	// emulator's default.
	if js, err := json.Marshal(durSeed{}); err != nil || string(js) != `{}` {
		t.Errorf("zero: json = %s, %v; want {}", js, err)
	}
}

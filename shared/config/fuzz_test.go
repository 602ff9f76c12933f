package config

import (
	"errors"
	"os"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, and must return either a
// configuration or Errors whose every entry has a kind.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"../../imagerelay.yaml", "testdata/full.yaml"} {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	for _, s := range []string{
		"",
		"nats: {url: \"\"}\n",
		"x: &a [*a]\n",
		"a: &a {b: 1}\nlog:\n  <<: *a\n",
		"replication:\n  policies:\n    - {name: a, regions: [b], match: {namePattern: '['}}\n",
		"rebuild:\n  policies:\n  - name: r\n    window: {start: '23:00', end: '01:00', days: [Sun]}\n",
		"nats:\n  backoff: [1s, *x]\n",
		"providers:\n  tencent:\n    secretKey: x\n",
		"? [a]\n: b\n",
		"log: !!map {level: info}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without error")
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("loaded config does not validate again: %v", err)
			}
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error is not Errors: %T %v", err, err)
		}
		for _, e := range errs {
			if e.Err == nil || e.Problem == "" {
				t.Fatalf("problem without kind or text: %+v", e)
			}
			_ = e.Error()
		}
	})
}

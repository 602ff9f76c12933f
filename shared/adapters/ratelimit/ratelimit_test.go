package ratelimit_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/shared/adapters/ratelimit"
)

func TestRateLimitEscapeTokenIsInjectiveAndValid(t *testing.T) {
	valid := regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	inputs := []string{"", "_", "__", "_5F", "a.b", "a_b", "a b", "a/b", "a*b", "a>b", "镜", "a\x00", "A-z09", "_2E", "."}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, rng.IntN(6))
		for i := range b {
			const alphabet = "a_.-Z9 \xe9_5F"
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		inputs = append(inputs, string(b))
	}
	seen := map[string]string{}
	for _, in := range inputs {
		out := ratelimit.EscapeToken(in)
		if !valid.MatchString(out) {
			t.Errorf("EscapeToken(%q) = %q: not a valid key token", in, out)
		}
		if prev, ok := seen[out]; ok && prev != in {
			t.Errorf("EscapeToken(%q) = EscapeToken(%q) = %q", in, prev, out)
		}
		seen[out] = in
	}
	if got := ratelimit.EscapeToken("img-bad.0032"); got != "img-bad_2E0032" {
		t.Errorf("EscapeToken = %q", got)
	}
}

func TestRateLimitKeyHasThreeTokens(t *testing.T) {
	s := ratelimit.Spec{Provider: "tencent", API: "SyncImages", Account: "team.a"}
	if got, want := s.Key(), "tencent.SyncImages.team_2Ea"; got != want {
		t.Errorf("Key = %q, want %q", got, want)
	}
}

func TestRateLimitIntervalAndBurst(t *testing.T) {
	s := ratelimit.Spec{Rate: 10}
	if got, want := s.Interval(), 110*time.Millisecond; got != want {
		t.Errorf("Interval = %v, want %v", got, want)
	}
	if s.BurstSize() != 1 {
		t.Errorf("default burst %d, want 1", s.BurstSize())
	}
	if (ratelimit.Spec{}).Interval() != 0 {
		t.Error("an unlimited spec has an interval")
	}
}

// TestRateLimitLocalSpacesCalls checks the process-local default: 6 calls at 20/s take 5 intervals.
func TestRateLimitLocalSpacesCalls(t *testing.T) {
	s := ratelimit.Spec{Provider: "p", API: "a", Rate: 20}
	l := ratelimit.Local().For(s)
	start := time.Now()
	for range 6 {
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took < 5*s.Interval() {
		t.Errorf("6 calls took %v, want at least %v", took, 5*s.Interval())
	}
	if err := ratelimit.Local().For(ratelimit.Spec{}).Wait(context.Background()); err != nil {
		t.Errorf("unlimited: %v", err)
	}
}

func TestRateLimitOrDefaultsToLocal(t *testing.T) {
	if ratelimit.Or(nil) == nil {
		t.Fatal("Or(nil) is nil")
	}
	called := false
	f := ratelimit.FactoryFunc(func(ratelimit.Spec) ratelimit.Limiter { called = true; return nil })
	ratelimit.Or(f).For(ratelimit.Spec{})
	if !called {
		t.Error("Or(f) did not use f")
	}
}

func ExampleSpec() {
	spec := ratelimit.Spec{Provider: "tencent", API: "SyncImages", Account: "main", Rate: 10}
	fmt.Println(spec.Key(), spec.Interval())
	// Output: tencent.SyncImages.main 110ms
}

// TestRateLimitPaceReservesAgainWhenWokenLate gives up a slot the caller woke too late for (a stalled
// process), and goes after LateRetries such slots rather than never.
func TestRateLimitPaceReservesAgainWhenWokenLate(t *testing.T) {
	base := time.Unix(1000, 0)
	for _, tt := range []struct {
		name     string
		lateness []time.Duration // how late each check after a slot finds the clock
		want     int             // reservations made
	}{
		{"on time", []time.Duration{0}, 1},
		{"just within MaxLate", []time.Duration{ratelimit.MaxLate}, 1},
		{"late once", []time.Duration{ratelimit.MaxLate + time.Millisecond, 0}, 2},
		{"always late", []time.Duration{time.Second, time.Second, time.Second, time.Second, time.Second}, ratelimit.LateRetries + 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reservations, checks := 0, 0
			var slot time.Time
			now := func() time.Time {
				// Pace reads the clock twice per reservation: before sleeping (the slot has
				// come) and after (how late it woke).
				checks++
				if checks%2 == 1 {
					return slot
				}
				return slot.Add(tt.lateness[reservations-1])
			}
			err := ratelimit.Pace(context.Background(), now, func(context.Context) (time.Time, error) {
				reservations++
				slot = base.Add(time.Duration(reservations) * time.Second)
				return slot, nil
			})
			if err != nil || reservations != tt.want {
				t.Errorf("Pace = %v after %d reservations, want nil after %d", err, reservations, tt.want)
			}
		})
	}
}

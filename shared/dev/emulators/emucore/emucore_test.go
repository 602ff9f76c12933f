package emucore

import (
	"math"
	"testing"
)

// TestDecideRates checks that every rate, lose-answer and fail-copy included, injects its
// kind at about its share of calls, and that the shares do not overlap.
func TestDecideRates(t *testing.T) {
	rates := Rates{Throttle: 0.1, Server: 0.05, Drop: 0.05, FailCopy: 0.1, LoseAnswer: 0.2}
	f := NewFaults(rates, 42)
	const n = 20000
	got := map[FaultKind]int{}
	for range n {
		got[f.Decide("tencent", "SyncImages")]++
	}
	want := map[FaultKind]float64{FaultThrottle: 0.1, FaultServer: 0.05, FaultDrop: 0.05, FaultFailCopy: 0.1, FaultLoseAnswer: 0.2, FaultNone: 0.5}
	for kind, share := range want {
		if s := float64(got[kind]) / n; math.Abs(s-share) > 0.02 {
			t.Errorf("kind %q: share %.3f, want %.2f±0.02", kind, s, share)
		}
	}
}

// TestRuleBeforeRate checks that a lose-answer rule is used up before the random rates
// decide, and only for the calls it matches.
func TestRuleBeforeRate(t *testing.T) {
	f := NewFaults(Rates{}, 1)
	f.Add(Rule{Provider: "huawei", Action: "CopyImageCrossRegion", Kind: FaultLoseAnswer, Count: 1, Match: "cn-east-3"})
	if got := f.Decide("huawei", "CopyImageCrossRegion", "cn-south-1"); got != FaultNone {
		t.Errorf("a call to another region got %q", got)
	}
	if got := f.Decide("huawei", "CopyImageCrossRegion", "cn-east-3"); got != FaultLoseAnswer {
		t.Errorf("the matching call got %q, want lose-answer", got)
	}
	if got := f.Decide("huawei", "CopyImageCrossRegion", "cn-east-3"); got != FaultNone {
		t.Errorf("the rule outlived its count: %q", got)
	}
}

// Package emucore holds what every cloud emulator shares: the log of calls received (served on
// the admin endpoint so tests and operators can see what really reached the "provider"),
// fault injection (throttling, 5xx, latency, dropped connections) by rule or by rate, and
// progress over time for copies and rebuilds. A lost answer (the provider acted on a call but
// the client never heard back) is a fault of its own, because it is the one that tells whether
// a client that retries a start makes a second copy.
package emucore

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Call is one request an emulator received, as the admin endpoint reports it.
type Call struct {
	Seq      int       `json:"seq"`
	Time     time.Time `json:"time"`
	Provider string    `json:"provider"`
	Action   string    `json:"action"`
	// Region is the region the call acted on (source region for a copy).
	Region string `json:"region,omitempty"`
	// Params holds the key parameters (image ids, regions, desktop ids), never credentials.
	Params map[string]any `json:"params,omitempty"`
	// Outcome is what the provider did: "ok" or the error code, or "dropped" when it closed
	// the connection before acting. With Fault lose-answer it acted (an "ok" start really
	// started) but the client never got the answer.
	Outcome string `json:"outcome"`
	// HTTPStatus is the status the client received; 0 when the connection was closed instead.
	HTTPStatus int `json:"httpStatus"`
	// Fault is the fault injected into this call, if any.
	Fault FaultKind `json:"fault,omitempty"`
}

// CallLog records calls; it is safe for concurrent use.
type CallLog struct {
	mu    sync.Mutex
	calls []Call
}

// Record appends c, numbering and timestamping it.
func (l *CallLog) Record(c Call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c.Seq = len(l.calls) + 1
	if c.Time.IsZero() {
		c.Time = time.Now().UTC()
	}
	l.calls = append(l.calls, c)
}

// Calls returns a copy of the calls, optionally only those of one provider and action ("" = any).
func (l *CallLog) Calls(provider, action string) []Call {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Call
	for _, c := range l.calls {
		if (provider == "" || c.Provider == provider) && (action == "" || c.Action == action) {
			out = append(out, c)
		}
	}
	return out
}

// Reset forgets every call.
func (l *CallLog) Reset() {
	l.mu.Lock()
	l.calls = nil
	l.mu.Unlock()
}

// FaultKind is a kind of injected failure.
type FaultKind string

// Fault kinds. Each emulator renders them in its provider's own shape (Tencent
// RequestLimitExceeded inside HTTP 200, Alibaba Throttling.User with x-acs-retry-after, ...).
const (
	FaultNone     FaultKind = ""
	FaultThrottle FaultKind = "throttle"
	FaultServer   FaultKind = "server-error" // 5xx / InternalError
	FaultDrop     FaultKind = "drop"         // close the connection without answering
	FaultFailCopy FaultKind = "fail-copy"    // accept, then let the copy or rebuild fail
	// FaultLoseAnswer carries the call out (a start really starts) and then closes the
	// connection without answering: what a client sees when the answer to an accepted call
	// is lost on the way back.
	FaultLoseAnswer FaultKind = "lose-answer"
)

// Kinds lists every fault kind a rule may name.
func Kinds() []FaultKind {
	return []FaultKind{FaultThrottle, FaultServer, FaultDrop, FaultFailCopy, FaultLoseAnswer}
}

// Rule injects a fault into the next Count calls of an action ("" = every action).
type Rule struct {
	Provider string    `json:"provider,omitempty" yaml:"provider"`
	Action   string    `json:"action,omitempty" yaml:"action"`
	Kind     FaultKind `json:"kind" yaml:"kind"`
	// Count is how many calls the rule affects; 0 means every matching call.
	Count int `json:"count,omitempty" yaml:"count"`
	// Match, when set, limits the rule to calls whose key parameters mention this string
	// (an image id, a region, a desktop id).
	Match string `json:"match,omitempty" yaml:"match"`
}

// Rates injects faults at random, for soak runs and demos.
type Rates struct {
	Throttle float64 `json:"throttle,omitempty" yaml:"throttle"`
	Server   float64 `json:"server,omitempty" yaml:"server"`
	Drop     float64 `json:"drop,omitempty" yaml:"drop"`
	// FailCopy is the share of calls accepted with a copy or rebuild that will fail; it only
	// affects the calls that start one.
	FailCopy float64 `json:"failCopy,omitempty" yaml:"failCopy"`
	// LoseAnswer is the share of calls carried out whose answer is then lost.
	LoseAnswer float64 `json:"loseAnswer,omitempty" yaml:"loseAnswer"`
	// Latency is added to every call, written like every seed duration ("50ms").
	Latency Duration `json:"latency,omitempty" yaml:"latency"`
}

// Faults decides which fault, if any, a call gets. It is safe for concurrent use.
type Faults struct {
	mu    sync.Mutex
	rules []Rule
	rates Rates
	rng   *rand.Rand
}

// NewFaults returns a fault injector with fixed rates and a seeded random source, so a run
// can be repeated.
func NewFaults(rates Rates, seed uint64) *Faults {
	return &Faults{rates: rates, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Add appends rules.
func (f *Faults) Add(rules ...Rule) {
	f.mu.Lock()
	f.rules = append(f.rules, rules...)
	f.mu.Unlock()
}

// Clear removes every rule and rate.
func (f *Faults) Clear() {
	f.mu.Lock()
	f.rules, f.rates = nil, Rates{}
	f.mu.Unlock()
}

// Latency returns the configured extra latency.
func (f *Faults) Latency() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rates.Latency.Std()
}

// Decide returns the fault for one call of provider/action whose key parameters are keys.
// Rules come first (and are used up); then the random rates.
func (f *Faults) Decide(provider, action string, keys ...string) FaultKind {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.rules {
		r := &f.rules[i]
		if r.Provider != "" && r.Provider != provider || r.Action != "" && r.Action != action {
			continue
		}
		if r.Match != "" && !slices.ContainsFunc(keys, func(k string) bool { return strings.Contains(k, r.Match) }) {
			continue
		}
		kind := r.Kind
		if r.Count > 0 {
			r.Count--
			if r.Count == 0 {
				f.rules = slices.Delete(f.rules, i, i+1)
			}
		}
		return kind
	}
	if f.rng == nil {
		return FaultNone
	}
	x := f.rng.Float64()
	for _, r := range []struct {
		rate float64
		kind FaultKind
	}{
		{f.rates.Throttle, FaultThrottle}, {f.rates.Server, FaultServer}, {f.rates.Drop, FaultDrop},
		{f.rates.FailCopy, FaultFailCopy}, {f.rates.LoseAnswer, FaultLoseAnswer},
	} {
		if x < r.rate {
			return r.kind
		}
		x -= r.rate
	}
	return FaultNone
}

// Shared returns the call log and fault injector an emulator records into: the given ones, so
// that several emulators share them, or a private log and no faults for nil.
func Shared(calls *CallLog, faults *Faults) (*CallLog, *Faults) {
	if calls == nil {
		calls = &CallLog{}
	}
	if faults == nil {
		faults = &Faults{}
	}
	return calls, faults
}

// Drop closes the client connection without an HTTP answer, as a network failure would.
func Drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // net/http closes the connection on this panic
}

// Progress returns how far (0–100) a job that started at start and lasts d has come at now.
func Progress(start time.Time, d time.Duration, now time.Time) int {
	if d <= 0 {
		return 100
	}
	p := int(now.Sub(start) * 100 / d)
	return max(0, min(100, p))
}

// AdminHandler serves the admin endpoint of a set of emulators:
//
//	GET    /_admin/calls?provider=P&action=A  the calls received, as JSON
//	DELETE /_admin/calls                      forget them
//	POST   /_admin/faults                     add fault rules (a JSON array of Rule)
//	DELETE /_admin/faults                     remove every rule and rate
func AdminHandler(log *CallLog, faults *Faults) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_admin/calls", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"calls": nonNil(log.Calls(r.URL.Query().Get("provider"), r.URL.Query().Get("action")))})
	})
	mux.HandleFunc("DELETE /_admin/calls", func(w http.ResponseWriter, _ *http.Request) {
		log.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_admin/faults", func(w http.ResponseWriter, r *http.Request) {
		var rules []Rule
		if err := json.NewDecoder(r.Body).Decode(&rules); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be a JSON array of fault rules: " + err.Error()})
			return
		}
		for i, rule := range rules {
			if !slices.Contains(Kinds(), rule.Kind) {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("rule %d: unknown fault kind %q; use one of %v", i, rule.Kind, Kinds())})
				return
			}
		}
		faults.Add(rules...)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /_admin/faults", func(w http.ResponseWriter, _ *http.Request) {
		faults.Clear()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func nonNil(c []Call) []Call {
	if c == nil {
		return []Call{}
	}
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

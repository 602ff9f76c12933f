package config

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration written as text in YAML and JSON ("30s", "5m", "1h30m") rather
// than as a count of nanoseconds, so a configuration reads the way people write it.
//
// goccy/go-yaml decodes a plain time.Duration from "30s" too, but encoding/json would print
// it as nanoseconds and neither reports a bad value with its position; this type keeps YAML,
// JSON and environment variables in one format.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d as time.Duration does ("1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d as "1m30s"; YAML and JSON encoders use it.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(time.Duration(d).String()), nil
}

// UnmarshalText reads a Go duration ("30s", "1h30m"); a number without a unit is an error,
// because "30" could mean seconds or minutes.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// UnmarshalJSON reads a JSON string holding a duration.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\", got %s", b)
	}
	return d.UnmarshalText([]byte(s))
}

// parseDuration is time.ParseDuration with a message that says what a duration looks like.
func parseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (a number with a unit: ms, s, m or h)", s)
	}
	return v, nil
}

// Std converts a list of Durations, e.g. NATS.Backoff for a JetStream consumer.
func Std(ds []Duration) []time.Duration {
	if ds == nil {
		return nil
	}
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = time.Duration(d)
	}
	return out
}

package emucore

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrInvalidDuration is what decoding a Duration from something that is not a duration
// wraps, so callers can tell a bad seed value from other decoding failures with errors.Is.
var ErrInvalidDuration = errors.New("emucore: invalid duration")

// Duration is a time.Duration that reads the same from a YAML and a JSON seed file. Seeds
// write durations as Go duration strings ("3s", "1500ms"); a plain time.Duration would take
// those from YAML (goccy/go-yaml knows time.Duration) but only a number of nanoseconds from
// encoding/json. Duration accepts the string in both, through encoding.TextUnmarshaler, and
// in JSON still accepts the number of nanoseconds that JSON seeds written for a plain
// time.Duration hold. It encodes as the string. Emulators use Std to compute with it.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d as time.Duration does ("1.5s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText encodes d as a Go duration string, so seeds written out read back the same
// from YAML and JSON.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText decodes a Go duration string such as "3s", "1500ms" or "1m30s". A bare
// number is refused: time.ParseDuration needs a unit (only "0" may go without), and guessing
// one would make "3" mean 3ns in one file and 3s in a reader's head.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%w %q: expected a duration with a unit, such as \"3s\" or \"1500ms\"", ErrInvalidDuration, b)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalJSON decodes a duration string ("3s", as UnmarshalText) or a whole number of
// nanoseconds (what encoding/json makes of a time.Duration). null leaves d unchanged, as
// encoding/json does for other values, so a seed's default survives an explicit null.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		return d.UnmarshalText([]byte(s))
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("%w %s: expected a string such as \"3s\" or a whole number of nanoseconds", ErrInvalidDuration, excerpt(b))
	}
	*d = Duration(n)
	return nil
}

// excerpt keeps an error about a rejected JSON value short even when the value is a large
// object or array.
func excerpt(b []byte) string {
	const limit = 40
	if len(b) <= limit {
		return string(b)
	}
	return string(b[:limit]) + "..."
}

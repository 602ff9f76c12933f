package rules_test

import (
	"testing"
	"time"

	"github.com/imagerelay/imagerelay/functions/rebuild/rules"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestMaintenanceWindow(t *testing.T) {
	sh := mustZone(t, "Asia/Shanghai")
	ny := mustZone(t, "America/New_York")
	utc := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, time.UTC) }
	in := func(loc *time.Location, y int, m time.Month, d, h, min int) time.Time {
		return time.Date(y, m, d, h, min, 0, 0, loc)
	}
	office := mustWindow(t, rules.WindowSpec{Start: "09:00", End: "17:00"})
	night := mustWindow(t, rules.WindowSpec{Start: "22:00", End: "06:00", TimeZone: "Asia/Shanghai"})
	friNight := mustWindow(t, rules.WindowSpec{Start: "22:00", End: "02:00", TimeZone: "Asia/Shanghai", Days: []string{"Fri"}})
	sunNight := mustWindow(t, rules.WindowSpec{Start: "23:00", End: "01:00", Days: []string{"sunday"}})
	toMidnight := mustWindow(t, rules.WindowSpec{Start: "22:00", End: "00:00"})
	dst := mustWindow(t, rules.WindowSpec{Start: "01:00", End: "03:00", TimeZone: "America/New_York"})
	weekdays := mustWindow(t, rules.WindowSpec{Start: "09:00", End: "17:00", Days: []string{"Mon", "Tue", "Wed", "Thu", "Fri"}})

	// 2024-03-01 is a Friday.
	tests := []struct {
		name string
		w    *rules.Window
		at   time.Time
		open bool
		next time.Time // zero = same as at
	}{
		{"before office", office, utc(2024, 3, 1, 8, 59), false, utc(2024, 3, 1, 9, 0)},
		{"office opens", office, utc(2024, 3, 1, 9, 0), true, time.Time{}},
		{"office last minute", office, utc(2024, 3, 1, 16, 59), true, time.Time{}},
		{"office closes", office, utc(2024, 3, 1, 17, 0), false, utc(2024, 3, 2, 9, 0)},

		{"night before midnight", night, in(sh, 2024, 3, 1, 23, 30), true, time.Time{}},
		{"night after midnight", night, in(sh, 2024, 3, 2, 5, 59), true, time.Time{}},
		{"night closes", night, in(sh, 2024, 3, 2, 6, 0), false, in(sh, 2024, 3, 2, 22, 0)},
		{"night in another zone", night, utc(2024, 3, 1, 15, 0), true, time.Time{}}, // 23:00 Shanghai
		{"night closed in UTC terms", night, utc(2024, 3, 1, 13, 59), false, utc(2024, 3, 1, 14, 0)},

		{"fri night opens friday", friNight, in(sh, 2024, 3, 1, 22, 0), true, time.Time{}},
		{"fri night runs into saturday", friNight, in(sh, 2024, 3, 2, 1, 59), true, time.Time{}},
		{"fri night closed saturday 02:00", friNight, in(sh, 2024, 3, 2, 2, 0), false, in(sh, 2024, 3, 8, 22, 0)},
		{"saturday night is not friday", friNight, in(sh, 2024, 3, 2, 23, 0), false, in(sh, 2024, 3, 8, 22, 0)},
		{"thursday after midnight is not friday's", friNight, in(sh, 2024, 2, 29, 1, 0), false, in(sh, 2024, 3, 1, 22, 0)},
		{"friday before opening", friNight, in(sh, 2024, 3, 1, 21, 0), false, in(sh, 2024, 3, 1, 22, 0)},

		{"sunday window into monday", sunNight, utc(2024, 3, 4, 0, 30), true, time.Time{}},
		{"monday after it closed", sunNight, utc(2024, 3, 4, 1, 0), false, utc(2024, 3, 10, 23, 0)},

		{"ends at midnight: last minute", toMidnight, utc(2024, 3, 1, 23, 59), true, time.Time{}},
		{"ends at midnight: closed at 00:00", toMidnight, utc(2024, 3, 2, 0, 0), false, utc(2024, 3, 2, 22, 0)},

		// 2024-03-10: New York springs forward at 02:00 EST to 03:00 EDT.
		{"dst day, 01:30 EST", dst, utc(2024, 3, 10, 6, 30), true, time.Time{}},
		{"dst day, 03:30 EDT", dst, utc(2024, 3, 10, 7, 30), false, in(ny, 2024, 3, 11, 1, 0)},
		{"dst next day is 05:00 UTC", dst, utc(2024, 3, 10, 8, 0), false, utc(2024, 3, 11, 5, 0)},

		{"weekend skips to monday", weekdays, utc(2024, 3, 2, 12, 0), false, utc(2024, 3, 4, 9, 0)},
		{"friday evening skips weekend", weekdays, utc(2024, 3, 1, 18, 0), false, utc(2024, 3, 4, 9, 0)},

		{"nil window is always open", (*rules.Window)(nil), utc(2024, 3, 1, 3, 0), true, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.w.Open(tt.at); got != tt.open {
				t.Errorf("Open(%s) = %v, want %v", tt.at, got, tt.open)
			}
			want := tt.next
			if want.IsZero() {
				want = tt.at
			}
			got := tt.w.NextOpen(tt.at)
			if !got.Equal(want) {
				t.Errorf("NextOpen(%s) = %s, want %s", tt.at, got, want)
			}
			if got.Location() != tt.at.Location() {
				t.Errorf("NextOpen changed the location to %s", got.Location())
			}
			if !tt.w.Open(got) {
				t.Errorf("window is not open at NextOpen %s", got)
			}
			if got.Before(tt.at) {
				t.Errorf("NextOpen %s is before %s", got, tt.at)
			}
		})
	}
}

func TestMaintenanceWindowMalformed(t *testing.T) {
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		spec  rules.WindowSpec
		field rules.WindowField
		index int
	}{
		{rules.WindowSpec{Start: "9:00", End: "17:00"}, rules.WindowStart, 0},
		{rules.WindowSpec{Start: "09:00", End: "24:00"}, rules.WindowEnd, 0},
		{rules.WindowSpec{Start: "09:00", End: "09:00"}, rules.WindowEnd, 0},
		{rules.WindowSpec{Start: "00:00", End: "23:59", TimeZone: "Nowhere/Land"}, rules.WindowTimeZone, 0},
		{rules.WindowSpec{Start: "00:00", End: "23:59", Days: []string{"Mon", "Someday"}}, rules.WindowDays, 1},
	} {
		w, problems := rules.ParseWindow(tt.spec)
		if len(problems) != 1 || problems[0].Field != tt.field || problems[0].Index != tt.index || problems[0].Fix == "" {
			t.Errorf("%+v: problems %+v, want one in field %d at %d with a fix", tt.spec, problems, tt.field, tt.index)
		}
		// A window with problems never opens, so a policy that slipped past validation
		// rebuilds nothing.
		if w.Open(now) {
			t.Errorf("%+v is open", tt.spec)
		}
		if got := w.NextOpen(now); !got.IsZero() {
			t.Errorf("%+v NextOpen = %s", tt.spec, got)
		}
	}
}

func TestParseClock(t *testing.T) {
	// 00:00 to 23:59 is a one-minute-short day: open at its last minute, closed at midnight.
	day := mustWindow(t, rules.WindowSpec{Start: "00:00", End: "23:59"})
	if at := time.Date(2024, 3, 1, 23, 58, 0, 0, time.UTC); !day.Open(at) {
		t.Errorf("00:00-23:59 closed at %s", at)
	}
	if at := time.Date(2024, 3, 1, 23, 59, 0, 0, time.UTC); day.Open(at) {
		t.Errorf("00:00-23:59 open at %s", at)
	}
	half := mustWindow(t, rules.WindowSpec{Start: "06:30", End: "07:00"})
	if at := time.Date(2024, 3, 1, 6, 29, 0, 0, time.UTC); half.Open(at) || !half.Open(at.Add(time.Minute)) {
		t.Errorf("06:30 is not read as half past six")
	}
	for _, in := range []string{"", "6:30", "06:3", "24:00", "12:60", "ab:cd", "12-30", "+1:00"} {
		if _, problems := rules.ParseWindow(rules.WindowSpec{Start: in, End: "01:00"}); len(problems) == 0 || problems[0].Field != rules.WindowStart {
			t.Errorf("start %q accepted", in)
		}
	}
}

// mustWindow parses a window the test knows to be well formed.
func mustWindow(t *testing.T, s rules.WindowSpec) *rules.Window {
	t.Helper()
	w, problems := rules.ParseWindow(s)
	if len(problems) > 0 {
		t.Fatalf("window %+v: %v", s, problems)
	}
	return w
}

package config

import (
	"fmt"
	"strings"
	"time"
)

// MaintenanceWindow is a daily period in which desktops may be rebuilt, in a given time zone.
// A window whose End is not after its Start runs across midnight (22:00–02:00), and then Days
// name the day the window opens on: a Fri 22:00–02:00 window is open until Saturday 02:00.
type MaintenanceWindow struct {
	// Start is the opening time, "HH:MM" (24-hour clock).
	Start string `yaml:"start" json:"start"`
	// End is the closing time, "HH:MM"; the window is open up to but excluding End.
	End string `yaml:"end" json:"end"`
	// TimeZone is an IANA zone name such as "Asia/Shanghai"; empty means UTC.
	TimeZone string `yaml:"timeZone" json:"timeZone,omitempty"`
	// Days are the days the window opens on (Mon, Tue, Wed, Thu, Fri, Sat, Sun); empty means
	// every day.
	Days []string `yaml:"days,omitempty" json:"days,omitempty"`
}

// Open reports whether t falls inside the window. A nil window is always open. A window with
// a malformed field (one that validation would reject) is never open.
func (w *MaintenanceWindow) Open(t time.Time) bool {
	if w == nil {
		return true
	}
	s, err := w.parse()
	if err != nil {
		return false
	}
	local := t.In(s.loc)
	y, m, d := local.Date()
	// Only today's window or, for one across midnight, yesterday's can contain t.
	for _, off := range []int{0, -1} {
		from, to, ok := s.occurrence(y, m, d+off)
		if ok && !local.Before(from) && local.Before(to) {
			return true
		}
	}
	return false
}

// NextOpen returns the earliest instant at or after t when the window is open: t itself when
// it already is, otherwise the next opening. A nil window returns t. A malformed window
// returns the zero time.
func (w *MaintenanceWindow) NextOpen(t time.Time) time.Time {
	if w == nil || w.Open(t) {
		return t
	}
	s, err := w.parse()
	if err != nil {
		return time.Time{}
	}
	local := t.In(s.loc)
	y, m, d := local.Date()
	// Every weekday comes round within 7 days; the extra day covers a window that opened
	// today before t.
	for off := 0; off <= 8; off++ {
		from, _, ok := s.occurrence(y, m, d+off)
		if ok && from.After(t) {
			return from.In(t.Location())
		}
	}
	return time.Time{}
}

// windowSpec is a MaintenanceWindow parsed into numbers.
type windowSpec struct {
	startMin, endMin int
	loc              *time.Location
	days             [7]bool // indexed by time.Weekday
}

// occurrence returns the window that opens on the given calendar day (which time.Date
// normalises, so d may be out of range) and whether it opens that day at all. Times are wall
// clock times in the window's zone, so a window keeps its local hours across DST changes.
func (s windowSpec) occurrence(y int, m time.Month, d int) (from, to time.Time, ok bool) {
	day := time.Date(y, m, d, 12, 0, 0, 0, s.loc) // noon: never skipped by a DST change.
	if !s.days[day.Weekday()] {
		return time.Time{}, time.Time{}, false
	}
	y, m, d = day.Date()
	from = time.Date(y, m, d, s.startMin/60, s.startMin%60, 0, 0, s.loc)
	endDay := d
	if s.endMin <= s.startMin {
		endDay++
	}
	to = time.Date(y, m, endDay, s.endMin/60, s.endMin%60, 0, 0, s.loc)
	return from, to, true
}

// parse converts the window, failing on its first problem.
func (w *MaintenanceWindow) parse() (windowSpec, error) {
	s, problems := w.check()
	if len(problems) > 0 {
		return s, problems[0]
	}
	return s, nil
}

// check converts the window and lists every problem in it, each naming its field, for
// validation.
func (w *MaintenanceWindow) check() (windowSpec, []*windowError) {
	var s windowSpec
	var problems []*windowError
	var err error
	if s.startMin, err = parseClock(w.Start); err != nil {
		problems = append(problems, &windowError{field: "start", msg: err.Error(), fix: `write the opening time as "HH:MM", e.g. "22:00"`})
	}
	if s.endMin, err = parseClock(w.End); err != nil {
		problems = append(problems, &windowError{field: "end", msg: err.Error(), fix: `write the closing time as "HH:MM", e.g. "06:00"`})
	}
	if len(problems) == 0 && s.startMin == s.endMin {
		problems = append(problems, &windowError{field: "end", msg: fmt.Sprintf("window starts and ends at %s, so it is empty", w.Start), fix: "set a different end time, or remove the window to allow rebuilds at any time"})
	}
	s.loc = time.UTC
	if w.TimeZone != "" {
		if s.loc, err = time.LoadLocation(w.TimeZone); err != nil {
			s.loc = time.UTC
			problems = append(problems, &windowError{field: "timeZone", msg: fmt.Sprintf("%q is not an IANA time zone", w.TimeZone), fix: `use a zone name such as "Asia/Shanghai", "Europe/Berlin" or "UTC"`})
		}
	}
	if len(w.Days) == 0 {
		for i := range s.days {
			s.days[i] = true
		}
	}
	for i, d := range w.Days {
		wd, ok := parseWeekday(d)
		if !ok {
			problems = append(problems, &windowError{field: "days", index: i, msg: fmt.Sprintf("%q is not a day of the week", d), fix: "use Mon, Tue, Wed, Thu, Fri, Sat or Sun"})
			continue
		}
		s.days[wd] = true
	}
	return s, problems
}

// windowError locates a problem inside a window for validation.
type windowError struct {
	field string
	index int // for days
	msg   string
	fix   string
}

func (e *windowError) Error() string { return e.field + ": " + e.msg }

// parseClock reads "HH:MM" into minutes after midnight.
func parseClock(s string) (int, error) {
	var h, m int
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("%q is not a time of day (HH:MM)", s)
	}
	for i, c := range s {
		if i != 2 && (c < '0' || c > '9') {
			return 0, fmt.Errorf("%q is not a time of day (HH:MM)", s)
		}
	}
	h = int(s[0]-'0')*10 + int(s[1]-'0')
	m = int(s[3]-'0')*10 + int(s[4]-'0')
	if h > 23 || m > 59 {
		return 0, fmt.Errorf("%q is not a time of day (00:00 to 23:59)", s)
	}
	return h*60 + m, nil
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday,
	"wednesday": time.Wednesday, "thursday": time.Thursday, "friday": time.Friday,
	"saturday": time.Saturday,
}

// parseWeekday accepts "Mon".."Sun" and full names, in any case.
func parseWeekday(s string) (time.Weekday, bool) {
	d, ok := weekdays[strings.ToLower(strings.TrimSpace(s))]
	return d, ok
}

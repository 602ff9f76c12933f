package rules

import (
	"fmt"
	"strings"
	"time"

	// The maintenance-window time zones must resolve on every runtime, including minimal
	// Lambda and Function Compute images that ship without /usr/share/zoneinfo.
	_ "time/tzdata"
)

// Window is a daily maintenance window in a time zone, parsed by [ParseWindow]. A window whose
// end is not after its start runs across midnight (22:00–02:00), and then its days name the
// day the window opens on: a Fri 22:00–02:00 window is open until Saturday 02:00. A nil
// *Window is always open.
type Window struct {
	startMin, endMin int
	loc              *time.Location
	days             [7]bool // indexed by time.Weekday
	// broken is set for a window written with problems: it never opens.
	broken bool
}

// WindowSpec is a maintenance window as it is written (in the configuration file).
type WindowSpec struct {
	// Start is the opening time, "HH:MM" (24-hour clock).
	Start string
	// End is the closing time, "HH:MM"; the window is open up to but excluding End.
	End string
	// TimeZone is an IANA zone name such as "Asia/Shanghai"; empty means UTC.
	TimeZone string
	// Days are the days the window opens on (Mon..Sun or full names, any case); empty means
	// every day.
	Days []string
}

// WindowField names the part of a WindowSpec a problem is in.
type WindowField int

// The fields of a WindowSpec.
const (
	WindowStart WindowField = iota
	WindowEnd
	WindowTimeZone
	WindowDays
)

// WindowProblem is one problem in a WindowSpec, located by field (and, for Days, by index),
// with what is wrong and how to fix it, so the configuration loader can point at the line.
type WindowProblem struct {
	Field WindowField
	// Index is the position in Days of a problem with one day.
	Index int
	// Problem says what is wrong; Fix how to put it right.
	Problem, Fix string
}

// Error returns the problem.
func (p WindowProblem) Error() string { return p.Problem }

// ParseWindow parses s and lists every problem in it. The window is returned even when there
// are problems: such a window never opens, so a policy that slipped past validation waits for
// nothing and its rollout stops with a reason instead of rebuilding at the wrong time.
func ParseWindow(s WindowSpec) (*Window, []WindowProblem) {
	w := &Window{loc: time.UTC}
	var problems []WindowProblem
	var err error
	if w.startMin, err = parseClock(s.Start); err != nil {
		problems = append(problems, WindowProblem{Field: WindowStart, Problem: err.Error(), Fix: `write the opening time as "HH:MM", e.g. "22:00"`})
	}
	if w.endMin, err = parseClock(s.End); err != nil {
		problems = append(problems, WindowProblem{Field: WindowEnd, Problem: err.Error(), Fix: `write the closing time as "HH:MM", e.g. "06:00"`})
	}
	if len(problems) == 0 && w.startMin == w.endMin {
		problems = append(problems, WindowProblem{Field: WindowEnd, Problem: fmt.Sprintf("window starts and ends at %s, so it is empty", s.Start),
			Fix: "set a different end time, or remove the window to allow rebuilds at any time"})
	}
	if s.TimeZone != "" {
		if w.loc, err = time.LoadLocation(s.TimeZone); err != nil {
			w.loc = time.UTC
			problems = append(problems, WindowProblem{Field: WindowTimeZone, Problem: fmt.Sprintf("%q is not an IANA time zone", s.TimeZone),
				Fix: `use a zone name such as "Asia/Shanghai", "Europe/Berlin" or "UTC"`})
		}
	}
	if len(s.Days) == 0 {
		for i := range w.days {
			w.days[i] = true
		}
	}
	for i, d := range s.Days {
		wd, ok := parseWeekday(d)
		if !ok {
			problems = append(problems, WindowProblem{Field: WindowDays, Index: i, Problem: fmt.Sprintf("%q is not a day of the week", d),
				Fix: "use Mon, Tue, Wed, Thu, Fri, Sat or Sun"})
			continue
		}
		w.days[wd] = true
	}
	w.broken = len(problems) > 0
	return w, problems
}

// Open reports whether t falls inside the window. A nil window is always open; a window
// parsed with problems never is.
func (w *Window) Open(t time.Time) bool {
	if w == nil {
		return true
	}
	if w.broken {
		return false
	}
	local := t.In(w.loc)
	y, m, d := local.Date()
	// Only today's window or, for one across midnight, yesterday's can contain t.
	for _, off := range []int{0, -1} {
		from, to, ok := w.occurrence(y, m, d+off)
		if ok && !local.Before(from) && local.Before(to) {
			return true
		}
	}
	return false
}

// NextOpen returns the earliest instant at or after t when the window is open: t itself when
// it already is, otherwise the next opening, in t's location. A nil window returns t; a
// window that never opens returns the zero time.
func (w *Window) NextOpen(t time.Time) time.Time {
	if w == nil || w.Open(t) {
		return t
	}
	if w.broken {
		return time.Time{}
	}
	local := t.In(w.loc)
	y, m, d := local.Date()
	// Every weekday comes round within 7 days; the extra day covers a window that opened
	// today before t.
	for off := 0; off <= 8; off++ {
		from, _, ok := w.occurrence(y, m, d+off)
		if ok && from.After(t) {
			return from.In(t.Location())
		}
	}
	return time.Time{}
}

// occurrence returns the window that opens on the given calendar day (which time.Date
// normalises, so d may be out of range) and whether it opens that day at all. Times are wall
// clock times in the window's zone, so a window keeps its local hours across DST changes.
func (w *Window) occurrence(y int, m time.Month, d int) (from, to time.Time, ok bool) {
	day := time.Date(y, m, d, 12, 0, 0, 0, w.loc) // noon: never skipped by a DST change.
	if !w.days[day.Weekday()] {
		return time.Time{}, time.Time{}, false
	}
	y, m, d = day.Date()
	from = time.Date(y, m, d, w.startMin/60, w.startMin%60, 0, 0, w.loc)
	endDay := d
	if w.endMin <= w.startMin {
		endDay++
	}
	to = time.Date(y, m, endDay, w.endMin/60, w.endMin%60, 0, 0, w.loc)
	return from, to, true
}

// parseClock reads "HH:MM" into minutes after midnight.
func parseClock(s string) (int, error) {
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("%q is not a time of day (HH:MM)", s)
	}
	for i, c := range s {
		if i != 2 && (c < '0' || c > '9') {
			return 0, fmt.Errorf("%q is not a time of day (HH:MM)", s)
		}
	}
	h := int(s[0]-'0')*10 + int(s[1]-'0')
	m := int(s[3]-'0')*10 + int(s[4]-'0')
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

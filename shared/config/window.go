package config

import "github.com/imagerelay/imagerelay/functions/rebuild/rules"

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

// Spec returns the window as the rebuild core reads it; [rules.ParseWindow] parses and
// checks it (validation reports its problems, the composition root hands the parsed window
// to the core), so the window rules exist once, in the core.
func (w MaintenanceWindow) Spec() rules.WindowSpec {
	return rules.WindowSpec{Start: w.Start, End: w.End, TimeZone: w.TimeZone, Days: w.Days}
}

package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	// The image has no tzdata: the windows' time zones come from the binary.
	_ "time/tzdata"
)

// Schedule is a maintenance window: weekly spans of local wall-clock time
// in one IANA time zone, or always open.
//
//	Mon-Fri 02:00-05:00 Europe/Berlin
//	Sat,Sun 22:00-06:00 America/New_York   (ends the next morning)
//	Daily 00:00-24:00 UTC
//	always
//
// Times are wall-clock times of the zone, so a window keeps its local hours
// across daylight-saving changes: on the night clocks go forward it is an
// hour shorter if it spans the gap, on the night they go back an hour longer.
type Schedule struct {
	text   string
	always bool
	days   [7]bool // indexed by time.Weekday: the day a span starts on
	start  int     // minutes after local midnight
	end    int     // minutes after the start day's midnight; > start, may pass 24:00
	loc    *time.Location
}

func (s *Schedule) String() string { return s.text }

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseSchedule reads a window; see Schedule.
func ParseSchedule(text string) (*Schedule, error) {
	s := &Schedule{text: strings.TrimSpace(text)}
	if strings.EqualFold(s.text, "always") {
		s.always = true
		return s, nil
	}
	f := strings.Fields(s.text)
	if len(f) != 3 {
		return nil, fmt.Errorf("%q: want \"DAYS HH:MM-HH:MM TIMEZONE\" (e.g. \"Mon-Fri 02:00-05:00 Europe/Berlin\") or \"always\"", text)
	}
	if err := s.parseDays(f[0]); err != nil {
		return nil, fmt.Errorf("%q: %v", text, err)
	}
	from, to, ok := strings.Cut(f[1], "-")
	if !ok {
		return nil, fmt.Errorf("%q: the hours must be HH:MM-HH:MM, not %q", text, f[1])
	}
	var err error
	if s.start, err = parseClock(from, false); err != nil {
		return nil, fmt.Errorf("%q: %v", text, err)
	}
	if s.end, err = parseClock(to, true); err != nil {
		return nil, fmt.Errorf("%q: %v", text, err)
	}
	if s.end == s.start {
		return nil, fmt.Errorf("%q: the window is empty (it starts when it ends); use 00:00-24:00 for whole days", text)
	}
	if s.end < s.start {
		s.end += 24 * 60 // over midnight, into the next day
	}
	if f[2] == "Local" || f[2] == "" {
		return nil, fmt.Errorf("%q: name an IANA time zone (e.g. Europe/Berlin or UTC), not the server's local time", text)
	}
	if s.loc, err = time.LoadLocation(f[2]); err != nil {
		return nil, fmt.Errorf("%q: unknown time zone %q (an IANA name such as Europe/Berlin or UTC)", text, f[2])
	}
	return s, nil
}

func (s *Schedule) parseDays(spec string) error {
	if strings.EqualFold(spec, "daily") || spec == "*" {
		for i := range s.days {
			s.days[i] = true
		}
		return nil
	}
	for part := range strings.SplitSeq(spec, ",") {
		a, b, isRange := strings.Cut(part, "-")
		da, ok := dayNames[strings.ToLower(a)]
		if !ok {
			return fmt.Errorf("unknown day %q (Mon, Tue, Wed, Thu, Fri, Sat, Sun, ranges like Mon-Fri, lists like Sat,Sun, or Daily)", a)
		}
		db := da
		if isRange {
			if db, ok = dayNames[strings.ToLower(b)]; !ok {
				return fmt.Errorf("unknown day %q (Mon, Tue, Wed, Thu, Fri, Sat, Sun)", b)
			}
		}
		for d := da; ; d = (d + 1) % 7 {
			s.days[d] = true
			if d == db {
				break
			}
		}
	}
	return nil
}

func parseClock(v string, isEnd bool) (int, error) {
	h, m, ok := strings.Cut(v, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || len(h) != 2 || len(m) != 2 || err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && (mm != 0 || !isEnd)) {
		return 0, fmt.Errorf("%q is not a time of day HH:MM (00:00-23:59, or 24:00 as an end)", v)
	}
	return hh*60 + mm, nil
}

// span is one occurrence of the window, as instants.
func (s *Schedule) span(day time.Time) (from, to time.Time) {
	y, m, d := day.Date()
	// time.Date normalises a wall time that does not exist (the hour
	// skipped when clocks go forward) to the instant after the gap.
	from = earliest(time.Date(y, m, d, s.start/60, s.start%60, 0, 0, s.loc))
	to = time.Date(y, m, d, s.end/60, s.end%60, 0, 0, s.loc)
	return from, to
}

// earliest is the first instant showing t's wall-clock time: when clocks go
// back, a time of day happens twice and time.Date may pick the second, but
// a window opens at the first.
func earliest(t time.Time) time.Time {
	wall := func(v time.Time) [5]int {
		v = v.In(t.Location())
		return [5]int{v.Year(), int(v.Month()), v.Day(), v.Hour(), v.Minute()}
	}
	best := t
	for _, back := range []time.Duration{30 * time.Minute, time.Hour, 2 * time.Hour} {
		if c := t.Add(-back); wall(c) == wall(t) {
			best = c
		}
	}
	return best
}

// Open reports whether the window is open at t; if not, next is when it
// next opens.
func (s *Schedule) Open(t time.Time) (open bool, next time.Time) {
	if s.always {
		return true, t
	}
	local := t.In(s.loc)
	y, m, d := local.Date()
	base := time.Date(y, m, d, 12, 0, 0, 0, s.loc)
	// Yesterday's span may run past midnight into today; eight days ahead
	// covers a window open one day a week.
	for i := -1; i <= 8; i++ {
		day := base.AddDate(0, 0, i)
		if !s.days[day.Weekday()] {
			continue
		}
		from, to := s.span(day)
		if !t.Before(from) && t.Before(to) {
			return true, t
		}
		if from.After(t) && (next.IsZero() || from.Before(next)) {
			next = from
		}
	}
	return false, next
}

package policy

import (
	"strings"
	"testing"
	"time"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestParseScheduleErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Mon-Fri 02:00-05:00", "want \"DAYS HH:MM-HH:MM TIMEZONE\""},
		{"Mon-Fry 02:00-05:00 UTC", "unknown day \"Fry\""},
		{"Mon-Fri 2:00-05:00 UTC", "not a time of day"},
		{"Mon-Fri 02:00-25:00 UTC", "not a time of day"},
		{"Mon-Fri 24:00-05:00 UTC", "not a time of day"},
		{"Mon-Fri 02:00-02:00 UTC", "the window is empty"},
		{"Mon-Fri 02:00-05:00 Mars/Olympus", "unknown time zone"},
		{"Mon-Fri 02:00-05:00 Local", "IANA time zone"},
		{"Mon-Fri 0200-0500 UTC", "not a time of day"},
	} {
		_, err := ParseSchedule(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSchedule(%q) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
	for _, ok := range []string{"always", "Always", "Daily 00:00-24:00 UTC", "Sat,Sun 22:00-06:00 America/New_York", "Fri-Mon 01:30-02:45 Asia/Tokyo", "* 10:00-11:00 UTC"} {
		if _, err := ParseSchedule(ok); err != nil {
			t.Errorf("ParseSchedule(%q): %v", ok, err)
		}
	}
}

func mustSchedule(t *testing.T, s string) *Schedule {
	t.Helper()
	sch, err := ParseSchedule(s)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

type probe struct {
	at   time.Time
	open bool
	next time.Time // checked when closed
}

func checkProbes(t *testing.T, s *Schedule, probes []probe) {
	t.Helper()
	for _, p := range probes {
		open, next := s.Open(p.at)
		if open != p.open {
			t.Errorf("%s at %s (%s UTC): open=%v, want %v", s, p.at, p.at.UTC().Format(time.RFC3339), open, p.open)
			continue
		}
		if !open && !next.Equal(p.next) {
			t.Errorf("%s at %s: next opens %s, want %s", s, p.at, next, p.next)
		}
	}
}

// Europe/Berlin: clocks go forward on 2026-03-29 at 02:00 (to 03:00 CEST)
// and back on 2026-10-25 at 03:00 (to 02:00 CET).
func TestScheduleAcrossDSTBerlin(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	s := mustSchedule(t, "Daily 02:00-05:00 Europe/Berlin")
	checkProbes(t, s, []probe{
		// A normal winter night: 02:00 CET is 01:00 UTC.
		{at: utc("2026-03-28T00:59:00Z"), open: false, next: utc("2026-03-28T01:00:00Z")},
		{at: utc("2026-03-28T01:00:00Z"), open: true},
		{at: utc("2026-03-28T03:59:00Z"), open: true},
		{at: utc("2026-03-28T04:00:00Z"), open: false, next: time.Date(2026, 3, 29, 2, 0, 0, 0, berlin)},
		// The spring night: 02:00 local does not exist; the window opens at
		// 03:00 CEST (01:00 UTC) and closes at 05:00 CEST (03:00 UTC): two hours.
		{at: utc("2026-03-29T00:59:00Z"), open: false, next: utc("2026-03-29T01:00:00Z")},
		{at: utc("2026-03-29T01:00:00Z"), open: true},
		{at: utc("2026-03-29T02:59:00Z"), open: true},
		{at: utc("2026-03-29T03:00:00Z"), open: false, next: utc("2026-03-30T00:00:00Z")},
		// Summer: 02:00 CEST is 00:00 UTC.
		{at: utc("2026-07-01T00:00:00Z"), open: true},
		{at: utc("2026-07-01T03:00:00Z"), open: false, next: utc("2026-07-02T00:00:00Z")},
		// The autumn night: 02:00-03:00 happens twice; the window runs from
		// 02:00 CEST (00:00 UTC) to 05:00 CET (04:00 UTC): four hours.
		{at: utc("2026-10-24T23:59:00Z"), open: false, next: utc("2026-10-25T00:00:00Z")},
		{at: utc("2026-10-25T00:30:00Z"), open: true},
		{at: utc("2026-10-25T01:30:00Z"), open: true},
		{at: utc("2026-10-25T03:59:00Z"), open: true},
		{at: utc("2026-10-25T04:00:00Z"), open: false, next: utc("2026-10-26T01:00:00Z")},
	})
}

// America/New_York: forward on 2026-03-08 at 02:00 (EST→EDT), back on
// 2026-11-01 at 02:00 (EDT→EST). A weekend window over midnight.
func TestScheduleAcrossDSTNewYork(t *testing.T) {
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	s := mustSchedule(t, "Sat 22:00-06:00 America/New_York")
	checkProbes(t, s, []probe{
		// Saturday 2026-03-07 22:00 EST = 03:00 UTC Sunday; Sunday 06:00 EDT
		// = 10:00 UTC (clocks went forward in between: 7 hours).
		{at: utc("2026-03-08T02:59:00Z"), open: false, next: utc("2026-03-08T03:00:00Z")},
		{at: utc("2026-03-08T03:00:00Z"), open: true},
		{at: utc("2026-03-08T09:59:00Z"), open: true},
		{at: utc("2026-03-08T10:00:00Z"), open: false, next: utc("2026-03-15T02:00:00Z")},
		// Saturday 2026-10-31 22:00 EDT = 02:00 UTC; Sunday 06:00 EST = 11:00 UTC (9 hours).
		{at: utc("2026-11-01T01:59:00Z"), open: false, next: utc("2026-11-01T02:00:00Z")},
		{at: utc("2026-11-01T10:59:00Z"), open: true},
		{at: utc("2026-11-01T11:00:00Z"), open: false, next: utc("2026-11-08T03:00:00Z")},
		// Wednesday: closed, next Saturday.
		{at: utc("2026-11-04T12:00:00Z"), open: false, next: utc("2026-11-08T03:00:00Z")},
	})
}

func TestScheduleWeekdaysAndAlways(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	s := mustSchedule(t, "Mon-Fri 02:00-05:00 Europe/Berlin")
	// Friday 2026-12-04 06:00: next is Monday 02:00.
	checkProbes(t, s, []probe{
		{at: time.Date(2026, 12, 4, 6, 0, 0, 0, berlin), open: false, next: time.Date(2026, 12, 7, 2, 0, 0, 0, berlin)},
		{at: time.Date(2026, 12, 5, 3, 0, 0, 0, berlin), open: false, next: time.Date(2026, 12, 7, 2, 0, 0, 0, berlin)},
		{at: time.Date(2026, 12, 7, 4, 59, 0, 0, berlin), open: true},
	})
	if open, _ := mustSchedule(t, "always").Open(time.Now()); !open {
		t.Fatal("always is not open")
	}
}

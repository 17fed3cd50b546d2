package console

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MarkerPrefix starts every marker line the guest prints.
const MarkerPrefix = "@@lab:"

// Exit statuses of a guest test script.
const (
	StatusPass = 0
	StatusSkip = 77
)

// Outcome is a test's verdict.
type Outcome string

const (
	Pass       Outcome = "PASS"
	Fail       Outcome = "FAIL"
	Skip       Outcome = "SKIP"
	NotReached Outcome = "FAIL (not reached)"
	Unfinished Outcome = "FAIL (unfinished)" // started, never ended: hang, crash or timeout
)

// Result is one test's outcome as seen on the console.
type Result struct {
	Test     string
	Outcome  Outcome
	Status   int // the script's exit status, -1 if it never ended
	Duration time.Duration
	Output   []string // console lines printed while it ran
	// Crashed: the guest kernel printed a crash line while the test ran;
	// the test fails whatever its exit status.
	Crashed bool
}

// crashPatterns are the kernel's own words for "something is badly wrong".
var crashPatterns = []string{"BUG:", "Oops", "blocked for more than", "Kernel panic", "general protection fault", "double fault"}

// Session accumulates what a console shows during one boot.
type Session struct {
	now func() time.Time

	Kernel  string   // from the boot marker
	Results []Result // in the order the tests ended
	Crashes []string // console lines that show a kernel crash
	Done    bool     // the guest printed the done marker

	current *Result
	started time.Time
}

// NewSession starts an empty session; now may be nil for time.Now.
func NewSession(now func() time.Time) *Session {
	if now == nil {
		now = time.Now
	}
	return &Session{now: now}
}

// Running names the test currently running, or "".
func (s *Session) Running() string {
	if s.current == nil {
		return ""
	}
	return s.current.Test
}

// Line feeds one console line (without its newline) to the session. It
// returns the result of a test that just ended, or nil.
func (s *Session) Line(line string) (*Result, error) {
	line = strings.TrimRight(line, "\r")
	for _, p := range crashPatterns {
		if strings.Contains(line, p) {
			s.Crashes = append(s.Crashes, line)
			if s.current != nil {
				s.current.Crashed = true
			}
			break
		}
	}
	i := strings.Index(line, MarkerPrefix)
	if i < 0 {
		if s.current != nil {
			s.current.Output = append(s.current.Output, line)
		}
		return nil, nil
	}
	fields := strings.Fields(line[i+len(MarkerPrefix):])
	if len(fields) == 0 {
		return nil, fmt.Errorf("empty marker line %q", line)
	}
	switch fields[0] {
	case "boot":
		if len(fields) > 1 {
			s.Kernel = fields[1]
		}
	case "begin":
		if len(fields) != 2 {
			return nil, fmt.Errorf("malformed begin marker %q", line)
		}
		s.current = &Result{Test: fields[1], Status: -1}
		s.started = s.now()
	case "end":
		if len(fields) != 3 {
			return nil, fmt.Errorf("malformed end marker %q", line)
		}
		status, err := strconv.Atoi(fields[2])
		if err != nil {
			return nil, fmt.Errorf("malformed exit status in %q: %w", line, err)
		}
		if s.current == nil || s.current.Test != fields[1] {
			return nil, fmt.Errorf("end marker for %s, but the running test is %q", fields[1], s.Running())
		}
		r := *s.current
		r.Status = status
		r.Duration = s.now().Sub(s.started)
		switch {
		case r.Crashed:
			r.Outcome = Fail
		case status == StatusPass:
			r.Outcome = Pass
		case status == StatusSkip:
			r.Outcome = Skip
		default:
			r.Outcome = Fail
		}
		s.Results = append(s.Results, r)
		s.current = nil
		return &s.Results[len(s.Results)-1], nil
	case "done":
		s.Done = true
	default:
		return nil, fmt.Errorf("unknown marker %q", line)
	}
	return nil, nil
}

// Finish closes the session after the console ended: the test that was
// running and every planned test that never started count as failures.
func (s *Session) Finish(planned []string) {
	seen := map[string]bool{}
	for _, r := range s.Results {
		seen[r.Test] = true
	}
	if s.current != nil {
		r := *s.current
		r.Outcome = Unfinished
		r.Duration = s.now().Sub(s.started)
		s.Results = append(s.Results, r)
		seen[r.Test] = true
		s.current = nil
	}
	for _, t := range planned {
		if !seen[t] {
			s.Results = append(s.Results, Result{Test: t, Outcome: NotReached, Status: -1})
		}
	}
}

// Counts tallies the results.
func (s *Session) Counts() (passed, failed, skipped int) {
	for _, r := range s.Results {
		switch r.Outcome {
		case Pass:
			passed++
		case Skip:
			skipped++
		default:
			failed++
		}
	}
	return passed, failed, skipped
}

// Summary is the run's last line: "lab: N passed, N failed, N skipped".
func (s *Session) Summary() string {
	p, f, k := s.Counts()
	return fmt.Sprintf("lab: %d passed, %d failed, %d skipped", p, f, k)
}

// OK says whether the run succeeded: the guest finished, nothing failed,
// and the kernel did not crash.
func (s *Session) OK() bool {
	_, f, _ := s.Counts()
	return s.Done && f == 0 && len(s.Crashes) == 0
}

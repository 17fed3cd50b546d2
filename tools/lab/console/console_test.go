package console

import (
	"strings"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { c.t = c.t.Add(time.Second); return c.t }

func feed(t *testing.T, s *Session, text string) {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if _, err := s.Line(line); err != nil {
			t.Fatalf("Line(%q): %v", line, err)
		}
	}
}

func TestSessionCountsOutcomes(t *testing.T) {
	clk := &fakeClock{}
	s := NewSession(clk.now)
	feed(t, s, "[    1.0] random kernel line\r\n@@lab:boot 6.12.107+deb13-cloud-amd64\r\n"+
		"@@lab:begin 00-a.sh\r\nchecking a\r\n@@lab:end 00-a.sh 0\r\n"+
		"@@lab:begin 10-b.sh\nb says no\npartial@@lab:end 10-b.sh 1\n"+
		"@@lab:begin 20-c.sh\n@@lab:end 20-c.sh 77\n@@lab:done")
	s.Finish([]string{"00-a.sh", "10-b.sh", "20-c.sh"})
	if s.Kernel != "6.12.107+deb13-cloud-amd64" {
		t.Errorf("kernel = %q", s.Kernel)
	}
	if got := s.Summary(); got != "lab: 1 passed, 1 failed, 1 skipped" {
		t.Errorf("summary = %q", got)
	}
	if s.OK() {
		t.Error("a run with a failed test reported OK")
	}
	b := s.Results[1]
	if b.Outcome != Fail || b.Status != 1 || b.Duration != time.Second || len(b.Output) != 1 || b.Output[0] != "b says no" {
		t.Errorf("result of 10-b.sh = %+v", b)
	}
}

func TestSessionPassesOnlyWhenDoneAndClean(t *testing.T) {
	s := NewSession(nil)
	feed(t, s, "@@lab:begin 00-a.sh\n@@lab:end 00-a.sh 0")
	s.Finish([]string{"00-a.sh", "01-b.sh"})
	if s.OK() || s.Summary() != "lab: 1 passed, 1 failed, 0 skipped" {
		t.Fatalf("guest that never finished: OK=%v %s", s.OK(), s.Summary())
	}

	s = NewSession(nil)
	feed(t, s, "@@lab:begin 00-a.sh\n[   12.5] BUG: kernel NULL pointer dereference, address: 0\n@@lab:end 00-a.sh 0\n@@lab:done")
	s.Finish([]string{"00-a.sh"})
	if s.OK() || len(s.Crashes) != 1 || !strings.Contains(s.Crashes[0], "NULL pointer") {
		t.Fatalf("crash not caught: OK=%v crashes=%q", s.OK(), s.Crashes)
	}
	if r := s.Results[0]; r.Outcome != Fail || !r.Crashed || s.Summary() != "lab: 0 passed, 1 failed, 0 skipped" {
		t.Fatalf("a test during which the kernel crashed: %+v, %s", r, s.Summary())
	}

	s = NewSession(nil)
	feed(t, s, "@@lab:begin 00-a.sh\n@@lab:end 00-a.sh 0\n@@lab:done")
	s.Finish([]string{"00-a.sh"})
	if !s.OK() {
		t.Fatalf("clean run not OK: %s", s.Summary())
	}
}

func TestSessionInterruptedTestFails(t *testing.T) {
	s := NewSession(nil)
	feed(t, s, "@@lab:begin 00-a.sh\nINFO: task fio:123 blocked for more than 30 seconds.")
	s.Finish([]string{"00-a.sh"})
	if len(s.Results) != 1 || s.Results[0].Outcome != Unfinished || len(s.Crashes) != 1 {
		t.Fatalf("results %+v crashes %q", s.Results, s.Crashes)
	}
}

func TestSessionRejectsMalformedMarkers(t *testing.T) {
	for _, line := range []string{"@@lab:", "@@lab:end x", "@@lab:end x y", "@@lab:begin", "@@lab:what", "@@lab:end other 0"} {
		s := NewSession(nil)
		if _, err := s.Line(line); err == nil {
			t.Errorf("Line(%q) accepted", line)
		}
	}
}

// FuzzSessionLine: arbitrary console bytes never panic the parser.
func FuzzSessionLine(f *testing.F) {
	for _, seed := range []string{"@@lab:begin a", "@@lab:end a 0", "@@lab:end a 99999999999999999999", "@@lab:done", "BUG: x", "\r\n"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		s := NewSession(nil)
		_, _ = s.Line("@@lab:begin a")
		_, _ = s.Line(line)
		s.Finish([]string{"a"})
		p, fl, k := s.Counts()
		if p+fl+k != len(s.Results) {
			t.Fatalf("counts %d+%d+%d != %d results", p, fl, k, len(s.Results))
		}
	})
}

package daemon

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseCPUList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"", 0, true},
		{"0", 1, true},
		{"0-3", 4, true},
		{"0-3,8,10-11\n", 7, true},
		{"5-5", 1, true},
		{"3-1", 0, false},
		{"a", 0, false},
		{"0-", 0, false},
		{"1,,2", 0, false},
		{"-1", 0, false},
		{"0-99999", 0, false},
	} {
		got, err := parseCPUList(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseCPUList(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestAllowedCPUsCheck(t *testing.T) {
	for _, tc := range []struct {
		list, level, says string
	}{
		{"", LevelFail, "no CPU to run on"},
		{"3", LevelWarn, "1 CPU allowed"},
		{"0-7", LevelOK, "8 CPUs allowed"},
		{"x", LevelWarn, "bad CPU"},
	} {
		c := allowedCPUsCheck(tc.list)
		if c.Level != tc.level || !strings.Contains(c.Detail, tc.says) {
			t.Errorf("allowedCPUsCheck(%q) = %+v; want %s saying %q", tc.list, c, tc.level, tc.says)
		}
	}
}

func TestMemlockCheck(t *testing.T) {
	if defaultDeviceLockedBytes != 64<<20 {
		t.Fatalf("a default device locks %d bytes, want 64 MiB (1 × 128 × 512 KiB)", defaultDeviceLockedBytes)
	}
	for _, tc := range []struct {
		cur   uint64
		root  bool
		level string
		says  string
	}{
		{8 << 20, false, LevelWarn, "below the 64M"},
		{64<<20 - 1, false, LevelWarn, "below"},
		{64 << 20, false, LevelOK, "covers"},
		{unix.RLIM_INFINITY, false, LevelOK, "unlimited"},
		{8 << 20, true, LevelOK, "root"},
	} {
		c := memlockCheck(tc.cur, tc.root)
		if c.Level != tc.level || !strings.Contains(c.Detail, tc.says) || strings.Contains(c.Detail, "\n") {
			t.Errorf("memlockCheck(%d, root=%v) = %+v; want %s saying %q on one line", tc.cur, tc.root, c, tc.level, tc.says)
		}
	}
}

func TestHungTaskCheck(t *testing.T) {
	for _, tc := range []struct {
		timeout, panic, level, says string
	}{
		{"120\n", "0\n", LevelOK, "blocked for more than 120 seconds"},
		{"120\n", "", LevelOK, "0 would disable"},
		{"0\n", "0\n", LevelWarn, "0 disables it"},
		{"10", "1", LevelWarn, "PANICS"},
		{"", "", LevelWarn, "no hung-task detector"},
		{"soon", "", LevelWarn, "not a number"},
	} {
		c := hungTaskCheck(tc.timeout, tc.panic)
		if c.Level != tc.level || !strings.Contains(c.Detail, tc.says) {
			t.Errorf("hungTaskCheck(%q, %q) = %+v; want %s saying %q", tc.timeout, tc.panic, c, tc.level, tc.says)
		}
	}
}

// On this host the checks run and each says something on one line.
func TestHostChecksRun(t *testing.T) {
	checks := hostChecks()
	if len(checks) != 3 {
		t.Fatalf("%d host checks, want 3: %+v", len(checks), checks)
	}
	for _, c := range checks {
		if c.Name == "" || c.Detail == "" || strings.Contains(c.Detail, "\n") {
			t.Errorf("check %+v: want a name and a one-line detail", c)
		}
	}
}

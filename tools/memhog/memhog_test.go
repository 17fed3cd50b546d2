package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseMemInfo(t *testing.T) {
	mi, err := parseMemInfo(strings.NewReader("MemTotal:        2013748 kB\nMemFree:          100 kB\nMemAvailable:     512000 kB\n" +
		"Buffers: 1 kB\nDirty:    1000 kB\nWriteback:  24 kB\nWritebackTmp: 7 kB\n"))
	if err != nil {
		t.Fatal(err)
	}
	if mi.Total != 2013748<<10 || mi.Available != 512000<<10 || mi.Dirty != 1000<<10 || mi.Writeback != 24<<10 {
		t.Fatalf("got %+v", mi)
	}
	if mi.Free() != (512000-1024)<<10 {
		t.Fatalf("Free() = %d, want MemAvailable less Dirty and Writeback", mi.Free())
	}
	if f := (MemInfo{Available: 10, Dirty: 20}).Free(); f != 0 {
		t.Fatalf("Free() with more dirty than available = %d, want 0", f)
	}
	for _, bad := range []string{
		"MemTotal: 100 kB\n",                                   // no MemAvailable
		"MemTotal: 100 kB\nMemAvailable: x kB\n",               // not a number
		"MemTotal: 100 kB\nMemAvailable: 100 MB\n",             // unit
		"MemTotal: -1 kB\nMemAvailable: 100 kB\n",              // negative
		"MemTotal: 100\nMemAvailable: 100 kB\n",                // no unit
		"MemTotal: 99999999999999999 kB\nMemAvailable: 1 kB\n", // absurd
	} {
		if _, err := parseMemInfo(strings.NewReader(bad)); err == nil {
			t.Errorf("parseMemInfo(%q) accepted it", bad)
		}
	}
}

// fakeMachine is a machine whose MemAvailable is what neither the hog nor
// a competing "process" (other) holds.
type fakeMachine struct {
	mu          sync.Mutex
	total, used int64
	dirty       int64 // counted in MemAvailable, but not free
	other       int64
	mapped      [][]byte
	held        int64
}

func (m *fakeMachine) memInfo() (MemInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return MemInfo{Total: m.total, Available: m.total - m.used - m.other - m.held, Dirty: m.dirty}, nil
}

func (m *fakeMachine) mapMem(size int64) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := make([]byte, size)
	m.mapped = append(m.mapped, b)
	m.held += size
	return b, nil
}

func (m *fakeMachine) unmap(b []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.held -= int64(len(b))
	return nil
}

func (m *fakeMachine) options(d time.Duration) Options {
	return Options{Duration: d, Step: 1 << 20, Interval: time.Millisecond, Retouch: 5 * time.Millisecond,
		memInfo: m.memInfo, mapMem: m.mapMem, unmap: m.unmap}
}

// runUntil runs h until cond holds on m (then 50 ms more, so the hog sits
// at its target for a few ticks) and returns its stats. Waiting on the
// outcome, not on a fixed duration, keeps the test right on a loaded host.
func runUntil(t *testing.T, h *Hog, m *fakeMachine, cond func() bool) Stats {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan Stats, 1)
	go func() {
		st, err := h.Run(ctx)
		if err != nil {
			t.Error(err)
		}
		done <- st
	}()
	waitFor(t, func() bool { m.mu.Lock(); defer m.mu.Unlock(); return cond() })
	time.Sleep(50 * time.Millisecond)
	cancel()
	return <-done
}

func TestHogStopsAtTargetAndReleasesAll(t *testing.T) {
	m := &fakeMachine{total: 200 << 20, used: 50 << 20}
	h, err := New(m.options(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	target := int64(200<<20) * 5 / 100
	want := int64(150<<20) - target // what can be taken while leaving the target available
	st := runUntil(t, h, m, func() bool { return m.held >= want })
	if st.PeakHeld != want {
		t.Errorf("peak held %d, want exactly %d (available down to the 5%% target)", st.PeakHeld, want)
	}
	if st.MinAvailable != target {
		t.Errorf("MemAvailable min %d, want the target %d", st.MinAvailable, target)
	}
	if st.Retouches == 0 || st.TimeAtTarget == 0 {
		t.Errorf("no re-touch passes (%d) or no time at target (%v)", st.Retouches, st.TimeAtTarget)
	}
	if m.held != 0 || h.Held() != 0 {
		t.Errorf("after the run %d bytes are still mapped (hog says %d)", m.held, h.Held())
	}
	// Every page of every chunk was written (the kernel would have had to back it).
	for i, b := range m.mapped {
		for off := 0; off < len(b); off += h.page {
			if b[off] == 0 {
				t.Fatalf("chunk %d page at %d never touched", i, off)
			}
		}
	}
}

func TestHogGivesBackWhenTheMachineRunsShort(t *testing.T) {
	m := &fakeMachine{total: 200 << 20, used: 50 << 20}
	h, err := New(m.options(2 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Stats)
	go func() {
		st, err := h.Run(ctx)
		if err != nil {
			t.Error(err)
		}
		done <- st
	}()
	full := int64(150<<20) - 10<<20 // everything but the 5% target
	waitFor(t, func() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.held == full })
	// Another process takes 40 MiB: available falls far below the target.
	m.mu.Lock()
	m.other = 40 << 20
	m.mu.Unlock()
	// The hog must give back steps until half the target is free again.
	waitFor(t, func() bool {
		mi, _ := m.memInfo()
		m.mu.Lock()
		defer m.mu.Unlock()
		return mi.Available >= 10<<20/2 && m.held <= full-35<<20
	})
	cancel()
	st := <-done
	if st.Releases == 0 {
		t.Fatalf("no step given back although MemAvailable fell below half the target: %+v", st)
	}
	if m.held != 0 {
		t.Errorf("%d bytes still mapped after cancel", m.held)
	}
}

// Dirty pages count in MemAvailable but are not the hog's to take.
func TestHogLeavesDirtyPagesAlone(t *testing.T) {
	m := &fakeMachine{total: 200 << 20, used: 50 << 20, dirty: 40 << 20}
	h, err := New(m.options(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := int64(150<<20) - 10<<20 - 40<<20
	st := runUntil(t, h, m, func() bool { return m.held >= want })
	if st.PeakHeld != want {
		t.Fatalf("peak held %d, want %d (available less dirty, less the target)", st.PeakHeld, want)
	}
}

func TestHogMaxCapsWhatItHolds(t *testing.T) {
	m := &fakeMachine{total: 200 << 20}
	o := m.options(time.Minute)
	o.Max = 3 << 20
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	st := runUntil(t, h, m, func() bool { return m.held >= 3<<20 })
	if st.PeakHeld != 3<<20 {
		t.Fatalf("peak held %d, want the cap %d", st.PeakHeld, 3<<20)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not reached in 5s")
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{args: nil, code: exitUsage, out: "--duration is required"},
		{args: []string{"--duration", "1s", "--step-mib", "0"}, code: exitUsage, out: "--step-mib"},
		{args: []string{"--duration", "1s", "--avail-percent", "95"}, code: exitUsage, out: "out of range"},
		{args: []string{"--bogus"}, code: exitUsage, out: "unknown flag"},
		// A real run on this machine, capped at 4 MiB.
		{args: []string{"--duration", "300ms", "--max-mib", "4", "--step-mib", "4", "--oom-victim=false", "--log-level", "warn"},
			code: exitOK, out: "peak held 4 MiB"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		all := stdout.String() + stderr.String()
		if code != tc.code || !strings.Contains(all, tc.out) {
			t.Errorf("memhog %v: exit %d, output %q; want exit %d and %q", tc.args, code, all, tc.code, tc.out)
		}
		if code == exitUsage && strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
			t.Errorf("memhog %v: usage error is not one line: %q", tc.args, stderr.String())
		}
	}
}

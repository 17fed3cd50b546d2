package reclaim

import (
	"os"
	"runtime"
	"testing"
)

func TestParseStatFlags(t *testing.T) {
	for _, tc := range []struct {
		line string
		want uint64
		bad  bool
	}{
		{line: "123 (ublkctl) S 1 123 123 0 -1 4194560 100 0", want: 4194560},
		{line: "123 (a b) c)) S 1 123 123 0 -1 526400 1", want: 526400},
		{line: "123 ublkctl S 1", bad: true},
		{line: "123 (x) S 1 2", bad: true},
	} {
		got, err := parseStatFlags(tc.line)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("parseStatFlags(%q) = %d, %v; want %d, bad=%v", tc.line, got, err, tc.want, tc.bad)
		}
	}
}

func TestThreadFlagsSeesEveryThread(t *testing.T) {
	flags, err := ThreadFlags(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := flags[os.Getpid()]; !ok {
		t.Fatalf("main thread %d missing from %v", os.Getpid(), flags)
	}
	if len(flags) < 2 || len(flags) > runtime.NumGoroutine()+64 {
		t.Fatalf("implausible thread count %d", len(flags))
	}
}

// TestIOFlusherReachesAllThreads runs where the process may set the flag
// (the lab's root has CAP_SYS_RESOURCE); on the host sandbox it must fail
// with a clear error, not crash.
func TestIOFlusherReachesAllThreads(t *testing.T) {
	err := SetIOFlusher()
	if err != nil {
		t.Skipf("cannot set PR_SET_IO_FLUSHER here: %v", err)
	}
	// A thread created after the call must inherit the flag.
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		<-done
	}()
	defer close(done)
	flags, err := ThreadFlags(0)
	if err != nil {
		t.Fatal(err)
	}
	for tid, f := range flags {
		if f&PFMemallocNoIO == 0 {
			t.Errorf("thread %d lacks PF_MEMALLOC_NOIO (flags %#x)", tid, f)
		}
	}
}

func TestLockedKiB(t *testing.T) {
	if _, err := LockedKiB(0); err != nil {
		t.Fatal(err)
	}
}

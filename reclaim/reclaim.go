package reclaim

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// prSetIOFlusher is PR_SET_IO_FLUSHER from linux/prctl.h (Linux 5.6+).
const prSetIOFlusher = 57

// PFMemallocNoIO is PF_MEMALLOC_NOIO, the task flag PR_SET_IO_FLUSHER sets,
// as it appears in field 9 of /proc/PID/task/TID/stat.
const PFMemallocNoIO = 0x00080000

// Options says which protections to apply. The zero value applies none;
// Default applies all.
type Options struct {
	IOFlusher  bool // PR_SET_IO_FLUSHER on every thread
	LockMemory bool // mlockall(MCL_CURRENT|MCL_FUTURE)
	OOMNever   bool // oom_score_adj = -1000
}

// Default is every protection on: what a daemon serving a block device runs with.
var Default = Options{IOFlusher: true, LockMemory: true, OOMNever: true}

// Report tells which protections took effect; an error per protection that
// did not, so a caller can log each one and decide whether to go on.
type Report struct {
	IOFlusher, LockMemory, OOMNever error
}

// Err joins the failures of a report, nil when everything asked for worked.
func (r Report) Err() error {
	return errors.Join(r.IOFlusher, r.LockMemory, r.OOMNever)
}

// Apply applies the protections opts asks for to the whole process.
func Apply(opts Options) Report {
	var r Report
	if opts.IOFlusher {
		r.IOFlusher = SetIOFlusher()
	}
	if opts.LockMemory {
		if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE); err != nil {
			r.LockMemory = fmt.Errorf("mlockall: %w (raise RLIMIT_MEMLOCK or run as root)", err)
		}
	}
	if opts.OOMNever {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte("-1000"), 0); err != nil {
			r.OOMNever = fmt.Errorf("set oom_score_adj: %w", err)
		}
	}
	return r
}

// SetIOFlusher sets PR_SET_IO_FLUSHER on every thread of the process.
func SetIOFlusher() (err error) {
	defer func() {
		// AllThreadsSyscall panics in no case we know of, but returns
		// ENOTSUP in a cgo binary; guard anyway so a daemon never dies here.
		if p := recover(); p != nil {
			err = fmt.Errorf("PR_SET_IO_FLUSHER: %v", p)
		}
	}()
	_, _, errno := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, prSetIOFlusher, 1, 0)
	switch errno {
	case 0:
		return nil
	case syscall.ENOTSUP:
		return errors.New("PR_SET_IO_FLUSHER: not possible in a cgo binary (build with CGO_ENABLED=0)")
	case syscall.EPERM:
		return errors.New("PR_SET_IO_FLUSHER: permission denied (needs CAP_SYS_RESOURCE)")
	case syscall.EINVAL:
		return errors.New("PR_SET_IO_FLUSHER: not supported by this kernel (needs Linux 5.6+)")
	default:
		return fmt.Errorf("PR_SET_IO_FLUSHER: %w", errno)
	}
}

// ThreadFlags maps each thread id of process pid (0 for self) to the flags
// field of its /proc stat line.
func ThreadFlags(pid int) (map[int]uint64, error) {
	dir := "/proc/self/task"
	if pid != 0 {
		dir = filepath.Join("/proc", strconv.Itoa(pid), "task")
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list threads: %w", err)
	}
	out := make(map[int]uint64, len(ents))
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "stat"))
		if err != nil {
			continue // the thread exited meanwhile
		}
		flags, err := parseStatFlags(string(b))
		if err != nil {
			return nil, fmt.Errorf("thread %d: %w", tid, err)
		}
		out[tid] = flags
	}
	return out, nil
}

// parseStatFlags returns field 9 (flags) of a /proc stat line. The command
// name (field 2) is in parentheses and may itself hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStatFlags(line string) (uint64, error) {
	end := strings.LastIndexByte(line, ')')
	if end < 0 {
		return 0, errors.New("malformed stat line: no ')'")
	}
	f := strings.Fields(line[end+1:])
	// After ')': state(3) ppid(4) pgrp(5) session(6) tty_nr(7) tpgid(8) flags(9).
	if len(f) < 7 {
		return 0, errors.New("malformed stat line: too few fields")
	}
	return strconv.ParseUint(f[6], 10, 64)
}

// LockedKiB returns VmLck of process pid (0 for self) in KiB.
func LockedKiB(pid int) (int64, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = filepath.Join("/proc", strconv.Itoa(pid), "status")
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmLck:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmLck line in " + path)
}

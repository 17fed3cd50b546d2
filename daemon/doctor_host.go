package daemon

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/internal/units"
	"github.com/sheepblk/sheepblk/ublk"
)

// defaultDeviceLockedBytes is what a device with the default geometry
// locks for its I/O buffers: queues × depth × max I/O (1 × 128 × 512 KiB
// = 64 MiB).
const defaultDeviceLockedBytes = uint64(ublk.DefaultQueues) * ublk.DefaultDepth * ublk.DefaultMaxIO

// memlockCheck judges RLIMIT_MEMLOCK (cur, in bytes) for a process that is
// root or not: below what a default device's buffers need, they cannot be
// locked and the daemon fails or pages under pressure.
func memlockCheck(cur uint64, root bool) Check {
	const name = "RLIMIT_MEMLOCK"
	need := defaultDeviceLockedBytes
	switch {
	case root:
		return Check{name, LevelOK, "root: I/O buffers and the daemon can be locked in memory"}
	case cur == unix.RLIM_INFINITY:
		return Check{name, LevelOK, "unlimited: I/O buffers and the daemon can be locked in memory"}
	case cur < need:
		return Check{name, LevelWarn, fmt.Sprintf("%s, below the %s a default device locks for its I/O buffers "+
			"(%d queue × %d tags × %s): raise it (ulimit -l unlimited, systemd LimitMEMLOCK=infinity) or run as root",
			units.FormatSize(int64(cur)), units.FormatSize(int64(need)), ublk.DefaultQueues, ublk.DefaultDepth, units.FormatSize(ublk.DefaultMaxIO))}
	default:
		return Check{name, LevelOK, fmt.Sprintf("%s covers a default device's %s of I/O buffers; "+
			"larger devices (more queues, depth or max I/O) and mlockall of the daemon need more: unlimited is safest",
			units.FormatSize(int64(cur)), units.FormatSize(int64(need)))}
	}
}

// parseCPUList counts the CPUs of a kernel CPU list such as "0-3,8,10-11"
// (Cpus_allowed_list, cpuset.cpus). An empty list has no CPU.
func parseCPUList(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	n := 0
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("CPU list %q: bad CPU %q", s, lo)
		}
		last := first
		if isRange {
			if last, err = strconv.ParseUint(hi, 10, 16); err != nil || last < first {
				return 0, fmt.Errorf("CPU list %q: bad range %q", s, part)
			}
		}
		n += int(last-first) + 1
	}
	return n, nil
}

// allowedCPUsCheck judges the CPUs this process may run on (its cpuset and
// affinity, as Cpus_allowed_list in /proc/self/status says): queue threads
// are pinned inside them, so a queue needs at least one.
func allowedCPUsCheck(list string) Check {
	const name = "allowed CPUs"
	n, err := parseCPUList(list)
	switch {
	case err != nil:
		return Check{name, LevelWarn, err.Error()}
	case n < ublk.DefaultQueues:
		return Check{name, LevelFail, fmt.Sprintf("%d CPUs allowed (%q): a queue thread would have no CPU to run on; widen the cpuset (cpuset.cpus) or the affinity (taskset)", n, list)}
	case n == 1:
		return Check{name, LevelWarn, fmt.Sprintf("1 CPU allowed (%s): every queue and every writer share it; more queues than CPUs gain nothing", list)}
	default:
		return Check{name, LevelOK, fmt.Sprintf("%d CPUs allowed (%s): up to %d queues get a CPU of their own", n, list, n)}
	}
}

// hungTaskCheck explains the hung-task detector from the contents of
// /proc/sys/kernel/hung_task_timeout_secs and hung_task_panic ("" when
// absent: a kernel without CONFIG_DETECT_HUNG_TASK).
func hungTaskCheck(timeout, panic string) Check {
	const name = "hung_task"
	timeout, panic = strings.TrimSpace(timeout), strings.TrimSpace(panic)
	if timeout == "" {
		return Check{name, LevelWarn, "no hung-task detector (kernel without CONFIG_DETECT_HUNG_TASK): " +
			"nothing reports a task stuck in D state behind a hung device"}
	}
	secs, err := strconv.ParseUint(timeout, 10, 64)
	if err != nil {
		return Check{name, LevelWarn, fmt.Sprintf("hung_task_timeout_secs %q is not a number", timeout)}
	}
	if secs == 0 {
		return Check{name, LevelWarn, "hung_task_timeout_secs=0: the detector is disabled (0 disables it), so a task stuck in D state " +
			"behind a hung device is never reported; set it to e.g. 120"}
	}
	detail := fmt.Sprintf("hung_task_timeout_secs=%d: the kernel logs \"blocked for more than %d seconds\" for a task stuck in D state "+
		"that long (0 would disable the detector)", secs, secs)
	if panic == "1" {
		return Check{name, LevelWarn, detail + "; hung_task_panic=1: such a task PANICS the machine, so a stalled device reboots it"}
	}
	return Check{name, LevelOK, detail}
}

// readProcStatusField returns the value of field in /proc/self/status.
func readProcStatusField(field string) (string, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", errors.New("no " + field + " in /proc/self/status")
}

// hostChecks are the checks of the CPUs, memlock limit and hung-task
// detector of this process and kernel.
func hostChecks() []Check {
	var out []Check
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err == nil {
		out = append(out, memlockCheck(lim.Cur, os.Geteuid() == 0))
	}
	if list, err := readProcStatusField("Cpus_allowed_list"); err != nil {
		out = append(out, Check{"allowed CPUs", LevelWarn, err.Error()})
	} else {
		out = append(out, allowedCPUsCheck(list))
	}
	timeout, _ := os.ReadFile("/proc/sys/kernel/hung_task_timeout_secs")
	panic, _ := os.ReadFile("/proc/sys/kernel/hung_task_panic")
	out = append(out, hungTaskCheck(string(timeout), string(panic)))
	return out
}

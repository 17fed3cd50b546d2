package plan

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Profile is one (ublk device, job) whose daemon is profiled with perf
// inside the guest while fio runs: where a ublk device misses its target,
// the profile says where the daemon's time goes.
type Profile struct {
	Device string
	Job    string
}

// DefaultProfiles cover the slowest ublk paths the targets look at: the
// bare request path (null at QD32, reads and writes: their ratios to
// null_blk differed), a synchronous backend at QD1 (mem), and the file
// target at QD1 and on 128k sequential reads.
var DefaultProfiles = []Profile{
	{Device: "ublk-null", Job: "randread-4k-qd32x2"},
	{Device: "ublk-null", Job: "randwrite-4k-qd32x2"},
	{Device: "ublk-mem", Job: "randread-4k-qd1"},
	{Device: "ublk-file-ext4", Job: "randread-4k-qd1"},
	{Device: "ublk-file-ext4", Job: "read-128k-qd8"},
}

// perfBinary is the host's perf. Debian's /usr/bin/perf is the real ELF
// (linux-perf); its libraries are found with ldd.
var perfBinary = "/usr/bin/perf"

// stagePerf copies perf and the libraries ldd lists into dir/perf/ (bin/
// and lib/), so the guest can run it through the dynamic loader with
// LD_LIBRARY_PATH, without a change to the lab's base image. It reports
// whether perf was staged; a host without perf stages nothing (the guest
// script then says that profiles are not available).
func stagePerf(dir string) (bool, error) {
	if _, err := os.Stat(perfBinary); err != nil {
		return false, nil
	}
	out, err := exec.Command("ldd", perfBinary).Output()
	if err != nil {
		return false, fmt.Errorf("ldd %s: %w", perfBinary, err)
	}
	libs := lddPaths(string(out))
	for _, d := range []string{"bin", "lib"} {
		if err := os.MkdirAll(filepath.Join(dir, "perf", d), 0o755); err != nil {
			return false, fmt.Errorf("stage perf: %w", err)
		}
	}
	copies := map[string]string{perfBinary: filepath.Join(dir, "perf", "bin", "perf")}
	for _, l := range libs {
		copies[l] = filepath.Join(dir, "perf", "lib", filepath.Base(l))
	}
	for src, dst := range copies {
		b, err := os.ReadFile(src)
		if err != nil {
			return false, fmt.Errorf("stage perf: %w", err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			return false, fmt.Errorf("stage perf: %w", err)
		}
	}
	return true, nil
}

// lddPaths picks the resolved library paths out of ldd's output
// ("libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)"); the loader
// itself and the vDSO are left out (the guest has its own loader).
func lddPaths(out string) []string {
	var libs []string
	for _, line := range strings.Split(out, "\n") {
		_, after, ok := strings.Cut(line, "=>")
		if !ok {
			continue
		}
		f := strings.Fields(after)
		if len(f) > 0 && strings.HasPrefix(f[0], "/") {
			libs = append(libs, f[0])
		}
	}
	return libs
}

package daemon

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sheepblk/sheepblk/reclaim"
	"github.com/sheepblk/sheepblk/ublk"
	"github.com/sheepblk/sheepblk/ublk/uapi"
)

// Check levels.
const (
	LevelOK   = "ok"
	LevelWarn = "warn"
	LevelFail = "FAIL"
)

// Check is one finding of Doctor.
type Check struct {
	Name, Level, Detail string
}

// Doctor inspects this host and process for what would make a daemon fail
// to start, or hang under memory pressure or CPU throttling.
func Doctor() []Check {
	var out []Check
	add := func(name, level, format string, a ...any) {
		out = append(out, Check{Name: name, Level: level, Detail: fmt.Sprintf(format, a...)})
	}
	if ctrl, err := ublk.OpenController(); err != nil {
		add("ublk driver", LevelFail, "%v", err)
	} else {
		add("ublk driver", LevelOK, "features %s", strings.Join(uapi.FeatureList(ctrl.Features()), ","))
		ctrl.Close()
	}
	if err := reclaim.SetIOFlusher(); err != nil {
		add("PR_SET_IO_FLUSHER", LevelFail, "%v: reclaim could recurse into a device this daemon serves", err)
	} else {
		add("PR_SET_IO_FLUSHER", LevelOK, "can be set on every thread")
	}
	out = append(out, hostChecks()...)
	quota, path := cpuQuota()
	switch {
	case path == "":
		add("cgroup cpu.max", LevelOK, "no cgroup v2 CPU controller found for this process")
	case quota == "" || strings.HasPrefix(quota, "max"):
		add("cgroup cpu.max", LevelOK, "no CFS bandwidth quota on %s", path)
	default:
		add("cgroup cpu.max", LevelWarn, "CFS quota %q on %s: a throttled daemon stalls every writer of its device; "+
			"run it in a cgroup without a quota (systemd: leave CPUQuota= unset)", quota, path)
	}
	return out
}

// cpuQuota reads cpu.max of this process's cgroup v2 and of its ancestors:
// a quota anywhere above throttles it too.
func cpuQuota() (quota, path string) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		rel, ok := strings.CutPrefix(s.Text(), "0::")
		if !ok {
			continue
		}
		for dir := filepath.Join("/sys/fs/cgroup", rel); strings.HasPrefix(dir, "/sys/fs/cgroup"); dir = filepath.Dir(dir) {
			b, err := os.ReadFile(filepath.Join(dir, "cpu.max"))
			if err != nil {
				continue
			}
			path = dir
			if q := strings.TrimSpace(string(b)); !strings.HasPrefix(q, "max") {
				return q, dir
			}
		}
	}
	return "max", path
}

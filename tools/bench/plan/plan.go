package plan

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Plan is one benchmark run.
type Plan struct {
	Pairs   []Pair // which comparisons to run
	Jobs    []Job
	Runtime time.Duration // per fio job, after the ramp
	Ramp    time.Duration
	Reps    int // repetitions of every (device, job)
	SizeMB  int // bytes of each device the jobs use, and the backing files' size
	// UblkQueues and UblkDepth are what `ublkctl add -q -d` gets.
	UblkQueues int
	UblkDepth  int
	// RSSDevice is sampled during a RSSDuration mixed run (no run when
	// RSSDuration is 0).
	RSSDevice   string
	RSSDuration time.Duration
	RSSInterval time.Duration
	// Profiles are the (device, job) runs repeated under perf in the
	// guest (none: no profiling).
	Profiles []Profile
	// UblksrvDir holds static builds of ublksrv (ublk, ublk.null,
	// ublk.loop; tools/bench/build-ublksrv.sh) for the Reference pairs;
	// "" stages none, and the guest skips those devices.
	UblksrvDir string
}

// Default is `make bench`: every pair but the Reference ones (those need a
// ublksrv build: bench --ublksrv), 5 s jobs after a 2 s ramp, two
// repetitions, a one-minute memory run; about 25 minutes of TCG time.
func Default() Plan {
	return Plan{
		Pairs: pairs(false), Jobs: Jobs, Runtime: 5 * time.Second, Ramp: 2 * time.Second, Reps: 2,
		SizeMB: 256, UblkQueues: 1, UblkDepth: 128,
		RSSDevice: "ublk-file-ext4", RSSDuration: time.Minute, RSSInterval: 2 * time.Second,
		Profiles: DefaultProfiles,
	}
}

// pairs are the pairs of Pairs, in order, with or without the Reference
// ones.
func pairs(reference bool) []Pair {
	var out []Pair
	for _, pr := range Pairs {
		if reference || !pr.Reference {
			out = append(out, pr)
		}
	}
	return out
}

// WithReference is p with every pair: the Reference ones (ublksrv's,
// which need UblksrvDir) beside the others.
func (p Plan) WithReference() Plan {
	p.Pairs = pairs(true)
	return p
}

// Long is the careful run: 10 s jobs, three repetitions, the issue's
// 10-minute memory run.
func Long() Plan {
	p := Default()
	p.Runtime, p.Reps = 10*time.Second, 3
	p.RSSDuration, p.RSSInterval = 10*time.Minute, 5*time.Second
	return p
}

// Smoke is CI's check that the whole path works: one pair, 2 s jobs, one
// repetition, no memory run.
func Smoke() Plan {
	p := Default()
	p.Pairs = []Pair{Pairs[0]}
	p.Runtime, p.Ramp, p.Reps = 2*time.Second, time.Second, 1
	p.RSSDuration = 0
	p.Profiles = nil
	return p
}

// Validate reports a plan that cannot run.
func (p Plan) Validate() error {
	switch {
	case len(p.Pairs) == 0:
		return fmt.Errorf("no device pairs selected")
	case len(p.Jobs) == 0:
		return fmt.Errorf("no fio jobs selected")
	case p.Runtime < time.Second:
		return fmt.Errorf("runtime %s: want at least 1s", p.Runtime)
	case p.Reps < 1:
		return fmt.Errorf("repetitions %d: want at least 1", p.Reps)
	case p.SizeMB < 16:
		return fmt.Errorf("size %d MiB: want at least 16", p.SizeMB)
	case p.UblkQueues < 1 || p.UblkDepth < 1:
		return fmt.Errorf("ublk queues %d, depth %d: want at least 1 each", p.UblkQueues, p.UblkDepth)
	}
	for _, pr := range p.Profiles {
		d, ok := DeviceByName(pr.Device)
		if !ok || !d.Ublk {
			return fmt.Errorf("profile of %q: want a ublk device", pr.Device)
		}
		if _, ok := JobByName(pr.Job); !ok {
			return fmt.Errorf("profile of %s: unknown job %q", pr.Device, pr.Job)
		}
	}
	if p.RSSDuration > 0 {
		d, ok := DeviceByName(p.RSSDevice)
		if !ok || !d.Ublk {
			return fmt.Errorf("memory run device %q: want a ublk device", p.RSSDevice)
		}
		if p.RSSInterval < time.Second {
			return fmt.Errorf("memory sampling interval %s: want at least 1s", p.RSSInterval)
		}
	}
	return nil
}

// Devices lists each device of the plan's pairs once, in pair order.
func (p Plan) Devices() []string {
	return p.Order(1)
}

// Order is the device order of repetition rep (1-based): pair by pair,
// the peer first in odd repetitions and the ublk device first in even
// ones, so slow drift of the emulated machine does not always favour one
// side; a device shared by two pairs runs once.
func (p Plan) Order(rep int) []string {
	seen := map[string]bool{}
	var order []string
	for _, pr := range p.Pairs {
		sides := []string{pr.Peer, pr.Ublk}
		if rep%2 == 0 {
			sides[0], sides[1] = sides[1], sides[0]
		}
		for _, d := range sides {
			if !seen[d] {
				seen[d] = true
				order = append(order, d)
			}
		}
	}
	return order
}

// Scripts are the guest scripts a run executes, in order.
func (p Plan) Scripts() []string {
	s := []string{"10-devices.sh"}
	if p.RSSDuration > 0 {
		s = append(s, "20-rss.sh")
	}
	if len(p.Profiles) > 0 {
		s = append(s, "30-profile.sh")
	}
	return s
}

// GuestTime estimates the TCG time the guest scripts need: every fio run
// plus a setup allowance per device and repetition.
func (p Plan) GuestTime() time.Duration {
	perRun := time.Duration(seconds(p.Runtime)+seconds(p.Ramp))*time.Second + 3*time.Second
	runs := len(p.Devices()) * len(p.Jobs) * p.Reps
	setup := time.Duration(len(p.Devices())*p.Reps) * 30 * time.Second
	profiles := time.Duration(len(p.Profiles)) * (perRun + 60*time.Second)
	return time.Duration(runs)*perRun + setup + p.RSSDuration + profiles
}

// Conf renders bench.conf, which the guest scripts source.
func (p Plan) Conf() string {
	var b strings.Builder
	b.WriteString("# written by tools/bench: the plan of this run\n")
	fmt.Fprintf(&b, "BENCH_REPS=%d\nBENCH_SIZE_MB=%d\n", p.Reps, p.SizeMB)
	fmt.Fprintf(&b, "BENCH_UBLK_QUEUES=%d\nBENCH_UBLK_DEPTH=%d\n", p.UblkQueues, p.UblkDepth)
	names := make([]string, len(p.Jobs))
	for i, j := range p.Jobs {
		names[i] = j.Name
	}
	fmt.Fprintf(&b, "BENCH_JOBS=%q\n", strings.Join(names, " "))
	for rep := 1; rep <= p.Reps; rep++ {
		fmt.Fprintf(&b, "BENCH_ORDER_%d=%q\n", rep, strings.Join(p.Order(rep), " "))
	}
	fmt.Fprintf(&b, "BENCH_RSS_DEVICE=%q\nBENCH_RSS_INTERVAL=%d\n", p.RSSDevice, seconds(p.RSSInterval))
	var profiles []string
	for _, pr := range p.Profiles {
		profiles = append(profiles, pr.Device+":"+pr.Job)
	}
	fmt.Fprintf(&b, "BENCH_PROFILES=%q\nBENCH_PROFILE_SECS=%d\nBENCH_RAMP_SECS=%d\n", strings.Join(profiles, " "), seconds(p.Runtime), seconds(p.Ramp))
	return b.String()
}

// Stage fills dir with what the guest needs: the scripts of scriptsDir
// (tests/bench), bench.conf and jobs/*.fio. dir is emptied first.
func (p Plan) Stage(scriptsDir, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear guest directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "jobs"), 0o755); err != nil {
		return fmt.Errorf("create guest directory: %w", err)
	}
	scripts, err := filepath.Glob(filepath.Join(scriptsDir, "*.sh"))
	if err != nil || len(scripts) == 0 {
		return fmt.Errorf("no guest scripts (*.sh) in %s", scriptsDir)
	}
	for _, s := range scripts {
		b, err := os.ReadFile(s)
		if err != nil {
			return fmt.Errorf("read guest script: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(s)), b, 0o755); err != nil {
			return fmt.Errorf("stage guest script: %w", err)
		}
	}
	files := map[string]string{"bench.conf": p.Conf()}
	for _, j := range p.Jobs {
		files[filepath.Join("jobs", j.Name+".fio")] = j.FioFile(p.Runtime, p.Ramp)
	}
	for _, pr := range p.Profiles {
		if j, ok := JobByName(pr.Job); ok {
			files[filepath.Join("jobs", j.Name+".fio")] = j.FioFile(p.Runtime, p.Ramp)
		}
	}
	if p.RSSDuration > 0 {
		files[filepath.Join("jobs", RSSJob.Name+".fio")] = RSSJob.FioFile(p.RSSDuration, p.Ramp)
	}
	if len(p.Profiles) > 0 {
		if _, err := stagePerf(dir); err != nil {
			return err
		}
	}
	if p.UblksrvDir != "" {
		if err := stageUblksrv(p.UblksrvDir, dir); err != nil {
			return err
		}
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("stage %s: %w", name, err)
		}
	}
	return nil
}

// ublksrvBinaries are what ublksrv's `ublk add -t T` needs: the front end
// execs ublk.T from its own directory.
var ublksrvBinaries = []string{"ublk", "ublk.null", "ublk.loop"}

// stageUblksrv copies the ublksrv build of src into dir/ublksrv, where the
// guest's lib.sh looks for it.
func stageUblksrv(src, dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "ublksrv"), 0o755); err != nil {
		return fmt.Errorf("stage ublksrv: %w", err)
	}
	for _, name := range ublksrvBinaries {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return fmt.Errorf("stage ublksrv (build it with tools/bench/build-ublksrv.sh): %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "ublksrv", name), b, 0o755); err != nil {
			return fmt.Errorf("stage ublksrv: %w", err)
		}
	}
	return nil
}

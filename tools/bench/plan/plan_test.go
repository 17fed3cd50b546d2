package plan

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultPlansAreValid(t *testing.T) {
	for name, p := range map[string]Plan{"default": Default(), "long": Long(), "smoke": Smoke()} {
		if err := p.Validate(); err != nil {
			t.Errorf("%s plan: %v", name, err)
		}
	}
	if got := Smoke().Devices(); !reflect.DeepEqual(got, []string{"null_blk", "ublk-null"}) {
		t.Errorf("smoke devices = %v, want one pair", got)
	}
}

func TestValidateRejects(t *testing.T) {
	bad := map[string]func(*Plan){
		"no pairs":         func(p *Plan) { p.Pairs = nil },
		"no jobs":          func(p *Plan) { p.Jobs = nil },
		"short runtime":    func(p *Plan) { p.Runtime = 100 * time.Millisecond },
		"zero reps":        func(p *Plan) { p.Reps = 0 },
		"tiny size":        func(p *Plan) { p.SizeMB = 1 },
		"zero queues":      func(p *Plan) { p.UblkQueues = 0 },
		"kernel rss":       func(p *Plan) { p.RSSDevice = "brd" },
		"unknown rss":      func(p *Plan) { p.RSSDevice = "floppy" },
		"fast rss samples": func(p *Plan) { p.RSSInterval = time.Millisecond },
		"kernel profile":   func(p *Plan) { p.Profiles = []Profile{{Device: "brd", Job: "randread-4k-qd1"}} },
		"unknown job":      func(p *Plan) { p.Profiles = []Profile{{Device: "ublk-mem", Job: "dance"}} },
	}
	for name, mutate := range bad {
		p := Default()
		mutate(&p)
		if err := p.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
	}
}

func TestOrderAlternatesWithinPairsAndRunsSharedDevicesOnce(t *testing.T) {
	p := Default()
	first, second := p.Order(1), p.Order(2)
	want1 := []string{"null_blk", "ublk-null", "brd", "ublk-mem", "loop-ext4", "ublk-file-ext4",
		"loop-tmpfs", "ublk-file-tmpfs", "nbd", "ublk-sheep1", "ublk-sheep3"}
	if !reflect.DeepEqual(first, want1) {
		t.Errorf("Order(1) = %v\nwant %v", first, want1)
	}
	want2 := []string{"ublk-null", "null_blk", "ublk-mem", "brd", "ublk-file-ext4", "loop-ext4",
		"ublk-file-tmpfs", "loop-tmpfs", "ublk-sheep1", "nbd", "ublk-sheep3"}
	if !reflect.DeepEqual(second, want2) {
		t.Errorf("Order(2) = %v\nwant %v", second, want2)
	}
	for _, d := range first {
		if _, ok := DeviceByName(d); !ok {
			t.Errorf("pair device %q is not in Devices", d)
		}
	}
}

func TestTargetHolds(t *testing.T) {
	atLeast := Target{Min: 1.5}
	if !atLeast.Holds(1.5) || atLeast.Holds(1.49) {
		t.Error("a ≥ 1.5 target misjudges 1.5 or 1.49")
	}
	atMost := Target{Max: 1, AtMost: true}
	if !atMost.Holds(0.9) || atMost.Holds(1.01) {
		t.Error("a ≤ 1 target misjudges 0.9 or 1.01")
	}
	for _, p := range Pairs {
		for _, tg := range p.Targets {
			for _, j := range tg.Jobs {
				if _, ok := JobByName(j); !ok {
					t.Errorf("pair %s target names unknown job %q", p.Name, j)
				}
			}
		}
	}
}

func TestJobDirections(t *testing.T) {
	cases := map[string][3]any{ // reads, writes, latency side
		"randread-4k-qd1":     {true, false, "read"},
		"randwrite-4k-qd32x2": {false, true, "write"},
		"randrw-4k-qd16":      {true, true, "read"},
		"read-128k-qd8":       {true, false, "read"},
		"write-128k-qd8":      {false, true, "write"},
	}
	for name, want := range cases {
		j, ok := JobByName(name)
		if !ok {
			t.Fatalf("no job %s", name)
		}
		if j.Reads() != want[0] || j.Writes() != want[1] || j.LatencySide() != want[2] {
			t.Errorf("%s: reads %v writes %v side %s, want %v", name, j.Reads(), j.Writes(), j.LatencySide(), want)
		}
	}
}

// TestFioFileParses has fio itself read every job file (--parse-only), so
// a typo in an option name fails here, not 20 minutes into a lab run.
func TestFioFileParses(t *testing.T) {
	fio, err := exec.LookPath("fio")
	if err != nil {
		t.Skip("fio not installed on this host (apt-get install fio)")
	}
	dir := t.TempDir()
	for _, j := range append(append([]Job{}, Jobs...), RSSJob) {
		file := filepath.Join(dir, j.Name+".fio")
		body := j.FioFile(5*time.Second, 1500*time.Millisecond)
		if !strings.Contains(body, "runtime=5\n") || !strings.Contains(body, "ramp_time=2\n") {
			t.Errorf("%s: runtime/ramp not rendered in whole seconds:\n%s", j.Name, body)
		}
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(fio, "--parse-only", file)
		cmd.Env = append(os.Environ(), "BENCH_DEV="+filepath.Join(dir, "dev"), "BENCH_SIZE=16777216")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("fio --parse-only %s: %v\n%s\n%s", j.Name, err, out, body)
		}
	}
}

func TestStage(t *testing.T) {
	scripts := t.TempDir()
	if err := os.WriteFile(filepath.Join(scripts, "10-devices.sh"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "guest")
	p := Default()
	if err := p.Stage(scripts, dir); err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join(dir, "bench.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"BENCH_REPS=2\n", `BENCH_ORDER_2="ublk-null null_blk`, `BENCH_RSS_DEVICE="ublk-file-ext4"`, "BENCH_UBLK_DEPTH=128\n"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("bench.conf lacks %q:\n%s", want, conf)
		}
	}
	// The conf is shell: sourcing it must give back the plan's values.
	out, err := exec.Command("sh", "-c", ". "+filepath.Join(dir, "bench.conf")+` && echo "$BENCH_JOBS|$BENCH_ORDER_1"`).Output()
	if err != nil {
		t.Fatalf("sh cannot source bench.conf: %v", err)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "|")
	if len(got) != 2 || len(strings.Fields(got[0])) != len(Jobs) || strings.Join(strings.Fields(got[1]), " ") != strings.Join(p.Order(1), " ") {
		t.Errorf("sourced bench.conf gives %q", out)
	}
	for _, j := range append(Jobs, RSSJob) {
		if _, err := os.Stat(filepath.Join(dir, "jobs", j.Name+".fio")); err != nil {
			t.Errorf("job file of %s not staged: %v", j.Name, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "10-devices.sh")); err != nil || fi.Mode()&0o100 == 0 {
		t.Errorf("script not staged executable: %v", err)
	}
	if err := p.Stage(t.TempDir(), dir); err == nil {
		t.Error("Stage accepted a scripts directory without scripts")
	}
}

// With a ublksrv build, Stage copies its three binaries executable into
// guest/ublksrv, where lib.sh runs them; a build that lacks one is an
// error, not a run that skips the device.
func TestStageUblksrv(t *testing.T) {
	scripts := t.TempDir()
	if err := os.WriteFile(filepath.Join(scripts, "10-devices.sh"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := t.TempDir()
	for _, name := range ublksrvBinaries {
		if err := os.WriteFile(filepath.Join(build, name), []byte("binary "+name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := Default().WithReference()
	p.UblksrvDir = build
	if got := strings.Join(p.Order(1), " "); !strings.Contains(got, "ublk-null ublksrv-null") || !strings.Contains(got, "ublk-file-ext4 ublksrv-file-ext4") {
		t.Errorf("order %q: ublksrv's devices should run right after the ublk device they are compared with", got)
	}
	dir := filepath.Join(t.TempDir(), "guest")
	if err := p.Stage(scripts, dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range ublksrvBinaries {
		b, err := os.ReadFile(filepath.Join(dir, "ublksrv", name))
		fi, serr := os.Stat(filepath.Join(dir, "ublksrv", name))
		if err != nil || serr != nil || string(b) != "binary "+name || fi.Mode()&0o100 == 0 {
			t.Errorf("ublksrv/%s staged as %q (%v, %v)", name, b, err, serr)
		}
	}
	if err := os.Remove(filepath.Join(build, "ublk.loop")); err != nil {
		t.Fatal(err)
	}
	if err := p.Stage(scripts, dir); err == nil || !strings.Contains(err.Error(), "ublk.loop") {
		t.Errorf("Stage with a build lacking ublk.loop: %v", err)
	}
}

func TestGuestTimeFitsTheBrief(t *testing.T) {
	// make bench should take 20-30 minutes of TCG time.
	if g := Default().GuestTime(); g < 10*time.Minute || g > 40*time.Minute {
		t.Errorf("default plan estimated at %s of guest time", g)
	}
	if g := Smoke().GuestTime(); g > 5*time.Minute {
		t.Errorf("smoke plan estimated at %s", g)
	}
}

func TestLddPaths(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f)\n" +
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\tlibgone.so => not found\n"
	got := lddPaths(out)
	want := []string{"/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libc.so.6"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lddPaths = %v, want %v", got, want)
	}
}

func TestStagePerf(t *testing.T) {
	if _, err := os.Stat(perfBinary); err != nil {
		t.Skip("perf not installed on this host (apt-get install linux-perf)")
	}
	scripts := t.TempDir()
	os.WriteFile(filepath.Join(scripts, "30-profile.sh"), []byte("#!/bin/sh\n"), 0o644)
	dir := filepath.Join(t.TempDir(), "guest")
	p := Default()
	if err := p.Stage(scripts, dir); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "perf", "bin", "perf")); err != nil || fi.Size() == 0 {
		t.Fatalf("perf not staged: %v", err)
	}
	libs, _ := filepath.Glob(filepath.Join(dir, "perf", "lib", "*.so*"))
	if len(libs) == 0 {
		t.Error("no perf libraries staged")
	}
	// The staged perf runs through the loader with only its lib dir.
	cmd := exec.Command("/lib64/ld-linux-x86-64.so.2", filepath.Join(dir, "perf", "bin", "perf"), "--version")
	cmd.Env = []string{"LD_LIBRARY_PATH=" + filepath.Join(dir, "perf", "lib")}
	if out, err := cmd.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "perf version") {
		t.Errorf("staged perf does not run: %v: %s", err, out)
	}
	conf, _ := os.ReadFile(filepath.Join(dir, "bench.conf"))
	if !strings.Contains(string(conf), `BENCH_PROFILES="ublk-null:randread-4k-qd32x2 ublk-null:randwrite-4k-qd32x2 ublk-mem:randread-4k-qd1`) {
		t.Errorf("bench.conf lacks the profiles:\n%s", conf)
	}
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/tools/bench/plan"
)

func flagsSet(names ...string) func(string) bool {
	return func(n string) bool {
		for _, x := range names {
			if x == n {
				return true
			}
		}
		return false
	}
}

func TestPlanFromFlags(t *testing.T) {
	o := defaultOptions()
	p, err := o.plan(flagsSet())
	if err != nil || p.Reps != 2 || p.Runtime != 5*time.Second || len(p.Pairs) != len(plan.Pairs)-2 || p.UblksrvDir != "" {
		t.Errorf("default plan (all pairs but ublksrv's two) = %+v, %v", p, err)
	}
	for _, pr := range p.Pairs {
		if pr.Reference {
			t.Errorf("default plan has %s, whose peer is ublksrv, without --ublksrv", pr.Name)
		}
	}

	// --ublksrv: ublksrv's pairs come in beside the ones they share a
	// device with, so that both sides run close in time.
	o = defaultOptions()
	o.ublksrvDir = "/opt/ublksrv"
	p, err = o.plan(flagsSet("ublksrv"))
	if err != nil || len(p.Pairs) != len(plan.Pairs) || p.UblksrvDir != "/opt/ublksrv" ||
		p.Pairs[1].Name != "ref-null" || p.Pairs[1].Peer != "ublksrv-null" || p.Pairs[1].Ublk != "ublk-null" {
		t.Errorf("plan with --ublksrv = %+v, %v", p, err)
	}

	o = defaultOptions()
	o.smoke = true
	p, err = o.plan(flagsSet())
	if err != nil || len(p.Pairs) != 1 || p.Runtime != 2*time.Second || o.readme != "" || o.hostBench || !strings.HasPrefix(o.resultsDir, "out/") {
		t.Errorf("smoke plan = %+v (readme %q, host %v, results %q), %v", p, o.readme, o.hostBench, o.resultsDir, err)
	}

	o = defaultOptions()
	o.long, o.reps, o.pairs = true, 4, []string{"file-ext4", "net"}
	p, err = o.plan(flagsSet("reps"))
	if err != nil || p.Reps != 4 || p.Runtime != 10*time.Second || p.RSSDuration != 10*time.Minute || len(p.Pairs) != 2 || p.Pairs[1].Name != "net" ||
		len(p.Profiles) != 2 || p.Profiles[0].Device != "ublk-file-ext4" || p.Profiles[1].Job != "read-128k-qd8" {
		t.Errorf("long plan with flags = %+v, %v", p, err)
	}

	o = defaultOptions()
	o.pairs = []string{"floppy"}
	if _, err := o.plan(flagsSet()); err == nil || !strings.Contains(err.Error(), "floppy") {
		t.Errorf("unknown pair: %v", err)
	}
	o = defaultOptions()
	o.reps = 0
	if _, err := o.plan(flagsSet("reps")); err == nil {
		t.Error("zero repetitions accepted")
	}
}

func TestCommandLineErrorsAreUsage(t *testing.T) {
	for _, args := range [][]string{{"--smoke", "--long"}, {"--reps", "x"}, {"--pairs", "floppy"}, {"extra"}} {
		cmd := newRootCommand()
		cmd.SetArgs(args)
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetErr(&bytes.Buffer{})
		err := cmd.Execute()
		if _, ok := err.(usageError); !ok {
			t.Errorf("%v: error %v (%T), want a usage error", args, err, err)
		}
	}
}

// TestReportFromSavedLog runs the whole host side on a saved lab output:
// parse, digest, charts, report, README section.
func TestReportFromSavedLog(t *testing.T) {
	dir := t.TempDir()
	var log strings.Builder
	log.WriteString("lab: booting 6.12\n@@bench:info {\"key\":\"kernel\",\"value\":\"6.12.107\"}\n")
	for rep := 1; rep <= 2; rep++ {
		for _, d := range []string{"null_blk", "ublk-null"} {
			for _, j := range plan.Jobs {
				iops := 50000.0
				if d == "ublk-null" {
					iops = 15000
				}
				fmt.Fprintf(&log, `@@bench:fio {"device":%q,"job":%q,"rep":%d,"read":{"iops":%g,"p50_ns":1000,"p99_ns":5000,"p999_ns":9000},"write":{"iops":%g,"p50_ns":1000,"p99_ns":5000,"p999_ns":9000}}`+"\n",
					d, j.Name, rep, iops, iops/2)
			}
		}
	}
	logFile := filepath.Join(dir, "lab-output.log")
	if err := os.WriteFile(logFile, []byte(log.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	readme := filepath.Join(dir, "README.md")
	os.WriteFile(readme, []byte("# x\n<!-- bench:begin -->\nold\n<!-- bench:end -->\n"), 0o644)

	o := defaultOptions()
	o.fromLog, o.readme, o.resultsDir, o.date, o.hostBench = logFile, readme, filepath.Join(dir, "results"), "2026-01-02", false
	o.pairs = []string{"null"}
	p, err := o.plan(flagsSet())
	if err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), o, p); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "results", "2026-01-02")
	for _, f := range []string{"report.md", "results.json", "report.png", "latency.png"} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(md), "| 0.30× (0.30–0.30) | ≥ 0.25× | met |") {
		t.Errorf("report.md lacks the null target verdict:\n%s", md)
	}
	rd, _ := os.ReadFile(readme)
	if !strings.Contains(string(rd), "## Benchmarks") || strings.Contains(string(rd), "old") {
		t.Errorf("README section not rewritten:\n%s", rd)
	}

	// A log without results is an error, not an empty report.
	empty := filepath.Join(dir, "empty.log")
	os.WriteFile(empty, []byte("lab: nothing\n"), 0o644)
	o.fromLog = empty
	if err := run(context.Background(), o, p); err == nil {
		t.Error("a log without results gave no error")
	}
}

func TestProgressLine(t *testing.T) {
	for line, want := range map[string]bool{
		"bench: rep 1: brd on /dev/ram0": true,
		"PASS 10-devices.sh (10s)":       true,
		"lab: 1 passed":                  true,
		"[   1.0] virtio_blk virtio1":    false,
		"@@lab:begin 10-devices.sh":      false,
	} {
		if progressLine(line) != want {
			t.Errorf("progressLine(%q) = %v", line, !want)
		}
	}
}

// TestRerender renders a saved results.json again with notes found next
// to it, without running anything.
func TestRerender(t *testing.T) {
	dir := t.TempDir()
	var log strings.Builder
	for _, d := range []string{"null_blk", "ublk-null"} {
		fmt.Fprintf(&log, `@@bench:fio {"device":%q,"job":"randread-4k-qd32x2","rep":1,"read":{"iops":%d}}`+"\n", d, map[string]int{"null_blk": 40000, "ublk-null": 4000}[d])
	}
	logFile := filepath.Join(dir, "lab.log")
	os.WriteFile(logFile, []byte(log.String()), 0o644)
	o := defaultOptions()
	o.fromLog, o.readme, o.resultsDir, o.date, o.hostBench = logFile, "", dir, "d", false
	o.pairs = []string{"null"}
	p, err := o.plan(flagsSet())
	if err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), o, p); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "d")
	os.WriteFile(filepath.Join(out, "notes.md"), []byte("Profiled: the queue thread sleeps per request."), 0o644)
	o2 := defaultOptions()
	o2.rerender, o2.readme = out, ""
	if err := rerender(o2); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	for _, want := range []string{"## Notes\n\nProfiled: the queue thread sleeps per request.", "| 0.10× | ≥ 0.25× | **missed** |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("re-rendered report lacks %q:\n%s", want, md)
		}
	}
	o2.rerender = filepath.Join(dir, "nowhere")
	if err := rerender(o2); err == nil {
		t.Error("rerender of a missing directory succeeded")
	}
}

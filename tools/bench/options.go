package main

import (
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sheepblk/sheepblk/tools/bench/plan"
)

// options are the command line.
type options struct {
	smoke, long bool

	runtime, ramp time.Duration
	reps, sizeMB  int
	queues, depth int
	pairs         []string
	rssDuration   time.Duration
	rssDevice     string
	kernel        string
	labBin        string
	scriptsDir    string
	workDir       string
	resultsDir    string
	date          string
	readme        string
	notes         string
	hostBench     bool
	hostBenchTime string
	fromLog       string
	rerender      string
	profiles      bool
	timeout       time.Duration
	verbose       bool
	labExtraFlags []string
	writeIntoOut  bool
	ublksrvDir    string
}

func defaultOptions() *options {
	d := plan.Default()
	return &options{
		runtime: d.Runtime, ramp: d.Ramp, reps: d.Reps, sizeMB: d.SizeMB,
		queues: d.UblkQueues, depth: d.UblkDepth, rssDuration: d.RSSDuration, rssDevice: d.RSSDevice,
		kernel: "6.12", labBin: "out/lab/lab", scriptsDir: "tests/bench", workDir: "out/bench",
		resultsDir: "bench/results", readme: "README.md", hostBench: true, hostBenchTime: "1s", profiles: true,
	}
}

func (o *options) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&o.smoke, "smoke", false, "CI smoke run: null_blk vs ublk null, 2 s jobs, once; results under out/bench, README untouched")
	f.BoolVar(&o.long, "long", false, "careful run: 10 s jobs, 3 repetitions, a 10-minute memory run")
	f.DurationVar(&o.runtime, "runtime", o.runtime, "fio runtime of each job, after the ramp")
	f.DurationVar(&o.ramp, "ramp", o.ramp, "fio ramp-up before each job's measured time")
	f.IntVar(&o.reps, "reps", o.reps, "repetitions of every (device, job)")
	f.IntVar(&o.sizeMB, "size-mb", o.sizeMB, "MiB of each device the jobs use (and the backing files' size)")
	f.IntVar(&o.queues, "ublk-queues", o.queues, "ublkctl add -q for every ublk device")
	f.IntVar(&o.depth, "ublk-depth", o.depth, "ublkctl add -d for every ublk device")
	f.StringSliceVar(&o.pairs, "pairs", nil, "device pairs to run (default: all but ref-null and ref-file, which --ublksrv adds): "+strings.Join(plan.PairNames(), ","))
	f.DurationVar(&o.rssDuration, "rss-duration", o.rssDuration, "length of the mixed run during which the daemon's memory is sampled (0: none)")
	f.StringVar(&o.rssDevice, "rss-device", o.rssDevice, "ublk device of the memory run")
	f.StringVar(&o.kernel, "kernel", o.kernel, "lab guest kernel (6.12 or 7.3)")
	f.StringVar(&o.labBin, "lab", o.labBin, "the lab runner binary (make lab-runner)")
	f.StringVar(&o.scriptsDir, "scripts", o.scriptsDir, "directory of the guest benchmark scripts")
	f.StringVar(&o.workDir, "work", o.workDir, "scratch directory: staged guest scripts, lab disks, the lab's output")
	f.StringVar(&o.resultsDir, "results", o.resultsDir, "the report goes to RESULTS/DATE/")
	f.StringVar(&o.date, "date", "", "report directory name (default: today, UTC, YYYY-MM-DD)")
	f.StringVar(&o.readme, "readme", o.readme, "README whose Benchmarks section is rewritten (\"\": none)")
	f.StringVar(&o.notes, "notes", "", "Markdown file of hand-written notes (profiles, causes) for the report and README")
	f.BoolVar(&o.profiles, "profiles", o.profiles, "profile the ublk daemon with perf in the guest on a few slow paths (plan.DefaultProfiles)")
	f.BoolVar(&o.hostBench, "host-bench", o.hostBench, "also run go test -bench ./ublk ./placement ./rpc on the host")
	f.StringVar(&o.hostBenchTime, "host-benchtime", o.hostBenchTime, "go test -benchtime for the host benchmarks")
	f.StringVar(&o.fromLog, "from-log", "", "do not boot: build the report from this saved lab output or console log")
	f.StringVar(&o.rerender, "rerender", "", "do not run anything: render DIR/results.json again (report, charts, README), with DIR/notes.md or --notes")
	f.DurationVar(&o.timeout, "timeout", 0, "wall-clock limit of the lab boot (default: estimated from the plan, ×2)")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "print the whole guest console, not only the benchmark's progress")
	f.StringVar(&o.ublksrvDir, "ublksrv", "", "directory of static ublksrv binaries (ublk, ublk.null, ublk.loop; tools/bench/build-ublksrv.sh): adds the C reference daemon's pairs (ref-null, ref-file)")
	f.StringSliceVar(&o.labExtraFlags, "lab-flag", nil, "extra flag for lab run (repeatable), e.g. --lab-flag=--mem=3072")
}

// plan builds the run's plan: the mode's defaults, then every flag the
// user set explicitly on top.
func (o *options) plan(changed func(string) bool) (plan.Plan, error) {
	p := plan.Default()
	switch {
	case o.smoke:
		p = plan.Smoke()
		if !changed("results") {
			o.resultsDir = o.workDir + "/results"
		}
		if !changed("readme") {
			o.readme = ""
		}
		if !changed("host-bench") {
			o.hostBench = false
		}
	case o.long:
		p = plan.Long()
	}
	if changed("runtime") {
		p.Runtime = o.runtime
	}
	if changed("ramp") {
		p.Ramp = o.ramp
	}
	if changed("reps") {
		p.Reps = o.reps
	}
	if changed("size-mb") {
		p.SizeMB = o.sizeMB
	}
	if changed("ublk-queues") {
		p.UblkQueues = o.queues
	}
	if changed("ublk-depth") {
		p.UblkDepth = o.depth
	}
	if changed("rss-duration") {
		p.RSSDuration = o.rssDuration
	}
	if changed("rss-device") {
		p.RSSDevice = o.rssDevice
	}
	p.UblksrvDir = o.ublksrvDir
	if o.ublksrvDir != "" && !o.smoke {
		p = p.WithReference()
	}
	if len(o.pairs) > 0 {
		prs, err := plan.PairsNamed(o.pairs...)
		if err != nil {
			return p, err
		}
		p.Pairs = prs
	}
	// Profile only devices the run makes anyway.
	in := map[string]bool{}
	for _, d := range p.Devices() {
		in[d] = true
	}
	var profiles []plan.Profile
	for _, pr := range p.Profiles {
		if o.profiles && in[pr.Device] {
			profiles = append(profiles, pr)
		}
	}
	p.Profiles = profiles
	return p, p.Validate()
}

// mode names the run for the report.
func (o *options) mode() string {
	switch {
	case o.smoke:
		return "smoke"
	case o.long:
		return "long"
	}
	return "default"
}

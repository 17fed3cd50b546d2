package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sheepblk/sheepblk/tools/lab/console"
	"github.com/sheepblk/sheepblk/tools/lab/kernel"
	"github.com/sheepblk/sheepblk/tools/lab/vm"
)

// failedRun is returned when the report has already said what failed.
type failedRun struct{ summary string }

func (f *failedRun) Error() string { return f.summary }

// bootFlags are shared by run and shell.
type bootFlags struct {
	kernel      string
	memMiB      int
	cpus        int
	timeout     time.Duration
	testTimeout time.Duration
	hungTask    int
	scratch     string
	rawDisks    []string
	kernelArgs  string
	crashGrace  time.Duration
	binDir      string
	testsDir    string
	outDir      string
	goTests     []string
	withQemu    bool
	// needs is what the selected scripts' lab-needs lines ask for
	// (run); the shell gets everything.
	needs imageNeeds
}

func (b *bootFlags) register(cmd *cobra.Command, timeout time.Duration) {
	f := cmd.Flags()
	f.StringVar(&b.kernel, "kernel", "6.12", "guest kernel: "+strings.Join(kernel.Labels(), " or "))
	f.IntVar(&b.memMiB, "mem", 2048, "guest memory in MiB")
	f.IntVar(&b.cpus, "cpus", 2, "guest CPUs")
	f.DurationVar(&b.timeout, "timeout", timeout, "wall-clock limit for the whole boot; QEMU is killed after it")
	f.DurationVar(&b.testTimeout, "test-timeout", 5*time.Minute, "limit for each guest test script")
	f.IntVar(&b.hungTask, "hung-task-secs", 60, "guest hung_task_timeout_secs (a hung task fails the run)")
	f.StringVar(&b.scratch, "scratch", "2G", "size of the ext4 scratch disk mounted at /scratch (\"0\": none)")
	f.StringSliceVar(&b.rawDisks, "raw-disk", nil, "size of an extra unformatted virtio disk (repeatable); the guest lists them in $LAB_RAW_DISKS")
	f.StringVar(&b.kernelArgs, "kernel-args", "", "extra guest kernel command line (e.g. loglevel=7 to see OOM reports in full)")
	f.DurationVar(&b.crashGrace, "crash-grace", 20*time.Second, "how long the guest may keep running after a kernel crash line before QEMU is killed")
	f.StringVar(&b.binDir, "bin-dir", "bin", "directory with the project's static binaries")
	f.StringVar(&b.testsDir, "tests-dir", "tests/lab", "directory with the guest test scripts")
	f.StringVar(&b.outDir, "out", "out/lab", "directory for the initrd, disks and console logs")
	f.BoolVar(&b.withQemu, "with-qemu", false, "put qemu-system-x86_64, qemu-img, their firmware and this kernel (/lab/vmlinuz) into the guest, for tests that boot a nested VM")
	f.StringSliceVar(&b.goTests, "go-test", []string{"./reclaim", "./ublk"}, "packages whose test binaries go into /lab/gotest")
}

// testScript matches the guest test scripts run by default.
var testScript = regexp.MustCompile(`^[0-9][0-9]-[A-Za-z0-9_.-]+\.sh$`)

// selectTests resolves the command's arguments (script names or name
// prefixes like "12" or "12-target-file") against the tests directory;
// no arguments means every NN-name.sh script.
func selectTests(dir string, args []string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read tests directory: %w", err)
	}
	var scripts []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".sh") {
			scripts = append(scripts, e.Name())
		}
	}
	sort.Strings(scripts)
	if len(args) == 0 {
		var all []string
		for _, s := range scripts {
			if testScript.MatchString(s) {
				all = append(all, s)
			}
		}
		return all, nil
	}
	var picked []string
	for _, a := range args {
		var match []string
		for _, s := range scripts {
			if s == a || strings.HasPrefix(s, a+"-") || s == a+".sh" {
				match = append(match, s)
			}
		}
		if len(match) != 1 {
			return nil, usageError{fmt.Errorf("test %q matches %d scripts in %s (%v): name one of them", a, len(match), dir, match)}
		}
		picked = append(picked, match[0])
	}
	return picked, nil
}

func newRunCommand(g *globalFlags) *cobra.Command {
	b := &bootFlags{}
	cmd := &cobra.Command{
		Use:   "run [TEST...]",
		Short: "Boot the lab and run guest test scripts (all NN-*.sh by default)",
		RunE: func(cmd *cobra.Command, args []string) error {
			tests, err := selectTests(b.testsDir, args)
			if err != nil {
				return err
			}
			if len(tests) == 0 {
				return usageError{fmt.Errorf("no test scripts in %s", b.testsDir)}
			}
			needs, err := readNeeds(b.testsDir, tests)
			if err != nil {
				return err
			}
			b.needs = needs
			return runTests(cmd.Context(), g, b, tests)
		},
	}
	b.register(cmd, 20*time.Minute)
	return cmd
}

func newShellCommand(g *globalFlags) *cobra.Command {
	b := &bootFlags{}
	cmd := &cobra.Command{
		Use:   "shell",
		Short: "Boot the lab to an interactive root shell on the serial console",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			run, err := prepareBoot(cmd.Context(), g, b, "LAB_MODE=shell\n")
			if run != nil {
				defer run.finish(b.outDir)
			}
			if err != nil {
				return err
			}
			run.opts.Interactive = true
			run.opts.Console = os.Stdout
			return vm.Boot(cmd.Context(), run.opts)
		},
	}
	b.register(cmd, 8*time.Hour)
	return cmd
}

// bootRun is one prepared boot: its own directory under --out (so runs
// started at the same time by different people never share files), the
// VM options and the console log path.
type bootRun struct {
	dir     string
	label   string
	logPath string
	opts    vm.Options
}

// keepRuns is how many run directories per kernel survive pruning.
const keepRuns = 5

// finish deletes the run's bulky files (initrd, disks, test binaries),
// keeps its console log, points out/lab/console-<kernel>.log at it and
// prunes old runs.
func (r *bootRun) finish(outDir string) {
	entries, _ := os.ReadDir(r.dir)
	for _, e := range entries {
		if e.Name() != "console.log" {
			_ = os.RemoveAll(filepath.Join(r.dir, e.Name()))
		}
	}
	link := filepath.Join(outDir, "console-"+r.label+".log")
	_ = os.Remove(link)
	_ = os.Symlink(filepath.Join(filepath.Base(r.dir), "console.log"), link)
	old, _ := filepath.Glob(filepath.Join(outDir, "run-"+r.label+"-*"))
	sort.Strings(old) // names start with the UTC time: oldest first
	for len(old) > keepRuns {
		_ = os.RemoveAll(old[0])
		old = old[1:]
	}
}

// prepareBoot fetches the kernel and builds the initrd and disks in a new
// run directory.
func prepareBoot(ctx context.Context, g *globalFlags, b *bootFlags, plan string) (*bootRun, error) {
	log := g.logger()
	if _, ok := kernel.Suites[b.kernel]; !ok {
		return nil, usageError{fmt.Errorf("unknown --kernel %q: want one of %v", b.kernel, kernel.Labels())}
	}
	cacheDir := g.cacheDir
	if cacheDir == "" {
		cacheDir = kernel.DefaultCacheDir()
	}
	if err := os.MkdirAll(b.outDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", b.outDir, err)
	}
	k, err := kernel.Fetch(ctx, b.kernel, kernel.Options{CacheDir: cacheDir, Log: log})
	if err != nil {
		return nil, err
	}
	runDir, err := os.MkdirTemp(b.outDir, "run-"+k.Label+"-"+time.Now().UTC().Format("20060102-150405")+"-")
	if err != nil {
		return nil, fmt.Errorf("create run directory: %w", err)
	}
	run := &bootRun{dir: runDir, label: k.Label, logPath: filepath.Join(runDir, "console.log")}
	var disks []string
	if b.scratch != "0" && b.scratch != "" {
		disk, err := makeScratchDisk(ctx, filepath.Join(runDir, "scratch.img"), b.scratch)
		if err != nil {
			return run, err
		}
		disks = append(disks, disk)
		plan += fmt.Sprintf("LAB_SCRATCH_DISK=/dev/%s\n", virtioName(0))
	}
	var raw []string
	for i, size := range b.rawDisks {
		file := filepath.Join(runDir, fmt.Sprintf("raw%d.img", i))
		if err := makeRawDisk(ctx, file, size); err != nil {
			return run, err
		}
		raw = append(raw, "/dev/"+virtioName(len(disks)))
		disks = append(disks, file)
	}
	plan += fmt.Sprintf("LAB_RAW_DISKS='%s'\n", strings.Join(raw, " "))
	plan += fmt.Sprintf("LAB_TEST_TIMEOUT=%d\nLAB_HUNG_TASK_SECS=%d\n", int(b.testTimeout.Seconds()), b.hungTask)
	o := imageOptions{
		cacheDir: cacheDir, outDir: runDir, binDir: b.binDir, testsDir: b.testsDir,
		goTests: b.goTests, plan: []byte(plan), needs: b.needs, log: log,
	}
	if o.needs.names == nil {
		o.needs = needsAll
	}
	if b.withQemu {
		o.vmlinuz = k.Vmlinuz()
	}
	initrd, err := buildInitrd(k, o)
	if err != nil {
		return run, err
	}
	run.opts = vm.Options{
		Kernel: k.Vmlinuz(), Initrd: initrd, MemoryMiB: b.memMiB, CPUs: b.cpus,
		Disks: disks, Timeout: b.timeout, CrashGrace: b.crashGrace,
	}
	if b.kernelArgs != "" {
		run.opts.Cmdline = vm.DefaultCmdline + " " + b.kernelArgs
	}
	return run, nil
}

// initrdSize is the initrd's compressed size, for the run's report.
func initrdSize(file string) string {
	fi, err := os.Stat(file)
	if err != nil {
		return "size unknown"
	}
	return fmt.Sprintf("initrd %d MB", fi.Size()>>20)
}

// virtioName is the guest's name of the i-th virtio disk (vda, vdb, ...).
func virtioName(i int) string { return "vd" + string(rune('a'+i)) }

// makeRawDisk creates a fresh sparse image of the given size.
func makeRawDisk(ctx context.Context, file, size string) error {
	_ = os.Remove(file)
	out, err := exec.CommandContext(ctx, "truncate", "-s", size, file).CombinedOutput()
	if err != nil {
		return usageError{fmt.Errorf("disk size %q: truncate: %v: %s", size, err, strings.TrimSpace(string(out)))}
	}
	return nil
}

// makeScratchDisk creates a fresh sparse image and formats it ext4 on the
// host, where mkfs is fast (in the emulated guest it is not).
func makeScratchDisk(ctx context.Context, file, size string) (string, error) {
	if err := makeRawDisk(ctx, file, size); err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, "/usr/sbin/mkfs.ext4", "-q", "-F", "-L", "scratch", file).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("format scratch disk %s: %v: %s", file, err, strings.TrimSpace(string(out)))
	}
	return file, nil
}

func runTests(ctx context.Context, g *globalFlags, b *bootFlags, tests []string) error {
	plan := fmt.Sprintf("LAB_MODE=tests\nLAB_TESTS='%s'\n", strings.Join(tests, " "))
	run, err := prepareBoot(ctx, g, b, plan)
	if run != nil {
		defer run.finish(b.outDir)
	}
	if err != nil {
		return err
	}
	opts, logPath := run.opts, run.logPath
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create console log: %w", err)
	}
	defer logFile.Close()
	opts.Console = logFile
	if g.verbose {
		opts.Console = io.MultiWriter(logFile, os.Stdout)
	}
	sess := console.NewSession(nil)
	fmt.Printf("lab: booting %s (%s), %d test(s), image with %s (%s), console log %s\n", b.kernel, filepath.Base(opts.Kernel), len(tests),
		b.needs, initrdSize(opts.Initrd), logPath)
	opts.OnLine = func(line string) bool {
		crashes := len(sess.Crashes)
		r, perr := sess.Line(line)
		if perr != nil {
			fmt.Printf("lab: console: %v\n", perr)
		}
		if r != nil {
			printResult(*r, g.verbose)
		}
		if len(sess.Crashes) > crashes {
			fmt.Printf("lab: GUEST KERNEL CRASH during %q: %s\n", sess.Running(), line)
			return true
		}
		return false
	}
	start := time.Now()
	bootErr := vm.Boot(ctx, opts)
	sess.Finish(tests)
	for _, r := range sess.Results {
		if r.Outcome == console.NotReached || r.Outcome == console.Unfinished {
			printResult(r, g.verbose)
		}
	}
	if bootErr != nil {
		fmt.Printf("lab: %v\n", bootErr)
	}
	if !sess.Done && bootErr == nil {
		fmt.Printf("lab: the guest stopped before finishing its tests (see %s)\n", logPath)
	}
	for _, c := range sess.Crashes {
		fmt.Printf("lab: guest kernel crash line: %s\n", c)
	}
	fmt.Printf("lab: kernel %s, %s wall clock, console log %s\n", sess.Kernel, time.Since(start).Round(time.Second), logPath)
	if len(sess.Crashes) > 0 {
		fmt.Printf("lab: FAILED: the guest kernel crashed (%d crash line(s) above)\n", len(sess.Crashes))
	}
	summary := sess.Summary()
	fmt.Println(summary)
	if bootErr != nil || !sess.OK() {
		return &failedRun{summary: summary}
	}
	return nil
}

// printResult prints one test's verdict; a failed test's console output
// follows when it was not already streamed.
func printResult(r console.Result, verbose bool) {
	status := ""
	if r.Outcome == console.Fail {
		status = fmt.Sprintf(" exit %d", r.Status)
		if r.Crashed {
			status += ", guest kernel crashed during it"
		}
	}
	fmt.Printf("%-4s %s (%s)%s\n", r.Outcome, r.Test, r.Duration.Round(100*time.Millisecond), status)
	if r.Outcome != console.Pass && r.Outcome != console.Skip && !verbose {
		for _, l := range r.Output {
			fmt.Printf("     | %s\n", l)
		}
	}
	if r.Outcome == console.Skip && !verbose {
		for _, l := range r.Output {
			if strings.Contains(l, "SKIP") {
				fmt.Printf("     | %s\n", l)
			}
		}
	}
}

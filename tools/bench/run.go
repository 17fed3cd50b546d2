package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sheepblk/sheepblk/tools/bench/chart"
	"github.com/sheepblk/sheepblk/tools/bench/hostbench"
	"github.com/sheepblk/sheepblk/tools/bench/plan"
	"github.com/sheepblk/sheepblk/tools/bench/report"
	"github.com/sheepblk/sheepblk/tools/bench/results"
)

// run is the whole command: boot (or read a saved log), digest, write.
func run(ctx context.Context, o *options, p plan.Plan) error {
	start := time.Now()
	meta := report.Meta{Date: o.date, Mode: o.mode(), Kernel: o.kernel, Commit: gitCommit()}
	if meta.Date == "" {
		meta.Date = time.Now().UTC().Format("2006-01-02")
	}
	var notes string
	if o.notes != "" {
		b, err := os.ReadFile(o.notes)
		if err != nil {
			return usageError{fmt.Errorf("--notes: %w", err)}
		}
		notes = string(b)
	}
	var con *results.Console
	var err error
	if o.fromLog != "" {
		con, err = parseFile(o.fromLog)
		if err != nil {
			return err
		}
	} else {
		var labErr error
		loadBefore := loadAverage()
		con, labErr = boot(ctx, o, p)
		meta.HostLoad = loadBefore + " → " + loadAverage()
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w", ctx.Err())
		}
		if labErr != nil {
			meta.LabError = labErr.Error()
			fmt.Printf("bench: %v\n", labErr)
		}
		meta.Wall = time.Since(start).Round(time.Second).String()
	}
	if len(con.Runs) == 0 {
		return fmt.Errorf("no fio run produced a result (lab output in %s): nothing to report", labOutput(o))
	}
	rep := report.New(p, meta, con)
	rep.Notes, rep.ReadmeNotes = notes, notes
	if o.hostBench {
		fmt.Printf("bench: host microbenchmarks: go test -bench . %s\n", strings.Join(hostbench.Packages, " "))
		rep.Host, err = hostbench.Run(ctx, hostbench.Options{BenchTime: o.hostBenchTime})
		if err != nil {
			rep.HostNote = err.Error()
			fmt.Printf("bench: host benchmarks: %v\n", err)
		}
	}
	dir := filepath.Join(o.resultsDir, meta.Date)
	if err := writeReport(rep, dir, o.readme); err != nil {
		return err
	}
	printVerdicts(rep, dir)
	if o.smoke {
		return smokeVerdict(rep)
	}
	return nil
}

// rerender renders a saved run again: after notes were written, or by a
// newer renderer. Nothing runs. DIR/notes.md (or --notes) goes into the
// report and, unless DIR/readme-notes.md gives a shorter text, the README.
func rerender(o *options) error {
	rep, err := report.Load(filepath.Join(o.rerender, report.JSONFile))
	if err != nil {
		return usageError{fmt.Errorf("--rerender: %w", err)}
	}
	notes := o.notes
	if notes == "" {
		if _, err := os.Stat(filepath.Join(o.rerender, "notes.md")); err == nil {
			notes = filepath.Join(o.rerender, "notes.md")
		}
	}
	if notes != "" {
		b, err := os.ReadFile(notes)
		if err != nil {
			return usageError{fmt.Errorf("--notes: %w", err)}
		}
		rep.Notes, rep.ReadmeNotes = string(b), string(b)
	}
	// A shorter text for the README, if one was written next to them.
	if b, err := os.ReadFile(filepath.Join(o.rerender, "readme-notes.md")); err == nil {
		rep.ReadmeNotes = string(b)
	}
	if err := writeReport(rep, o.rerender, o.readme); err != nil {
		return err
	}
	printVerdicts(rep, o.rerender)
	return nil
}

func labOutput(o *options) string { return filepath.Join(o.workDir, "lab-output.log") }

func parseFile(file string) (*results.Console, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, usageError{fmt.Errorf("--from-log: %w", err)}
	}
	defer f.Close()
	c, err := results.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", file, err)
	}
	return c, nil
}

// boot stages the guest directory and runs the lab with it, reading the
// streamed console as it comes. The error is the lab's (a crash, a
// timeout, a failed script); the records read before it are returned.
func boot(ctx context.Context, o *options, p plan.Plan) (*results.Console, error) {
	guest := filepath.Join(o.workDir, "guest")
	if err := p.Stage(o.scriptsDir, guest); err != nil {
		return nil, err
	}
	if _, err := os.Stat(o.labBin); err != nil {
		return nil, fmt.Errorf("lab runner %s missing: run make lab-runner (or pass --lab)", o.labBin)
	}
	timeout := o.timeout
	if timeout == 0 {
		timeout = 2*p.GuestTime() + 5*time.Minute
	}
	args := []string{"run", "--kernel", o.kernel, "--tests-dir", guest, "--out", filepath.Join(o.workDir, "lab"),
		"--timeout", timeout.String(), "--test-timeout", timeout.String(), "--scratch", scratchSize(p),
		"--go-test=", "-v"}
	args = append(args, o.labExtraFlags...)
	args = append(args, p.Scripts()...)
	fmt.Printf("bench: %d devices × %d jobs × %d repetitions, %s per job; guest time about %s (limit %s)\n",
		len(p.Devices()), len(p.Jobs), p.Reps, p.Runtime, p.GuestTime().Round(time.Minute), timeout)
	fmt.Printf("bench: %s %s\n", o.labBin, strings.Join(args, " "))

	logFile, err := os.Create(labOutput(o))
	if err != nil {
		return nil, fmt.Errorf("create lab output log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, o.labBin, args...)
	cmd.WaitDelay = 10 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start lab: %w", err)
	}
	con := &results.Console{Info: map[string]string{}}
	done := make(chan error, 1)
	go func() { done <- follow(pr, logFile, con, o.verbose) }()
	runErr := cmd.Wait()
	pw.Close()
	readErr := <-done
	switch {
	case runErr != nil:
		return con, fmt.Errorf("lab run: %w (full output in %s)", runErr, labOutput(o))
	case readErr != nil:
		return con, fmt.Errorf("read lab output: %w", readErr)
	}
	return con, nil
}

// scratchSize fits the backing files: two of SizeMB (loop/ublk file and
// nbd), up to three copies of a VDI for sheep, and ext4's own room.
func scratchSize(p plan.Plan) string {
	return fmt.Sprintf("%dM", 6*p.SizeMB+512)
}

// follow copies the lab's output to the log, feeds every line to the
// console parser and shows the progress (or everything, verbose).
func follow(r io.Reader, log io.Writer, con *results.Console, verbose bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			_, _ = io.WriteString(log, line)
			text := strings.TrimRight(line, "\r\n")
			record := con.Line(text)
			if verbose || (!record && progressLine(text)) {
				fmt.Println(text)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// progressLine picks what a person watching `make bench` wants to see:
// the guest scripts' own words and the lab runner's verdicts.
func progressLine(s string) bool {
	for _, p := range []string{"bench:", "lab:", "PASS", "FAIL", "SKIP", "     |"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func writeReport(rep *report.Report, dir, readme string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	var charts []string
	draw := func(name string, fn func(string) error) {
		if err := fn(filepath.Join(dir, name)); err != nil {
			fmt.Printf("bench: %v\n", err)
			return
		}
		charts = append(charts, name)
	}
	p := rep.Plan()
	draw(report.IOPSChart, func(f string) error { return chart.IOPS(f, p, rep.Summary) })
	draw(report.LatencyChart, func(f string) error { return chart.Latency(f, p, rep.Summary) })
	if len(rep.RSS) > 0 {
		draw(report.MemoryChart, func(f string) error { return chart.Memory(f, rep.RSS) })
	}
	if err := rep.WriteJSON(dir); err != nil {
		return err
	}
	if err := rep.WriteMarkdown(dir, charts); err != nil {
		return err
	}
	if readme != "" {
		if err := report.UpdateReadme(readme, rep.ReadmeSection(filepath.ToSlash(dir), charts)); err != nil {
			return err
		}
	}
	return nil
}

func printVerdicts(rep *report.Report, dir string) {
	fmt.Printf("bench: %d fio results, %d skipped device(s), %d failed run(s)\n", len(rep.Runs), len(rep.Skips), len(rep.Failures))
	for _, row := range rep.TargetRows() {
		fmt.Printf("bench: %-8s %s [%s]: %s\n", row[5], row[0], row[1], row[3])
	}
	fmt.Printf("bench: report in %s\n", filepath.Join(dir, report.MarkdownFile))
}

// smokeVerdict fails CI's smoke run when anything planned did not run.
func smokeVerdict(rep *report.Report) error {
	var problems []string
	if rep.Meta.LabError != "" {
		problems = append(problems, rep.Meta.LabError)
	}
	for _, s := range rep.Skips {
		problems = append(problems, fmt.Sprintf("%s skipped: %s", s.Device, s.Reason))
	}
	for _, f := range rep.Failures {
		problems = append(problems, fmt.Sprintf("%s %s failed: %s", f.Device, f.Job, f.Message))
	}
	want := len(rep.Plan().Devices()) * len(rep.Plan().Jobs) * rep.Plan().Reps
	if len(rep.Runs) != want {
		problems = append(problems, fmt.Sprintf("%d of %d fio runs reported", len(rep.Runs), want))
	}
	if len(problems) > 0 {
		return fmt.Errorf("smoke run incomplete: %s", strings.Join(problems, "; "))
	}
	return nil
}

// loadAverage is the host's 1-minute load average ("?" if unknown).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// gitCommit is the short commit of the working tree ("" outside git),
// marked -dirty when it has changes.
func gitCommit() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty", "--abbrev=12").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

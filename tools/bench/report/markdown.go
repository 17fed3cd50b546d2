package report

import (
	"fmt"
	"sort"
	"strings"

	"github.com/sheepblk/sheepblk/tools/bench/plan"
	"github.com/sheepblk/sheepblk/tools/bench/results"
)

// Markdown renders report.md; charts are the chart files (in the same
// directory) to show.
func (r *Report) Markdown(charts []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# sheepblk benchmarks, %s\n\n", r.Meta.Date)
	r.writeSetup(&b)
	if has(charts, IOPSChart) {
		fmt.Fprintf(&b, "![IOPS per job and device](%s)\n\n", IOPSChart)
	}
	b.WriteString("## Targets (issue 5), ublk / peer in the same boot\n\n")
	r.writeTargets(&b)
	b.WriteString("## IOPS (median of the repetitions, ± half their range)\n\n")
	r.writeIOPS(&b)
	b.WriteString("## Ratios ublk / peer (IOPS; median, and the range of the per-repetition ratios)\n\n")
	r.writeRatios(&b)
	b.WriteString("## Completion latency, µs (median of the repetitions)\n\n")
	r.writeLatency(&b)
	if has(charts, LatencyChart) {
		fmt.Fprintf(&b, "![latency percentiles](%s)\n\n", LatencyChart)
	}
	b.WriteString("## What the ublk daemon spent: CPU (1.00 = one vCPU busy) and context switches per I/O\n\n")
	r.writeDaemon(&b)
	b.WriteString("## Requests each device was handed: average size and merges (first repetition)\n\n")
	r.writeRequests(&b)
	b.WriteString("## The daemon's memory during a mixed run\n\n")
	r.writeMemory(&b)
	if has(charts, MemoryChart) && r.Summary.Memory != nil {
		fmt.Fprintf(&b, "![daemon RSS over the run](%s)\n\n", MemoryChart)
	}
	b.WriteString("## Profiles of the ublk daemon (perf inside the guest, cpu-clock sampling of the daemon's threads)\n\n")
	r.writeProfiles(&b)
	b.WriteString("## Host microbenchmarks (`go test -bench`, on the host, not in the VM)\n\n")
	r.writeHost(&b)
	b.WriteString("## Not measured in this run\n\n")
	r.writeGaps(&b)
	if r.Notes != "" {
		b.WriteString("## Notes\n\n")
		b.WriteString(strings.TrimSpace(r.Notes) + "\n")
	}
	return b.String()
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (r *Report) writeSetup(b *strings.Builder) {
	g := r.Meta.Guest
	fmt.Fprintf(b, "Lab VM: QEMU TCG (emulated, single-threaded), %s vCPUs, %s kB RAM, kernel %s, %s. ",
		orUnknown(g["cpus"]), orUnknown(g["mem_kb"]), orUnknown(g["kernel"]), orUnknown(g["fio"]))
	fmt.Fprintf(b, "Every (device, job) ran %d time(s): fio, io_uring engine, `--direct=1`, %s after a %s ramp, over the first %d MiB of each device. ",
		r.Meta.Reps, r.Meta.Runtime, r.Meta.Ramp, r.Meta.SizeMB)
	fmt.Fprintf(b, "ublk devices: `ublkctl add -q %d -d %d`. ", r.Meta.UblkQueues, r.Meta.UblkDepth)
	b.WriteString("All devices ran in one boot, pair by pair, the side that goes first alternating between repetitions; absolute numbers of an emulated machine are low and noisy, the ratios are what to read. ")
	fmt.Fprintf(b, "Mode: %s", r.Meta.Mode)
	if r.Meta.Commit != "" {
		fmt.Fprintf(b, ", commit %s", r.Meta.Commit)
	}
	if r.Meta.Wall != "" {
		fmt.Fprintf(b, ", %s wall clock", r.Meta.Wall)
	}
	if r.Meta.HostLoad != "" {
		fmt.Fprintf(b, ", host load average %s (the host's 2 cores are shared; TCG runs the guest on one host thread)", r.Meta.HostLoad)
	}
	b.WriteString(".\n\n")
	if r.Meta.LabError != "" {
		fmt.Fprintf(b, "**The lab run did not finish cleanly:** %s. The numbers below are what it printed before that.\n\n", oneLine(r.Meta.LabError))
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func (r *Report) jobTitle(name string) string {
	if j, ok := plan.JobByName(name); ok {
		return j.Title
	}
	return name
}

func deviceTitle(name string) string {
	if d, ok := plan.DeviceByName(name); ok {
		return d.Title
	}
	return name
}

// TargetRows are the targets table's rows (shared with the README).
func (r *Report) TargetRows() [][]string {
	var rows [][]string
	for _, v := range r.Summary.Verdicts {
		bound := fmt.Sprintf("≥ %.2f×", v.Bound)
		if v.AtMost {
			bound = fmt.Sprintf("≤ %.2f×", v.Bound)
		}
		what := string(v.Metric)
		got, verdict := "—", "not measured: "+oneLine(v.Why)
		if v.Measured {
			got = ratio(v.Ratio)
			if c, ok := r.comparison(v.Pair, v.Job, v.Metric); ok {
				got = ratioRange(c)
			}
			verdict = "**missed**"
			if v.Met {
				verdict = "met"
			}
		}
		rows = append(rows, []string{v.Text, r.jobTitle(v.Job), what, got, bound, verdict})
	}
	return rows
}

var targetHeader = []string{"target", "job", "metric", "ublk / peer", "bound", "verdict"}

func (r *Report) writeTargets(b *strings.Builder) {
	rows := r.TargetRows()
	if len(rows) == 0 {
		b.WriteString("No targets apply to the pairs of this run.\n\n")
		return
	}
	table(b, targetHeader, rows)
	if m := r.Summary.Memory; m != nil {
		verdict := "**missed**"
		if m.Flat {
			verdict = "met"
		}
		fmt.Fprintf(b, "Memory: the daemon's RSS grew %s between the two halves of a %d s mixed run (allowed: %s): %s.\n\n",
			mib(m.GrowthKB), m.Seconds, mib(m.MarginKB), verdict)
	}
}

func (r *Report) comparison(pair, job string, m plan.Metric) (results.Comparison, bool) {
	for _, c := range r.Summary.Comparisons {
		if c.Pair == pair && c.Job == job && c.Metric == m {
			return c, true
		}
	}
	return results.Comparison{}, false
}

func (r *Report) cell(device, job string) (results.Cell, bool) {
	for _, c := range r.Summary.Cells {
		if c.Device == device && c.Job == job {
			return c, true
		}
	}
	return results.Cell{}, false
}

// IOPSRows are the IOPS table's rows: one per device that has results.
func (r *Report) IOPSRows() (header []string, rows [][]string) {
	header = []string{"device"}
	for _, j := range r.plan.Jobs {
		header = append(header, j.Title)
	}
	for _, d := range r.plan.Devices() {
		row := []string{deviceTitle(d)}
		any := false
		for _, j := range r.plan.Jobs {
			c, ok := r.cell(d, j.Name)
			if !ok {
				row = append(row, "—")
				continue
			}
			any = true
			row = append(row, count(c.IOPS.Median)+spread(c.IOPS))
		}
		if any {
			rows = append(rows, row)
		}
	}
	return header, rows
}

func (r *Report) writeIOPS(b *strings.Builder) {
	header, rows := r.IOPSRows()
	if len(rows) == 0 {
		b.WriteString("No fio run produced a result.\n\n")
		return
	}
	table(b, header, rows)
}

// RatioRows are the ratio table's rows: one per pair with results.
func (r *Report) RatioRows() (header []string, rows [][]string) {
	header = []string{"pair"}
	for _, j := range r.plan.Jobs {
		header = append(header, j.Title)
	}
	for _, p := range r.plan.Pairs {
		row := []string{p.Title}
		any := false
		for _, j := range r.plan.Jobs {
			c, ok := r.comparison(p.Name, j.Name, plan.MetricIOPS)
			if !ok {
				row = append(row, "—")
				continue
			}
			any = true
			row = append(row, ratioRange(c))
		}
		if any {
			rows = append(rows, row)
		}
	}
	return header, rows
}

func (r *Report) writeRatios(b *strings.Builder) {
	header, rows := r.RatioRows()
	if len(rows) == 0 {
		b.WriteString("No pair has results on both sides.\n\n")
		return
	}
	table(b, header, rows)
}

func (r *Report) writeLatency(b *strings.Builder) {
	header := []string{"device", "job", "side", "p50", "p99", "p99.9"}
	var rows [][]string
	for _, d := range r.plan.Devices() {
		for _, j := range r.plan.Jobs {
			c, ok := r.cell(d, j.Name)
			if !ok || j.BlockSize != "4k" {
				continue
			}
			rows = append(rows, []string{deviceTitle(d), j.Title, c.LatencySide,
				micros(c.P50Ns.Median), micros(c.P99Ns.Median), micros(c.P999Ns.Median)})
		}
	}
	if len(rows) == 0 {
		b.WriteString("No latency results.\n\n")
		return
	}
	table(b, header, rows)
}

// writeDaemon shows, per ublk device and job, the daemon's CPU share and
// context switches per I/O, read from /proc around each fio run: where a
// ublk device is slow, these say whether it is busy (CPU) or sleeping
// and waking per request (switches).
func (r *Report) writeDaemon(b *strings.Builder) {
	header := []string{"ublk device"}
	for _, j := range r.plan.Jobs {
		header = append(header, j.Title)
	}
	var rows [][]string
	for _, d := range r.plan.Devices() {
		row := []string{deviceTitle(d)}
		any := false
		for _, j := range r.plan.Jobs {
			c, ok := r.cell(d, j.Name)
			if !ok || c.DaemonCPU.N == 0 {
				row = append(row, "—")
				continue
			}
			any = true
			row = append(row, fmt.Sprintf("%.2f CPU, %.2f sw/IO", c.DaemonCPU.Median, c.SwitchesPerIO.Median))
		}
		if any {
			rows = append(rows, row)
		}
	}
	if len(rows) == 0 {
		b.WriteString("No daemon counters in this run.\n\n")
		return
	}
	table(b, header, rows)
}

func (r *Report) writeMemory(b *strings.Builder) {
	m := r.Summary.Memory
	if m == nil {
		b.WriteString("No memory run in this mode (or it produced no samples).\n\n")
		return
	}
	fmt.Fprintf(b, "`%s` under %s for %d s, VmRSS of its daemon sampled %d times: idle %s before the load, largest %s in the first half and %s in the second half (growth %s, allowed %s), VmLck %s at the end.\n\n",
		m.Device, plan.RSSJob.Title, m.Seconds, m.Samples, mib(m.IdleKB), mib(m.FirstHalfMaxKB),
		mib(m.SecondHalfMaxKB), mib(m.GrowthKB), mib(m.MarginKB), mib(m.LockedKB))
}

func (r *Report) writeProfiles(b *strings.Builder) {
	if len(r.Profiles) == 0 {
		b.WriteString("None in this run.\n\n")
		return
	}
	for _, p := range r.Profiles {
		fmt.Fprintf(b, "### %s during %s (fio: %s IOPS)\n\n", deviceTitle(p.Device), r.jobTitle(p.Job), orUnknown(p.IOPS))
		fmt.Fprintf(b, "On CPU: %s samples at 499 Hz in %s s.\n\n", orUnknown(p.Samples), orUnknown(p.Seconds))
		b.WriteString("```text\n" + strings.TrimRight(p.Top, "\n") + "\n```\n\n")
		if p.Switches != "" || p.OffCPU != "" {
			fmt.Fprintf(b, "Off CPU: %s context switches in %s s, by the function that switched out:\n\n", orUnknown(p.Switches), orUnknown(p.Seconds))
			b.WriteString("```text\n" + strings.TrimRight(p.OffCPU, "\n") + "\n```\n\n")
		}
		if strings.TrimSpace(p.Callers) != "" {
			b.WriteString("<details><summary>call stacks of the off-CPU switches</summary>\n\n")
			b.WriteString("```text\n" + strings.TrimRight(p.Callers, "\n") + "\n```\n\n</details>\n\n")
		}
	}
}

func (r *Report) writeHost(b *strings.Builder) {
	if len(r.Host) == 0 {
		note := r.HostNote
		if note == "" {
			note = "not run (tools/bench --host-bench=false, or the smoke mode)"
		}
		fmt.Fprintf(b, "None: %s.\n\n", oneLine(note))
		return
	}
	rows := make([][]string, 0, len(r.Host))
	for _, h := range r.Host {
		ns, _ := h.Get("ns/op")
		bop, _ := h.Get("B/op")
		allocs, _ := h.Get("allocs/op")
		var other []string
		for _, m := range h.Metrics {
			switch m.Unit {
			case "ns/op", "B/op", "allocs/op":
			default:
				other = append(other, fmt.Sprintf("%.4g %s", m.Value, m.Unit))
			}
		}
		pkg := h.Package[strings.LastIndexByte(h.Package, '/')+1:]
		rows = append(rows, []string{pkg, strings.TrimPrefix(h.Name, "Benchmark"),
			fmt.Sprintf("%.0f", ns), fmt.Sprintf("%.0f", bop), fmt.Sprintf("%.0f", allocs), strings.Join(other, ", ")})
	}
	table(b, []string{"package", "benchmark", "ns/op", "B/op", "allocs/op", "other"}, rows)
	if r.HostNote != "" {
		fmt.Fprintf(b, "Note: %s\n\n", oneLine(r.HostNote))
	}
}

func (r *Report) writeGaps(b *strings.Builder) {
	if len(r.Skips)+len(r.Failures)+len(r.Unparsed) == 0 {
		b.WriteString("Everything planned was measured.\n\n")
		return
	}
	skips := append([]results.Skip(nil), r.Skips...)
	sort.SliceStable(skips, func(i, j int) bool { return skips[i].Device < skips[j].Device })
	for _, s := range skips {
		fmt.Fprintf(b, "- %s: not available: %s\n", deviceTitle(s.Device), oneLine(s.Reason))
	}
	for _, f := range r.Failures {
		fmt.Fprintf(b, "- %s, %s, repetition %d: failed: %s\n", deviceTitle(f.Device), r.jobTitle(f.Job), f.Rep, oneLine(f.Message))
	}
	for _, u := range r.Unparsed {
		fmt.Fprintf(b, "- a console record that did not decode: `%s`\n", oneLine(u))
	}
	b.WriteString("\n")
}

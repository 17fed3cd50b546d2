package report

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"strings"
)

// README markers: the benchmark section lives between them and nothing
// outside them is touched.
const (
	ReadmeBegin = "<!-- bench:begin -->"
	ReadmeEnd   = "<!-- bench:end -->"
)

// ReadmeSection renders the README's Benchmarks section; dir is the
// report directory relative to the README (e.g. bench/results/2026-11-22).
func (r *Report) ReadmeSection(dir string, charts []string) string {
	var b strings.Builder
	b.WriteString("## Benchmarks\n\n")
	fmt.Fprintf(&b, "`make bench` boots the lab VM once and runs fio (io_uring, `--direct=1`) on every ublk target and, in the same boot, on the kernel driver a user would pick instead: null_blk, brd, loop with direct I/O over the same file, nbd over 127.0.0.1. It writes `bench/results/<date>/` (report.md, results.json, charts); `tools/bench --long` runs 10 s jobs, three repetitions and a 10-minute memory run, `--smoke` a 2-second check of one pair. `make bench UBLKSRV=DIR` also runs ublksrv, the C reference ublk daemon, on the null and file devices (a static build of the user's own ublksrv checkout: `tools/bench/build-ublksrv.sh SRC DIR`). ")
	fmt.Fprintf(&b, "Latest: [%s](%s), %s, %d repetition(s) of %s per job. The VM is emulated (TCG): absolute numbers are low, the ratios to the peer from the same boot are what to read.\n\n",
		path.Join(dir, MarkdownFile), path.Join(dir, MarkdownFile), r.Meta.Date, r.Meta.Reps, r.Meta.Runtime)
	if has(charts, IOPSChart) {
		fmt.Fprintf(&b, "![IOPS per job and device](%s)\n\n", path.Join(dir, IOPSChart))
	}
	b.WriteString("Targets of issue 5 (ublk / peer, same boot):\n\n")
	r.writeTargets(&b)
	b.WriteString("IOPS ratios ublk / peer (median; per-repetition range):\n\n")
	r.writeRatios(&b)
	if len(r.Skips) > 0 {
		b.WriteString("Not measured in this run: ")
		var parts []string
		for _, s := range r.Skips {
			parts = append(parts, fmt.Sprintf("%s (%s)", deviceTitle(s.Device), oneLine(s.Reason)))
		}
		b.WriteString(strings.Join(parts, "; ") + ".\n\n")
	}
	if r.ReadmeNotes != "" {
		b.WriteString(strings.TrimSpace(r.ReadmeNotes) + "\n\n")
	}
	return b.String()
}

// UpdateReadme replaces what lies between the markers in the README at
// file with section. A README without the markers gets them, with the
// section, at its end.
func UpdateReadme(file, section string) error {
	old, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read README: %w", err)
	}
	body := ReadmeBegin + "\n" + strings.TrimRight(section, "\n") + "\n" + ReadmeEnd
	var out []byte
	i, j := bytes.Index(old, []byte(ReadmeBegin)), bytes.Index(old, []byte(ReadmeEnd))
	switch {
	case i >= 0 && j > i:
		out = append(out, old[:i]...)
		out = append(out, body...)
		out = append(out, old[j+len(ReadmeEnd):]...)
	case i < 0 && j < 0:
		out = append(bytes.TrimRight(old, "\n"), "\n\n"+body+"\n"...)
	default:
		return fmt.Errorf("README %s: the markers %s and %s are not in order; fix them by hand", file, ReadmeBegin, ReadmeEnd)
	}
	if err := os.WriteFile(file, out, 0o644); err != nil {
		return fmt.Errorf("write README: %w", err)
	}
	return nil
}

package report

import (
	"fmt"
	"strings"

	"github.com/sheepblk/sheepblk/tools/bench/results"
)

// count formats an IOPS-like number: 950, 1.23k, 57.7k, 1.25M.
func count(v float64) string { return results.FormatCount(v) }

// micros formats nanoseconds as µs with 3 significant digits.
func micros(ns float64) string {
	us := ns / 1e3
	switch {
	case us >= 100:
		return fmt.Sprintf("%.0f", us)
	case us >= 10:
		return fmt.Sprintf("%.1f", us)
	}
	return fmt.Sprintf("%.2f", us)
}

// spread formats a Stat's spread as "±4%" (half the range over the median).
func spread(s results.Stat) string {
	if s.N < 2 {
		return ""
	}
	return fmt.Sprintf(" ±%.0f%%", 50*s.Spread())
}

func ratio(r float64) string { return fmt.Sprintf("%.2f×", r) }

// ratioRange is "0.91× (0.88–0.95)": the median ratio and the range of the
// per-repetition ratios.
func ratioRange(c results.Comparison) string {
	s := ratio(c.Ratio)
	if c.Peer.N > 1 && c.RepMax > 0 {
		s += fmt.Sprintf(" (%.2f–%.2f)", c.RepMin, c.RepMax)
	}
	return s
}

func mib(kb int64) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

// table renders a Markdown table.
func table(b *strings.Builder, header []string, rows [][]string) {
	b.WriteString("| " + strings.Join(header, " | ") + " |\n")
	seps := make([]string, len(header))
	for i := range seps {
		seps[i] = "---"
		if i > 0 {
			seps[i] = "---:"
		}
	}
	b.WriteString("|" + strings.Join(seps, "|") + "|\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	b.WriteString("\n")
}

// oneLine squeezes a message into a table cell.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

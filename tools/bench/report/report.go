package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sheepblk/sheepblk/tools/bench/hostbench"
	"github.com/sheepblk/sheepblk/tools/bench/plan"
	"github.com/sheepblk/sheepblk/tools/bench/results"
)

// Meta says where and how the numbers were taken.
type Meta struct {
	Date       string            `json:"date"`
	Commit     string            `json:"commit,omitempty"`
	Mode       string            `json:"mode"` // default, long or smoke
	Kernel     string            `json:"kernel"`
	Runtime    string            `json:"runtime"`
	Ramp       string            `json:"ramp"`
	Reps       int               `json:"reps"`
	SizeMB     int               `json:"size_mb"`
	UblkQueues int               `json:"ublk_queues"`
	UblkDepth  int               `json:"ublk_depth"`
	Guest      map[string]string `json:"guest"` // what the guest said about itself
	Wall       string            `json:"wall_clock,omitempty"`
	// HostLoad is the host's 1-minute load average when the boot started
	// and when it ended: TCG runs on one host thread, so a busy host
	// slows the guest, and not every device the same way.
	HostLoad string `json:"host_load,omitempty"`
	// LabError is why the lab run did not finish cleanly ("" if it did).
	LabError string `json:"lab_error,omitempty"`
}

// Report is one run, digested.
type Report struct {
	Meta     Meta                  `json:"meta"`
	Summary  results.Summary       `json:"summary"`
	Runs     []results.Run         `json:"runs"`
	Skips    []results.Skip        `json:"skips,omitempty"`
	Failures []results.Failure     `json:"failures,omitempty"`
	Unparsed []string              `json:"unparsed,omitempty"`
	RSS      []results.RSSSample   `json:"rss,omitempty"`
	Host     []hostbench.Benchmark `json:"host_benchmarks,omitempty"`
	HostNote string                `json:"host_benchmarks_note,omitempty"`
	// Notes are hand-written observations (profiles, causes) shown last.
	Notes string `json:"notes,omitempty"`
	// ReadmeNotes are the short form of Notes for the README section.
	ReadmeNotes string `json:"-"`

	plan plan.Plan
}

// New assembles a report from a plan and what its boot printed.
func New(p plan.Plan, meta Meta, c *results.Console) *Report {
	meta.Runtime, meta.Ramp, meta.Reps = p.Runtime.String(), p.Ramp.String(), p.Reps
	meta.SizeMB, meta.UblkQueues, meta.UblkDepth = p.SizeMB, p.UblkQueues, p.UblkDepth
	meta.Guest = c.Info
	if meta.Date == "" {
		meta.Date = time.Now().UTC().Format("2006-01-02")
	}
	return &Report{
		Meta: meta, Summary: results.Summarize(p, c), Runs: c.Runs, Skips: c.Skips,
		Failures: c.Failures, Unparsed: c.Unparsed, RSS: c.RSS, plan: p,
	}
}

// Files a report directory holds.
const (
	MarkdownFile = "report.md"
	JSONFile     = "results.json"
	IOPSChart    = "report.png"
	LatencyChart = "latency.png"
	MemoryChart  = "memory.png"
)

// WriteJSON writes results.json into dir.
func (r *Report) WriteJSON(dir string) error {
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, JSONFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// WriteMarkdown writes report.md into dir; charts lists the chart files
// that exist there.
func (r *Report) WriteMarkdown(dir string, charts []string) error {
	md := r.Markdown(charts)
	if err := os.WriteFile(filepath.Join(dir, MarkdownFile), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// Plan is the plan the report was made for.
func (r *Report) Plan() plan.Plan { return r.plan }

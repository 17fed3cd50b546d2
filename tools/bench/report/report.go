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
	Pairs      []string          `json:"pairs"` // plan.Pair names, in order
	Jobs       []string          `json:"jobs"`  // plan.Job names, in order
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
	Profiles []results.Profile     `json:"profiles,omitempty"`
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
	meta.Pairs, meta.Jobs = nil, nil
	for _, pr := range p.Pairs {
		meta.Pairs = append(meta.Pairs, pr.Name)
	}
	for _, j := range p.Jobs {
		meta.Jobs = append(meta.Jobs, j.Name)
	}
	if meta.Date == "" {
		meta.Date = time.Now().UTC().Format("2006-01-02")
	}
	return &Report{
		Meta: meta, Summary: results.Summarize(p, c), Runs: c.Runs, Skips: c.Skips,
		Failures: c.Failures, Unparsed: c.Unparsed, RSS: c.RSS, Profiles: c.Profiles, plan: p,
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

// Load reads a results.json written by WriteJSON, with the plan it was
// made for, so that the report can be rendered again (with new notes, or
// by a newer renderer) without running anything.
func Load(file string) (*Report, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("results %s: %w", file, err)
	}
	p := plan.Default()
	p.Reps, p.SizeMB, p.UblkQueues, p.UblkDepth = r.Meta.Reps, r.Meta.SizeMB, r.Meta.UblkQueues, r.Meta.UblkDepth
	if d, err := time.ParseDuration(r.Meta.Runtime); err == nil {
		p.Runtime = d
	}
	if d, err := time.ParseDuration(r.Meta.Ramp); err == nil {
		p.Ramp = d
	}
	if len(r.Meta.Pairs) > 0 {
		p.Pairs = nil
		for _, name := range r.Meta.Pairs {
			pr, ok := plan.PairByName(name)
			if !ok {
				return nil, fmt.Errorf("results %s: unknown pair %q", file, name)
			}
			p.Pairs = append(p.Pairs, pr)
		}
	}
	if len(r.Meta.Jobs) > 0 {
		p.Jobs = nil
		for _, name := range r.Meta.Jobs {
			j, ok := plan.JobByName(name)
			if !ok {
				return nil, fmt.Errorf("results %s: unknown job %q", file, name)
			}
			p.Jobs = append(p.Jobs, j)
		}
	}
	r.plan = p
	// The summary is derived data: compute it again, so that a newer
	// renderer's digest applies to old numbers too.
	r.Summary = results.Summarize(p, &results.Console{Info: r.Meta.Guest, Runs: r.Runs, Skips: r.Skips, RSS: r.RSS})
	return &r, nil
}

// Plan is the plan the report was made for.
func (r *Report) Plan() plan.Plan { return r.plan }

package results

import (
	"fmt"
	"math"
	"sort"

	"github.com/sheepblk/sheepblk/tools/bench/plan"
)

// Stat summarizes the repetitions of one measurement.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

// NewStat summarizes xs (N=0 for none).
func NewStat(xs []float64) Stat {
	if len(xs) == 0 {
		return Stat{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stat{Median: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// Spread is the range of the repetitions relative to their median
// (0.1 = the slowest and fastest run differ by 10% of the median).
func (s Stat) Spread() float64 {
	if s.N < 2 || s.Median == 0 {
		return 0
	}
	return (s.Max - s.Min) / s.Median
}

// Cell is one (device, job): every repetition summarized.
type Cell struct {
	Device    string `json:"device"`
	Job       string `json:"job"`
	IOPS      Stat   `json:"iops"` // read + write
	ReadIOPS  Stat   `json:"read_iops"`
	WriteIOPS Stat   `json:"write_iops"`
	BWBytes   Stat   `json:"bw_bytes"`
	// Completion latency of LatencySide ("read" or "write"), in ns.
	LatencySide string `json:"latency_side"`
	P50Ns       Stat   `json:"p50_ns"`
	P99Ns       Stat   `json:"p99_ns"`
	P999Ns      Stat   `json:"p999_ns"`
	// For ublk devices: the daemon's CPU share (1 = one CPU) and context
	// switches per I/O (N=0 for kernel drivers).
	DaemonCPU     Stat `json:"daemon_cpu"`
	SwitchesPerIO Stat `json:"switches_per_io"`
}

// Comparison is a ublk device's metric over its peer's, same boot.
type Comparison struct {
	Pair   string      `json:"pair"`
	Job    string      `json:"job"`
	Metric plan.Metric `json:"metric"`
	Peer   Stat        `json:"peer"`
	Ublk   Stat        `json:"ublk"`
	// Ratio is the ublk median over the peer median; RepMin and RepMax
	// are the lowest and highest ratio of the repetitions taken one by
	// one (repetition i of ublk over repetition i of the peer).
	Ratio  float64 `json:"ratio"`
	RepMin float64 `json:"rep_min"`
	RepMax float64 `json:"rep_max"`
}

// Verdict is one target checked on one job.
type Verdict struct {
	Pair     string      `json:"pair"`
	Job      string      `json:"job"`
	Metric   plan.Metric `json:"metric"`
	Text     string      `json:"target"`
	Bound    float64     `json:"bound"`
	AtMost   bool        `json:"at_most"`
	Measured bool        `json:"measured"`
	Ratio    float64     `json:"ratio,omitempty"`
	Met      bool        `json:"met"`
	Why      string      `json:"why,omitempty"` // why not measured
}

// Memory is what the memory run showed; Flat says whether the daemon's
// RSS stayed within MarginKB of where it stood after warm-up.
type Memory struct {
	Device   string `json:"device"`
	Samples  int    `json:"samples"`
	Seconds  int    `json:"seconds"`
	IdleKB   int64  `json:"idle_kb"`   // before the load started
	LockedKB int64  `json:"locked_kb"` // VmLck at the end
	// FirstHalfMaxKB and SecondHalfMaxKB are the largest RSS in each half
	// of the loaded run; their difference is the growth.
	FirstHalfMaxKB  int64 `json:"first_half_max_kb"`
	SecondHalfMaxKB int64 `json:"second_half_max_kb"`
	GrowthKB        int64 `json:"growth_kb"`
	MarginKB        int64 `json:"margin_kb"`
	Flat            bool  `json:"flat"`
}

// MemoryMarginKB is the growth allowed between the two halves of the
// memory run: page tables, the Go runtime's own bookkeeping and the GC's
// pacing wobble, but nothing that scales with the number of requests.
const MemoryMarginKB = 4 << 10

// Summary is the whole boot, digested.
type Summary struct {
	Cells       []Cell       `json:"cells"`
	Comparisons []Comparison `json:"comparisons"`
	Verdicts    []Verdict    `json:"verdicts"`
	Memory      *Memory      `json:"memory,omitempty"`
}

// Summarize digests a console's runs against the plan.
func Summarize(p plan.Plan, c *Console) Summary {
	var s Summary
	byKey := map[[2]string][]Run{}
	for _, r := range c.Runs {
		k := [2]string{r.Device, r.Job}
		byKey[k] = append(byKey[k], r)
	}
	for _, d := range p.Devices() {
		for _, j := range p.Jobs {
			if runs := byKey[[2]string{d, j.Name}]; len(runs) > 0 {
				s.Cells = append(s.Cells, newCell(d, j, runs))
			}
		}
	}
	skipped := map[string]string{}
	for _, sk := range c.Skips {
		skipped[sk.Device] = sk.Reason
	}
	for _, pr := range p.Pairs {
		for _, j := range p.Jobs {
			for _, m := range []plan.Metric{plan.MetricIOPS, plan.MetricWriteIOPS, plan.MetricP99} {
				if m == plan.MetricWriteIOPS && !j.Writes() {
					continue
				}
				cmp, ok := compare(pr, j, m, byKey)
				if ok {
					s.Comparisons = append(s.Comparisons, cmp)
				}
			}
		}
		for _, t := range pr.Targets {
			for _, job := range t.Jobs {
				s.Verdicts = append(s.Verdicts, verdict(pr, t, job, s.Comparisons, skipped))
			}
		}
	}
	s.Memory = summarizeMemory(c.RSS)
	return s
}

func newCell(device string, j plan.Job, runs []Run) Cell {
	var iops, rd, wr, bw, p50, p99, p999, cpu, sw []float64
	for _, r := range runs {
		if r.Daemon != nil && r.Daemon.Seconds > 0 {
			cpu = append(cpu, r.Daemon.CPUShare())
			sw = append(sw, r.Daemon.SwitchesPerIO(r.IOPS()))
		}
		iops = append(iops, r.IOPS())
		rd = append(rd, r.Read.IOPS)
		wr = append(wr, r.Write.IOPS)
		bw = append(bw, r.Read.BWBytes+r.Write.BWBytes)
		side := latencySide(r, j)
		p50 = append(p50, side.P50Ns)
		p99 = append(p99, side.P99Ns)
		p999 = append(p999, side.P999Ns)
	}
	return Cell{
		Device: device, Job: j.Name, IOPS: NewStat(iops), ReadIOPS: NewStat(rd), WriteIOPS: NewStat(wr),
		BWBytes: NewStat(bw), LatencySide: j.LatencySide(), P50Ns: NewStat(p50), P99Ns: NewStat(p99), P999Ns: NewStat(p999),
		DaemonCPU: NewStat(cpu), SwitchesPerIO: NewStat(sw),
	}
}

func latencySide(r Run, j plan.Job) Side {
	if j.LatencySide() == "write" {
		return r.Write
	}
	return r.Read
}

// metric is the number a comparison takes from one run.
func metric(r Run, j plan.Job, m plan.Metric) float64 {
	switch m {
	case plan.MetricWriteIOPS:
		return r.Write.IOPS
	case plan.MetricP99:
		return latencySide(r, j).P99Ns
	}
	return r.IOPS()
}

func compare(pr plan.Pair, j plan.Job, m plan.Metric, byKey map[[2]string][]Run) (Comparison, bool) {
	peerRuns, ublkRuns := byKey[[2]string{pr.Peer, j.Name}], byKey[[2]string{pr.Ublk, j.Name}]
	if len(peerRuns) == 0 || len(ublkRuns) == 0 {
		return Comparison{}, false
	}
	peerByRep := map[int]float64{}
	var peerVals, ublkVals []float64
	for _, r := range peerRuns {
		v := metric(r, j, m)
		peerVals = append(peerVals, v)
		peerByRep[r.Rep] = v
	}
	repMin, repMax := math.Inf(1), math.Inf(-1)
	for _, r := range ublkRuns {
		v := metric(r, j, m)
		ublkVals = append(ublkVals, v)
		if pv, ok := peerByRep[r.Rep]; ok && pv > 0 {
			repMin, repMax = math.Min(repMin, v/pv), math.Max(repMax, v/pv)
		}
	}
	c := Comparison{Pair: pr.Name, Job: j.Name, Metric: m, Peer: NewStat(peerVals), Ublk: NewStat(ublkVals)}
	if c.Peer.Median > 0 {
		c.Ratio = c.Ublk.Median / c.Peer.Median
	}
	if !math.IsInf(repMin, 1) {
		c.RepMin, c.RepMax = repMin, repMax
	}
	return c, c.Peer.Median > 0
}

func verdict(pr plan.Pair, t plan.Target, job string, cmps []Comparison, skipped map[string]string) Verdict {
	v := Verdict{Pair: pr.Name, Job: job, Metric: t.Metric, Text: t.Text, Bound: t.Bound(), AtMost: t.AtMost}
	for _, c := range cmps {
		if c.Pair == pr.Name && c.Job == job && c.Metric == t.Metric {
			v.Measured, v.Ratio, v.Met = true, c.Ratio, t.Holds(c.Ratio)
			return v
		}
	}
	switch {
	case skipped[pr.Ublk] != "":
		v.Why = fmt.Sprintf("%s not available in this boot (why: under \"not measured\")", pr.Ublk)
	case skipped[pr.Peer] != "":
		v.Why = fmt.Sprintf("%s not available in this boot (why: under \"not measured\")", pr.Peer)
	default:
		v.Why = "no result for one side (see failures)"
	}
	return v
}

func summarizeMemory(samples []RSSSample) *Memory {
	if len(samples) == 0 {
		return nil
	}
	m := &Memory{Device: samples[0].Device, MarginKB: MemoryMarginKB}
	var loaded []RSSSample
	for _, s := range samples {
		if s.T == 0 && m.IdleKB == 0 {
			m.IdleKB = s.RSSKB
			continue
		}
		loaded = append(loaded, s)
	}
	m.Samples = len(samples)
	if len(loaded) == 0 {
		return m
	}
	last := loaded[len(loaded)-1]
	m.Seconds, m.LockedKB = last.T, last.LckKB
	half := last.T / 2
	for _, s := range loaded {
		if s.T <= half {
			m.FirstHalfMaxKB = max(m.FirstHalfMaxKB, s.RSSKB)
		} else {
			m.SecondHalfMaxKB = max(m.SecondHalfMaxKB, s.RSSKB)
		}
	}
	m.GrowthKB = m.SecondHalfMaxKB - m.FirstHalfMaxKB
	m.Flat = m.FirstHalfMaxKB > 0 && m.SecondHalfMaxKB > 0 && m.GrowthKB <= m.MarginKB
	return m
}

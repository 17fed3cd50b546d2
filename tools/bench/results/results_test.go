package results

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/sheepblk/sheepblk/tools/bench/plan"
)

// fioLine is a record as the guest's fio_record prints it.
func fioLine(device, job string, rep int, readIOPS, writeIOPS, p99 float64) string {
	return fmt.Sprintf(`@@bench:fio {"device":%q,"job":%q,"rep":%d,"read":{"iops":%g,"bw_bytes":%g,"io_bytes":1,"total_ios":1,"clat_mean_ns":1000,"p50_ns":900,"p99_ns":%g,"p999_ns":%g},"write":{"iops":%g,"bw_bytes":%g,"io_bytes":0,"total_ios":0,"clat_mean_ns":2000,"p50_ns":1900,"p99_ns":%g,"p999_ns":%g},"usr_cpu":1.5,"sys_cpu":20,"error":0,"runtime_ms":5000}`,
		device, job, rep, readIOPS, readIOPS*4096, p99, p99*2, writeIOPS, writeIOPS*4096, p99*3, p99*6)
}

func TestParseConsole(t *testing.T) {
	log := strings.Join([]string{
		"[    1.234] Linux version 6.12",
		`@@bench:info {"key":"kernel","value":"6.12.107"}`,
		"@@lab:begin 10-devices.sh",
		fioLine("null_blk", "randread-4k-qd1", 1, 30000, 0, 2000) + "\r",
		"[   55.1] some kernel line " + fioLine("ublk-null", "randread-4k-qd1", 1, 3000, 0, 20000),
		`@@bench:skip {"device":"nbd","reason":"nbd-server not in the image"}`,
		`@@bench:skip {"device":"nbd","reason":"nbd-server not in the image"}`,
		`@@bench:error {"device":"brd","job":"read-128k-qd8","rep":2,"message":"fio exited non-zero"}`,
		`@@bench:rss {"device":"ublk-mem","t":0,"rss_kb":1000,"lck_kb":1000,"hwm_kb":1000,"threads":7}`,
		`@@bench:fio {"device":"ublk-null","job":"randread-4k-q[  56.0] kernel message spliced in`,
		`@@bench:fio {"device":"x","job":"y","rep":1} trailing`,
		`@@bench:fio {"device":"","job":"y","rep":1}`,
		`@@bench:teleport {}`,
		"bench: rep 1: brd on /dev/ram0",
		`@@bench:profile {"device":"ublk-mem","job":"randread-4k-qd1","samples":"2K","top":"  40.00%  ublkctl  [.] runtime.futex\n","callers":""}`,
		`@@bench:profile {"device":"","job":"x"}`,
	}, "\n")
	c, err := Parse(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if c.Info["kernel"] != "6.12.107" {
		t.Errorf("info = %v", c.Info)
	}
	if len(c.Runs) != 2 {
		t.Fatalf("runs = %d, want 2: %+v", len(c.Runs), c.Runs)
	}
	r := c.Runs[0]
	if r.Device != "null_blk" || r.Job != "randread-4k-qd1" || r.Rep != 1 || r.Read.IOPS != 30000 || r.Read.P99Ns != 2000 || r.Read.P999Ns != 4000 || r.SysCPU != 20 {
		t.Errorf("first run decoded as %+v", r)
	}
	if c.Runs[1].Device != "ublk-null" {
		t.Errorf("a record after a kernel prefix on the same line was not found: %+v", c.Runs[1])
	}
	if len(c.Skips) != 1 || c.Skips[0].Reason != "nbd-server not in the image" {
		t.Errorf("skips = %+v, want the repeated skip once", c.Skips)
	}
	if len(c.Failures) != 1 || c.Failures[0].Rep != 2 || c.Failures[0].Job != "read-128k-qd8" {
		t.Errorf("failures = %+v", c.Failures)
	}
	if len(c.RSS) != 1 || c.RSS[0].Threads != 7 {
		t.Errorf("rss = %+v", c.RSS)
	}
	if len(c.Profiles) != 1 || c.Profiles[0].Samples != "2K" || !strings.Contains(c.Profiles[0].Top, "runtime.futex\n") {
		t.Errorf("profiles = %+v", c.Profiles)
	}
	if len(c.Unparsed) != 5 {
		t.Errorf("unparsed = %d, want 5 (spliced, trailing data, no device, unknown kind, profile without device): %q", len(c.Unparsed), c.Unparsed)
	}
}

func TestParseBoundsLongLines(t *testing.T) {
	long := "@@bench:info " + strings.Repeat("x", 3*maxLine) + "\n" + `@@bench:info {"key":"k","value":"v"}` + "\n"
	c, err := Parse(strings.NewReader(long))
	if err != nil {
		t.Fatal(err)
	}
	if c.Info["k"] != "v" {
		t.Error("the record after an over-long line was lost")
	}
	if len(c.Unparsed) != 1 || len(c.Unparsed[0]) > 400 {
		t.Errorf("over-long line: unparsed = %d entries, first %d bytes", len(c.Unparsed), len(c.Unparsed[0]))
	}
}

func TestNewStat(t *testing.T) {
	cases := []struct {
		in               []float64
		median, min, max float64
		spread           float64
	}{
		{[]float64{10}, 10, 10, 10, 0},
		{[]float64{12, 8}, 10, 8, 12, 0.4},
		{[]float64{3, 1, 2}, 2, 1, 3, 1},
	}
	for _, c := range cases {
		s := NewStat(c.in)
		if s.Median != c.median || s.Min != c.min || s.Max != c.max || s.N != len(c.in) || math.Abs(s.Spread()-c.spread) > 1e-9 {
			t.Errorf("NewStat(%v) = %+v spread %v", c.in, s, s.Spread())
		}
	}
	if s := NewStat(nil); s.N != 0 || s.Spread() != 0 {
		t.Errorf("NewStat(nil) = %+v", s)
	}
}

func TestSummarizeRatiosAndTargets(t *testing.T) {
	p := plan.Default()
	prs, err := plan.PairsNamed("null", "file-ext4", "net")
	if err != nil {
		t.Fatal(err)
	}
	p.Pairs = prs
	var lines []string
	add := func(dev, job string, rep int, r, w, p99 float64) {
		lines = append(lines, fioLine(dev, job, rep, r, w, p99))
	}
	// null: ublk at 0.30 and 0.20 of null_blk in the two repetitions.
	add("null_blk", "randread-4k-qd32x2", 1, 50000, 0, 100)
	add("null_blk", "randread-4k-qd32x2", 2, 60000, 0, 100)
	add("ublk-null", "randread-4k-qd32x2", 1, 15000, 0, 100)
	add("ublk-null", "randread-4k-qd32x2", 2, 12000, 0, 100)
	// file: randwrite at 1.2×, QD1 at 0.7× (misses ≥ 0.8).
	add("loop-ext4", "randwrite-4k-qd32x2", 1, 0, 1000, 100)
	add("ublk-file-ext4", "randwrite-4k-qd32x2", 1, 0, 1200, 100)
	add("loop-ext4", "randread-4k-qd1", 1, 1000, 0, 100)
	add("ublk-file-ext4", "randread-4k-qd1", 1, 700, 0, 100)
	lines = append(lines, `@@bench:skip {"device":"ublk-sheep1","reason":"no sheep target yet"}`)
	c, err := Parse(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	s := Summarize(p, c)

	cell := func(dev, job string) Cell {
		for _, c := range s.Cells {
			if c.Device == dev && c.Job == job {
				return c
			}
		}
		t.Fatalf("no cell %s %s", dev, job)
		return Cell{}
	}
	if got := cell("null_blk", "randread-4k-qd32x2").IOPS; got.Median != 55000 || got.Min != 50000 || got.Max != 60000 {
		t.Errorf("null_blk cell = %+v", got)
	}
	if got := cell("loop-ext4", "randwrite-4k-qd32x2"); got.LatencySide != "write" || got.P99Ns.Median != 300 {
		t.Errorf("randwrite latency should be the write side's p99 (300): %+v", got)
	}

	var null Comparison
	for _, cmp := range s.Comparisons {
		if cmp.Pair == "null" && cmp.Job == "randread-4k-qd32x2" && cmp.Metric == plan.MetricIOPS {
			null = cmp
		}
	}
	if math.Abs(null.Ratio-13500.0/55000) > 1e-9 || math.Abs(null.RepMin-0.2) > 1e-9 || math.Abs(null.RepMax-0.3) > 1e-9 {
		t.Errorf("null comparison = %+v, want ratio %.4f, per-rep 0.20–0.30", null, 13500.0/55000)
	}

	verdicts := map[string]Verdict{}
	for _, v := range s.Verdicts {
		verdicts[v.Pair+"/"+v.Job+"/"+string(v.Metric)] = v
	}
	check := func(key string, measured, met bool) {
		t.Helper()
		v, ok := verdicts[key]
		if !ok {
			t.Fatalf("no verdict %s", key)
		}
		if v.Measured != measured || v.Met != met {
			t.Errorf("verdict %s = %+v, want measured %v met %v", key, v, measured, met)
		}
	}
	check("null/randread-4k-qd32x2/iops", true, false) // 0.245: just below 0.25
	check("null/randwrite-4k-qd32x2/iops", false, false)
	check("file-ext4/randwrite-4k-qd32x2/iops", true, true)
	check("file-ext4/randread-4k-qd1/iops", true, false)
	if v := verdicts["net/randread-4k-qd1/p99"]; v.Measured || !strings.Contains(v.Why, "ublk-sheep1 not available") {
		t.Errorf("net verdict should say why it was not measured: %+v", v)
	}
	if v := verdicts["null/randwrite-4k-qd32x2/iops"]; !strings.Contains(v.Why, "no result") {
		t.Errorf("a job without runs should say so: %+v", v)
	}
}

func TestSummarizeMemory(t *testing.T) {
	mk := func(rss ...int64) []RSSSample {
		out := make([]RSSSample, len(rss))
		for i, r := range rss {
			out[i] = RSSSample{Device: "ublk-mem", T: i * 10, RSSKB: r, LckKB: r}
		}
		return out
	}
	flat := summarizeMemory(mk(5000, 20000, 20100, 20200, 20100, 20300))
	if flat == nil || !flat.Flat || flat.IdleKB != 5000 || flat.GrowthKB != 200 || flat.Seconds != 50 {
		t.Errorf("flat run judged %+v", flat)
	}
	growing := summarizeMemory(mk(5000, 20000, 22000, 26000, 30000, 34000))
	if growing.Flat || growing.GrowthKB != 34000-22000 {
		t.Errorf("growing run judged %+v", growing)
	}
	if summarizeMemory(nil) != nil {
		t.Error("no samples should give no memory summary")
	}
	if m := summarizeMemory(mk(5000)); m.Flat {
		t.Errorf("an idle sample alone cannot show flatness: %+v", m)
	}
}

func FuzzConsoleLine(f *testing.F) {
	f.Add(fioLine("null_blk", "randread-4k-qd1", 1, 1, 2, 3))
	f.Add(`@@bench:info {"key":"k","value":"v"}`)
	f.Add(`@@bench:skip {"device":"nbd","reason":"r"}`)
	f.Add(`@@bench:rss {"device":"d","t":1,"rss_kb":2}`)
	f.Add(`@@bench:error {"device":"d","job":"j","rep":1,"message":"m"}`)
	f.Add(`x @@bench:fio {"device":`)
	f.Add(`@@bench:profile {"device":"d","job":"j","samples":"1","top":"t"}`)
	f.Add("@@bench:")
	f.Fuzz(func(t *testing.T, line string) {
		c := &Console{}
		isRecord := c.Line(line)
		if isRecord != strings.Contains(line, Marker) {
			t.Fatalf("Line(%q) = %v", line, isRecord)
		}
		got := len(c.Runs) + len(c.Skips) + len(c.Failures) + len(c.RSS) + len(c.Info) + len(c.Unparsed) + len(c.Profiles)
		if isRecord && got != 1 {
			t.Fatalf("one record line gave %d entries", got)
		}
		for _, r := range c.Runs {
			if r.Device == "" || r.Job == "" || r.Rep < 1 {
				t.Fatalf("accepted an incomplete run %+v", r)
			}
		}
		// Summaries must cope with whatever was accepted.
		_ = Summarize(plan.Default(), c)
	})
}

func TestDaemonUse(t *testing.T) {
	line := `@@bench:fio {"device":"ublk-mem","job":"randread-4k-qd1","rep":1,"read":{"iops":500},"write":{"iops":0},"daemon":{"cpu_ticks":350,"ctxt_switches":10000,"seconds":7}}`
	c, err := Parse(strings.NewReader(line + "\n" + strings.Replace(line, `"rep":1`, `"rep":2`, 1)))
	if err != nil || len(c.Runs) != 2 || c.Runs[0].Daemon == nil {
		t.Fatalf("parse: %v %+v", err, c.Runs)
	}
	d := *c.Runs[0].Daemon
	if got := d.CPUShare(); math.Abs(got-0.5) > 1e-9 {
		t.Errorf("CPU share = %v, want 0.5 (3.5 s of CPU in 7 s)", got)
	}
	if got := d.SwitchesPerIO(500); math.Abs(got-10000.0/7/500) > 1e-9 {
		t.Errorf("switches per I/O = %v", got)
	}
	if (DaemonUse{}).CPUShare() != 0 || d.SwitchesPerIO(0) != 0 {
		t.Error("zero time or zero IOPS must not divide by zero")
	}
	p := plan.Default()
	s := Summarize(p, c)
	var cell Cell
	for _, x := range s.Cells {
		if x.Device == "ublk-mem" {
			cell = x
		}
	}
	if cell.DaemonCPU.N != 2 || math.Abs(cell.DaemonCPU.Median-0.5) > 1e-9 {
		t.Errorf("cell daemon CPU = %+v", cell.DaemonCPU)
	}
}

func TestBlockUse(t *testing.T) {
	line := `@@bench:fio {"device":"loop-ext4","job":"read-128k-qd8","rep":1,"read":{"iops":500},"write":{"iops":0},"blk":{"read_ios":100,"read_merges":3,"read_sectors":25600,"write_ios":0,"write_merges":0,"write_sectors":0}}`
	c, err := Parse(strings.NewReader(line + "\n"))
	if err != nil || len(c.Runs) != 1 || c.Runs[0].Block == nil {
		t.Fatalf("parse: %v %+v", err, c.Runs)
	}
	rd, wr := c.Runs[0].Block.AvgKiB()
	if rd != 128 || wr != 0 || c.Runs[0].Block.ReadMerges != 3 {
		t.Errorf("average request = %v/%v KiB, merges %d; want 128/0, 3", rd, wr, c.Runs[0].Block.ReadMerges)
	}
}

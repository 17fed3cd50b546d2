package chart

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/sheepblk/sheepblk/tools/bench/plan"
	"github.com/sheepblk/sheepblk/tools/bench/results"
)

func sample() (plan.Plan, results.Summary, []results.RSSSample) {
	p := plan.Default()
	prs, err := plan.PairsNamed("null", "mem")
	if err != nil {
		panic(err) // a fixture naming a pair that is gone
	}
	p.Pairs = prs
	con := &results.Console{}
	for rep := 1; rep <= 2; rep++ {
		for i, d := range p.Devices() {
			for _, j := range p.Jobs {
				r := results.Run{Device: d, Job: j.Name, Rep: rep}
				side := results.Side{IOPS: float64(1000*(i+1) + 100*rep), P50Ns: 1e4 * float64(i+1), P99Ns: 1e5 * float64(i+1), P999Ns: 1e6 * float64(i+1)}
				if j.LatencySide() == "write" {
					r.Write = side
				} else {
					r.Read = side
				}
				con.Runs = append(con.Runs, r)
			}
		}
	}
	rss := []results.RSSSample{{Device: "ublk-mem", T: 0, RSSKB: 20000, LckKB: 20000}, {Device: "ublk-mem", T: 10, RSSKB: 30000, LckKB: 30000}, {Device: "ublk-mem", T: 20, RSSKB: 30100, LckKB: 30100}}
	return p, results.Summarize(p, con), rss
}

// decode opens a PNG and checks it is a real picture: sane size, and it
// contains the colour the chart must have used.
func decode(t *testing.T, file string, want func(r, g, b uint32) bool) image.Image {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", file, err)
	}
	b := img.Bounds()
	if b.Dx() < 400 || b.Dy() < 200 || b.Dx() > 2000 || b.Dy() > 1500 {
		t.Errorf("%s is %dx%d", file, b.Dx(), b.Dy())
	}
	found := false
	for y := b.Min.Y; y < b.Max.Y && !found; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			if want(r>>8, g>>8, bl>>8) {
				found = true
				break
			}
		}
	}
	if !found {
		t.Errorf("%s lacks the expected colour", file)
	}
	return img
}

func TestIOPSChart(t *testing.T) {
	p, s, _ := sample()
	file := filepath.Join(t.TempDir(), "report.png")
	if err := IOPS(file, p, s); err != nil {
		t.Fatal(err)
	}
	decode(t, file, func(r, g, b uint32) bool { return r == 0x1f && g == 0x77 && b == 0xb4 }) // a ublk bar
	decode(t, file, func(r, g, b uint32) bool { return r == 0x9e && g == 0x9e && b == 0x9e }) // a kernel bar
	if err := IOPS(file, p, results.Summary{}); err == nil {
		t.Error("an empty summary drew a chart")
	}
}

func TestLatencyChart(t *testing.T) {
	p, s, _ := sample()
	file := filepath.Join(t.TempDir(), "latency.png")
	if err := Latency(file, p, s); err != nil {
		t.Fatal(err)
	}
	decode(t, file, func(r, g, b uint32) bool { return r < 0xc0 && (r != g || g != b) }) // a coloured line
	p.Jobs = p.Jobs[4:]                                                                  // only 128k jobs: nothing to draw
	if err := Latency(file, p, s); err == nil {
		t.Error("a plan without the latency jobs drew a chart")
	}
}

func TestMemoryChart(t *testing.T) {
	_, _, rss := sample()
	file := filepath.Join(t.TempDir(), "memory.png")
	if err := Memory(file, rss); err != nil {
		t.Fatal(err)
	}
	decode(t, file, func(r, g, b uint32) bool { return r < 0xf0 && (r != g || g != b) })
	if err := Memory(file, nil); err == nil {
		t.Error("no samples drew a chart")
	}
}

// TestLatencyChartWithoutPercentiles: runs with IOPS but no percentiles
// (a log axis cannot show zeros) give an error, not a panic.
func TestLatencyChartWithoutPercentiles(t *testing.T) {
	p := plan.Smoke()
	con := &results.Console{Runs: []results.Run{
		{Device: "null_blk", Job: "randread-4k-qd1", Rep: 1, Read: results.Side{IOPS: 1000}},
		{Device: "ublk-null", Job: "randread-4k-qd1", Rep: 1, Read: results.Side{IOPS: 100}},
	}}
	err := Latency(filepath.Join(t.TempDir(), "latency.png"), p, results.Summarize(p, con))
	if err == nil {
		t.Fatal("a chart without percentiles was drawn")
	}
}

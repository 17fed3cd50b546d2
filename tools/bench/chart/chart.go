package chart

import (
	"fmt"
	"image/color"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/sheepblk/sheepblk/tools/bench/plan"
	"github.com/sheepblk/sheepblk/tools/bench/results"
)

// dpi keeps the PNGs small enough to commit and sharp enough to read.
const dpi = 96

var (
	peerColor = color.RGBA{R: 0x9e, G: 0x9e, B: 0x9e, A: 0xff} // the kernel's driver: grey
	ublkColor = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff} // ublk: blue
)

// cellOf finds the summary cell of (device, job).
func cellOf(s results.Summary, device, job string) (results.Cell, bool) {
	for _, c := range s.Cells {
		if c.Device == device && c.Job == job {
			return c, true
		}
	}
	return results.Cell{}, false
}

// measuredDevices are the plan's devices with at least one result, in
// plan order.
func measuredDevices(p plan.Plan, s results.Summary) []string {
	var out []string
	for _, d := range p.Devices() {
		for _, c := range s.Cells {
			if c.Device == d {
				out = append(out, d)
				break
			}
		}
	}
	return out
}

func isUblk(device string) bool {
	d, ok := plan.DeviceByName(device)
	return ok && d.Ublk
}

// errBars are whiskers from each bar's minimum to its maximum.
type errBars struct {
	plotter.XYs
	lo, hi []float64
}

func (e errBars) YError(i int) (float64, float64) { return e.lo[i], e.hi[i] }

// IOPS draws report.png: one panel per job, a bar per device (grey: the
// kernel's driver; blue: ublk), whiskers spanning the repetitions.
func IOPS(file string, p plan.Plan, s results.Summary) error {
	devices := measuredDevices(p, s)
	if len(devices) == 0 {
		return fmt.Errorf("IOPS chart: no results to draw")
	}
	const cols = 3
	rows := (len(p.Jobs) + cols - 1) / cols
	plots := make([][]*plot.Plot, rows)
	for r := range plots {
		plots[r] = make([]*plot.Plot, cols)
	}
	for i, j := range p.Jobs {
		pl, err := iopsPanel(j, devices, s)
		if err != nil {
			return err
		}
		plots[i/cols][i%cols] = pl
	}
	width := vg.Length(cols) * 4.2 * vg.Inch
	height := vg.Length(rows)*3.4*vg.Inch + 0.4*vg.Inch
	return saveTiles(file, plots, width, height, "IOPS per job and device (grey: kernel driver, blue: ublk; whiskers: range of the repetitions)")
}

func iopsPanel(j plan.Job, devices []string, s results.Summary) (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = j.Title
	pl.Y.Label.Text = "IOPS"
	pl.Y.Min = 0
	peer, ublk := make(plotter.Values, len(devices)), make(plotter.Values, len(devices))
	var bars errBars
	for i, d := range devices {
		c, ok := cellOf(s, d, j.Name)
		if !ok {
			continue
		}
		if isUblk(d) {
			ublk[i] = c.IOPS.Median
		} else {
			peer[i] = c.IOPS.Median
		}
		if c.IOPS.N > 1 {
			bars.XYs = append(bars.XYs, plotter.XY{X: float64(i), Y: c.IOPS.Median})
			bars.lo = append(bars.lo, c.IOPS.Median-c.IOPS.Min)
			bars.hi = append(bars.hi, c.IOPS.Max-c.IOPS.Median)
		}
	}
	for _, side := range []struct {
		v plotter.Values
		c color.Color
	}{{peer, peerColor}, {ublk, ublkColor}} {
		bc, err := plotter.NewBarChart(side.v, vg.Points(14))
		if err != nil {
			return nil, fmt.Errorf("IOPS chart, %s: %w", j.Name, err)
		}
		bc.Color = side.c
		bc.LineStyle.Width = 0
		pl.Add(bc)
	}
	if err := addValueLabels(pl, devices, peer, ublk); err != nil {
		return nil, fmt.Errorf("IOPS chart labels, %s: %w", j.Name, err)
	}
	if len(bars.XYs) > 0 {
		eb, err := plotter.NewYErrorBars(bars)
		if err != nil {
			return nil, fmt.Errorf("IOPS chart whiskers, %s: %w", j.Name, err)
		}
		pl.Add(eb)
	}
	pl.NominalX(devices...)
	pl.X.Tick.Label.Rotation = math.Pi / 4
	pl.X.Tick.Label.XAlign = draw.XRight
	pl.X.Tick.Label.YAlign = draw.YCenter
	pl.Y.Tick.Marker = countTicks{}
	return pl, nil
}

// addValueLabels writes each bar's value above it: in one panel a RAM
// disk's bar can be a hundred times a network device's, which then
// shows as a sliver whose value only the label gives.
func addValueLabels(pl *plot.Plot, devices []string, peer, ublk plotter.Values) error {
	var xyl plotter.XYLabels
	for i := range devices {
		v := peer[i] + ublk[i] // one of them is zero
		if v <= 0 {
			continue
		}
		xyl.XYs = append(xyl.XYs, plotter.XY{X: float64(i), Y: v})
		xyl.Labels = append(xyl.Labels, results.FormatCount(v))
	}
	if len(xyl.XYs) == 0 {
		return nil
	}
	labels, err := plotter.NewLabels(xyl)
	if err != nil {
		return err
	}
	for i := range labels.TextStyle {
		labels.TextStyle[i].Font.Size = vg.Points(7)
		labels.TextStyle[i].XAlign = draw.XCenter
		labels.TextStyle[i].YAlign = draw.YBottom
	}
	labels.Offset = vg.Point{Y: vg.Points(2)}
	pl.Add(labels)
	return nil
}

// countTicks labels an IOPS axis 0, 10k, 20k...
type countTicks struct{}

func (countTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ticks {
		if ticks[i].Label == "" {
			continue
		}
		v := ticks[i].Value
		switch {
		case math.Abs(v) >= 1e6:
			ticks[i].Label = fmt.Sprintf("%gM", v/1e6)
		case math.Abs(v) >= 1e3:
			ticks[i].Label = fmt.Sprintf("%gk", v/1e3)
		default:
			ticks[i].Label = fmt.Sprintf("%g", v)
		}
	}
	return ticks
}

// latencyJobs are the panels of the latency chart, when the plan has them.
var latencyJobs = []string{"randread-4k-qd1", "randread-4k-qd32x2", "randwrite-4k-qd32x2"}

// Latency draws latency.png: for each 4k job of latencyJobs, the p50,
// p99 and p99.9 completion latency of every device (log scale; dashed:
// the kernel's driver, solid: ublk; a pair shares a colour).
func Latency(file string, p plan.Plan, s results.Summary) error {
	devices := measuredDevices(p, s)
	if len(devices) == 0 {
		return fmt.Errorf("latency chart: no results to draw")
	}
	var jobs []plan.Job
	for _, name := range latencyJobs {
		for _, j := range p.Jobs {
			if j.Name == name {
				jobs = append(jobs, j)
			}
		}
	}
	if len(jobs) == 0 {
		return fmt.Errorf("latency chart: the plan has none of the jobs %v", latencyJobs)
	}
	var panels []*plot.Plot
	legend, named := plot.New(), map[string]bool{}
	for _, j := range jobs {
		pl, lines, err := latencyPanel(p, s, j, devices, legend, named)
		if err != nil {
			return err
		}
		// A log axis needs positive data: a job without percentiles
		// (no run reported any) gets no panel rather than a panic.
		if lines > 0 {
			panels = append(panels, pl)
		}
	}
	if len(panels) == 0 {
		return fmt.Errorf("latency chart: no run reported latency percentiles")
	}
	// The legend gets a panel of its own: eleven devices over a line
	// chart would hide the lines.
	legend.HideAxes()
	legend.Legend.Top, legend.Legend.Left = true, true
	legend.Legend.TextStyle.Font.Size = vg.Points(10)
	panels = append(panels, legend)
	plots := [][]*plot.Plot{panels}
	width := vg.Length(len(panels)-1)*4.2*vg.Inch + 2.4*vg.Inch
	return saveTiles(file, plots, width, 4.4*vg.Inch, "Completion latency percentiles (dashed: kernel driver, solid: ublk; a pair shares a colour)")
}

// latencyPanel draws one job's percentiles, a line per device that has
// them, and says how many lines it drew; devices not yet in legend are
// added to it.
func latencyPanel(p plan.Plan, s results.Summary, j plan.Job, devices []string, legend *plot.Plot, named map[string]bool) (*plot.Plot, int, error) {
	pl := plot.New()
	pl.Title.Text = j.Title + " (" + j.LatencySide() + ")"
	pl.Y.Label.Text = "completion latency, µs"
	pl.Y.Scale = plot.LogScale{}
	pl.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	lines := 0
	for di, d := range devices {
		c, ok := cellOf(s, d, j.Name)
		if !ok || c.P50Ns.Median <= 0 || c.P99Ns.Median <= 0 || c.P999Ns.Median <= 0 {
			continue
		}
		pts := plotter.XYs{{X: 0, Y: c.P50Ns.Median / 1e3}, {X: 1, Y: c.P99Ns.Median / 1e3}, {X: 2, Y: c.P999Ns.Median / 1e3}}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, 0, fmt.Errorf("latency chart, %s %s: %w", d, j.Name, err)
		}
		col := plotutil.Color(pairIndex(p, d, di))
		line.Color, points.Color = col, col
		line.Width = vg.Points(1.5)
		if !isUblk(d) {
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		pl.Add(line, points)
		if !named[d] {
			named[d] = true
			legend.Legend.Add(d, line)
		}
		lines++
	}
	pl.NominalX("p50", "p99", "p99.9")
	return pl, lines, nil
}

// pairIndex gives the devices of one pair the same colour index.
func pairIndex(p plan.Plan, device string, fallback int) int {
	for i, pr := range p.Pairs {
		if pr.Peer == device || pr.Ublk == device {
			return i
		}
	}
	return fallback
}

// Memory draws memory.png: the daemon's VmRSS and VmLck over the memory run.
func Memory(file string, samples []results.RSSSample) error {
	if len(samples) == 0 {
		return fmt.Errorf("memory chart: no samples")
	}
	rss, lck := make(plotter.XYs, len(samples)), make(plotter.XYs, len(samples))
	for i, s := range samples {
		rss[i] = plotter.XY{X: float64(s.T), Y: float64(s.RSSKB) / 1024}
		lck[i] = plotter.XY{X: float64(s.T), Y: float64(s.LckKB) / 1024}
	}
	pl := plot.New()
	pl.Title.Text = fmt.Sprintf("ublk daemon memory during %s, %s", plan.RSSJob.Title, samples[0].Device)
	pl.X.Label.Text = "seconds into the run"
	pl.Y.Label.Text = "MiB"
	pl.Y.Min = 0
	for i, series := range []struct {
		name string
		xys  plotter.XYs
	}{{"VmRSS", rss}, {"VmLck (mlocked)", lck}} {
		l, err := plotter.NewLine(series.xys)
		if err != nil {
			return fmt.Errorf("memory chart: %w", err)
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		if i == 1 {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		pl.Add(l)
		pl.Legend.Add(series.name, l)
	}
	pl.Legend.Top = true
	pl.Legend.Left = true
	return saveTiles(file, [][]*plot.Plot{{pl}}, 7*vg.Inch, 3.6*vg.Inch, "")
}

// saveTiles lays plots out in a grid under an optional title and writes a PNG.
func saveTiles(file string, plots [][]*plot.Plot, w, h vg.Length, title string) error {
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	top := vg.Points(4)
	if title != "" {
		style := plot.New().Title.TextStyle
		style.Font.Size = vg.Points(13)
		style.XAlign = draw.XCenter
		style.YAlign = draw.YTop
		dc.FillText(style, vg.Point{X: w / 2, Y: h - vg.Points(6)}, title)
		top = vg.Points(28)
	}
	tiles := draw.Tiles{
		Rows: len(plots), Cols: len(plots[0]),
		PadX: vg.Points(14), PadY: vg.Points(14),
		PadTop: top, PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(10),
	}
	canvases := plot.Align(plots, tiles, dc)
	for r := range plots {
		for c := range plots[r] {
			if plots[r][c] != nil {
				plots[r][c].Draw(canvases[r][c])
			}
		}
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("create chart: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write chart %s: %w", file, err)
	}
	return f.Close()
}

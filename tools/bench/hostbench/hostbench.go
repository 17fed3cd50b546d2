package hostbench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Packages are the ones issue 5 names: the queue dispatch path, the rpc
// transport (against grpc-go) and object placement.
var Packages = []string{"./ublk", "./placement", "./rpc"}

// Metric is one "value unit" pair of a benchmark line (ns/op, B/op,
// allocs/op, MB/s or a custom b.ReportMetric unit).
type Metric struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Benchmark is one result line.
type Benchmark struct {
	Package    string   `json:"package"`
	Name       string   `json:"name"` // without the -GOMAXPROCS suffix
	Procs      int      `json:"procs"`
	Iterations int64    `json:"iterations"`
	Metrics    []Metric `json:"metrics"`
}

// Get returns the value of unit, if the line has it.
func (b Benchmark) Get(unit string) (float64, bool) {
	for _, m := range b.Metrics {
		if m.Unit == unit {
			return m.Value, true
		}
	}
	return 0, false
}

// Options control Run.
type Options struct {
	Dir       string   // module root
	Packages  []string // default Packages
	BenchTime string   // go test -benchtime, default 1s
	Log       io.Writer
}

// Run runs the benchmarks (no tests: -run '^$') with -benchmem and parses
// the results. A package that fails to build or whose benchmark fails
// makes go test exit non-zero: the results of the others are still
// returned, with the error.
func Run(ctx context.Context, o Options) ([]Benchmark, error) {
	pkgs := o.Packages
	if len(pkgs) == 0 {
		pkgs = Packages
	}
	bt := o.BenchTime
	if bt == "" {
		bt = "1s"
	}
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", bt, "-count", "1"}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if o.Log != nil {
		cmd.Stdout = io.MultiWriter(&out, o.Log)
		cmd.Stderr = cmd.Stdout
	}
	runErr := cmd.Run()
	bench, parseErr := Parse(&out)
	if runErr != nil {
		return bench, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), runErr, lastLines(out.String(), 3))
	}
	return bench, parseErr
}

// Parse reads `go test -bench` output. Lines that are not results are
// skipped; "pkg:" lines set the package of the results after them.
func Parse(r io.Reader) ([]Benchmark, error) {
	var out []Benchmark
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if b, ok := parseLine(line); ok {
			b.Package = pkg
			out = append(out, b)
		}
	}
	return out, sc.Err()
}

// parseLine parses "BenchmarkName-8  1000  123 ns/op  0 B/op  0 allocs/op".
func parseLine(line string) (Benchmark, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
		return Benchmark{}, false
	}
	iters, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return Benchmark{}, false
	}
	b := Benchmark{Name: f[0], Procs: 1, Iterations: iters}
	if i := strings.LastIndexByte(f[0], '-'); i > 0 {
		if n, err := strconv.Atoi(f[0][i+1:]); err == nil {
			b.Name, b.Procs = f[0][:i], n
		}
	}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return Benchmark{}, false
		}
		b.Metrics = append(b.Metrics, Metric{Value: v, Unit: f[i+1]})
	}
	return b, true
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

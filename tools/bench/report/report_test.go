package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sheepblk/sheepblk/tools/bench/hostbench"
	"github.com/sheepblk/sheepblk/tools/bench/plan"
	"github.com/sheepblk/sheepblk/tools/bench/results"
)

func run(dev, job string, rep int, iops float64) results.Run {
	return results.Run{Device: dev, Job: job, Rep: rep,
		Read: results.Side{IOPS: iops, P50Ns: 50e3, P99Ns: 200e3, P999Ns: 900e3}}
}

// withDaemon adds daemon counters: 1.5 s of CPU and 1.2 switches per I/O
// over 3 s.
func withDaemon(r results.Run) results.Run {
	r.Daemon = &results.DaemonUse{CPUTicks: 150, CtxtSwitches: int64(r.IOPS() * 3 * 1.2), Seconds: 3}
	return r
}

func sampleReport() *Report {
	p := plan.Default()
	prs, err := plan.PairsNamed("null", "net")
	if err != nil {
		panic(err) // a fixture naming a pair that is gone
	}
	p.Pairs = prs
	con := &results.Console{
		Info: map[string]string{"kernel": "6.12.107", "cpus": "2", "mem_kb": "2020540", "fio": "fio-3.33",
			QueueLimitsKey + "null_blk": "max_sectors_kb=127 max_segments=128"},
		Runs: []results.Run{
			run("null_blk", "randread-4k-qd32x2", 1, 57700), run("null_blk", "randread-4k-qd32x2", 2, 56300),
			withDaemon(run("ublk-null", "randread-4k-qd32x2", 1, 12000)), withDaemon(run("ublk-null", "randread-4k-qd32x2", 2, 11000)),
			run("nbd", "randread-4k-qd32x2", 1, 3900),
			{Device: "null_blk", Job: "read-128k-qd8", Rep: 1, Read: results.Side{IOPS: 6000},
				Block: &results.BlockUse{ReadIOs: 200, ReadSectors: 25600}},
		},
		Skips:    []results.Skip{{Device: "ublk-sheep1", Reason: "ublkctl add has no sheep target yet"}},
		Failures: []results.Failure{{Device: "nbd", Job: "randread-4k-qd1", Rep: 1, Message: "fio exited non-zero | boom"}},
		RSS: []results.RSSSample{
			{Device: "ublk-file-ext4", T: 0, RSSKB: 30000, LckKB: 30000},
			{Device: "ublk-file-ext4", T: 30, RSSKB: 40000, LckKB: 40000},
			{Device: "ublk-file-ext4", T: 60, RSSKB: 40100, LckKB: 40100},
		},
	}
	r := New(p, Meta{Date: "2026-11-22", Mode: "default", Kernel: "6.12", Commit: "abc123"}, con)
	r.Host = []hostbench.Benchmark{{Package: "github.com/sheepblk/sheepblk/ublk", Name: "BenchmarkDispatch", Procs: 2, Iterations: 100,
		Metrics: []hostbench.Metric{{Value: 812, Unit: "ns/op"}, {Value: 0, Unit: "B/op"}, {Value: 0, Unit: "allocs/op"}, {Value: 1.2, Unit: "Mreq/s"}}}}
	r.Notes = "The dispatch profile showed X."
	return r
}

func TestMarkdown(t *testing.T) {
	md := sampleReport().Markdown([]string{IOPSChart, MemoryChart})
	for _, want := range []string{
		"# sheepblk benchmarks, 2026-11-22",
		"kernel 6.12.107",
		"![IOPS per job and device](report.png)",
		"| null_blk (kernel) | — | 57.0k ±1% |", // median of 57.7k and 56.3k, half range 0.7k
		"| ublk null | — | 11.5k ±4% |",
		"| 0.20× (0.20–0.21) | ≥ 0.25× | **missed** |", // 11.5/57.0; per repetition 0.195 and 0.208
		"not measured: ublk-sheep1 not available in this boot",
		"- ublk sheep, 1 node, copies=1: not available: ublkctl add has no sheep target yet",
		`failed: fio exited non-zero \| boom`,
		"grew 0.1 MiB between the two halves of a 60 s mixed run (allowed: 4.0 MiB): met",
		"![daemon RSS over the run](memory.png)",
		"| ublk null | — | 0.50 CPU, 1.20 sw/IO | — |",
		"| ublk | Dispatch | 812 | 0 | 0 | 1.2 Mreq/s |",
		"| null_blk (kernel) | — | — | — | — | r 64 KiB | — |", // 128k fio reads split in two by max_sectors_kb=127
		"- null_blk (kernel): max_sectors_kb=127 max_segments=128",
		"## Notes\n\nThe dispatch profile showed X.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q\n---\n%s", want, md)
		}
	}
	if strings.Contains(md, "latency.png") {
		t.Error("report.md links a chart that was not drawn")
	}
}

func TestWriteJSONRoundTrips(t *testing.T) {
	dir := t.TempDir()
	r := sampleReport()
	if err := r.WriteJSON(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(filepath.Join(dir, JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := loaded.Markdown(nil), r.Markdown(nil); got != want {
		t.Errorf("a loaded report renders differently:\n%s\n---\n%s", got, want)
	}
	if len(back.Runs) != 6 || back.Runs[5].Block == nil || back.Meta.Commit != "abc123" || back.Summary.Memory == nil || len(back.Summary.Verdicts) != 5 {
		t.Errorf("results.json lost data: %d runs, meta %+v, %d verdicts", len(back.Runs), back.Meta, len(back.Summary.Verdicts))
	}
}

func TestUpdateReadme(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "README.md")
	before := "# Title\n\nintro\n\n" + ReadmeBegin + "\n## Benchmarks\n\nold text\n" + ReadmeEnd + "\n\n## After\nkept\n"
	if err := os.WriteFile(file, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	section := sampleReport().ReadmeSection("bench/results/2026-11-22", []string{IOPSChart})
	if err := UpdateReadme(file, section); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(file)
	s := string(got)
	if !strings.HasPrefix(s, "# Title\n\nintro\n\n"+ReadmeBegin+"\n## Benchmarks") || !strings.HasSuffix(s, ReadmeEnd+"\n\n## After\nkept\n") {
		t.Errorf("text outside the markers changed:\n%s", s)
	}
	if strings.Contains(s, "old text") {
		t.Error("old section not replaced")
	}
	for _, want := range []string{"![IOPS per job and device](bench/results/2026-11-22/report.png)", "[bench/results/2026-11-22/report.md]", "**missed**"} {
		if !strings.Contains(s, want) {
			t.Errorf("README section lacks %q", want)
		}
	}
	// Twice gives the same file: the update is idempotent.
	if err := UpdateReadme(file, section); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(file)
	if string(again) != s {
		t.Error("a second update changed the README")
	}

	bare := filepath.Join(dir, "bare.md")
	os.WriteFile(bare, []byte("# Bare\n"), 0o644)
	if err := UpdateReadme(bare, "## Benchmarks\n"); err != nil {
		t.Fatal(err)
	}
	got, _ = os.ReadFile(bare)
	if string(got) != "# Bare\n\n"+ReadmeBegin+"\n## Benchmarks\n"+ReadmeEnd+"\n" {
		t.Errorf("markers not appended: %q", got)
	}

	broken := filepath.Join(dir, "broken.md")
	os.WriteFile(broken, []byte(ReadmeEnd+"\n"+ReadmeBegin+"\n"), 0o644)
	if err := UpdateReadme(broken, "x"); err == nil {
		t.Error("markers out of order were accepted")
	}
}

func TestFormat(t *testing.T) {
	cases := map[float64]string{950: "950", 1234: "1.23k", 57700: "57.7k", 1.25e6: "1.25M"}
	for v, want := range cases {
		if got := count(v); got != want {
			t.Errorf("count(%v) = %q, want %q", v, got, want)
		}
	}
	if got := micros(1234567); got != "1235" {
		t.Errorf("micros = %q", got)
	}
	if got := micros(680); got != "0.68" {
		t.Errorf("micros(680) = %q", got)
	}
	if got := oneLine(strings.Repeat("a ", 200)); len([]rune(got)) > 161 {
		t.Errorf("oneLine did not shorten: %d", len(got))
	}
	_ = fmt.Sprint()
}

package plan

import (
	"fmt"
	"strings"
	"time"
)

// Job is one fio workload, run with --direct=1 on the io_uring engine,
// time-based with a ramp-up.
type Job struct {
	Name      string // file and record name: "randread-4k-qd1"
	Title     string // for people: "4k randread QD1"
	RW        string // fio rw=
	BlockSize string // fio bs=
	IODepth   int
	NumJobs   int
	MixRead   int // rwmixread= for rw=randrw, else 0
}

// Reads says whether the job issues reads; Writes likewise.
func (j Job) Reads() bool  { return !strings.Contains(j.RW, "write") || j.RW == "randrw" }
func (j Job) Writes() bool { return strings.Contains(j.RW, "write") || j.RW == "randrw" }

// LatencySide is the direction whose completion latency the report shows:
// reads when the job reads at all (for 70/30 mixes the reads are what an
// application waits on), else writes.
func (j Job) LatencySide() string {
	if j.Reads() {
		return "read"
	}
	return "write"
}

// Jobs are the workloads of issue 5, in report order.
var Jobs = []Job{
	{Name: "randread-4k-qd1", Title: "4k randread QD1", RW: "randread", BlockSize: "4k", IODepth: 1, NumJobs: 1},
	{Name: "randread-4k-qd32x2", Title: "4k randread QD32×2", RW: "randread", BlockSize: "4k", IODepth: 32, NumJobs: 2},
	{Name: "randwrite-4k-qd32x2", Title: "4k randwrite QD32×2", RW: "randwrite", BlockSize: "4k", IODepth: 32, NumJobs: 2},
	{Name: "randrw-4k-qd16", Title: "4k randrw 70/30 QD16", RW: "randrw", BlockSize: "4k", IODepth: 16, NumJobs: 1, MixRead: 70},
	{Name: "read-128k-qd8", Title: "128k seq read QD8", RW: "read", BlockSize: "128k", IODepth: 8, NumJobs: 1},
	{Name: "write-128k-qd8", Title: "128k seq write QD8", RW: "write", BlockSize: "128k", IODepth: 8, NumJobs: 1},
}

// RSSJob is the mixed workload run while the daemon's memory is sampled.
var RSSJob = Job{Name: "rss", Title: "4k randrw 70/30 QD16 (memory run)", RW: "randrw", BlockSize: "4k", IODepth: 16, NumJobs: 1, MixRead: 70}

// JobByName finds a job of Jobs (or RSSJob).
func JobByName(name string) (Job, bool) {
	if name == RSSJob.Name {
		return RSSJob, true
	}
	for _, j := range Jobs {
		if j.Name == name {
			return j, true
		}
	}
	return Job{}, false
}

// FioFile renders the job as a fio job file. The guest sets BENCH_DEV
// (the device) and BENCH_SIZE (bytes of it to use, the same on every
// device so that every device sees the same access range); fio expands
// ${VAR} in job files.
func (j Job) FioFile(runtime, ramp time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "; %s (written by tools/bench)\n[global]\n", j.Title)
	b.WriteString("ioengine=io_uring\ndirect=1\ntime_based=1\ngroup_reporting=1\n")
	b.WriteString("randrepeat=0\nnorandommap=1\npercentile_list=50:99:99.9\n")
	b.WriteString("filename=${BENCH_DEV}\nsize=${BENCH_SIZE}\n")
	fmt.Fprintf(&b, "runtime=%d\nramp_time=%d\n", seconds(runtime), seconds(ramp))
	fmt.Fprintf(&b, "\n[%s]\nrw=%s\nbs=%s\niodepth=%d\nnumjobs=%d\n", j.Name, j.RW, j.BlockSize, j.IODepth, j.NumJobs)
	if j.MixRead > 0 {
		fmt.Fprintf(&b, "rwmixread=%d\n", j.MixRead)
	}
	return b.String()
}

// seconds rounds up to whole seconds, at least 1 for a non-zero duration.
func seconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

package plan

import (
	"fmt"
	"strings"
)

// Device is one block device the guest knows how to make (tests/bench/lib.sh,
// dev_up); Name is the name both sides use.
type Device struct {
	Name  string
	Title string // for people
	Ublk  bool   // served by ublkctl (else a kernel driver, or ublksrv)
}

// Devices are every device the guest can make, in report order.
var Devices = []Device{
	{Name: "null_blk", Title: "null_blk (kernel)"},
	{Name: "ublk-null", Title: "ublk null", Ublk: true},
	{Name: "ublksrv-null", Title: "ublksrv null (the C reference daemon)"},
	{Name: "brd", Title: "brd RAM disk (kernel)"},
	{Name: "ublk-mem", Title: "ublk mem", Ublk: true},
	{Name: "loop-ext4", Title: "loop, direct I/O, file on ext4/virtio"},
	{Name: "ublk-file-ext4", Title: "ublk file, same file on ext4/virtio", Ublk: true},
	{Name: "ublksrv-file-ext4", Title: "ublksrv loop, same file on ext4/virtio"},
	{Name: "loop-tmpfs", Title: "loop, direct I/O, file on tmpfs"},
	{Name: "ublk-file-tmpfs", Title: "ublk file, same file on tmpfs", Ublk: true},
	{Name: "nbd", Title: "nbd-server + kernel nbd, 127.0.0.1"},
	{Name: "ublk-sheep1", Title: "ublk sheep, 1 node, copies=1", Ublk: true},
	{Name: "ublk-sheep3", Title: "ublk sheep, 3 nodes, copies=3", Ublk: true},
}

// DeviceByName finds a device of Devices.
func DeviceByName(name string) (Device, bool) {
	for _, d := range Devices {
		if d.Name == name {
			return d, true
		}
	}
	return Device{}, false
}

// Metric names what a ratio compares.
type Metric string

const (
	MetricIOPS      Metric = "iops"       // read+write IOPS
	MetricWriteIOPS Metric = "write_iops" // write IOPS alone
	MetricP99       Metric = "p99"        // completion latency p99 of the job's latency side
)

// Target is one bar from issue 5: ratio = ublk/peer of Metric on each of
// Jobs must be at least Min (or, with AtMost, at most Max).
type Target struct {
	Jobs   []string
	Metric Metric
	Min    float64 // ratio ≥ Min (IOPS-like metrics)
	Max    float64 // ratio ≤ Max (latency), when AtMost
	AtMost bool
	Text   string // the words
}

// Holds says whether ratio meets the target.
func (t Target) Holds(ratio float64) bool {
	if t.AtMost {
		return ratio <= t.Max
	}
	return ratio >= t.Min
}

// Bound is the target's number, for tables.
func (t Target) Bound() float64 {
	if t.AtMost {
		return t.Max
	}
	return t.Min
}

// Pair is a ublk device measured against its peer in the same boot.
type Pair struct {
	Name    string
	Title   string
	Peer    string // device name
	Ublk    string // device name
	Targets []Target
	// Reference: the peer is ublksrv, the C reference ublk daemon, which
	// a run has only when it is given one (bench --ublksrv).
	Reference bool
}

var qd32 = []string{"randread-4k-qd32x2", "randwrite-4k-qd32x2"}

// Pairs are the comparisons of issue 5, in report order.
var Pairs = []Pair{
	{Name: "null", Title: "null_blk vs ublk null", Peer: "null_blk", Ublk: "ublk-null", Targets: []Target{
		{Jobs: qd32, Metric: MetricIOPS, Min: 0.25, Text: "ublk null ≥ 0.25× null_blk IOPS at 4k QD32 (what the C reference ublksrv reaches here)"},
	}},
	{Name: "ref-null", Title: "ublksrv null vs ublk null (the same kernel driver, a C daemon against this one)", Peer: "ublksrv-null", Ublk: "ublk-null", Reference: true},
	{Name: "mem", Title: "brd vs ublk mem", Peer: "brd", Ublk: "ublk-mem"},
	{Name: "file-ext4", Title: "loop (direct I/O) vs ublk file, file on ext4 on a virtio disk", Peer: "loop-ext4", Ublk: "ublk-file-ext4", Targets: []Target{
		{Jobs: qd32, Metric: MetricIOPS, Min: 1.0, Text: "ublk file ≥ 1.0× kernel loop on the 4k QD32 jobs"},
		{Jobs: []string{"randread-4k-qd1"}, Metric: MetricIOPS, Min: 0.8, Text: "ublk file ≥ 0.8× kernel loop at QD1"},
		{Jobs: []string{"read-128k-qd8", "write-128k-qd8"}, Metric: MetricIOPS, Min: 1.0, Text: "ublk file ≥ 1.0× kernel loop on 128k sequential"},
	}},
	{Name: "ref-file", Title: "ublksrv loop vs ublk file, file on ext4 on a virtio disk", Peer: "ublksrv-file-ext4", Ublk: "ublk-file-ext4", Reference: true},
	{Name: "file-tmpfs", Title: "loop (direct I/O) vs ublk file, file on tmpfs (the drivers' own cost)", Peer: "loop-tmpfs", Ublk: "ublk-file-tmpfs"},
	{Name: "net", Title: "nbd (127.0.0.1) vs ublk sheep, 1 node, copies=1", Peer: "nbd", Ublk: "ublk-sheep1", Targets: []Target{
		{Jobs: qd32, Metric: MetricIOPS, Min: 1.5, Text: "ublk sheep (1 node, copies=1) ≥ 1.5× nbd IOPS on the 4k QD32 jobs"},
		{Jobs: []string{"randread-4k-qd1"}, Metric: MetricP99, Max: 1.0, AtMost: true, Text: "ublk sheep p99 latency ≤ nbd's at QD1"},
	}},
	{Name: "copies", Title: "ublk sheep copies=1 vs copies=3 (3 nodes)", Peer: "ublk-sheep1", Ublk: "ublk-sheep3", Targets: []Target{
		{Jobs: []string{"randwrite-4k-qd32x2", "randrw-4k-qd16", "write-128k-qd8"}, Metric: MetricWriteIOPS, Min: 0.5, Text: "ublk sheep copies=3 write IOPS ≥ 0.5× copies=1"},
	}},
}

// PairByName finds a pair of Pairs.
func PairByName(name string) (Pair, bool) {
	for _, p := range Pairs {
		if p.Name == name {
			return p, true
		}
	}
	return Pair{}, false
}

// PairNames are the names of Pairs, in order.
func PairNames() []string {
	names := make([]string, len(Pairs))
	for i, p := range Pairs {
		names[i] = p.Name
	}
	return names
}

// PairsNamed finds pairs of Pairs by name, in the order given.
func PairsNamed(names ...string) ([]Pair, error) {
	out := make([]Pair, 0, len(names))
	for _, name := range names {
		pr, ok := PairByName(name)
		if !ok {
			return nil, fmt.Errorf("unknown pair %q: want some of %s", name, strings.Join(PairNames(), ","))
		}
		out = append(out, pr)
	}
	return out, nil
}

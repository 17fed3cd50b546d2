package results

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Marker starts every record line the guest prints.
const Marker = "@@bench:"

// maxLine bounds one console line; a record is a few hundred bytes, so a
// longer line is garbage (or a console that lost its newlines).
const maxLine = 64 << 10

// Side is one direction (read or write) of a fio run.
type Side struct {
	IOPS       float64 `json:"iops"`
	BWBytes    float64 `json:"bw_bytes"`
	IOBytes    int64   `json:"io_bytes"`
	TotalIOs   int64   `json:"total_ios"`
	ClatMeanNs float64 `json:"clat_mean_ns"`
	P50Ns      float64 `json:"p50_ns"`
	P99Ns      float64 `json:"p99_ns"`
	P999Ns     float64 `json:"p999_ns"`
}

// Run is one fio run of one job on one device.
type Run struct {
	Device    string  `json:"device"`
	Job       string  `json:"job"`
	Rep       int     `json:"rep"`
	Read      Side    `json:"read"`
	Write     Side    `json:"write"`
	UsrCPU    float64 `json:"usr_cpu"`
	SysCPU    float64 `json:"sys_cpu"`
	Error     int     `json:"error"`
	RuntimeMs int64   `json:"runtime_ms"`
	// Daemon is what the ublk daemon used over the run (nil for kernel
	// drivers): the guest reads /proc before and after fio.
	Daemon *DaemonUse `json:"daemon,omitempty"`
	// Block is what the device's /sys/block/DEV/stat counted over the
	// run: the requests the driver was handed, after merging and
	// splitting (nil in logs from before it was recorded).
	Block *BlockUse `json:"blk,omitempty"`
}

// BlockUse is the change of a block device's request counters over a run.
type BlockUse struct {
	ReadIOs      int64 `json:"read_ios"`
	ReadMerges   int64 `json:"read_merges"`
	ReadSectors  int64 `json:"read_sectors"`
	WriteIOs     int64 `json:"write_ios"`
	WriteMerges  int64 `json:"write_merges"`
	WriteSectors int64 `json:"write_sectors"`
}

// AvgKiB is the average request size in KiB of reads and of writes (0
// where there were none).
func (b BlockUse) AvgKiB() (read, write float64) {
	if b.ReadIOs > 0 {
		read = float64(b.ReadSectors) / 2 / float64(b.ReadIOs)
	}
	if b.WriteIOs > 0 {
		write = float64(b.WriteSectors) / 2 / float64(b.WriteIOs)
	}
	return read, write
}

// DaemonUse is a ublk daemon's CPU time (clock ticks of 10 ms) and
// context switches (all threads) over Seconds of wall clock.
type DaemonUse struct {
	CPUTicks     int64   `json:"cpu_ticks"`
	CtxtSwitches int64   `json:"ctxt_switches"`
	Seconds      float64 `json:"seconds"`
}

// CPUShare is the daemon's CPU time over the wall clock (1 = one CPU busy).
func (d DaemonUse) CPUShare() float64 {
	if d.Seconds <= 0 {
		return 0
	}
	return float64(d.CPUTicks) / 100 / d.Seconds
}

// SwitchesPerIO divides the daemon's context-switch rate by the run's
// IOPS: how often a request makes it sleep and wake.
func (d DaemonUse) SwitchesPerIO(iops float64) float64 {
	if d.Seconds <= 0 || iops <= 0 {
		return 0
	}
	return float64(d.CtxtSwitches) / d.Seconds / iops
}

// IOPS is read plus write IOPS.
func (r Run) IOPS() float64 { return r.Read.IOPS + r.Write.IOPS }

// Skip is a device the guest could not make in this boot.
type Skip struct {
	Device string `json:"device"`
	Reason string `json:"reason"`
}

// Failure is a fio run that did not produce a result.
type Failure struct {
	Device  string `json:"device"`
	Job     string `json:"job"`
	Rep     int    `json:"rep"`
	Message string `json:"message"`
}

// RSSSample is the daemon's memory at T seconds into the memory run.
type RSSSample struct {
	Device  string `json:"device"`
	T       int    `json:"t"`
	RSSKB   int64  `json:"rss_kb"`
	LckKB   int64  `json:"lck_kb"`
	HWMKB   int64  `json:"hwm_kb"`
	Threads int64  `json:"threads"`
}

// Profile is perf's view of a ublk daemon during one job, as text: Top
// is the on-CPU flat profile by symbol, OffCPU where its threads went to
// sleep, Callers the call stacks of those.
type Profile struct {
	Device  string `json:"device"`
	Job     string `json:"job"`
	Seconds string `json:"seconds,omitempty"` // of each recording
	IOPS    string `json:"iops,omitempty"`    // fio's, over the whole job
	Samples string `json:"samples"`           // on-CPU samples (cpu-clock, 499 Hz)
	Top     string `json:"top"`
	// Switches counts the daemon's context switches (sched_switch)
	// while OffCPU was recorded: the flat profile of where it slept.
	Switches string `json:"switches,omitempty"`
	OffCPU   string `json:"off_cpu,omitempty"`
	Callers  string `json:"callers,omitempty"` // call stacks of the off-CPU profile
}

type infoRecord struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Console is everything one boot reported.
type Console struct {
	Info     map[string]string `json:"info"`
	Runs     []Run             `json:"runs"`
	Skips    []Skip            `json:"skips"`
	Failures []Failure         `json:"failures"`
	RSS      []RSSSample       `json:"rss"`
	Profiles []Profile         `json:"profiles,omitempty"`
	// Unparsed are marker lines that did not decode (a kernel message
	// spliced into a record, say); they are reported, never guessed at.
	Unparsed []string `json:"unparsed,omitempty"`
}

// Parse reads a console log (or the lab's streamed output) and collects
// every record in it; other lines are ignored.
func Parse(r io.Reader) (*Console, error) {
	c := &Console{Info: map[string]string{}}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br)
		if len(line) > 0 {
			c.Line(line)
		}
		if err == io.EOF {
			return c, nil
		}
		if err != nil {
			return c, fmt.Errorf("read console: %w", err)
		}
	}
}

// readLine returns the next line, truncated to maxLine bytes.
func readLine(br *bufio.Reader) (string, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) <= maxLine {
			buf = append(buf, chunk...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return string(bytes.TrimRight(buf, "\r\n")), err
	}
}

// Line takes one console line; it reports whether the line was a record.
func (c *Console) Line(line string) bool {
	i := strings.Index(line, Marker)
	if i < 0 {
		return false
	}
	rest := strings.TrimRight(line[i+len(Marker):], "\r")
	kind, payload, _ := strings.Cut(rest, " ")
	if err := c.record(kind, []byte(payload)); err != nil {
		if len(rest) > 300 {
			rest = rest[:300] + "…"
		}
		c.Unparsed = append(c.Unparsed, fmt.Sprintf("%s (%v)", rest, err))
	}
	return true
}

func (c *Console) record(kind string, payload []byte) error {
	switch kind {
	case "info":
		var in infoRecord
		if err := decode(payload, &in); err != nil {
			return err
		}
		if in.Key == "" {
			return fmt.Errorf("info record without a key")
		}
		if c.Info == nil {
			c.Info = map[string]string{}
		}
		c.Info[in.Key] = in.Value
	case "fio":
		var run Run
		if err := decode(payload, &run); err != nil {
			return err
		}
		if run.Device == "" || run.Job == "" || run.Rep < 1 {
			return fmt.Errorf("fio record without device, job or repetition")
		}
		c.Runs = append(c.Runs, run)
	case "skip":
		var s Skip
		if err := decode(payload, &s); err != nil {
			return err
		}
		if s.Device == "" {
			return fmt.Errorf("skip record without a device")
		}
		for _, old := range c.Skips {
			if old == s {
				return nil // skipped again in a later repetition
			}
		}
		c.Skips = append(c.Skips, s)
	case "error":
		var f Failure
		if err := decode(payload, &f); err != nil {
			return err
		}
		c.Failures = append(c.Failures, f)
	case "rss":
		var s RSSSample
		if err := decode(payload, &s); err != nil {
			return err
		}
		c.RSS = append(c.RSS, s)
	case "profile":
		var pr Profile
		if err := decode(payload, &pr); err != nil {
			return err
		}
		if pr.Device == "" || pr.Job == "" {
			return fmt.Errorf("profile record without device or job")
		}
		c.Profiles = append(c.Profiles, pr)
	default:
		return fmt.Errorf("unknown record kind %q", kind)
	}
	return nil
}

// decode is strict: one JSON object, nothing after it.
func decode(payload []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad record: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("bad record: data after the JSON object")
	}
	return nil
}

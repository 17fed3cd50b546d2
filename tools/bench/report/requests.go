package report

import (
	"fmt"
	"sort"
	"strings"
)

// QueueLimitsKey prefixes the guest's info records that give a device's
// queue limits (tests/bench/lib.sh: "queue_limits:DEVICE").
const QueueLimitsKey = "queue_limits:"

// writeRequests shows the requests each device was handed, from its
// /sys/block stat around each fio run (first repetition), and the queue
// limits the guest read: whether a driver got fewer, larger requests
// (merges) or smaller ones (splits) than fio issued.
func (r *Report) writeRequests(b *strings.Builder) {
	header := []string{"device"}
	for _, j := range r.plan.Jobs {
		header = append(header, j.Title)
	}
	var rows [][]string
	for _, d := range r.plan.Devices() {
		row := []string{deviceTitle(d)}
		any := false
		for _, j := range r.plan.Jobs {
			cell := "—"
			for _, run := range r.Runs {
				if run.Device != d || run.Job != j.Name || run.Block == nil {
					continue
				}
				any = true
				rd, wr := run.Block.AvgKiB()
				var parts []string
				if run.Block.ReadIOs > 0 {
					parts = append(parts, fmt.Sprintf("r %.0f KiB", rd))
				}
				if run.Block.WriteIOs > 0 {
					parts = append(parts, fmt.Sprintf("w %.0f KiB", wr))
				}
				if m := run.Block.ReadMerges + run.Block.WriteMerges; m > 0 {
					parts = append(parts, fmt.Sprintf("%d merged", m))
				}
				cell = strings.Join(parts, ", ")
				break
			}
			row = append(row, cell)
		}
		if any {
			rows = append(rows, row)
		}
	}
	if len(rows) == 0 {
		b.WriteString("Not recorded in this run.\n\n")
		return
	}
	table(b, header, rows)
	var limits []string
	for k, v := range r.Meta.Guest {
		if d, ok := strings.CutPrefix(k, QueueLimitsKey); ok {
			limits = append(limits, fmt.Sprintf("- %s: %s", deviceTitle(d), v))
		}
	}
	if len(limits) > 0 {
		sort.Strings(limits)
		b.WriteString("Queue limits (`/sys/block/DEV/queue`):\n\n" + strings.Join(limits, "\n") + "\n\n")
	}
}

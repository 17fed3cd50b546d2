package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// MemInfo is the part of /proc/meminfo memhog steers by, in bytes.
type MemInfo struct {
	Total     int64
	Available int64
	Dirty     int64 // file pages waiting to be written back
	Writeback int64 // file pages being written back
}

// Free is what the hog may still take: MemAvailable counts dirty and
// under-writeback file pages as available, but they can only be freed
// once written back through the very device under test. Taking them too
// would drive the machine into the OOM killer instead of into reclaim.
func (m MemInfo) Free() int64 {
	return max(m.Available-m.Dirty-m.Writeback, 0)
}

// readMemInfo reads /proc/meminfo.
func readMemInfo() (MemInfo, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return MemInfo{}, fmt.Errorf("read meminfo: %w", err)
	}
	defer f.Close()
	return parseMemInfo(f)
}

// parseMemInfo reads "Name:   value kB" lines; MemTotal and MemAvailable
// (Linux 3.14+) must both be there, Dirty and Writeback count as 0 if not.
func parseMemInfo(r io.Reader) (MemInfo, error) {
	var mi MemInfo
	var haveTotal, haveAvail bool
	s := bufio.NewScanner(r)
	for s.Scan() {
		name, rest, _ := strings.Cut(s.Text(), ":")
		var field *int64
		switch name {
		case "MemTotal":
			field, haveTotal = &mi.Total, true
		case "MemAvailable":
			field, haveAvail = &mi.Available, true
		case "Dirty":
			field = &mi.Dirty
		case "Writeback":
			field = &mi.Writeback
		default:
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return MemInfo{}, fmt.Errorf("parse meminfo: malformed %s line %q", name, s.Text())
		}
		kib, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kib < 0 || kib > 1<<40 {
			return MemInfo{}, fmt.Errorf("parse meminfo: bad %s value %q", name, f[0])
		}
		*field = kib << 10
	}
	if err := s.Err(); err != nil {
		return MemInfo{}, fmt.Errorf("parse meminfo: %w", err)
	}
	if !haveTotal || !haveAvail {
		return MemInfo{}, fmt.Errorf("parse meminfo: no MemTotal or MemAvailable line (kernel older than 3.14?)")
	}
	return mi, nil
}

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
// (Linux 3.14+) must both be there.
func parseMemInfo(r io.Reader) (MemInfo, error) {
	var mi MemInfo
	var haveTotal, haveAvail bool
	s := bufio.NewScanner(r)
	for s.Scan() {
		name, rest, ok := strings.Cut(s.Text(), ":")
		if !ok || (name != "MemTotal" && name != "MemAvailable") {
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
		if name == "MemTotal" {
			mi.Total, haveTotal = kib<<10, true
		} else {
			mi.Available, haveAvail = kib<<10, true
		}
	}
	if err := s.Err(); err != nil {
		return MemInfo{}, fmt.Errorf("parse meminfo: %w", err)
	}
	if !haveTotal || !haveAvail {
		return MemInfo{}, fmt.Errorf("parse meminfo: no MemTotal or MemAvailable line (kernel older than 3.14?)")
	}
	return mi, nil
}

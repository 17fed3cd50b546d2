package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseSize reads a byte count with an optional binary suffix: 4096, 512K,
// 512M, 20G, 1T, 1P (also 20GiB, 20GB, lower case). Suffixes are powers of
// 1024, as disk tools mean them.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	u := strings.ToUpper(t)
	u = strings.TrimSuffix(u, "IB")
	u = strings.TrimSuffix(u, "B")
	shift := 0
	if n := len(u); n > 0 {
		switch u[n-1] {
		case 'K':
			shift = 10
		case 'M':
			shift = 20
		case 'G':
			shift = 30
		case 'T':
			shift = 40
		case 'P':
			shift = 50
		}
		if shift > 0 {
			u = u[:n-1]
		}
	}
	if u == "" {
		return 0, fmt.Errorf("size %q: want a number with an optional K, M, G, T or P suffix, e.g. 20G", s)
	}
	// Fractions are allowed with a suffix (1.5G); the result must be whole.
	if strings.ContainsAny(u, ".") {
		f, err := strconv.ParseFloat(u, 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, fmt.Errorf("size %q: want a number with an optional K, M, G, T or P suffix, e.g. 20G", s)
		}
		v := f * float64(int64(1)<<shift)
		if v >= math.MaxInt64 || v != math.Trunc(v) {
			return 0, fmt.Errorf("size %q is not a whole number of bytes below 8 EiB", s)
		}
		return int64(v), nil
	}
	n, err := strconv.ParseInt(u, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional K, M, G, T or P suffix, e.g. 20G", s)
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n << shift, nil
}

// FormatSize prints a byte count the short way, in the largest binary unit
// it reaches: exactly when it is a whole number of them (20G, 512M), else
// to one decimal (76.5G); bytes below 1 KiB.
func FormatSize(n int64) string {
	for _, u := range []struct {
		shift  uint
		suffix string
	}{{50, "P"}, {40, "T"}, {30, "G"}, {20, "M"}, {10, "K"}} {
		if n < 1<<u.shift {
			continue
		}
		if n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
		return strconv.FormatFloat(float64(n)/float64(int64(1)<<u.shift), 'f', 1, 64) + u.suffix
	}
	return strconv.FormatInt(n, 10)
}

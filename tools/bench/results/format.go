package results

import (
	"fmt"
	"math"
)

// FormatCount formats an IOPS-like number for people, with three
// significant digits: 950, 1.23k, 57.7k, 1.25M.
func FormatCount(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case a >= 1e3:
		return fmt.Sprintf("%.2fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

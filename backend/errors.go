package backend

import (
	"fmt"
	"syscall"
)

// checkRange refuses I/O outside [0, size): a backend is handed offsets
// that came from the kernel, and never trusts them.
func checkRange(off, n, size int64) error {
	if off < 0 || n < 0 || off+n > size || off+n < off {
		return fmt.Errorf("range %d+%d outside the device (%d bytes): %w", off, n, size, syscall.EINVAL)
	}
	return nil
}

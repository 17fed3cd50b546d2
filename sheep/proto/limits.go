package proto

import (
	"fmt"
	"math/bits"
)

const (
	// DefaultObjectSize is the object size of a cluster that does not set one.
	DefaultObjectSize = 4 << 20
	// MinObjectSize and MaxObjectSize bound a cluster's object size, which
	// is a power of two so clients split I/O with shifts and masks.
	MinObjectSize = 4 << 10
	MaxObjectSize = 1 << 30

	// MaxListPage is the most object ids one ListObjects reply carries
	// (64 KiB of body).
	MaxListPage = 8192

	// MaxErrorMessage bounds the text an error reply carries in its body.
	MaxErrorMessage = 256

	// MaxNodeString bounds each string of NodeInfo (id, zone, software version).
	MaxNodeString = 255
)

// CheckObjectSize says why size cannot be a cluster's object size, or nil.
func CheckObjectSize(size uint32) error {
	if size < MinObjectSize || size > MaxObjectSize || bits.OnesCount32(size) != 1 {
		return fmt.Errorf("object size %d is not a power of two in [%d, %d]", size, MinObjectSize, MaxObjectSize)
	}
	return nil
}

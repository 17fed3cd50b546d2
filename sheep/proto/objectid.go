package proto

import "fmt"

// ObjectID names one object of one VDI: the VDI id (24 bits) in bits
// 32..55 and the object index (32 bits) in bits 0..31, Sheepdog's layout.
// Bits 56..63 are reserved and zero in every valid id.
type ObjectID uint64

const (
	// MaxVDI is the largest VDI id (24 bits).
	MaxVDI                = 1<<24 - 1
	vdiShift              = 32
	reservedMask ObjectID = 0xff << 56
)

// NewObjectID returns the id of object index idx of VDI vdi. vdi must be at
// most MaxVDI; higher bits are dropped.
func NewObjectID(vdi uint32, idx uint32) ObjectID {
	return ObjectID(uint64(vdi&MaxVDI)<<vdiShift | uint64(idx))
}

// VDI is the VDI id the object belongs to.
func (o ObjectID) VDI() uint32 { return uint32(o>>vdiShift) & MaxVDI }

// Index is the object's index within its VDI (its byte offset in the VDI
// divided by the object size).
func (o ObjectID) Index() uint32 { return uint32(o) }

// Valid reports whether the reserved bits are zero.
func (o ObjectID) Valid() bool { return o&reservedMask == 0 }

// String is the id in fixed-width hex, as object files are named.
func (o ObjectID) String() string { return fmt.Sprintf("%016x", uint64(o)) }

package uring

import "unsafe"

// Values from include/uapi/linux/io_uring.h.

// Setup flags (io_uring_params.flags).
const (
	SetupIOPoll       uint32 = 1 << 0
	SetupSQPoll       uint32 = 1 << 1
	SetupCQSize       uint32 = 1 << 3
	SetupClamp        uint32 = 1 << 4
	SetupSubmitAll    uint32 = 1 << 7
	SetupCoopTaskrun  uint32 = 1 << 8
	SetupTaskrunFlag  uint32 = 1 << 9
	SetupSQE128       uint32 = 1 << 10
	SetupCQE32        uint32 = 1 << 11
	SetupSingleIssuer uint32 = 1 << 12
	SetupDeferTaskrun uint32 = 1 << 13
)

// Features reported by the kernel (io_uring_params.features).
const (
	FeatSingleMmap uint32 = 1 << 0
	FeatNoDrop     uint32 = 1 << 1
)

// Opcodes.
const (
	OpNop        uint8 = 0
	OpReadv      uint8 = 1
	OpWritev     uint8 = 2
	OpFsync      uint8 = 3
	OpReadFixed  uint8 = 4
	OpWriteFixed uint8 = 5
	OpPollAdd    uint8 = 6
	OpFallocate  uint8 = 17
	OpRead       uint8 = 22
	OpWrite      uint8 = 23
	OpURingCmd   uint8 = 46
)

// SQE flags.
const (
	SQEFixedFile uint8 = 1 << 0
	SQEIODrain   uint8 = 1 << 1
	SQEIOLink    uint8 = 1 << 2
	SQEAsync     uint8 = 1 << 4
)

// FsyncDatasync is IORING_FSYNC_DATASYNC.
const FsyncDatasync uint32 = 1 << 0

// io_uring_register opcodes.
const (
	registerBuffers  uint32 = 0
	registerFiles    uint32 = 2
	registerBuffers2 uint32 = 15
)

// rsrcRegisterSparse is IORING_RSRC_REGISTER_SPARSE: a table of empty
// slots, filled later (by a driver registering its own pages).
const rsrcRegisterSparse uint32 = 1 << 0

// rsrcRegister is struct io_uring_rsrc_register.
type rsrcRegister struct {
	Nr    uint32
	Flags uint32
	Resv2 uint64
	Data  uint64
	Tags  uint64
}

const (
	enterGetEvents uint32 = 1 << 0

	offSQRing uint64 = 0
	offCQRing uint64 = 0x8000000
	offSQEs   uint64 = 0x10000000

	sqNeedWakeup uint32 = 1 << 0
	sqCQOverflow uint32 = 1 << 1
)

type sqRingOffsets struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
	UserAddr                                                        uint64
}

type cqRingOffsets struct {
	Head, Tail, RingMask, RingEntries, Overflow, CQEs, Flags, Resv1 uint32
	UserAddr                                                        uint64
}

// params is struct io_uring_params (120 bytes).
type params struct {
	SQEntries, CQEntries, Flags, SQThreadCPU, SQThreadIdle, Features, WQFd uint32
	Resv                                                                   [3]uint32
	SQOff                                                                  sqRingOffsets
	CQOff                                                                  cqRingOffsets
}

// SQE is a 64-byte submission queue entry. In a ring set up with SetupSQE128
// each entry is 128 bytes: this struct is its first half and Cmd returns the
// 80-byte command area that starts at byte 48.
type SQE struct {
	Opcode      uint8
	Flags       uint8
	IOPrio      uint16
	Fd          int32
	Off         uint64 // file offset; for URING_CMD the low 32 bits are cmd_op
	Addr        uint64
	Len         uint32
	OpFlags     uint32 // rw_flags, fsync_flags, poll32_events, uring_cmd_flags...
	UserData    uint64
	BufIndex    uint16
	Personality uint16
	SpliceFdIn  int32
	Addr3       uint64 // also the start of the URING_CMD command area
	pad2        uint64
}

// CQE is a 16-byte completion queue entry.
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

const (
	sqeSize    = unsafe.Sizeof(SQE{})
	cqeSize    = unsafe.Sizeof(CQE{})
	cmdOffset  = unsafe.Offsetof(SQE{}.Addr3)
	paramsSize = unsafe.Sizeof(params{})
	cmdArea64  = 64 - cmdOffset  // 16 bytes in a plain 64-byte SQE
	cmdArea128 = 128 - cmdOffset // 80 bytes in an SQE128 entry
)

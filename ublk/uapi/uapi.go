package uapi

import (
	"encoding/binary"
	"strconv"
	"unsafe"
)

// Legacy command numbers; the ioctl-encoded forms below wrap them.
const (
	CmdGetQueueAffinity                           = 0x01
	CmdGetDevInfo                                 = 0x02
	CmdAddDev                                     = 0x04
	CmdDelDev                                     = 0x05
	CmdStartDev                                   = 0x06
	CmdStopDev                                    = 0x07
	CmdSetParams                                  = 0x08
	CmdGetParams                                  = 0x09
	CmdStartUserRecovery                          = 0x10
	CmdEndUserRecovery                            = 0x11
	CmdGetDevInfo2                                = 0x12
	cmdGetFeatures                                = 0x13
	IOFetchReq                                    = 0x20
	IOCommitAndFetchReq                           = 0x21
	IONeedGetData                                 = 0x22
	ioctlRead                                     = 2
	ioctlWrite                                    = 1
	ioctlType                                     = 'u'
	ctrlCmdSize                                   = uint32(unsafe.Sizeof(CtrlCmd{}))
	ioCmdSize                                     = uint32(unsafe.Sizeof(IOCmd{}))
	ioctlDirShift, ioctlSizeShift, ioctlTypeShift = 30, 16, 8
)

func ioc(dir, nr, size uint32) uint32 {
	return dir<<ioctlDirShift | size<<ioctlSizeShift | ioctlType<<ioctlTypeShift | nr
}

// Ioctl-encoded control commands (_IOR/_IOWR('u', nr, struct ublksrv_ctrl_cmd)).
var (
	UCmdGetQueueAffinity  = ioc(ioctlRead, CmdGetQueueAffinity, ctrlCmdSize)
	UCmdGetDevInfo        = ioc(ioctlRead, CmdGetDevInfo, ctrlCmdSize)
	UCmdAddDev            = ioc(ioctlRead|ioctlWrite, CmdAddDev, ctrlCmdSize)
	UCmdDelDev            = ioc(ioctlRead|ioctlWrite, CmdDelDev, ctrlCmdSize)
	UCmdStartDev          = ioc(ioctlRead|ioctlWrite, CmdStartDev, ctrlCmdSize)
	UCmdStopDev           = ioc(ioctlRead|ioctlWrite, CmdStopDev, ctrlCmdSize)
	UCmdSetParams         = ioc(ioctlRead|ioctlWrite, CmdSetParams, ctrlCmdSize)
	UCmdGetParams         = ioc(ioctlRead, CmdGetParams, ctrlCmdSize)
	UCmdStartUserRecovery = ioc(ioctlRead|ioctlWrite, CmdStartUserRecovery, ctrlCmdSize)
	UCmdEndUserRecovery   = ioc(ioctlRead|ioctlWrite, CmdEndUserRecovery, ctrlCmdSize)
	UCmdGetDevInfo2       = ioc(ioctlRead, CmdGetDevInfo2, ctrlCmdSize)
	UCmdGetFeatures       = ioc(ioctlRead, cmdGetFeatures, ctrlCmdSize)
)

// Ioctl-encoded I/O commands (_IOWR('u', nr, struct ublksrv_io_cmd)).
var (
	UIOFetchReq          = ioc(ioctlRead|ioctlWrite, IOFetchReq, ioCmdSize)
	UIOCommitAndFetchReq = ioc(ioctlRead|ioctlWrite, IOCommitAndFetchReq, ioCmdSize)
)

// Results of FETCH/COMMIT_AND_FETCH completions.
const (
	IOResOK          = 0
	IOResNeedGetData = 1
	IOResAbort       = -19 // -ENODEV: the queue is going away; do not fetch again
)

// Memory map offsets of /dev/ublkcN and limits.
const (
	CmdBufOffset  = 0
	IOBufOffset   = 0x80000000
	MaxQueueDepth = 4096
	MaxNrQueues   = 4096
)

// Feature flags (ublksrv_ctrl_dev_info.flags and GET_FEATURES).
const (
	FSupportZeroCopy     uint64 = 1 << 0
	FURingCmdCompInTask  uint64 = 1 << 1
	FNeedGetData         uint64 = 1 << 2
	FUserRecovery        uint64 = 1 << 3
	FUserRecoveryReissue uint64 = 1 << 4
	FUnprivilegedDev     uint64 = 1 << 5
	FCmdIoctlEncode      uint64 = 1 << 6
	FUserCopy            uint64 = 1 << 7
	FZoned               uint64 = 1 << 8
	FUserRecoveryFailIO  uint64 = 1 << 9
	FUpdateSize          uint64 = 1 << 10
	FAutoBufReg          uint64 = 1 << 11
	FQuiesce             uint64 = 1 << 12
	FPerIODaemon         uint64 = 1 << 13
	FBufRegOffDaemon     uint64 = 1 << 14
	FBatchIO             uint64 = 1 << 15
	FIntegrity           uint64 = 1 << 16
	FSafeStopDev         uint64 = 1 << 17
	FNoAutoPartScan      uint64 = 1 << 18
	FShmemZC             uint64 = 1 << 19
)

// FeatureNames names each feature bit, in bit order.
var FeatureNames = []string{
	"ZERO_COPY", "URING_CMD_COMP_IN_TASK", "NEED_GET_DATA", "USER_RECOVERY",
	"USER_RECOVERY_REISSUE", "UNPRIVILEGED_DEV", "CMD_IOCTL_ENCODE", "USER_COPY",
	"ZONED", "USER_RECOVERY_FAIL_IO", "UPDATE_SIZE", "AUTO_BUF_REG", "QUIESCE",
	"PER_IO_DAEMON", "BUF_REG_OFF_DAEMON", "BATCH_IO", "INTEGRITY", "SAFE_STOP_DEV",
	"NO_AUTO_PART_SCAN", "SHMEM_ZC",
}

// FeatureList names the bits set in f; unknown bits are named by number.
func FeatureList(f uint64) []string {
	var out []string
	for bit := 0; bit < 64; bit++ {
		if f&(1<<bit) == 0 {
			continue
		}
		if bit < len(FeatureNames) {
			out = append(out, FeatureNames[bit])
		} else {
			out = append(out, "BIT"+strconv.Itoa(bit))
		}
	}
	return out
}

// Device states (ublksrv_ctrl_dev_info.state).
const (
	StateDead     = 0
	StateLive     = 1
	StateQuiesced = 2
	StateFailIO   = 3
)

// StateName names a device state.
func StateName(s uint16) string {
	switch s {
	case StateDead:
		return "DEAD"
	case StateLive:
		return "LIVE"
	case StateQuiesced:
		return "QUIESCED"
	case StateFailIO:
		return "FAIL_IO"
	}
	return "UNKNOWN"
}

// I/O operations (low 8 bits of ublksrv_io_desc.op_flags) and flags.
const (
	IOOpRead        = 0
	IOOpWrite       = 1
	IOOpFlush       = 2
	IOOpDiscard     = 3
	IOOpWriteSame   = 4
	IOOpWriteZeroes = 5

	IOFFailfastDev       = 1 << 8
	IOFFailfastTransport = 1 << 9
	IOFFailfastDriver    = 1 << 10
	IOFMeta              = 1 << 11
	IOFFUA               = 1 << 13
	IOFNoUnmap           = 1 << 15
	IOFSwap              = 1 << 16
)

// CtrlCmd is struct ublksrv_ctrl_cmd (32 bytes): the payload of a control
// URING_CMD, placed at the SQE's command area.
type CtrlCmd struct {
	DevID      uint32
	QueueID    uint16 // 0xffff when the command is not for a queue
	Len        uint16
	Addr       uint64
	Data       uint64
	DevPathLen uint16
	Pad        uint16
	Reserved   uint32
}

// NoQueue is the QueueID of a command that is not for a queue.
const NoQueue = 0xffff

// Encode writes c into b (at least 32 bytes) in the kernel's layout.
func (c *CtrlCmd) Encode(b []byte) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], c.DevID)
	le.PutUint16(b[4:], c.QueueID)
	le.PutUint16(b[6:], c.Len)
	le.PutUint64(b[8:], c.Addr)
	le.PutUint64(b[16:], c.Data)
	le.PutUint16(b[24:], c.DevPathLen)
	le.PutUint16(b[26:], c.Pad)
	le.PutUint32(b[28:], c.Reserved)
}

// DevInfo is struct ublksrv_ctrl_dev_info (64 bytes).
type DevInfo struct {
	NrHwQueues    uint16
	QueueDepth    uint16
	State         uint16
	Pad0          uint16
	MaxIOBufBytes uint32
	DevID         uint32
	UblksrvPid    int32
	Pad1          uint32
	Flags         uint64
	UblksrvFlags  uint64
	OwnerUID      uint32
	OwnerGID      uint32
	Reserved1     uint64
	Reserved2     uint64
}

// IODesc is struct ublksrv_io_desc (24 bytes): one request, written by the
// driver into the queue's mmapped descriptor array at the request's tag.
type IODesc struct {
	OpFlags     uint32
	NrSectors   uint32
	StartSector uint64
	Addr        uint64
}

// Op is the request's operation.
func (d *IODesc) Op() uint8 { return uint8(d.OpFlags & 0xff) }

// Flags are the request's UBLK_IO_F_* flags.
func (d *IODesc) Flags() uint32 { return d.OpFlags &^ 0xff }

// IOCmd is struct ublksrv_io_cmd (16 bytes): the payload of FETCH_REQ and
// COMMIT_AND_FETCH_REQ.
type IOCmd struct {
	QID    uint16
	Tag    uint16
	Result int32
	Addr   uint64
}

// Encode writes c into b (at least 16 bytes) in the kernel's layout.
func (c *IOCmd) Encode(b []byte) {
	le := binary.LittleEndian
	le.PutUint16(b[0:], c.QID)
	le.PutUint16(b[2:], c.Tag)
	le.PutUint32(b[4:], uint32(c.Result))
	le.PutUint64(b[8:], c.Addr)
}

// AutoBufReg is struct ublk_auto_buf_reg, which a FETCH_REQ or
// COMMIT_AND_FETCH_REQ of a device with FAutoBufReg carries in the SQE's
// addr field (not in IOCmd): the slot of the ring's sparse buffer table
// in which the driver registers the pages of the tag's next request.
type AutoBufReg struct {
	Index uint16
	Flags uint8 // AutoBufRegFallback or 0
}

// AutoBufRegFallback: when the registration fails, hand the request over
// anyway with IOFNeedRegBuf set, instead of failing it.
const AutoBufRegFallback uint8 = 1 << 0

// SQEAddr packs a into the 64-bit SQE addr: index in bits 0-15, flags in
// 16-23, the reserved bytes (which must be 0) above.
func (a AutoBufReg) SQEAddr() uint64 { return uint64(a.Index) | uint64(a.Flags)<<16 }

// Basic device attributes.
const (
	AttrReadOnly      = 1 << 0
	AttrRotational    = 1 << 1
	AttrVolatileCache = 1 << 2
	AttrFUA           = 1 << 3
)

// Parameter types present in Params.Types.
const (
	ParamTypeBasic     = 1 << 0
	ParamTypeDiscard   = 1 << 1
	ParamTypeDevt      = 1 << 2
	ParamTypeZoned     = 1 << 3
	ParamTypeDMAAlign  = 1 << 4
	ParamTypeSegment   = 1 << 5
	ParamTypeIntegrity = 1 << 6
)

// ParamBasic is struct ublk_param_basic (32 bytes).
type ParamBasic struct {
	Attrs            uint32
	LogicalBSShift   uint8
	PhysicalBSShift  uint8
	IOOptShift       uint8
	IOMinShift       uint8
	MaxSectors       uint32
	ChunkSectors     uint32
	DevSectors       uint64
	VirtBoundaryMask uint64
}

// ParamDiscard is struct ublk_param_discard (20 bytes).
type ParamDiscard struct {
	DiscardAlignment      uint32
	DiscardGranularity    uint32
	MaxDiscardSectors     uint32
	MaxWriteZeroesSectors uint32
	MaxDiscardSegments    uint16
	Reserved0             uint16
}

// ParamDevt is struct ublk_param_devt (16 bytes, read-only).
type ParamDevt struct {
	CharMajor, CharMinor, DiskMajor, DiskMinor uint32
}

// ParamZoned is struct ublk_param_zoned (32 bytes).
type ParamZoned struct {
	MaxOpenZones, MaxActiveZones, MaxZoneAppendSectors uint32
	Reserved                                           [20]uint8
}

// ParamDMAAlign is struct ublk_param_dma_align (8 bytes).
type ParamDMAAlign struct {
	Alignment uint32
	Pad       [4]uint8
}

// ParamSegment is struct ublk_param_segment (16 bytes).
type ParamSegment struct {
	SegBoundaryMask uint64
	MaxSegmentSize  uint32
	MaxSegments     uint16
	Pad             [2]uint8
}

// ParamIntegrity is struct ublk_param_integrity (16 bytes).
type ParamIntegrity struct {
	Flags                uint32
	MaxIntegritySegments uint16
	IntervalExp          uint8
	MetadataSize         uint8
	PIOffset             uint8
	CsumType             uint8
	TagSize              uint8
	Pad                  [5]uint8
}

// Params is struct ublk_params (152 bytes). A kernel that knows a shorter
// struct copies only its own prefix (it takes min(len, its size)), so the
// full struct is safe to send to older drivers as long as Types names only
// what they know.
type Params struct {
	Len       uint32
	Types     uint32
	Basic     ParamBasic
	Discard   ParamDiscard
	Devt      ParamDevt
	Zoned     ParamZoned
	DMA       ParamDMAAlign
	_         [4]byte // the C struct aligns ublk_param_segment to 8
	Seg       ParamSegment
	Integrity ParamIntegrity
}

// Sizes of the ABI structs, checked by tests against ublk_cmd.h.
const (
	SizeofCtrlCmd = unsafe.Sizeof(CtrlCmd{})
	SizeofDevInfo = unsafe.Sizeof(DevInfo{})
	SizeofIODesc  = unsafe.Sizeof(IODesc{})
	SizeofIOCmd   = unsafe.Sizeof(IOCmd{})
	SizeofParams  = unsafe.Sizeof(Params{})
)

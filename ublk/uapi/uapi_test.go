package uapi

import (
	"reflect"
	"testing"
	"unsafe"
)

// Sizes and offsets from include/uapi/linux/ublk_cmd.h.
func TestStructLayout(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"ublksrv_ctrl_cmd", SizeofCtrlCmd, 32},
		{"ublksrv_ctrl_dev_info", SizeofDevInfo, 64},
		{"ublksrv_io_desc", SizeofIODesc, 24},
		{"ublksrv_io_cmd", SizeofIOCmd, 16},
		{"ublk_params", SizeofParams, 152},
		{"ublk_param_basic", unsafe.Sizeof(ParamBasic{}), 32},
		{"ublk_param_discard", unsafe.Sizeof(ParamDiscard{}), 20},
		{"ublk_param_devt", unsafe.Sizeof(ParamDevt{}), 16},
		{"ublk_param_zoned", unsafe.Sizeof(ParamZoned{}), 32},
		{"ublk_param_segment", unsafe.Sizeof(ParamSegment{}), 16},
		{"ublk_param_integrity", unsafe.Sizeof(ParamIntegrity{}), 16},
		{"offsetof(ublk_params.basic)", unsafe.Offsetof(Params{}.Basic), 8},
		{"offsetof(ublk_params.discard)", unsafe.Offsetof(Params{}.Discard), 40},
		{"offsetof(ublk_params.devt)", unsafe.Offsetof(Params{}.Devt), 60},
		{"offsetof(ublk_params.zoned)", unsafe.Offsetof(Params{}.Zoned), 76},
		{"offsetof(ublk_params.dma)", unsafe.Offsetof(Params{}.DMA), 108},
		{"offsetof(ublk_params.seg)", unsafe.Offsetof(Params{}.Seg), 120},
		{"offsetof(ublk_params.integrity)", unsafe.Offsetof(Params{}.Integrity), 136},
		{"offsetof(dev_info.flags)", unsafe.Offsetof(DevInfo{}.Flags), 24},
		{"offsetof(io_desc.start_sector)", unsafe.Offsetof(IODesc{}.StartSector), 8},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// The ioctl encodings, checked against values the kernel headers produce
// (GET_FEATURES measured in the lab: 0x80207513).
func TestIoctlEncoding(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint32
	}{
		{"UBLK_U_CMD_GET_FEATURES", UCmdGetFeatures, 0x80207513},
		{"UBLK_U_CMD_ADD_DEV", UCmdAddDev, 0xc0207504},
		{"UBLK_U_CMD_GET_DEV_INFO", UCmdGetDevInfo, 0x80207502},
		{"UBLK_U_CMD_DEL_DEV", UCmdDelDev, 0xc0207505},
		{"UBLK_U_IO_FETCH_REQ", UIOFetchReq, 0xc0107520},
		{"UBLK_U_IO_COMMIT_AND_FETCH_REQ", UIOCommitAndFetchReq, 0xc0107521},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestEncodeMatchesMemoryLayout(t *testing.T) {
	c := CtrlCmd{DevID: 0x01020304, QueueID: 0x0506, Len: 0x0708, Addr: 0x1112131415161718, Data: 0x2122232425262728, DevPathLen: 0x3132, Reserved: 0x41424344}
	var b [32]byte
	c.Encode(b[:])
	if mem := unsafe.Slice((*byte)(unsafe.Pointer(&c)), 32); !reflect.DeepEqual(b[:], mem) {
		t.Fatalf("CtrlCmd.Encode % x, memory % x", b, mem)
	}
	io := IOCmd{QID: 3, Tag: 0x1234, Result: -5, Addr: 0xdeadbeef}
	var ib [16]byte
	io.Encode(ib[:])
	if mem := unsafe.Slice((*byte)(unsafe.Pointer(&io)), 16); !reflect.DeepEqual(ib[:], mem) {
		t.Fatalf("IOCmd.Encode % x, memory % x", ib, mem)
	}
}

func TestFeatureList(t *testing.T) {
	got := FeatureList(0x1fe)
	want := []string{"URING_CMD_COMP_IN_TASK", "NEED_GET_DATA", "USER_RECOVERY", "USER_RECOVERY_REISSUE",
		"UNPRIVILEGED_DEV", "CMD_IOCTL_ENCODE", "USER_COPY", "ZONED"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("FeatureList(0x1fe) = %v", got)
	}
	if got := FeatureList(1 << 40); len(got) != 1 || got[0] != "BIT40" {
		t.Fatalf("unknown bit: %v", got)
	}
}

// The kernel reads struct ublk_auto_buf_reg from sqe->addr as
// index | flags<<16 | reserved0<<24 | reserved1<<32, and refuses non-zero
// reserved bits.
func TestAutoBufRegSQEAddr(t *testing.T) {
	for _, c := range []struct {
		a    AutoBufReg
		want uint64
	}{
		{AutoBufReg{}, 0},
		{AutoBufReg{Index: 5}, 5},
		{AutoBufReg{Index: 0xffff, Flags: AutoBufRegFallback}, 0x1ffff},
	} {
		if got := c.a.SQEAddr(); got != c.want {
			t.Errorf("%+v: sqe addr %#x, want %#x", c.a, got, c.want)
		}
		if got := c.a.SQEAddr(); got>>24 != 0 {
			t.Errorf("%+v: reserved bits set in %#x", c.a, got)
		}
	}
}

package uring

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The ABI sizes and offsets from include/uapi/linux/io_uring.h.
func TestABILayout(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(io_uring_sqe)", sqeSize, 64},
		{"sizeof(io_uring_cqe)", cqeSize, 16},
		{"sizeof(io_uring_params)", paramsSize, 120},
		{"offsetof(sqe.off) == cmd_op", unsafe.Offsetof(SQE{}.Off), 8},
		{"offsetof(sqe.user_data)", unsafe.Offsetof(SQE{}.UserData), 32},
		{"offsetof(sqe.cmd)", cmdOffset, 48},
		{"offsetof(params.sq_off)", unsafe.Offsetof(params{}.SQOff), 40},
		{"sizeof(io_uring_rsrc_register)", unsafe.Sizeof(rsrcRegister{}), 32},
		{"offsetof(rsrc_register.data)", unsafe.Offsetof(rsrcRegister{}.Data), 16},
		{"offsetof(params.cq_off)", unsafe.Offsetof(params{}.CQOff), 80},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

func newRing(t testing.TB, opts Options) *Ring {
	t.Helper()
	// A SINGLE_ISSUER ring refuses io_uring_enter from any thread but the
	// one that set it up (EEXIST), and a goroutine may change threads: stay
	// on this one until the ring is closed, as the queue threads do.
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	r, err := New(opts)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			t.Skipf("io_uring not available here: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func reapAll(t testing.TB, r *Ring, want int) map[uint64]int32 {
	t.Helper()
	got := map[uint64]int32{}
	for len(got) < want {
		if _, err := r.SubmitAndWait(1); err != nil {
			t.Fatal(err)
		}
		r.Reap(func(c *CQE) { got[c.UserData] = c.Res })
	}
	return got
}

func TestNopRoundTrip(t *testing.T) {
	r := newRing(t, Options{Entries: 8, OptionalFlags: SetupCoopTaskrun | SetupSingleIssuer})
	for i := uint64(1); i <= 8; i++ {
		sqe, err := r.NextSQE()
		if err != nil {
			t.Fatal(err)
		}
		sqe.PrepNop()
		sqe.UserData = i * 1000
	}
	if _, err := r.NextSQE(); !errors.Is(err, ErrSQFull) {
		t.Fatalf("9th SQE in an 8-entry ring: err=%v, want ErrSQFull", err)
	}
	got := reapAll(t, r, 8)
	for i := uint64(1); i <= 8; i++ {
		if res, ok := got[i*1000]; !ok || res != 0 {
			t.Errorf("user data %d: res=%d present=%v", i*1000, res, ok)
		}
	}
	// The ring is reusable after reaping: slots wrap around.
	for round := 0; round < 5; round++ {
		sqe, err := r.NextSQE()
		if err != nil {
			t.Fatal(err)
		}
		sqe.PrepNop()
		sqe.UserData = 42
		if got := reapAll(t, r, 1); got[42] != 0 || len(got) != 1 {
			t.Fatalf("round %d: %v", round, got)
		}
	}
}

func TestReadWriteFsync(t *testing.T) {
	r := newRing(t, Options{Entries: 16, Flags: SetupSQE128})
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	const block = 4096
	want := make([]byte, 4*block)
	rand.Read(want)
	for i := 0; i < 4; i++ {
		sqe, _ := r.NextSQE()
		sqe.PrepWrite(fd, want[i*block:(i+1)*block], uint64(i*block))
		sqe.UserData = uint64(i)
	}
	for ud, res := range reapAll(t, r, 4) {
		if res != block {
			t.Fatalf("write %d: res=%d", ud, res)
		}
	}
	sqe, _ := r.NextSQE()
	sqe.PrepFsync(fd, FsyncDatasync)
	sqe.UserData = 99
	if res := reapAll(t, r, 1)[99]; res != 0 {
		t.Fatalf("fsync res=%d", res)
	}
	got := make([]byte, 4*block)
	sqe, _ = r.NextSQE()
	sqe.PrepRead(fd, got, 0)
	sqe.UserData = 7
	if res := reapAll(t, r, 1)[7]; res != int32(len(got)) {
		t.Fatalf("read res=%d", res)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("read back differs from what was written")
	}
	// Punch a hole and read zeroes back.
	sqe, _ = r.NextSQE()
	sqe.PrepFallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, block, block)
	sqe.UserData = 8
	if res := reapAll(t, r, 1)[8]; res != 0 {
		t.Skipf("fallocate punch hole not supported here: res=%d", res)
	}
	if _, err := f.ReadAt(got[:block], block); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:block], make([]byte, block)) {
		t.Fatal("punched range does not read as zeroes")
	}
}

func TestURingCmdEncoding(t *testing.T) {
	r := newRing(t, Options{Entries: 4, Flags: SetupSQE128})
	if r.Flags()&SetupSQE128 == 0 {
		t.Fatal("SQE128 missing from ring flags")
	}
	sqe, _ := r.NextSQE()
	sqe.PrepURingCmd(7, 0x80207513)
	sqe.UserData = 5
	cmd := r.Cmd(sqe)
	if len(cmd) != 80 {
		t.Fatalf("command area %d bytes, want 80", len(cmd))
	}
	for i := range cmd {
		cmd[i] = byte(i + 1)
	}
	raw := unsafe.Slice((*byte)(unsafe.Pointer(sqe)), 128)
	if raw[0] != OpURingCmd || raw[8] != 0x13 || raw[9] != 0x75 || raw[10] != 0x20 || raw[11] != 0x80 {
		t.Fatalf("opcode/cmd_op bytes wrong: % x", raw[:16])
	}
	if raw[48] != 1 || raw[127] != 80 {
		t.Fatalf("command area not at bytes 48..127: % x", raw[48:])
	}
	// The entry is well formed enough for the kernel to reject it by the
	// fd's nature, not by its layout: a URING_CMD on a pipe is unsupported.
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	sqe.Fd = int32(p[0])
	res := reapAll(t, r, 1)[5]
	if res >= 0 {
		t.Fatalf("URING_CMD on a pipe succeeded (res=%d)", res)
	}
	t.Logf("URING_CMD on a pipe: %v (expected failure)", syscall.Errno(-res))
}

func TestPollEventfd(t *testing.T) {
	r := newRing(t, Options{Entries: 4})
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	sqe, _ := r.NextSQE()
	sqe.PrepPollAdd(efd, unix.POLLIN)
	sqe.UserData = 3
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	if r.CQReady() != 0 {
		t.Fatal("poll completed before the eventfd was written")
	}
	unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	if res := reapAll(t, r, 1)[3]; res&unix.POLLIN == 0 {
		t.Fatalf("poll res=%#x, want POLLIN", res)
	}
}

func BenchmarkNopSubmitReap(b *testing.B) {
	r := newRing(b, Options{Entries: 64, Flags: SetupSQE128, OptionalFlags: SetupCoopTaskrun | SetupSingleIssuer})
	var seen int
	count := func(*CQE) { seen++ }
	b.ReportAllocs()
	for i := 0; i < b.N; i += 32 {
		for j := 0; j < 32; j++ {
			sqe, _ := r.NextSQE()
			sqe.PrepNop()
		}
		r.SubmitAndWait(32)
		r.Reap(count)
	}
}

// READ_FIXED and WRITE_FIXED through a registered buffer on a registered
// file: the bytes written from one part of the buffer read back equal into
// another part.
func TestFixedBuffersAndFiles(t *testing.T) {
	// SINGLE_ISSUER and DEFER_TASKRUN want every enter from one thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := newRing(t, Options{Entries: 8, OptionalFlags: SetupSingleIssuer | SetupDeferTaskrun})
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, 4*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	if err := r.RegisterBuffers([][]byte{buf}); err != nil {
		t.Fatal(err)
	}
	if err := r.RegisterFiles([]int32{int32(f.Fd())}); err != nil {
		t.Fatal(err)
	}
	src, dst := buf[4096:3*4096], buf[3*4096:]
	rand.Read(src)
	sqe, _ := r.NextSQE()
	sqe.PrepWriteFixed(0, src, 512, 0)
	sqe.Flags |= SQEFixedFile
	sqe.UserData = 1
	if res := reapAll(t, r, 1)[1]; res != int32(len(src)) {
		t.Fatalf("write fixed: res=%d", res)
	}
	sqe, _ = r.NextSQE()
	sqe.PrepReadFixed(0, dst, 512+4096, 0)
	sqe.Flags |= SQEFixedFile
	sqe.UserData = 2
	if res := reapAll(t, r, 1)[2]; res != int32(len(dst)) {
		t.Fatalf("read fixed: res=%d", res)
	}
	if !bytes.Equal(dst, src[4096:]) {
		t.Fatal("read back through the registered buffer differs from what was written")
	}
	// A buffer outside the registered region is refused, not silently used.
	other := make([]byte, 4096)
	sqe, _ = r.NextSQE()
	sqe.PrepReadFixed(0, other, 0, 0)
	sqe.Flags |= SQEFixedFile
	sqe.UserData = 3
	if res := reapAll(t, r, 1)[3]; res != -int32(unix.EFAULT) {
		t.Fatalf("read fixed outside the registered buffer: res=%d, want -EFAULT", res)
	}
}

// A sparse table takes no memory of ours: its slots are empty until a
// driver fills one (ublk's automatic buffer registration, in the lab). An
// I/O on an empty slot is refused, never run on some other memory.
func TestSparseBufferSlotsStartEmpty(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := newRing(t, Options{Entries: 8, OptionalFlags: SetupSingleIssuer | SetupDeferTaskrun})
	if err := r.RegisterSparseBuffers(0); err == nil {
		t.Fatal("a table of 0 slots was accepted")
	}
	if err := r.RegisterSparseBuffers(16); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 8192)); err != nil {
		t.Fatal(err)
	}
	sqe, _ := r.NextSQE()
	sqe.PrepReadFixedAt(int(f.Fd()), 3, 0, 4096, 0)
	sqe.UserData = 1
	if res := reapAll(t, r, 1)[1]; res != -int32(unix.EFAULT) {
		t.Fatalf("read into an empty slot: res=%d, want -EFAULT", res)
	}
	sqe, _ = r.NextSQE()
	sqe.PrepWriteFixedAt(int(f.Fd()), 16, 0, 4096, 0)
	sqe.UserData = 2
	if res := reapAll(t, r, 1)[2]; res != -int32(unix.EFAULT) {
		t.Fatalf("write from a slot past the table: res=%d, want -EFAULT", res)
	}
	// The table is taken: normal buffers cannot be registered on top.
	if err := r.RegisterBuffers([][]byte{make([]byte, 4096)}); err == nil {
		t.Fatal("a second buffer table was accepted")
	}
}

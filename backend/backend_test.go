package backend

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// exercise writes random data across chunk boundaries, reads it back,
// discards a range and checks it reads as zeroes.
func exercise(t *testing.T, b interface {
	Backend
	Discarder
}) {
	t.Helper()
	size := b.Size()
	data := make([]byte, 3<<20)
	rand.Read(data)
	off := int64(memChunk - 4096) // straddles chunk 0 and 1
	if _, err := b.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if _, err := b.ReadAt(got, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	hole := make([]byte, 64<<10)
	if _, err := b.ReadAt(hole, size-int64(len(hole))); err != nil || !bytes.Equal(hole, make([]byte, len(hole))) {
		t.Fatalf("never-written range: err=%v, not all zero", err)
	}
	// Discard 1 MiB + 8 KiB in the middle of the written data.
	dOff, dLen := off+8192, int64(memChunk+8192)
	if err := b.Discard(dOff, dLen); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadAt(got, off); err != nil {
		t.Fatal(err)
	}
	want := append([]byte(nil), data...)
	clear(want[8192 : 8192+dLen])
	if !bytes.Equal(got, want) {
		t.Fatal("after discard: data outside the range changed, or the range is not zero")
	}
	if _, err := b.WriteAt(data[:4096], size-2048); !errors.Is(err, syscall.EINVAL) && err == nil {
		t.Fatalf("write past the end: err=%v", err)
	}
}

func TestMem(t *testing.T) {
	exercise(t, NewMem(8<<20))
}

func TestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.img")
	b, err := OpenFile(FileOptions{Path: path, Size: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st, _ := os.Stat(path)
	if st.Size() != 8<<20 {
		t.Fatalf("created file is %d bytes", st.Size())
	}
	exercise(t, b)
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteZeroes(0, 4096); err != nil {
		t.Fatal(err)
	}
	blk := make([]byte, 4096)
	b.ReadAt(blk, 0)
	if !bytes.Equal(blk, make([]byte, 4096)) {
		t.Fatal("WriteZeroes left data")
	}
}

func TestFileSizeRules(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenFile(FileOptions{Path: filepath.Join(dir, "missing")}); err == nil || !strings.Contains(err.Error(), "--size") {
		t.Fatalf("missing file without size: %v", err)
	}
	path := filepath.Join(dir, "f")
	os.WriteFile(path, make([]byte, 1<<20), 0o600)
	if _, err := OpenFile(FileOptions{Path: path, Size: 4096}); err == nil {
		t.Fatal("a --size smaller than the file was accepted")
	}
	b, err := OpenFile(FileOptions{Path: path, Size: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if b.Size() != 2<<20 {
		t.Fatalf("grown size %d", b.Size())
	}
	b.Close()
	b, err = OpenFile(FileOptions{Path: path})
	if err != nil || b.Size() != 2<<20 {
		t.Fatalf("reopen: size %d err %v", b.Size(), err)
	}
	b.Close()
	if _, err := OpenFile(FileOptions{Path: dir}); err == nil {
		t.Fatal("a directory was accepted as backing file")
	}
}

func TestFailRange(t *testing.T) {
	f := &FailRange{Backend: NewMem(4 << 20), Off: 1 << 20, Len: 65536}
	buf := make([]byte, 4096)
	if _, err := f.ReadAt(buf, 1<<20+4096); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read inside the range: %v", err)
	}
	if _, err := f.WriteAt(buf, 1<<20-2048); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write overlapping the range: %v", err)
	}
	if _, err := f.ReadAt(buf, 1<<20+65536); err != nil {
		t.Fatalf("read just after the range: %v", err)
	}
}

func TestResultOf(t *testing.T) {
	r := &Request{Op: OpRead, Length: 8192}
	if got := ResultOf(r, nil); got != 8192 {
		t.Fatalf("success: %d", got)
	}
	if got := ResultOf(r, errors.New("x")); got != -int32(syscall.EIO) {
		t.Fatalf("plain error: %d", got)
	}
	if got := ResultOf(r, &os.PathError{Err: syscall.ENOSPC}); got != -int32(syscall.ENOSPC) {
		t.Fatalf("wrapped errno: %d", got)
	}
	if got := ResultOf(&Request{Op: OpFlush}, nil); got != 0 {
		t.Fatalf("flush: %d", got)
	}
}

// TestFileOnTmpfsServesInline: a file on tmpfs is served by pread/pwrite
// on the queue thread (io_uring would hand every request to an io-wq
// worker), a file on a disk file system goes on the ring.
func TestFileOnTmpfsServesInline(t *testing.T) {
	cases := []struct {
		dir    string
		inline bool
	}{{"/dev/shm", true}, {t.TempDir(), false}}
	for _, c := range cases {
		var fs unix.Statfs_t
		if err := unix.Statfs(c.dir, &fs); err != nil {
			t.Skipf("%s: %v", c.dir, err)
		}
		if (fs.Type == unix.TMPFS_MAGIC) != c.inline {
			t.Logf("%s is not the file system this case wants (type %#x); skipped", c.dir, fs.Type)
			continue
		}
		dir, err := os.MkdirTemp(c.dir, "backend-test")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		b, err := OpenFile(FileOptions{Path: filepath.Join(dir, "disk.img"), Size: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if _, ring := b.RingFD(); ring == c.inline || b.ServesInline() != c.inline {
			t.Fatalf("%s: RingFD ok=%v ServesInline=%v, want ring=%v inline=%v", c.dir, ring, b.ServesInline(), !c.inline, c.inline)
		}
		exercise(t, b)
	}
}

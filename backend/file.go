package backend

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// File stores the device in a regular file or on a block device.
//
// It opens with O_DIRECT where the file system allows, as ublksrv's loop
// target and the kernel's loop device with direct I/O do: the page cache
// of the host is not filled twice and writes reach the backing store. A
// FLUSH still ends in fdatasync, for the backing device's own cache and
// for the metadata of a sparse file.
type File struct {
	f       *os.File
	fd      int
	size    int64
	isBlock bool
	direct  bool
	// inMemory: the file lives in RAM (tmpfs, ramfs). io_uring cannot
	// read or write it without blocking, so every ring request would be
	// handed to an io-wq worker thread and back; a plain pread/pwrite
	// on the queue thread is a memory copy and costs far less.
	inMemory bool
}

// FileOptions says how to open a file backend.
type FileOptions struct {
	Path string
	// Size, when not 0, is the device size: a missing file is created
	// sparse at this size and a smaller existing file is grown to it. When
	// 0 the file must exist and its size is used.
	Size int64
	// Buffered turns off O_DIRECT.
	Buffered bool
}

// OpenFile opens (or creates) the backing file.
func OpenFile(opts FileOptions) (*File, error) {
	if opts.Size < 0 {
		return nil, fmt.Errorf("size %d is negative", opts.Size)
	}
	st, err := os.Stat(opts.Path)
	switch {
	case errors.Is(err, os.ErrNotExist) && opts.Size == 0:
		return nil, fmt.Errorf("%s does not exist; give --size to create it", opts.Path)
	case errors.Is(err, os.ErrNotExist):
		f, err := os.OpenFile(opts.Path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", opts.Path, err)
		}
		f.Close()
	case err != nil:
		return nil, fmt.Errorf("stat %s: %w", opts.Path, err)
	case !st.Mode().IsRegular() && st.Mode()&os.ModeDevice == 0:
		return nil, fmt.Errorf("%s is neither a regular file nor a block device", opts.Path)
	}
	flags := os.O_RDWR
	if !opts.Buffered {
		flags |= unix.O_DIRECT
	}
	f, err := os.OpenFile(opts.Path, flags, 0)
	if err != nil && !opts.Buffered && errors.Is(err, unix.EINVAL) {
		f, err = os.OpenFile(opts.Path, os.O_RDWR, 0) // file system without O_DIRECT
		flags &^= unix.O_DIRECT
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", opts.Path, err)
	}
	b := &File{f: f, fd: int(f.Fd()), direct: flags&unix.O_DIRECT != 0}
	var fs unix.Statfs_t
	if unix.Fstatfs(b.fd, &fs) == nil {
		b.inMemory = fs.Type == unix.TMPFS_MAGIC || fs.Type == unix.RAMFS_MAGIC
	}
	if err := b.sizeUp(opts.Size); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", opts.Path, err)
	}
	return b, nil
}

func (b *File) sizeUp(want int64) error {
	st, err := b.f.Stat()
	if err != nil {
		return err
	}
	if st.Mode()&os.ModeDevice != 0 {
		b.isBlock = true
		var sz uint64
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(b.fd), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&sz))); e != 0 {
			return fmt.Errorf("read block device size: %w", e)
		}
		b.size = int64(sz)
		if want > b.size {
			return fmt.Errorf("block device has %d bytes, less than --size %d", b.size, want)
		}
		if want > 0 {
			b.size = want
		}
		return nil
	}
	b.size = st.Size()
	switch {
	case want == 0:
	case want > b.size:
		if err := b.f.Truncate(want); err != nil {
			return fmt.Errorf("grow to %d bytes: %w", want, err)
		}
		b.size = want
	case want < b.size:
		return fmt.Errorf("file has %d bytes, more than --size %d: omit --size to use the whole file", b.size, want)
	}
	return nil
}

func (b *File) ReadAt(p []byte, off int64) (int, error) {
	if err := checkRange(off, int64(len(p)), b.size); err != nil {
		return 0, err
	}
	return b.f.ReadAt(p, off)
}

// WriteAt never writes past the device's end: that would grow the file.
func (b *File) WriteAt(p []byte, off int64) (int, error) {
	if err := checkRange(off, int64(len(p)), b.size); err != nil {
		return 0, err
	}
	return b.f.WriteAt(p, off)
}

func (b *File) Size() int64  { return b.size }
func (b *File) Close() error { return b.f.Close() }

// RingFD implements RingFile: reads, writes and fdatasync go on the
// queue's io_uring, except for a file in memory (ServesInline).
func (b *File) RingFD() (int, bool) { return b.fd, !b.inMemory }

// ServesInline implements InlineServer: a file on tmpfs or ramfs is read
// and written on the queue thread itself.
func (b *File) ServesInline() bool { return b.inMemory }

// Direct says whether the file is open with O_DIRECT.
func (b *File) Direct() bool { return b.direct }

// Flush makes every completed write durable.
func (b *File) Flush() error {
	if err := unix.Fdatasync(b.fd); err != nil {
		return fmt.Errorf("fdatasync: %w", err)
	}
	return nil
}

// Discard punches a hole in a file, or discards blocks of a device.
func (b *File) Discard(off, length int64) error {
	if err := checkRange(off, length, b.size); err != nil {
		return err
	}
	if b.isBlock {
		return b.blockRange(unix.BLKDISCARD, off, length)
	}
	return unix.Fallocate(b.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
}

// WriteZeroes zeroes a range without sending zeroes: ZERO_RANGE on a
// file (a hole where the file system cannot), BLKZEROOUT on a device.
func (b *File) WriteZeroes(off, length int64) error {
	if err := checkRange(off, length, b.size); err != nil {
		return err
	}
	if b.isBlock {
		return b.blockRange(unix.BLKZEROOUT, off, length)
	}
	err := unix.Fallocate(b.fd, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, length)
	if errors.Is(err, unix.EOPNOTSUPP) {
		err = unix.Fallocate(b.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
	}
	return err
}

func (b *File) blockRange(req uint, off, length int64) error {
	r := [2]uint64{uint64(off), uint64(length)}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(b.fd), uintptr(req), uintptr(unsafe.Pointer(&r))); e != 0 {
		return e
	}
	return nil
}

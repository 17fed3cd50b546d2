package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/sheep/proto"
)

// lockOf is the stripe lock of an object. Fibonacci hashing spreads
// consecutive indexes of one VDI over all stripes.
func (s *Store) lockOf(oid proto.ObjectID) *sync.RWMutex {
	return &s.locks[(uint64(oid)*0x9e3779b97f4a7c15)>>56%stripes]
}

func (s *Store) checkRange(oid proto.ObjectID, off int64, n int) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if !oid.Valid() || off < 0 || n < 0 || off > int64(s.objectSize) || int64(n) > int64(s.objectSize)-off {
		return fmt.Errorf("object %v: %d bytes at %d: %w of %d bytes", oid, n, off, ErrRange, s.objectSize)
	}
	return nil
}

func (s *Store) exists(oid proto.ObjectID) bool {
	s.indexMu.RLock()
	defer s.indexMu.RUnlock()
	return s.index.Has(oid)
}

// Exists reports whether the object is stored.
func (s *Store) Exists(oid proto.ObjectID) bool { return s.exists(oid) }

func (s *Store) addToIndex(oid proto.ObjectID) {
	s.indexMu.Lock()
	s.index.ReplaceOrInsert(oid)
	s.indexMu.Unlock()
}

// ReadAt fills p with the object's bytes at off. Ranges never written, and
// objects that do not exist, read as zeros.
func (s *Store) ReadAt(oid proto.ObjectID, p []byte, off int64) error {
	return s.readAt(oid, p, off, false)
}

// ErrWouldWait is what ReadAtNoWait returns when the bytes are not all in
// the page cache: the read would wait for the disk.
var ErrWouldWait = errors.New("read would wait for the disk")

// ReadAtNoWait is ReadAt for a caller that must not wait for the disk (a
// connection's reader): it returns ErrWouldWait, having filled p only in
// part, when the bytes are not in the page cache, or when the file system
// cannot tell.
func (s *Store) ReadAtNoWait(oid proto.ObjectID, p []byte, off int64) error {
	return s.readAt(oid, p, off, true)
}

func (s *Store) readAt(oid proto.ObjectID, p []byte, off int64, nowait bool) error {
	if err := s.checkRange(oid, off, len(p)); err != nil {
		return err
	}
	l := s.lockOf(oid)
	l.RLock()
	defer l.RUnlock()
	if !s.exists(oid) {
		clear(p)
		return nil
	}
	h, err := s.handles.acquire(oid, false)
	if errors.Is(err, unix.ENOENT) {
		clear(p)
		return nil
	}
	if err != nil {
		return err
	}
	defer s.handles.release(h)
	read := preadFull
	if nowait {
		read = preadNoWait
	}
	if err := read(h.fd, p, off); err != nil {
		if err == ErrWouldWait {
			return err
		}
		return fmt.Errorf("read object %v at %d: %w", oid, off, err)
	}
	return nil
}

// preadFull fills p from fd at off. Bytes past the file's end (a file
// shorter than the object, say from an older writer) read as zeros, like
// any hole.
func preadFull(fd int, p []byte, off int64) error { return preadLoop(fd, p, off, unix.Pread) }

// preadNoWait is preadFull with RWF_NOWAIT: EAGAIN (not cached) and
// EOPNOTSUPP (a file system that cannot tell) become ErrWouldWait.
func preadNoWait(fd int, p []byte, off int64) error {
	err := preadLoop(fd, p, off, preadv2NoWait)
	if err == unix.EAGAIN || err == unix.EOPNOTSUPP {
		return ErrWouldWait
	}
	return err
}

// preadv2NoWait is one preadv2(RWF_NOWAIT) into p, with its one iovec on
// the stack (unix.Preadv2 allocates the iovec array). It never waits for
// the disk, so it is a raw system call, which does not wake the runtime's
// sysmon thread as syscall.Syscall does when the process was idle (see
// rawRead in package rpc).
func preadv2NoWait(fd int, p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	iov := unix.Iovec{Base: &p[0]}
	iov.SetLen(len(p))
	n, _, e := unix.RawSyscall6(unix.SYS_PREADV2, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1,
		uintptr(off), uintptr(off>>32), unix.RWF_NOWAIT)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func preadLoop(fd int, p []byte, off int64, pread func(int, []byte, int64) (int, error)) error {
	for done := 0; done < len(p); {
		n, err := pread(fd, p[done:], off+int64(done))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case n == 0:
			clear(p[done:])
			return nil
		}
		done += n
	}
	return nil
}

// WriteAt writes p into the object at off, creating the object if it does
// not exist. With fua the data (and a new object's directory entry) is
// durable when WriteAt returns; otherwise at the next Flush.
func (s *Store) WriteAt(oid proto.ObjectID, p []byte, off int64, fua bool) error {
	if err := s.checkRange(oid, off, len(p)); err != nil {
		return err
	}
	l := s.lockOf(oid)
	l.RLock()
	defer l.RUnlock()
	// An object not indexed before this write may be new: created now,
	// or by a concurrent writer that has not indexed it yet. Either way
	// its directory entry may not be durable, and it must be indexed
	// before this write returns, or a read after it would see zeros.
	known := s.exists(oid)
	h, err := s.handles.acquire(oid, true)
	if err != nil {
		return err
	}
	defer s.handles.release(h)
	if !known {
		s.addToIndex(oid)
	}
	if err := pwriteFull(h.fd, p, off); err != nil {
		return fmt.Errorf("write object %v at %d: %w", oid, off, err)
	}
	return s.settle(oid, h.fd, !known, fua)
}

// settle makes a modification durable now (fua) or marks it for the next Flush.
func (s *Store) settle(oid proto.ObjectID, fd int, entryChanged, fua bool) error {
	if !fua {
		s.dirtyMu.Lock()
		s.dirty[oid] = struct{}{}
		s.dirDirty = s.dirDirty || entryChanged
		s.dirtyMu.Unlock()
		return nil
	}
	if err := s.fdatasync(fd); err != nil {
		return fmt.Errorf("sync object %v: %w", oid, err)
	}
	if entryChanged {
		return s.syncObjectsDir()
	}
	return nil
}

func pwriteFull(fd int, p []byte, off int64) error {
	for done := 0; done < len(p); {
		n, err := unix.Pwrite(fd, p[done:], off+int64(done))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		done += n
	}
	return nil
}

// CreateAndWrite replaces the object, if any, with a new one that holds p
// at off and zeros elsewhere. The new object is built in tmp/ and renamed
// into place, so a reader sees the old object or the new one, never a mix.
func (s *Store) CreateAndWrite(oid proto.ObjectID, p []byte, off int64, fua bool) error {
	if err := s.checkRange(oid, off, len(p)); err != nil {
		return err
	}
	f, err := os.CreateTemp(s.tmpDir, oid.String()+".*")
	if err != nil {
		return fmt.Errorf("create object %v: %w", oid, err)
	}
	defer f.Close()
	tmp := f.Name()
	if err := s.fillNew(f, p, off, fua); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("create object %v: %w", oid, err)
	}
	l := s.lockOf(oid)
	l.Lock()
	defer l.Unlock()
	if err := os.Rename(tmp, s.objectPath(oid)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("create object %v: %w", oid, err)
	}
	s.handles.drop(oid) // its fd is the replaced file
	s.addToIndex(oid)
	if fua {
		return s.syncObjectsDir()
	}
	s.dirtyMu.Lock()
	s.dirty[oid] = struct{}{}
	s.dirDirty = true
	s.dirtyMu.Unlock()
	return nil
}

func (s *Store) fillNew(f *os.File, p []byte, off int64, fua bool) error {
	if err := f.Truncate(int64(s.objectSize)); err != nil {
		return err
	}
	if _, err := f.WriteAt(p, off); err != nil {
		return err
	}
	if fua {
		s.syncs.Add(1)
		return f.Sync()
	}
	return nil
}

// Discard punches a hole over [off, off+length): it reads as zeros and
// frees its disk space. Discarding in a missing object does nothing.
func (s *Store) Discard(oid proto.ObjectID, off, length int64, fua bool) error {
	if length > int64(s.objectSize) {
		return fmt.Errorf("object %v: discard of %d bytes: %w of %d bytes", oid, length, ErrRange, s.objectSize)
	}
	if err := s.checkRange(oid, off, int(length)); err != nil {
		return err
	}
	l := s.lockOf(oid)
	l.RLock()
	defer l.RUnlock()
	if !s.exists(oid) {
		return nil
	}
	h, err := s.handles.acquire(oid, false)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer s.handles.release(h)
	if err := punchHole(h.fd, off, length); err != nil {
		return fmt.Errorf("discard object %v %d+%d: %w", oid, off, length, err)
	}
	return s.settle(oid, h.fd, false, fua)
}

// zeroChunk is what punchHole writes on a file system without hole punching.
var zeroChunk [64 << 10]byte

func punchHole(fd int, off, length int64) error {
	for {
		err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
		if err == unix.EINTR {
			continue
		}
		if err != unix.EOPNOTSUPP {
			return err
		}
		break
	}
	for length > 0 {
		n := min(length, int64(len(zeroChunk)))
		if err := pwriteFull(fd, zeroChunk[:n], off); err != nil {
			return err
		}
		off += n
		length -= n
	}
	return nil
}

// Remove deletes the object. It wraps fs.ErrNotExist if there is none.
func (s *Store) Remove(oid proto.ObjectID) error {
	if s.closed.Load() {
		return ErrClosed
	}
	l := s.lockOf(oid)
	l.Lock()
	defer l.Unlock()
	if !s.exists(oid) {
		return fmt.Errorf("remove object %v: %w", oid, fs.ErrNotExist)
	}
	s.handles.drop(oid)
	if err := unix.Unlink(s.objectPath(oid)); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove object %v: %w", oid, err)
	}
	s.indexMu.Lock()
	s.index.Delete(oid)
	s.indexMu.Unlock()
	s.dirtyMu.Lock()
	delete(s.dirty, oid)
	s.dirDirty = true
	s.dirtyMu.Unlock()
	return nil
}

// Range calls fn for each stored object id in [from, to), ascending, until
// fn returns false (to 0: no upper bound). fn runs under the index's read
// lock: it must not call back into the store.
func (s *Store) Range(from, to proto.ObjectID, fn func(proto.ObjectID) bool) {
	s.indexMu.RLock()
	defer s.indexMu.RUnlock()
	if to == 0 {
		s.index.AscendGreaterOrEqual(from, fn)
	} else {
		s.index.AscendRange(from, to, fn)
	}
}

// List appends to dst the ids of stored objects in [from, to), ascending,
// at most max of them (to 0: no upper bound). more says ids in the range
// were left out; next is where to continue.
func (s *Store) List(dst []proto.ObjectID, from, to proto.ObjectID, max int) (ids []proto.ObjectID, next proto.ObjectID, more bool) {
	n := 0
	s.Range(from, to, func(oid proto.ObjectID) bool {
		if n == max {
			more, next = true, oid
			return false
		}
		dst = append(dst, oid)
		n++
		return true
	})
	return dst, next, more
}

// DiskUsage is the disk space the current objects take, in bytes
// (allocated blocks: holes cost nothing); stale copies are not counted
// (StaleDiskUsage). It stats every object: call it rarely.
func (s *Store) DiskUsage() (uint64, error) {
	n, err := dirUsage(s.objDir)
	if err != nil {
		return 0, fmt.Errorf("disk usage: %w", err)
	}
	return n, nil
}

// dirUsage sums the allocated blocks of the files in dir.
func dirUsage(dir string) (uint64, error) {
	d, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", dir, err)
	}
	var total uint64
	var st unix.Stat_t
	for _, n := range names {
		if err := unix.Fstatat(int(d.Fd()), n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue // removed meanwhile
		}
		total += uint64(st.Blocks) * 512
	}
	return total, nil
}

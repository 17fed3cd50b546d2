package store

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/sheep/proto"
)

// ErrExists is returned by Install when the object is already in objects/:
// a write pulled or created it first, and that copy is the current one.
var ErrExists = errors.New("object already exists")

// holeBlock is the granularity at which Install leaves zeros as holes.
const holeBlock = 4096

// Install makes objects/oid hold data (the whole object: exactly the object
// size), only if the object does not exist yet; otherwise it returns an
// error wrapping ErrExists and changes nothing. The copy is built in tmp/
// (zero blocks left as holes), synced, renamed into place without
// replacing anything, and the directory synced before Install returns: a
// crash leaves the object absent or whole, never half-installed.
func (s *Store) Install(oid proto.ObjectID, data []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if !oid.Valid() || len(data) != int(s.objectSize) {
		return fmt.Errorf("install object %v: %d bytes: %w of %d bytes (want all of it)", oid, len(data), ErrRange, s.objectSize)
	}
	if s.exists(oid) { // the common race lost: skip the copy
		return fmt.Errorf("install object %v: %w", oid, ErrExists)
	}
	f, err := os.CreateTemp(s.tmpDir, oid.String()+".install.*")
	if err != nil {
		return fmt.Errorf("install object %v: %w", oid, err)
	}
	tmp := f.Name()
	err = s.fillSparse(f, data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("install object %v: %w", oid, err)
	}

	l := s.lockOf(oid)
	l.Lock()
	defer l.Unlock()
	if s.exists(oid) {
		os.Remove(tmp)
		return fmt.Errorf("install object %v: %w", oid, ErrExists)
	}
	if err := renameNoReplace(tmp, s.objectPath(oid)); err != nil {
		os.Remove(tmp)
		if errors.Is(err, unix.EEXIST) {
			// A file the index does not know (it was not an object file
			// at open): refuse rather than guess which one is right.
			return fmt.Errorf("install object %v: %s exists but is not indexed: %w", oid, s.objectPath(oid), ErrExists)
		}
		return fmt.Errorf("install object %v: %w", oid, err)
	}
	s.handles.drop(oid) // none should be cached for an absent object; be sure
	s.addToIndex(oid)
	// Synced under the lock: a FUA write after Install returns counts on
	// the entry being durable (it does not sync a known object's entry).
	if err := s.syncObjectsDir(); err != nil {
		return fmt.Errorf("install object %v: %w", oid, err)
	}
	return nil
}

// fillSparse writes data into the new file f, leaving all-zero blocks as
// holes, and syncs it.
func (s *Store) fillSparse(f *os.File, data []byte) error {
	if err := f.Truncate(int64(len(data))); err != nil {
		return err
	}
	fd := int(f.Fd())
	for off := 0; off < len(data); {
		// A run of non-zero blocks is written with one pwrite.
		for off < len(data) && isZero(data[off:min(off+holeBlock, len(data))]) {
			off += holeBlock
		}
		end := off
		for end < len(data) && !isZero(data[end:min(end+holeBlock, len(data))]) {
			end += holeBlock
		}
		end = min(end, len(data))
		if end > off {
			if err := pwriteFull(fd, data[off:end], int64(off)); err != nil {
				return err
			}
		}
		off = end
	}
	return s.fdatasync(fd)
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// renameNoReplace renames from to to, failing with EEXIST if to exists.
// File systems without RENAME_NOREPLACE get a plain rename; the caller
// holds the object's lock and has checked the index, so nothing races it.
func renameNoReplace(from, to string) error {
	for {
		err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
		switch err {
		case unix.EINTR:
			continue
		case unix.EINVAL, unix.ENOSYS:
			return os.Rename(from, to)
		case nil:
			return nil
		default:
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
		}
	}
}

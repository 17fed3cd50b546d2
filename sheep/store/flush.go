package store

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/sheep/proto"
)

// Flush makes every write acknowledged before it was called durable: it
// fdatasyncs each object written since the last Flush, then the objects
// directory if objects were created, replaced or removed.
//
// A write marks its object dirty before it returns, so a write that
// returned before Flush started is in the set Flush takes; one that lands
// during Flush goes to the next set. Flushes run one at a time, so a
// second Flush also waits for the objects the first one is syncing.
func (s *Store) Flush() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.flush()
}

func (s *Store) flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()

	s.dirtyMu.Lock()
	set := s.dirty
	s.dirty, s.spare = s.spare, nil
	dirDirty := s.dirDirty
	s.dirDirty = false
	s.dirtyMu.Unlock()

	var errs []error
	for oid := range set {
		if err := s.syncObject(oid); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(set, oid)
	}
	if dirDirty {
		if err := s.syncObjectsDir(); err != nil {
			errs = append(errs, err)
		}
	}

	// What failed stays dirty, so the next Flush tries it again.
	s.dirtyMu.Lock()
	for oid := range set {
		s.dirty[oid] = struct{}{}
	}
	clear(set)
	s.spare = set
	if len(errs) > 0 && dirDirty {
		s.dirDirty = true
	}
	s.dirtyMu.Unlock()
	return errors.Join(errs...)
}

func (s *Store) syncObject(oid proto.ObjectID) error {
	l := s.lockOf(oid)
	l.RLock()
	defer l.RUnlock()
	h, err := s.handles.acquire(oid, false)
	if errors.Is(err, unix.ENOENT) {
		return nil // removed since it was written: nothing to make durable
	}
	if err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	defer s.handles.release(h)
	if err := s.fdatasync(h.fd); err != nil {
		return fmt.Errorf("flush object %v: %w", oid, err)
	}
	return nil
}

func (s *Store) fdatasync(fd int) error {
	s.syncs.Add(1)
	for {
		if err := s.syncFile(fd); err != unix.EINTR {
			return err
		}
	}
}

func (s *Store) syncObjectsDir() error {
	s.syncs.Add(1)
	return syncDir(s.objDir)
}

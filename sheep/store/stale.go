package store

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/sheep/proto"
)

// staleKey names one stale copy: stale/<epoch>/<oid>. The stale index is
// ordered by object, then epoch, so an object's copies are adjacent and
// its newest one is found by one descent.
type staleKey struct {
	oid   proto.ObjectID
	epoch uint64
}

func staleLess(a, b staleKey) bool {
	if a.oid != b.oid {
		return a.oid < b.oid
	}
	return a.epoch < b.epoch
}

// staleEpochPath is the directory of the copies superseded at epoch.
func (s *Store) staleEpochPath(epoch uint64) string {
	return s.staleDir + "/" + strconv.FormatUint(epoch, 10)
}

func (s *Store) stalePath(oid proto.ObjectID, epoch uint64) string {
	return s.staleEpochPath(epoch) + "/" + oid.String()
}

// parseEpochName accepts only the canonical decimal form, so one epoch
// has one directory name.
func parseEpochName(name string) (uint64, bool) {
	e, err := strconv.ParseUint(name, 10, 64)
	return e, err == nil && strconv.FormatUint(e, 10) == name
}

// loadStale indexes stale/ at open. Whatever is not an epoch directory or
// an object file in one is left alone, with a warning.
func (s *Store) loadStale() error {
	ents, err := os.ReadDir(s.staleDir)
	if err != nil {
		return fmt.Errorf("open store: list %s: %w", s.staleDir, err)
	}
	for _, e := range ents {
		epoch, ok := parseEpochName(e.Name())
		if !ok || !e.IsDir() {
			s.log.Warn().Str("file", s.staleDir+"/"+e.Name()).Msg("ignoring an entry of stale/ that is not an epoch directory")
			continue
		}
		dir := s.staleEpochPath(epoch)
		objs, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("open store: list %s: %w", dir, err)
		}
		s.staleDirs[epoch] = true
		for _, o := range objs {
			oid, ok := parseObjectName(o.Name())
			if !ok || !o.Type().IsRegular() {
				s.log.Warn().Str("file", dir+"/"+o.Name()).Msg("ignoring a file that is not a stale object copy")
				continue
			}
			s.stale.ReplaceOrInsert(staleKey{oid, epoch})
			s.staleCount[epoch]++
		}
	}
	return nil
}

// ensureStaleDir makes stale/<epoch> exist durably before anything is
// renamed into it: a rename into a directory whose own entry is lost in a
// crash would lose the object. The caller holds staleMu (read).
func (s *Store) ensureStaleDir(epoch uint64) error {
	s.staleDirMu.Lock()
	defer s.staleDirMu.Unlock()
	if s.staleDirs[epoch] {
		return nil
	}
	dir := s.staleEpochPath(epoch)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	s.syncs.Add(1)
	if err := syncDir(s.staleDir); err != nil {
		return err
	}
	s.staleDirs[epoch] = true
	return nil
}

// Supersede moves the object from objects/ to stale/<epoch>/: its copy
// was valid through epoch and no longer is current on this node. The move
// is a rename made durable before Supersede returns (the object's
// unflushed data, the new entry, then the removal), so a crash leaves it
// in one place or the other, never neither. An existing stale copy of the
// same epoch is replaced. I/O on the object is excluded while it moves: a
// write that returned before moves with it; one that comes after finds no
// object (and creates a new one). Superseding an object that is not in
// objects/ does nothing.
func (s *Store) Supersede(oid proto.ObjectID, epoch uint64) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if !oid.Valid() {
		return fmt.Errorf("supersede object %v: invalid id", oid)
	}
	// flushMu first: with no Flush running, the dirty set names every
	// object whose acknowledged writes are not yet durable.
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.staleMu.RLock()
	defer s.staleMu.RUnlock()
	if err := s.ensureStaleDir(epoch); err != nil {
		return fmt.Errorf("supersede object %v: %w", oid, err)
	}
	moved, err := s.moveToStale(oid, epoch)
	if err != nil || !moved {
		return err
	}
	if err := s.syncStaleMove(epoch); err != nil {
		return fmt.Errorf("supersede object %v: %w", oid, err)
	}
	return nil
}

// SupersedeAll moves every object in objects/ to stale/<epoch>/, as
// Supersede does, syncing the directories once at the end. Objects created
// while it runs may stay in objects/: the caller stops I/O first.
func (s *Store) SupersedeAll(epoch uint64) error {
	_, err := s.SupersedeWhere(epoch, func(proto.ObjectID) bool { return true })
	return err
}

// SupersedeWhere moves to stale/<epoch>/, as Supersede does, each object
// in objects/ for which move returns true, syncing the directories once at
// the end instead of once per object: the way to supersede many objects.
// move is called for every current object, ascending, before anything
// moves and with no lock of the store held (it may call the store's read
// methods). Objects created while it runs may stay in objects/. It returns
// how many objects moved; after an error, those that moved are durable.
func (s *Store) SupersedeWhere(epoch uint64, move func(proto.ObjectID) bool) (moved int, err error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	s.indexMu.RLock()
	all := make([]proto.ObjectID, 0, s.index.Len())
	s.index.Ascend(func(oid proto.ObjectID) bool {
		all = append(all, oid)
		return true
	})
	s.indexMu.RUnlock()
	oids := all[:0]
	for _, oid := range all {
		if move(oid) {
			oids = append(oids, oid)
		}
	}
	if len(oids) == 0 {
		return 0, nil
	}

	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.staleMu.RLock()
	defer s.staleMu.RUnlock()
	if err := s.ensureStaleDir(epoch); err != nil {
		return 0, fmt.Errorf("supersede objects to epoch %d: %w", epoch, err)
	}
	var errs []error
	for _, oid := range oids {
		ok, err := s.moveToStale(oid, epoch)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			moved++
		}
	}
	// Sync even after a failure: what did move must be durable.
	if moved > 0 {
		if err := s.syncStaleMove(epoch); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return moved, fmt.Errorf("supersede objects to epoch %d: %w", epoch, err)
	}
	return moved, nil
}

// moveToStale renames objects/oid to stale/<epoch>/oid under the object's
// write lock. The caller holds flushMu and staleMu (read), and has made
// the epoch directory.
func (s *Store) moveToStale(oid proto.ObjectID, epoch uint64) (bool, error) {
	l := s.lockOf(oid)
	l.Lock()
	defer l.Unlock()
	if !s.exists(oid) {
		return false, nil
	}
	// A Flush after this one would no longer find the file under
	// objects/: sync what it would have synced now.
	s.dirtyMu.Lock()
	_, dirty := s.dirty[oid]
	s.dirtyMu.Unlock()
	if dirty {
		// ENOENT: the file vanished; the rename below finds that out.
		if err := s.syncObjectLocked(oid); err != nil && !errors.Is(err, unix.ENOENT) {
			return false, fmt.Errorf("supersede object %v: %w", oid, err)
		}
	}
	s.handles.drop(oid)
	if err := os.Rename(s.objectPath(oid), s.stalePath(oid, epoch)); err != nil {
		if _, serr := os.Lstat(s.objectPath(oid)); errors.Is(serr, fs.ErrNotExist) {
			// Deleted behind the store's back: nothing to move, and the
			// index must stop saying it exists.
			s.log.Warn().Stringer("object", oid).Msg("object file vanished from objects/; dropped from the index")
			s.indexMu.Lock()
			s.index.Delete(oid)
			s.indexMu.Unlock()
			return false, nil
		}
		return false, fmt.Errorf("supersede object %v: %w", oid, err)
	}
	// One critical section for both indexes, so a ListAll never misses
	// the object mid-move.
	s.indexMu.Lock()
	s.index.Delete(oid)
	if _, had := s.stale.ReplaceOrInsert(staleKey{oid, epoch}); !had {
		s.staleCount[epoch]++
	}
	s.indexMu.Unlock()
	s.dirtyMu.Lock()
	delete(s.dirty, oid)
	s.dirtyMu.Unlock()
	return true, nil
}

// syncObjectLocked fdatasyncs an object; the caller holds its lock.
func (s *Store) syncObjectLocked(oid proto.ObjectID) error {
	h, err := s.handles.acquire(oid, false)
	if err != nil {
		return err
	}
	defer s.handles.release(h)
	return s.fdatasync(h.fd)
}

// syncStaleMove makes renames into stale/<epoch> durable: the directory
// that gained the entries first, then objects/ that lost them.
func (s *Store) syncStaleMove(epoch uint64) error {
	s.syncs.Add(2)
	if err := syncDir(s.staleEpochPath(epoch)); err != nil {
		return err
	}
	return syncDir(s.objDir)
}

// StaleCopy returns the epoch of the object's newest stale copy, if it has
// one superseded at atLeast or later.
func (s *Store) StaleCopy(oid proto.ObjectID, atLeast uint64) (epoch uint64, ok bool) {
	s.indexMu.RLock()
	defer s.indexMu.RUnlock()
	s.stale.DescendLessOrEqual(staleKey{oid, math.MaxUint64}, func(k staleKey) bool {
		if k.oid == oid && k.epoch >= atLeast {
			epoch, ok = k.epoch, true
		}
		return false
	})
	return epoch, ok
}

// ReadStale reads the whole stale copy of the object superseded at epoch
// into p, which must be the object size; holes read as zeros. It wraps
// fs.ErrNotExist if there is no such copy (or it was pruned meanwhile).
func (s *Store) ReadStale(oid proto.ObjectID, epoch uint64, p []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if !oid.Valid() || len(p) != int(s.objectSize) {
		return fmt.Errorf("read stale copy of %v at epoch %d: %d bytes: %w of %d bytes (want all of it)", oid, epoch, len(p), ErrRange, s.objectSize)
	}
	// No lock: an open file stays readable if PruneStale unlinks it, and
	// a Supersede replacing it renames a whole file over it.
	fd, err := openRetry(s.stalePath(oid, epoch), unix.O_RDONLY|unix.O_CLOEXEC)
	if err == unix.ENOENT {
		return fmt.Errorf("read stale copy of %v at epoch %d: %w", oid, epoch, fs.ErrNotExist)
	}
	if err != nil {
		return fmt.Errorf("read stale copy of %v at epoch %d: %w", oid, epoch, err)
	}
	defer unix.Close(fd)
	if err := preadFull(fd, p, 0); err != nil {
		return fmt.Errorf("read stale copy of %v at epoch %d: %w", oid, epoch, err)
	}
	return nil
}

// StaleEpochs lists, ascending, the epochs this store holds stale copies of.
func (s *Store) StaleEpochs() []uint64 {
	s.indexMu.RLock()
	epochs := make([]uint64, 0, len(s.staleCount))
	for e, n := range s.staleCount {
		if n > 0 {
			epochs = append(epochs, e)
		}
	}
	s.indexMu.RUnlock()
	slices.Sort(epochs)
	return epochs
}

// PruneStale deletes every stale copy superseded at an epoch below below,
// with its epoch directory, and returns how many copies it deleted.
func (s *Store) PruneStale(below uint64) (removed int, err error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	s.staleMu.Lock()
	defer s.staleMu.Unlock()
	s.staleDirMu.Lock()
	var epochs []uint64
	for e := range s.staleDirs {
		if e < below {
			epochs = append(epochs, e)
		}
	}
	s.staleDirMu.Unlock()
	slices.Sort(epochs)
	var errs []error
	for _, e := range epochs {
		n, err := s.pruneEpoch(e)
		removed += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(epochs) > 0 {
		s.syncs.Add(1)
		if err := syncDir(s.staleDir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("prune stale copies below epoch %d: %w", below, err)
	}
	return removed, nil
}

// pruneEpoch deletes stale/<epoch> and its copies. The caller holds
// staleMu, so nothing is being renamed into it.
func (s *Store) pruneEpoch(epoch uint64) (int, error) {
	dir := s.staleEpochPath(epoch)
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("list %s: %w", dir, err)
	}
	removed := 0
	for _, e := range ents {
		if err := os.Remove(dir + "/" + e.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("remove stale copy: %w", err)
		}
		if oid, ok := parseObjectName(e.Name()); ok {
			s.indexMu.Lock()
			if _, had := s.stale.Delete(staleKey{oid, epoch}); had {
				s.staleCount[epoch]--
				removed++
			}
			s.indexMu.Unlock()
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return removed, fmt.Errorf("remove %s: %w", dir, err)
	}
	s.indexMu.Lock()
	delete(s.staleCount, epoch)
	s.indexMu.Unlock()
	s.staleDirMu.Lock()
	delete(s.staleDirs, epoch)
	s.staleDirMu.Unlock()
	return removed, nil
}

// ListAll is List over every object held in any form: current (objects/)
// and stale copies, each id once. Paging is List's: more says ids in the
// range were left out, next is where to continue.
func (s *Store) ListAll(dst []proto.ObjectID, from, to proto.ObjectID, max int) (ids []proto.ObjectID, next proto.ObjectID, more bool) {
	if max < 0 {
		max = 0
	}
	// The first max+1 ids of the union are among the first max+1 of each
	// index: take those, then merge.
	want := max + 1
	cur := make([]proto.ObjectID, 0, min(want, 1024))
	old := make([]proto.ObjectID, 0, min(want, 1024))
	inRange := func(oid proto.ObjectID) bool { return to == 0 || oid < to }
	s.indexMu.RLock()
	s.index.AscendGreaterOrEqual(from, func(oid proto.ObjectID) bool {
		if !inRange(oid) {
			return false
		}
		cur = append(cur, oid)
		return len(cur) < want
	})
	s.stale.AscendGreaterOrEqual(staleKey{from, 0}, func(k staleKey) bool {
		if !inRange(k.oid) {
			return false
		}
		if n := len(old); n == 0 || old[n-1] != k.oid {
			old = append(old, k.oid)
		}
		return len(old) < want
	})
	s.indexMu.RUnlock()
	n := 0
	for len(cur) > 0 || len(old) > 0 {
		var oid proto.ObjectID
		switch {
		case len(old) == 0 || len(cur) > 0 && cur[0] < old[0]:
			oid, cur = cur[0], cur[1:]
		case len(cur) == 0 || old[0] < cur[0]:
			oid, old = old[0], old[1:]
		default: // the same id in both
			oid, cur, old = cur[0], cur[1:], old[1:]
		}
		if n == max {
			return dst, oid, true
		}
		dst = append(dst, oid)
		n++
	}
	return dst, 0, false
}

// StaleDiskUsage is the disk space the stale copies take, in bytes. It
// stats every copy: call it rarely.
func (s *Store) StaleDiskUsage() (uint64, error) {
	s.staleDirMu.Lock()
	epochs := make([]uint64, 0, len(s.staleDirs))
	for e := range s.staleDirs {
		epochs = append(epochs, e)
	}
	s.staleDirMu.Unlock()
	var total uint64
	for _, e := range epochs {
		n, err := dirUsage(s.staleEpochPath(e))
		if err != nil && !errors.Is(err, fs.ErrNotExist) { // pruned meanwhile
			return 0, fmt.Errorf("stale disk usage: %w", err)
		}
		total += n
	}
	return total, nil
}

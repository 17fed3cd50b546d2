package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/google/btree"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/sheep/proto"
)

// Options configure a Store.
type Options struct {
	// ObjectSize is the cluster's object size. 0 takes the directory's
	// (proto.DefaultObjectSize for a new one); any other value must match
	// the directory's, or Open refuses it.
	ObjectSize uint32
	// MaxOpenFiles bounds the cache of open object files (default 1024).
	MaxOpenFiles int
	// AllowedEntries names files, besides the store's own, that may already
	// be in a directory being formatted (the node's id file, say).
	AllowedEntries []string
	Logger         zerolog.Logger
}

// DefaultMaxOpenFiles is the size of the open file cache when Options leave it 0.
const DefaultMaxOpenFiles = 1024

// stripes is the number of per-object locks; objects hash onto them.
const stripes = 256

// Store is an object store in one directory. Its methods are safe for
// concurrent use.
type Store struct {
	dir, objDir, tmpDir, staleDir string
	objectSize                    uint32
	log                           zerolog.Logger
	lockFile                      *os.File // flock'ed for the store's life

	// locks serialize what replaces or deletes an object's file (write
	// lock) against I/O through its open handle (read lock).
	locks   [stripes]sync.RWMutex
	handles *handleCache

	indexMu    sync.RWMutex
	index      *btree.BTreeG[proto.ObjectID] // the objects in objects/
	stale      *btree.BTreeG[staleKey]       // the copies in stale/*/
	staleCount map[uint64]int                // stale copies per epoch

	// staleMu orders moves into stale/<epoch> (read lock) before the
	// removal of such directories (write lock, PruneStale).
	staleMu    sync.RWMutex
	staleDirMu sync.Mutex
	staleDirs  map[uint64]bool // stale/<epoch> directories that exist durably

	dirtyMu  sync.Mutex
	dirty    map[proto.ObjectID]struct{} // written since the last Flush, not yet durable
	spare    map[proto.ObjectID]struct{} // the other dirty set, swapped in by Flush
	dirDirty bool                        // objects/ entries changed since the last Flush
	flushMu  sync.Mutex                  // one Flush at a time

	syncs  atomic.Uint64
	closed atomic.Bool

	// syncFile is unix.Fdatasync; tests replace it to inject failures.
	syncFile func(fd int) error
}

// Stats is a snapshot of a store's state.
type Stats struct {
	Objects      int    // current objects (objects/)
	StaleObjects int    // stale copies (stale/*/), counted per epoch they were superseded at
	OpenFiles    int    // object files in the handle cache
	Dirty        int    // objects written since the last Flush
	Syncs        uint64 // fdatasync/fsync calls made, files and directories
	ObjectSize   uint32
}

// ErrClosed is returned by every method of a closed store.
var ErrClosed = errors.New("object store is closed")

// ErrRange is wrapped by errors about a byte range outside the object.
var ErrRange = errors.New("range outside the object")

// Open opens the store in dir, creating and formatting it if dir is
// missing or empty.
func Open(dir string, opts Options) (*Store, error) {
	if opts.ObjectSize != 0 {
		if err := proto.CheckObjectSize(opts.ObjectSize); err != nil {
			return nil, fmt.Errorf("open store %s: %w", dir, err)
		}
	}
	if opts.MaxOpenFiles <= 0 {
		opts.MaxOpenFiles = DefaultMaxOpenFiles
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &Store{
		dir:        dir,
		objDir:     filepath.Join(dir, objectsDir),
		tmpDir:     filepath.Join(dir, tmpDir),
		staleDir:   filepath.Join(dir, staleDir),
		log:        opts.Logger,
		index:      btree.NewOrderedG[proto.ObjectID](32),
		stale:      btree.NewG(32, staleLess),
		staleCount: make(map[uint64]int),
		staleDirs:  make(map[uint64]bool),
		dirty:      make(map[proto.ObjectID]struct{}),
		spare:      make(map[proto.ObjectID]struct{}),
		syncFile:   unix.Fdatasync,
	}
	allowed := map[string]bool{objectsDir: true, tmpDir: true, staleDir: true, RecoveryStateFile: true}
	for _, n := range opts.AllowedEntries {
		allowed[n] = true
	}
	want := opts.ObjectSize
	isNew := false
	if _, err := os.Stat(filepath.Join(dir, formatFile)); errors.Is(err, fs.ErrNotExist) {
		isNew = true
		if want == 0 {
			want = proto.DefaultObjectSize
		}
	}
	size, err := loadOrCreateFormat(dir, want, allowed)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s.objectSize = size
	if err := s.lock(); err != nil {
		return nil, err
	}
	if err := s.prepareDirs(); err != nil {
		s.lockFile.Close()
		return nil, err
	}
	if err := s.loadIndex(); err != nil {
		s.lockFile.Close()
		return nil, err
	}
	if err := s.loadStale(); err != nil {
		s.lockFile.Close()
		return nil, err
	}
	s.handles = newHandleCache(opts.MaxOpenFiles, s.openObject)
	s.log.Info().Str("dir", dir).Uint32("object_size", size).Int("objects", s.index.Len()).
		Int("stale_copies", s.stale.Len()).Bool("new", isNew).Msg("object store open")
	return s, nil
}

// lock takes an exclusive flock on the format file, so a second node
// pointed at the same dir fails at once instead of corrupting it.
func (s *Store) lock() error {
	path := filepath.Join(s.dir, formatFile)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open store: lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("open store: %s is in use by another sheep (flock %s held)", s.dir, path)
		}
		return fmt.Errorf("open store: lock %s: %w", path, err)
	}
	s.lockFile = f
	return nil
}

func (s *Store) prepareDirs() error {
	created := false
	for _, d := range []string{s.objDir, s.tmpDir, s.staleDir} {
		err := os.Mkdir(d, 0o755)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("open store: %w", err)
		}
		created = created || err == nil
	}
	// Renames into objects/ and stale/ count on the directories
	// themselves being durable.
	if created {
		if err := syncDir(s.dir); err != nil {
			return fmt.Errorf("open store: %w", err)
		}
	}
	// Whatever is in tmp/ is a CreateAndWrite that never completed: it was
	// never acknowledged, so it goes.
	ents, err := os.ReadDir(s.tmpDir)
	if err != nil {
		return fmt.Errorf("open store: list %s: %w", s.tmpDir, err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(s.tmpDir, e.Name())); err != nil {
			return fmt.Errorf("open store: clean %s: %w", s.tmpDir, err)
		}
	}
	return nil
}

func (s *Store) loadIndex() error {
	ents, err := os.ReadDir(s.objDir)
	if err != nil {
		return fmt.Errorf("open store: list %s: %w", s.objDir, err)
	}
	for _, e := range ents {
		oid, ok := parseObjectName(e.Name())
		if !ok || !e.Type().IsRegular() {
			s.log.Warn().Str("file", filepath.Join(s.objDir, e.Name())).Msg("ignoring a file that is not an object")
			continue
		}
		s.index.ReplaceOrInsert(oid)
	}
	return nil
}

func parseObjectName(name string) (proto.ObjectID, bool) {
	if len(name) != 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(name, 16, 64)
	oid := proto.ObjectID(v)
	return oid, err == nil && oid.Valid()
}

// objectPath is an object's file: objects/ and its id in 16 hex digits.
func (s *Store) objectPath(oid proto.ObjectID) string {
	var b [16]byte
	const hex = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		b[i] = hex[oid&0xf]
		oid >>= 4
	}
	return s.objDir + "/" + string(b[:])
}

// openObject opens an object file. With create it makes a missing one,
// sized to the object (sparse).
func (s *Store) openObject(oid proto.ObjectID, create bool) (int, error) {
	path := s.objectPath(oid)
	fd, err := openRetry(path, unix.O_RDWR|unix.O_CLOEXEC)
	if err == nil || !create || !errors.Is(err, unix.ENOENT) {
		if err != nil {
			return -1, fmt.Errorf("open object %v: %w", oid, err)
		}
		return fd, nil
	}
	fd, err = openRetry(path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_CREAT|unix.O_EXCL)
	if errors.Is(err, unix.EEXIST) {
		// Created by a concurrent writer between our two opens.
		fd, err = openRetry(path, unix.O_RDWR|unix.O_CLOEXEC)
		if err != nil {
			return -1, fmt.Errorf("open object %v: %w", oid, err)
		}
		return fd, nil
	}
	if err != nil {
		return -1, fmt.Errorf("create object %v: %w", oid, err)
	}
	// Extending only: a concurrent writer that opened the new file already
	// wrote inside the object, and growing the size keeps its bytes.
	if err := unix.Ftruncate(fd, int64(s.objectSize)); err != nil {
		unix.Close(fd)
		unix.Unlink(path)
		return -1, fmt.Errorf("size object %v: %w", oid, err)
	}
	return fd, nil
}

func openRetry(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags, 0o644)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// ObjectSize is the size of every object in the store.
func (s *Store) ObjectSize() uint32 { return s.objectSize }

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Stats returns a snapshot of the store's counters.
func (s *Store) Stats() Stats {
	s.indexMu.RLock()
	objects, stale := s.index.Len(), s.stale.Len()
	s.indexMu.RUnlock()
	s.dirtyMu.Lock()
	dirty := len(s.dirty)
	s.dirtyMu.Unlock()
	return Stats{Objects: objects, StaleObjects: stale, OpenFiles: s.handles.len(), Dirty: dirty, Syncs: s.syncs.Load(), ObjectSize: s.objectSize}
}

// FreeSpace is the space left on the store's file system for an
// unprivileged writer, in bytes.
func (s *Store) FreeSpace() (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", s.dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// Close flushes every written object and closes the store. The store must
// be idle: no method may be running or called afterwards.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return ErrClosed
	}
	err := s.flush()
	err = errors.Join(err, s.handles.closeAll())
	return errors.Join(err, s.lockFile.Close())
}

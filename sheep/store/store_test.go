package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/sheep/proto"
)

const testObjectSize = 1 << 20

func openTest(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{ObjectSize: testObjectSize})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readAll(t testing.TB, s *Store, oid proto.ObjectID) []byte {
	t.Helper()
	b := make([]byte, s.ObjectSize())
	if err := s.ReadAt(oid, b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// model is the expected content of every object a test touched.
type model map[proto.ObjectID][]byte

func (m model) write(oid proto.ObjectID, p []byte, off int64) {
	if m[oid] == nil {
		m[oid] = make([]byte, testObjectSize)
	}
	copy(m[oid][off:], p)
}

func (m model) check(t *testing.T, s *Store) {
	t.Helper()
	for oid, want := range m {
		if got := readAll(t, s, oid); sha256.Sum256(got) != sha256.Sum256(want) {
			t.Fatalf("object %v: content checksum differs from what was written", oid)
		}
	}
}

func TestRandomWritesReadBackAndSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	rng := rand.New(rand.NewPCG(1, 2))
	m := model{}
	for i := 0; i < 300; i++ {
		oid := proto.NewObjectID(uint32(rng.IntN(3)), uint32(rng.IntN(8)))
		n := 1 + rng.IntN(64<<10)
		off := rng.Int64N(testObjectSize - int64(n) + 1)
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		if err := s.WriteAt(oid, p, off, rng.IntN(10) == 0); err != nil {
			t.Fatal(err)
		}
		m.write(oid, p, off)
		// A random read-back of a slice of what was just written.
		got := make([]byte, n)
		if err := s.ReadAt(oid, got, off); err != nil || !bytes.Equal(got, p) {
			t.Fatalf("read back of %d bytes at %d of %v differs (err %v)", n, off, oid, err)
		}
	}
	m.check(t, s)
	if got := s.Stats().Objects; got != len(m) {
		t.Fatalf("Stats().Objects = %d, want %d", got, len(m))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dir)
	defer s.Close()
	if got := s.Stats().Objects; got != len(m) {
		t.Fatalf("after restart Stats().Objects = %d, want %d", got, len(m))
	}
	m.check(t, s)
}

func TestHolesAndAbsentObjectsReadAsZeros(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	zeros := make([]byte, testObjectSize)
	got := bytes.Repeat([]byte{0xaa}, testObjectSize)
	if err := s.ReadAt(proto.NewObjectID(9, 9), got, 0); err != nil || !bytes.Equal(got, zeros) {
		t.Fatalf("absent object does not read as zeros (err %v)", err)
	}
	oid := proto.NewObjectID(1, 1)
	if err := s.WriteAt(oid, []byte("middle"), 1000, false); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, testObjectSize)
	copy(want[1000:], "middle")
	if !bytes.Equal(readAll(t, s, oid), want) {
		t.Fatal("a written object's holes do not read as zeros")
	}
}

func TestDiscardZeroesOnlyTheRange(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	oid := proto.NewObjectID(1, 0)
	data := bytes.Repeat([]byte{0x5a}, testObjectSize)
	if err := s.WriteAt(oid, data, 0, false); err != nil {
		t.Fatal(err)
	}
	var before, after int64 = blocks(t, s, oid), 0
	if err := s.Discard(oid, 4096, 512<<10, false); err != nil {
		t.Fatal(err)
	}
	after = blocks(t, s, oid)
	want := bytes.Clone(data)
	clear(want[4096 : 4096+512<<10])
	if !bytes.Equal(readAll(t, s, oid), want) {
		t.Fatal("after discard the object does not read as the data with a zeroed range")
	}
	if after >= before {
		t.Errorf("discard freed no space: %d blocks before, %d after", before, after)
	}
	// An unaligned discard zeroes exactly its bytes too.
	if err := s.Discard(oid, 7, 3, true); err != nil {
		t.Fatal(err)
	}
	clear(want[7:10])
	if !bytes.Equal(readAll(t, s, oid), want) {
		t.Fatal("unaligned discard zeroed the wrong bytes")
	}
	if err := s.Discard(proto.NewObjectID(5, 5), 0, 100, false); err != nil {
		t.Fatalf("discard in an absent object: %v", err)
	}
	if s.Exists(proto.NewObjectID(5, 5)) {
		t.Fatal("discard created an object")
	}
}

func blocks(t *testing.T, s *Store, oid proto.ObjectID) int64 {
	t.Helper()
	fi, err := os.Stat(s.objectPath(oid))
	if err != nil {
		t.Fatal(err)
	}
	return statBlocks(fi)
}

func TestFlushSyncsEveryDirtyObjectOnce(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	base := s.Stats().Syncs
	for i := range 5 {
		for range 3 { // several writes to one object: one sync at flush
			if err := s.WriteAt(proto.NewObjectID(1, uint32(i)), []byte("x"), int64(i), false); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := s.Stats()
	if st.Syncs != base || st.Dirty != 5 {
		t.Fatalf("before flush: %d syncs, %d dirty; want 0 syncs, 5 dirty", st.Syncs-base, st.Dirty)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	st = s.Stats()
	// Five objects plus the objects directory (they were created).
	if st.Syncs-base != 6 || st.Dirty != 0 {
		t.Fatalf("flush made %d syncs leaving %d dirty; want 6 and 0", st.Syncs-base, st.Dirty)
	}
	if err := s.Flush(); err != nil || s.Stats().Syncs != st.Syncs {
		t.Fatalf("an idle flush synced (%d syncs, err %v)", s.Stats().Syncs-st.Syncs, err)
	}
	// Rewriting an existing object dirties it, not the directory.
	if err := s.WriteAt(proto.NewObjectID(1, 0), []byte("y"), 0, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil || s.Stats().Syncs-st.Syncs != 1 {
		t.Fatalf("flush after one overwrite made %d syncs (err %v), want 1", s.Stats().Syncs-st.Syncs, err)
	}
}

func TestFUAWriteSyncsBeforeReturning(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	oid := proto.NewObjectID(2, 0)
	base := s.Stats().Syncs
	if err := s.WriteAt(oid, []byte("new"), 0, true); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Syncs - base; got != 2 {
		t.Fatalf("FUA write creating an object made %d syncs, want 2 (file and directory)", got)
	}
	if err := s.WriteAt(oid, []byte("again"), 0, true); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Syncs - base; got != 3 {
		t.Fatalf("FUA overwrite made %d syncs in all, want 3", got)
	}
	if s.Stats().Dirty != 0 {
		t.Fatal("FUA writes left the object dirty")
	}
	base = s.Stats().Syncs
	if err := s.CreateAndWrite(proto.NewObjectID(2, 1), []byte("whole"), 0, true); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Syncs - base; got != 2 {
		t.Fatalf("FUA create-and-write made %d syncs, want 2", got)
	}
}

func TestCreateAndWriteReplacesTheObject(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	oid := proto.NewObjectID(3, 3)
	if err := s.WriteAt(oid, bytes.Repeat([]byte{1}, testObjectSize), 0, false); err != nil {
		t.Fatal(err)
	}
	readAll(t, s, oid) // caches a handle on the old file
	if err := s.CreateAndWrite(oid, []byte("fresh"), 100, false); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, testObjectSize)
	copy(want[100:], "fresh")
	if !bytes.Equal(readAll(t, s, oid), want) {
		t.Fatal("create-and-write did not replace the whole object")
	}
	if err := s.CreateAndWrite(proto.NewObjectID(3, 4), nil, 0, false); err != nil || !s.Exists(proto.NewObjectID(3, 4)) {
		t.Fatalf("empty create-and-write made no object (err %v)", err)
	}
	// A crash mid-create leaves a file in tmp/; the next open removes it.
	os.WriteFile(filepath.Join(dir, tmpDir, "leftover"), []byte("x"), 0o644)
	s.Close()
	s = openTest(t, dir)
	defer s.Close()
	if ents, _ := os.ReadDir(filepath.Join(dir, tmpDir)); len(ents) != 0 {
		t.Fatalf("tmp/ holds %d files after open", len(ents))
	}
	if !bytes.Equal(readAll(t, s, oid), want) {
		t.Fatal("created object lost at restart")
	}
}

func TestRemove(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	oid := proto.NewObjectID(4, 4)
	if err := s.WriteAt(oid, []byte("gone soon"), 0, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(oid); err != nil {
		t.Fatal(err)
	}
	if s.Exists(oid) || !bytes.Equal(readAll(t, s, oid), make([]byte, testObjectSize)) {
		t.Fatal("removed object still exists or has content")
	}
	if _, err := os.Stat(s.objectPath(oid)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("removed object's file: %v", err)
	}
	if err := s.Remove(oid); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("second remove = %v, want ErrNotExist", err)
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("flush after removing a dirty object: %v", err)
	}
}

func TestList(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	var all []proto.ObjectID
	for vdi := uint32(1); vdi <= 3; vdi++ {
		for idx := uint32(0); idx < 5; idx++ {
			oid := proto.NewObjectID(vdi, idx*7)
			if err := s.WriteAt(oid, []byte{1}, 0, false); err != nil {
				t.Fatal(err)
			}
			all = append(all, oid)
		}
	}
	var got []proto.ObjectID
	cursor := proto.ObjectID(0)
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("listing does not end")
		}
		page, next, more := s.List(nil, cursor, 0, 4)
		got = append(got, page...)
		if !more {
			break
		}
		cursor = next
	}
	if !equalIDs(got, all) {
		t.Fatalf("paged listing = %v, want %v", got, all)
	}
	vdi2, _, more := s.List(nil, proto.NewObjectID(2, 0), proto.NewObjectID(3, 0), 100)
	if more || !equalIDs(vdi2, all[5:10]) {
		t.Fatalf("listing of VDI 2 = %v (more %v), want %v", vdi2, more, all[5:10])
	}
}

func equalIDs(a, b []proto.ObjectID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOpenFileCacheIsBounded(t *testing.T) {
	s, err := Open(t.TempDir(), Options{ObjectSize: testObjectSize, MaxOpenFiles: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 20 {
		oid := proto.NewObjectID(1, uint32(i))
		if err := s.WriteAt(oid, []byte{byte(i)}, 0, false); err != nil {
			t.Fatal(err)
		}
		if n := s.Stats().OpenFiles; n > 4 {
			t.Fatalf("%d files open with a cache of 4", n)
		}
	}
	for i := range 20 {
		b := []byte{0}
		if err := s.ReadAt(proto.NewObjectID(1, uint32(i)), b, 0); err != nil || b[0] != byte(i) {
			t.Fatalf("object %d after eviction: %v, err %v", i, b, err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("flush of evicted objects: %v", err)
	}
}

func TestRangeChecks(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	oid := proto.NewObjectID(1, 1)
	for name, err := range map[string]error{
		"read past end":    s.ReadAt(oid, make([]byte, 2), testObjectSize-1),
		"write past end":   s.WriteAt(oid, make([]byte, 1), testObjectSize, false),
		"negative offset":  s.WriteAt(oid, make([]byte, 1), -1, false),
		"discard past end": s.Discard(oid, 1, testObjectSize, false),
		"create past end":  s.CreateAndWrite(oid, make([]byte, 2), testObjectSize-1, false),
		"invalid id":       s.ReadAt(1<<60, make([]byte, 1), 0),
	} {
		if !errors.Is(err, ErrRange) {
			t.Errorf("%s: %v, want ErrRange", name, err)
		}
	}
	if s.Exists(oid) {
		t.Fatal("a refused write created the object")
	}
}

func TestOpenRefusesForeignDirs(t *testing.T) {
	t.Run("not empty", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644)
		if _, err := Open(dir, Options{}); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "precious") {
			t.Fatalf("Open of a non-empty dir = %v", err)
		}
	})
	t.Run("other object size", func(t *testing.T) {
		dir := t.TempDir()
		s := openTest(t, dir)
		s.Close()
		if _, err := Open(dir, Options{ObjectSize: 2 * testObjectSize}); !errors.Is(err, ErrFormat) {
			t.Fatalf("Open with another object size = %v", err)
		}
		s, err := Open(dir, Options{}) // 0 takes the dir's size
		if err != nil || s.ObjectSize() != testObjectSize {
			t.Fatalf("Open with size 0 = %v", err)
		}
		s.Close()
	})
	for name, content := range map[string]string{
		"other format":  `{"format":"something-else","version":1,"object_size":4194304}`,
		"other version": `{"format":"sheepblk-object-store","version":99,"object_size":4194304}`,
		"bad size":      `{"format":"sheepblk-object-store","version":1,"object_size":12345}`,
		"garbage":       `not json`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, formatFile), []byte(content), 0o644)
			if _, err := Open(dir, Options{}); !errors.Is(err, ErrFormat) {
				t.Fatalf("Open = %v, want ErrFormat", err)
			}
		})
	}
	t.Run("in use", func(t *testing.T) {
		dir := t.TempDir()
		s := openTest(t, dir)
		defer s.Close()
		if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "in use") {
			t.Fatalf("second Open of a dir = %v", err)
		}
	})
	t.Run("allowed entries", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "node-id"), []byte("x"), 0o644)
		s, err := Open(dir, Options{AllowedEntries: []string{"node-id"}})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	})
}

func TestConcurrentWritersAndReaders(t *testing.T) {
	s, err := Open(t.TempDir(), Options{ObjectSize: testObjectSize, MaxOpenFiles: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const workers, rounds, chunk = 8, 50, 4096
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			p := make([]byte, chunk)
			got := make([]byte, chunk)
			for r := range rounds {
				// Each worker owns one chunk slot of every object, so its
				// read-back must see exactly what it wrote.
				oid := proto.NewObjectID(1, uint32(rng.IntN(6)))
				off := int64(w*chunk + (r%4)*workers*chunk)
				for i := range p {
					p[i] = byte(rng.Uint32())
				}
				if err := s.WriteAt(oid, p, off, false); err != nil {
					errs <- err
					return
				}
				if r%10 == 0 {
					if err := s.Flush(); err != nil {
						errs <- err
						return
					}
				}
				if err := s.ReadAt(oid, got, off); err != nil || !bytes.Equal(got, p) {
					errs <- errors.New("read back differs under concurrency")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func BenchmarkReadAt4K(b *testing.B) {
	s := openTest(b, b.TempDir())
	defer s.Close()
	oid := proto.NewObjectID(1, 0)
	p := make([]byte, 4096)
	s.WriteAt(oid, p, 0, false)
	b.ReportAllocs()
	b.SetBytes(4096)
	for b.Loop() {
		if err := s.ReadAt(oid, p, 8192); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteAt4K(b *testing.B) {
	s := openTest(b, b.TempDir())
	defer s.Close()
	oid := proto.NewObjectID(1, 0)
	p := make([]byte, 4096)
	b.ReportAllocs()
	b.SetBytes(4096)
	for b.Loop() {
		if err := s.WriteAt(oid, p, 8192, false); err != nil {
			b.Fatal(err)
		}
	}
}

func TestFailedFlushKeepsObjectsDirtyAndRetries(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	for i := range 3 {
		if err := s.WriteAt(proto.NewObjectID(1, uint32(i)), []byte("data"), 0, false); err != nil {
			t.Fatal(err)
		}
	}
	s.syncFile = func(int) error { return unix.EIO }
	if err := s.Flush(); !errors.Is(err, unix.EIO) {
		t.Fatalf("flush with failing fdatasync = %v, want EIO", err)
	}
	if d := s.Stats().Dirty; d != 3 {
		t.Fatalf("%d objects dirty after a failed flush, want 3 (they are not durable)", d)
	}
	if err := s.WriteAt(proto.NewObjectID(1, 0), []byte("x"), 0, true); !errors.Is(err, unix.EIO) {
		t.Fatalf("FUA write with failing fdatasync = %v, want EIO", err)
	}
	s.syncFile = unix.Fdatasync
	base := s.Stats().Syncs
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	// The three objects and the directory, which the failed flush left dirty too.
	if got := s.Stats().Syncs - base; got != 4 || s.Stats().Dirty != 0 {
		t.Fatalf("retry flush made %d syncs leaving %d dirty; want 4 and 0", got, s.Stats().Dirty)
	}
}

// TestConcurrentFirstWrites races writers on objects that do not exist
// yet: whichever of them creates the file, every write must be readable as
// soon as it returns (the object indexed before any write to it is acked).
func TestConcurrentFirstWrites(t *testing.T) {
	s, err := Open(t.TempDir(), Options{ObjectSize: testObjectSize, MaxOpenFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const writers, objects = 8, 100
	for i := range objects {
		oid := proto.NewObjectID(9, uint32(i))
		start := make(chan struct{})
		var wg sync.WaitGroup
		failed := make(chan string, writers)
		for w := range writers {
			wg.Go(func() {
				p := bytes.Repeat([]byte{byte(w + 1)}, 512)
				got := make([]byte, 512)
				<-start
				if err := s.WriteAt(oid, p, int64(w*512), false); err != nil {
					failed <- err.Error()
					return
				}
				if err := s.ReadAt(oid, got, int64(w*512)); err != nil || !bytes.Equal(got, p) {
					failed <- "a write to a new object was not readable after it returned"
				}
			})
		}
		close(start)
		wg.Wait()
		close(failed)
		for msg := range failed {
			t.Fatalf("object %v: %s", oid, msg)
		}
	}
}

// ReadAtNoWait reads what the page cache holds and reports ErrWouldWait,
// not a disk read, for bytes it does not; ReadAt then reads them, and
// afterwards ReadAtNoWait does too. Holes and absent objects never wait.
func TestReadAtNoWaitOnlyFromThePageCache(t *testing.T) {
	dir := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type == unix.TMPFS_MAGIC || fs.Type == unix.RAMFS_MAGIC {
		t.Skip("the test directory is in memory: every byte is cached")
	}
	s := openTest(t, dir)
	defer s.Close()
	buf := make([]byte, 64<<10)
	if err := s.ReadAtNoWait(proto.NewObjectID(9, 9), buf, 0); err != nil {
		t.Fatalf("absent object: %v", err)
	}
	oid := proto.NewObjectID(1, 1)
	want := make([]byte, 64<<10)
	rand.NewChaCha8([32]byte{3}).Read(want)
	if err := s.WriteAt(oid, want, 128<<10, false); err != nil {
		t.Fatal(err)
	}
	if err := s.ReadAtNoWait(oid, buf, 128<<10); err != nil || !bytes.Equal(buf, want) {
		t.Fatalf("just written (cached): err %v, bytes equal %v", err, bytes.Equal(buf, want))
	}
	// Write back and drop the object's pages from the page cache.
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(s.objectPath(oid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if residentPages(t, f, 128<<10, 64<<10) > 0 {
		t.Skip("the page cache kept the object's pages after FADV_DONTNEED")
	}
	if err := s.ReadAtNoWait(oid, buf, 128<<10); !errors.Is(err, ErrWouldWait) {
		t.Fatalf("uncached read: %v, want ErrWouldWait", err)
	}
	clear(buf)
	if err := s.ReadAt(oid, buf, 128<<10); err != nil || !bytes.Equal(buf, want) {
		t.Fatalf("ReadAt after a declined read: err %v, bytes equal %v", err, bytes.Equal(buf, want))
	}
	clear(buf)
	if err := s.ReadAtNoWait(oid, buf, 128<<10); err != nil || !bytes.Equal(buf, want) {
		t.Fatalf("read again, now cached: err %v, bytes equal %v", err, bytes.Equal(buf, want))
	}
}

// residentPages counts the pages of f's range [off, off+n) in the page
// cache (mincore of a mapping; the mapping itself reads nothing).
func residentPages(t *testing.T, f *os.File, off int64, n int) int {
	t.Helper()
	m, err := unix.Mmap(int(f.Fd()), off, n, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (n+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(n), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	resident := 0
	for _, v := range vec {
		resident += int(v & 1)
	}
	return resident
}

package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/sheep/proto"
)

// pattern is an object's worth of bytes that says which object and which
// version it is, with a hole in the middle so sparse copies are exercised.
func pattern(oid proto.ObjectID, version int) []byte {
	b := make([]byte, testObjectSize)
	rng := rand.New(rand.NewPCG(uint64(oid), uint64(version)))
	for i := range b[:64<<10] {
		b[i] = byte(rng.Uint32())
	}
	copy(b[testObjectSize-8:], fmt.Sprintf("%8d", version))
	return b
}

func readStale(t testing.TB, s *Store, oid proto.ObjectID, epoch uint64) []byte {
	t.Helper()
	b := make([]byte, s.ObjectSize())
	if err := s.ReadStale(oid, epoch, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func reopen(t testing.TB, s *Store) *Store {
	t.Helper()
	dir := s.Dir()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return openTest(t, dir)
}

func TestSupersedeMovesTheObjectAndSurvivesReopen(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer func() { s.Close() }()
	oid := proto.NewObjectID(1, 2)
	v1 := pattern(oid, 1)
	if err := s.WriteAt(oid, v1, 0, false); err != nil {
		t.Fatal(err)
	}
	readAll(t, s, oid) // a cached handle that Supersede must drop
	if err := s.Supersede(oid, 5); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		if s.Exists(oid) || !bytes.Equal(readAll(t, s, oid), make([]byte, testObjectSize)) {
			t.Fatalf("%s: a superseded object is still current", when)
		}
		if e, ok := s.StaleCopy(oid, 0); !ok || e != 5 {
			t.Fatalf("%s: StaleCopy = %d, %v; want 5, true", when, e, ok)
		}
		if _, ok := s.StaleCopy(oid, 6); ok {
			t.Fatalf("%s: StaleCopy(atLeast 6) found the epoch-5 copy", when)
		}
		if !bytes.Equal(readStale(t, s, oid, 5), v1) {
			t.Fatalf("%s: the stale copy does not hold what was written", when)
		}
		if st := s.Stats(); st.Objects != 0 || st.StaleObjects != 1 || st.OpenFiles != 0 {
			t.Fatalf("%s: stats %+v, want 0 objects, 1 stale, 0 open files", when, st)
		}
		if got := s.StaleEpochs(); !slices.Equal(got, []uint64{5}) {
			t.Fatalf("%s: StaleEpochs = %v", when, got)
		}
		if _, err := os.Stat(filepath.Join(s.Dir(), "stale", "5", oid.String())); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
	}
	check("after supersede")
	s = reopen(t, s)
	check("after reopen")

	// Nothing to supersede: nothing happens.
	if err := s.Supersede(oid, 6); err != nil {
		t.Fatal(err)
	}
	check("after superseding an absent object")

	// A newer version superseded later: both copies kept, newest found.
	v2 := pattern(oid, 2)
	if err := s.WriteAt(oid, v2, 0, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Supersede(oid, 7); err != nil {
		t.Fatal(err)
	}
	for _, atLeast := range []uint64{0, 5, 6, 7} {
		if e, ok := s.StaleCopy(oid, atLeast); !ok || e != 7 {
			t.Fatalf("StaleCopy(atLeast %d) = %d, %v; want 7", atLeast, e, ok)
		}
	}
	if _, ok := s.StaleCopy(oid, 8); ok {
		t.Fatal("StaleCopy(atLeast 8) found a copy")
	}
	if !bytes.Equal(readStale(t, s, oid, 5), v1) || !bytes.Equal(readStale(t, s, oid, 7), v2) {
		t.Fatal("stale copies of two epochs do not hold their versions")
	}
	// Superseding into an epoch that already holds a copy replaces it.
	v3 := pattern(oid, 3)
	if err := s.WriteAt(oid, v3, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Supersede(oid, 7); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readStale(t, s, oid, 7), v3) || s.Stats().StaleObjects != 2 {
		t.Fatalf("re-superseding into epoch 7: stats %+v", s.Stats())
	}
	if _, ok := s.StaleCopy(proto.NewObjectID(1, 3), 0); ok {
		t.Fatal("StaleCopy found a copy of an object never superseded")
	}
	if err := s.ReadStale(oid, 6, make([]byte, testObjectSize)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadStale of a missing copy = %v, want ErrNotExist", err)
	}
	if err := s.ReadStale(oid, 7, make([]byte, 10)); !errors.Is(err, ErrRange) {
		t.Fatalf("ReadStale into a short buffer = %v, want ErrRange", err)
	}
	if err := s.Supersede(1<<60, 7); err == nil {
		t.Fatal("Supersede of an invalid id succeeded")
	}
}

func TestSupersedeMakesUnflushedWritesDurable(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	oid := proto.NewObjectID(2, 0)
	if err := s.WriteAt(oid, []byte("not yet flushed"), 0, false); err != nil {
		t.Fatal(err)
	}
	base := s.Stats().Syncs
	if err := s.Supersede(oid, 1); err != nil {
		t.Fatal(err)
	}
	// The file, then stale/1 and objects/ (stale/ itself when stale/1 was made).
	if st := s.Stats(); st.Dirty != 0 || st.Syncs-base != 4 {
		t.Fatalf("supersede of a dirty object: %d dirty, %d syncs; want 0 dirty, 4 syncs", st.Dirty, st.Syncs-base)
	}
	// A clean object costs no file sync, and the epoch dir exists already.
	if err := s.WriteAt(oid, []byte("durable"), 0, true); err != nil {
		t.Fatal(err)
	}
	base = s.Stats().Syncs
	if err := s.Supersede(oid, 1); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Syncs - base; got != 2 {
		t.Fatalf("supersede of a clean object made %d syncs, want 2 (the two directories)", got)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestSupersedeFailedSyncLeavesTheObjectInPlace(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	oid := proto.NewObjectID(2, 1)
	if err := s.WriteAt(oid, []byte("data"), 0, false); err != nil {
		t.Fatal(err)
	}
	s.syncFile = func(int) error { return unix.EIO }
	if err := s.Supersede(oid, 3); !errors.Is(err, unix.EIO) {
		t.Fatalf("Supersede with a failing disk = %v, want EIO", err)
	}
	if !s.Exists(oid) || s.Stats().Dirty != 1 || s.Stats().StaleObjects != 0 {
		t.Fatalf("a failed supersede moved the object: %+v", s.Stats())
	}
	s.syncFile = unix.Fdatasync
	if err := s.Supersede(oid, 3); err != nil {
		t.Fatal(err)
	}
	if got := readStale(t, s, oid, 3); string(got[:4]) != "data" {
		t.Fatal("retried supersede lost the data")
	}
}

func TestSupersedeOfAVanishedFileFixesTheIndex(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	gone, kept := proto.NewObjectID(2, 5), proto.NewObjectID(2, 6)
	for _, oid := range []proto.ObjectID{gone, kept} {
		if err := s.WriteAt(oid, []byte("x"), 0, false); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(s.objectPath(gone))
	if err := s.SupersedeAll(2); err != nil {
		t.Fatal(err)
	}
	if s.Exists(gone) || s.Stats().Objects != 0 || s.Stats().StaleObjects != 1 {
		t.Fatalf("after superseding a vanished file: %+v", s.Stats())
	}
	if _, ok := s.StaleCopy(kept, 2); !ok {
		t.Fatal("the other object was not superseded")
	}
}

func TestSupersedeAll(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer func() { s.Close() }()
	want := map[proto.ObjectID][]byte{}
	for i := range 20 {
		oid := proto.NewObjectID(uint32(i%3), uint32(i))
		want[oid] = pattern(oid, i)
		if err := s.WriteAt(oid, want[oid], 0, i%2 == 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SupersedeAll(9); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if st := s.Stats(); st.Objects != 0 || st.StaleObjects != 20 || st.Dirty != 0 || st.OpenFiles != 0 {
			t.Fatalf("after SupersedeAll: %+v", st)
		}
		if ents, _ := os.ReadDir(filepath.Join(s.Dir(), objectsDir)); len(ents) != 0 {
			t.Fatalf("objects/ holds %d files", len(ents))
		}
		for oid, b := range want {
			if !bytes.Equal(readStale(t, s, oid, 9), b) {
				t.Fatalf("stale copy of %v differs", oid)
			}
			if e, ok := s.StaleCopy(oid, 9); !ok || e != 9 {
				t.Fatalf("StaleCopy(%v) = %d, %v", oid, e, ok)
			}
		}
		s = reopen(t, s)
	}
	// Nothing left: nothing to do.
	if err := s.SupersedeAll(10); err != nil || s.Stats().StaleObjects != 20 {
		t.Fatalf("SupersedeAll of an empty objects/ = %v, %+v", err, s.Stats())
	}
	if u, err := s.DiskUsage(); err != nil || u != 0 {
		t.Fatalf("DiskUsage with only stale copies = %d, %v; want 0", u, err)
	}
	if u, err := s.StaleDiskUsage(); err != nil || u < 20*64<<10 {
		t.Fatalf("StaleDiskUsage = %d, %v; want at least the 20 written 64 KiB runs", u, err)
	}
}

func TestSupersedeWhereMovesTheChosenOnesWithOneDirectorySync(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer func() { s.Close() }()
	for i := range 10 {
		if err := s.WriteAt(proto.NewObjectID(5, uint32(i)), pattern(proto.NewObjectID(5, uint32(i)), i), 0, true); err != nil {
			t.Fatal(err)
		}
	}
	base := s.Stats().Syncs
	var asked []proto.ObjectID
	moved, err := s.SupersedeWhere(4, func(oid proto.ObjectID) bool {
		asked = append(asked, oid)
		s.Exists(oid) // the store may be read from the callback
		return oid.Index()%2 == 0
	})
	if err != nil || moved != 5 {
		t.Fatalf("SupersedeWhere = %d, %v; want 5", moved, err)
	}
	if got, _, _ := s.List(nil, 0, 0, 100); len(asked) != 10 || len(got) != 5 {
		t.Fatalf("asked about %d objects, %d left current; want 10 and 5", len(asked), len(got))
	}
	// stale/ for the new epoch dir, then stale/4 and objects/ once: the
	// objects were written with FUA, so none needs a sync of its own.
	if got := s.Stats().Syncs - base; got != 3 {
		t.Fatalf("SupersedeWhere of 5 clean objects made %d syncs, want 3", got)
	}
	s = reopen(t, s)
	for i := range 10 {
		oid := proto.NewObjectID(5, uint32(i))
		_, stale := s.StaleCopy(oid, 4)
		if stale != (i%2 == 0) || s.Exists(oid) == stale {
			t.Fatalf("object %d: stale %v, current %v", i, stale, s.Exists(oid))
		}
		if stale && !bytes.Equal(readStale(t, s, oid, 4), pattern(oid, i)) {
			t.Fatalf("object %d: stale copy differs", i)
		}
	}
	if moved, err := s.SupersedeWhere(5, func(proto.ObjectID) bool { return false }); err != nil || moved != 0 || len(s.StaleEpochs()) != 1 {
		t.Fatalf("SupersedeWhere choosing nothing = %d, %v, epochs %v", moved, err, s.StaleEpochs())
	}
}

func TestInstall(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer func() { s.Close() }()
	oid := proto.NewObjectID(3, 1)
	data := pattern(oid, 1)
	if err := s.Install(oid, data); err != nil {
		t.Fatal(err)
	}
	if !s.Exists(oid) || !bytes.Equal(readAll(t, s, oid), data) {
		t.Fatal("installed object does not read back")
	}
	// Zero blocks stay holes: 64 KiB of data and a block for the tail.
	if b := blocks(t, s, oid) * 512; b > 128<<10 {
		t.Fatalf("installed object takes %d bytes for 64 KiB of data", b)
	}
	if err := s.Install(oid, pattern(oid, 2)); !errors.Is(err, ErrExists) {
		t.Fatalf("second Install = %v, want ErrExists", err)
	}
	if !bytes.Equal(readAll(t, s, oid), data) {
		t.Fatal("a refused Install changed the object")
	}
	// A write got there first: its copy stays.
	other := proto.NewObjectID(3, 2)
	if err := s.WriteAt(other, []byte("written"), 10, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Install(other, pattern(other, 1)); !errors.Is(err, ErrExists) {
		t.Fatalf("Install over a written object = %v, want ErrExists", err)
	}
	if got := readAll(t, s, other); string(got[10:17]) != "written" || got[0] != 0 {
		t.Fatal("Install over a written object changed it")
	}
	if err := s.Install(proto.NewObjectID(3, 3), data[:testObjectSize-1]); !errors.Is(err, ErrRange) {
		t.Fatalf("Install of a short object = %v, want ErrRange", err)
	}
	// An all-zero object is installed too (it exists, reads zeros).
	zero := proto.NewObjectID(3, 4)
	if err := s.Install(zero, make([]byte, testObjectSize)); err != nil || !s.Exists(zero) {
		t.Fatalf("Install of zeros = %v", err)
	}
	if st := s.Stats(); st.Dirty != 1 || st.Objects != 3 { // only the written one is dirty
		t.Fatalf("stats after installs: %+v", st)
	}
	s = reopen(t, s)
	if !bytes.Equal(readAll(t, s, oid), data) || !s.Exists(zero) {
		t.Fatal("installed objects lost at reopen")
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Dir(), tmpDir)); len(ents) != 0 {
		t.Fatalf("tmp/ holds %d files after installs", len(ents))
	}
	// Writes to an installed object land in it.
	if err := s.WriteAt(oid, []byte("after"), 0, true); err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(data)
	copy(want, "after")
	if !bytes.Equal(readAll(t, s, oid), want) {
		t.Fatal("a write after Install did not land in the installed object")
	}
}

func TestInstallFailureLeavesNoTrace(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	oid := proto.NewObjectID(3, 7)
	s.syncFile = func(int) error { return unix.EIO }
	if err := s.Install(oid, pattern(oid, 1)); !errors.Is(err, unix.EIO) {
		t.Fatalf("Install on a failing disk = %v, want EIO", err)
	}
	if s.Exists(oid) || s.Stats().Objects != 0 {
		t.Fatal("a failed Install left an object")
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Dir(), tmpDir)); len(ents) != 0 {
		t.Fatalf("a failed Install left %d files in tmp/", len(ents))
	}
	s.syncFile = unix.Fdatasync
	if err := s.Install(oid, pattern(oid, 1)); err != nil || !bytes.Equal(readAll(t, s, oid), pattern(oid, 1)) {
		t.Fatalf("Install after the disk recovered = %v", err)
	}
}

func TestPruneStale(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer func() { s.Close() }()
	a, b := proto.NewObjectID(4, 0), proto.NewObjectID(4, 1)
	for _, e := range []uint64{3, 5, 7} {
		for _, oid := range []proto.ObjectID{a, b} {
			if err := s.WriteAt(oid, pattern(oid, int(e)), 0, false); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SupersedeAll(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WriteAt(a, []byte("current"), 0, false); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneStale(3); err != nil || n != 0 {
		t.Fatalf("PruneStale(3) = %d, %v; want 0", n, err)
	}
	if n, err := s.PruneStale(6); err != nil || n != 4 {
		t.Fatalf("PruneStale(6) = %d, %v; want 4", n, err)
	}
	for range 2 {
		if got := s.StaleEpochs(); !slices.Equal(got, []uint64{7}) {
			t.Fatalf("StaleEpochs after prune = %v", got)
		}
		for _, e := range []string{"3", "5"} {
			if _, err := os.Stat(filepath.Join(s.Dir(), "stale", e)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("stale/%s after prune: %v", e, err)
			}
		}
		if err := s.ReadStale(a, 5, make([]byte, testObjectSize)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("ReadStale of a pruned copy = %v", err)
		}
		if e, ok := s.StaleCopy(b, 0); !ok || e != 7 || !bytes.Equal(readStale(t, s, b, 7), pattern(b, 7)) {
			t.Fatalf("the unpruned copy: %d, %v", e, ok)
		}
		if _, ok := s.StaleCopy(a, 0); !ok {
			t.Fatal("prune took a copy it should have kept")
		}
		if st := s.Stats(); st.StaleObjects != 2 || st.Objects != 1 {
			t.Fatalf("stats after prune: %+v", st)
		}
		if got := readAll(t, s, a); string(got[:7]) != "current" {
			t.Fatal("prune touched a current object")
		}
		s = reopen(t, s)
	}
	if n, err := s.PruneStale(1 << 63); err != nil || n != 2 || s.Stats().StaleObjects != 0 || len(s.StaleEpochs()) != 0 {
		t.Fatalf("prune of everything = %d, %v, %+v", n, err, s.Stats())
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Dir(), "stale")); len(ents) != 0 {
		t.Fatalf("stale/ holds %d entries after pruning all", len(ents))
	}
	// An epoch directory left empty by a crash is pruned too, and not listed.
	os.Mkdir(filepath.Join(s.Dir(), "stale", "8"), 0o755)
	s = reopen(t, s)
	if len(s.StaleEpochs()) != 0 {
		t.Fatalf("an empty epoch dir is listed: %v", s.StaleEpochs())
	}
	if _, err := s.PruneStale(9); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "stale", "8")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("empty stale/8 after prune: %v", err)
	}
}

func TestListAll(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer func() { s.Close() }()
	rng := rand.New(rand.NewPCG(3, 4))
	all := map[proto.ObjectID]bool{}
	for e := uint64(1); e <= 4; e++ {
		for range 15 {
			oid := proto.NewObjectID(uint32(rng.IntN(3)), uint32(rng.IntN(20)))
			all[oid] = true
			if err := s.WriteAt(oid, []byte{1}, 0, false); err != nil {
				t.Fatal(err)
			}
		}
		if e < 4 { // some stay current, many are in several epochs
			for oid := range all {
				if rng.IntN(2) == 0 {
					if err := s.Supersede(oid, e); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	want := slices.Sorted(maps.Keys(all))
	if s.Stats().Objects == len(want) || s.Stats().Objects == 0 {
		t.Fatalf("test setup: %d of %d objects current", s.Stats().Objects, len(want))
	}
	for range 2 {
		for _, page := range []int{1, 2, 3, 7, 1000} {
			var got []proto.ObjectID
			cursor := proto.ObjectID(0)
			for pages := 0; ; pages++ {
				if pages > len(want)+1 {
					t.Fatalf("page %d: listing does not end", page)
				}
				ids, next, more := s.ListAll(nil, cursor, 0, page)
				if len(ids) > page || (more && len(ids) != page) {
					t.Fatalf("page of %d: %d ids, more %v", page, len(ids), more)
				}
				got = append(got, ids...)
				if !more {
					break
				}
				cursor = next
			}
			if !slices.Equal(got, want) {
				t.Fatalf("page of %d: ListAll = %v, want %v", page, got, want)
			}
		}
		// A bounded range: VDI 1 only.
		var vdi1 []proto.ObjectID
		for _, oid := range want {
			if oid.VDI() == 1 {
				vdi1 = append(vdi1, oid)
			}
		}
		got, _, more := s.ListAll([]proto.ObjectID{7}, proto.NewObjectID(1, 0), proto.NewObjectID(2, 0), 100)
		if more || !slices.Equal(got, append([]proto.ObjectID{7}, vdi1...)) {
			t.Fatalf("ListAll of VDI 1 = %v (more %v), want %v after the 7 given", got, more, vdi1)
		}
		if ids, next, more := s.ListAll(nil, 0, 0, 0); len(ids) != 0 || !more || next != want[0] {
			t.Fatalf("ListAll of 0 = %v, %v, %v", ids, next, more)
		}
		s = reopen(t, s)
	}
}

func TestOpenAcceptsRecoveryLayout(t *testing.T) {
	t.Run("new dir holding only a recovery state", func(t *testing.T) {
		dir := t.TempDir()
		if err := SaveRecoveryState(dir, RecoveryState{Epoch: 3}); err != nil {
			t.Fatal(err)
		}
		os.Mkdir(filepath.Join(dir, "stale"), 0o755)
		s := openTest(t, dir)
		s.Close()
	})
	t.Run("junk in stale is ignored", func(t *testing.T) {
		dir := t.TempDir()
		s := openTest(t, dir)
		oid := proto.NewObjectID(1, 1)
		if err := s.WriteAt(oid, []byte("x"), 0, false); err != nil {
			t.Fatal(err)
		}
		if err := s.Supersede(oid, 2); err != nil {
			t.Fatal(err)
		}
		s.Close()
		for _, junk := range []string{"stale/notanepoch/x", "stale/02/" + oid.String(), "stale/2/short", "stale/file"} {
			p := filepath.Join(dir, junk)
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte("junk"), 0o644)
		}
		s = openTest(t, dir)
		defer s.Close()
		if got := s.StaleEpochs(); !slices.Equal(got, []uint64{2}) || s.Stats().StaleObjects != 1 {
			t.Fatalf("StaleEpochs = %v, stats %+v", got, s.Stats())
		}
	})
}

func TestParseEpochName(t *testing.T) {
	for name, want := range map[string]bool{"0": true, "7": true, strconv.FormatUint(1<<64-1, 10): true,
		"": false, "07": false, "-1": false, "+1": false, "1e3": false, "18446744073709551616": false} {
		if _, ok := parseEpochName(name); ok != want {
			t.Errorf("parseEpochName(%q) ok = %v", name, ok)
		}
	}
}

func BenchmarkStaleCopy(b *testing.B) {
	s := openTest(b, b.TempDir())
	defer s.Close()
	for i := range 64 {
		oid := proto.NewObjectID(1, uint32(i))
		if err := s.WriteAt(oid, []byte{1}, 0, false); err != nil {
			b.Fatal(err)
		}
	}
	for e := uint64(1); e <= 4; e++ {
		if err := s.SupersedeAll(e); err != nil {
			b.Fatal(err)
		}
		for i := range 64 {
			if err := s.Install(proto.NewObjectID(1, uint32(i)), make([]byte, testObjectSize)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, ok := s.StaleCopy(proto.NewObjectID(1, uint32(i%64)), 2); !ok {
			b.Fatal("no stale copy")
		}
	}
}

func BenchmarkListAllPage(b *testing.B) {
	s := openTest(b, b.TempDir())
	defer s.Close()
	const n = 2048
	for i := range n {
		if err := s.WriteAt(proto.NewObjectID(1, uint32(i)), []byte{1}, 0, false); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.SupersedeWhere(1, func(oid proto.ObjectID) bool { return oid.Index()%2 == 0 }); err != nil {
		b.Fatal(err)
	}
	dst := make([]proto.ObjectID, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		ids, _, more := s.ListAll(dst[:0], 0, 0, 1024)
		if len(ids) != 1024 || !more {
			b.Fatalf("page of %d, more %v", len(ids), more)
		}
	}
}

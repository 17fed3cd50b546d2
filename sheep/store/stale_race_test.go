package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/sheep/proto"
)

// These tests race the recovery operations against I/O; run them with
// `CGO_ENABLED=1 go test -race ./sheep/store/` too.

// TestWriteRacingSupersedeLandsInExactlyOnePlace: a write acknowledged
// while an object is being superseded is either in the stale copy (it
// landed before the move) or in the new current object (it came after and
// found the object gone), whole, never lost or torn.
func TestWriteRacingSupersedeLandsInExactlyOnePlace(t *testing.T) {
	const writers, rounds, block = 4, 40, 512
	s := openTest(t, t.TempDir())
	defer s.Close()
	for round := range rounds {
		oid := proto.NewObjectID(7, uint32(round))
		epoch := uint64(round + 1)
		if err := s.WriteAt(oid, []byte("seed"), testObjectSize-4, false); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		acked := make([][]int, writers) // block indexes each writer had acknowledged
		errs := make(chan error, writers+1)
		start := make(chan struct{})
		for w := range writers {
			wg.Go(func() {
				<-start
				for i := range 16 {
					blk := w*16 + i
					if err := s.WriteAt(oid, blockOf(blk, block), int64(blk*block), i%4 == 0); err != nil {
						errs <- err
						return
					}
					acked[w] = append(acked[w], blk)
				}
			})
		}
		wg.Go(func() {
			<-start
			if err := s.Supersede(oid, epoch); err != nil {
				errs <- err
			}
		})
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		stale := readStale(t, s, oid, epoch)
		cur := readAll(t, s, oid)
		for w := range writers {
			for _, blk := range acked[w] {
				want := blockOf(blk, block)
				inStale := bytes.Equal(stale[blk*block:(blk+1)*block], want)
				inCur := bytes.Equal(cur[blk*block:(blk+1)*block], want)
				if inStale == inCur {
					t.Fatalf("round %d block %d: in stale copy %v, in current object %v; want exactly one", round, blk, inStale, inCur)
				}
			}
		}
		if string(stale[testObjectSize-4:]) != "seed" {
			t.Fatalf("round %d: the write before the race is not in the stale copy", round)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
}

func blockOf(n, size int) []byte {
	b := bytes.Repeat([]byte{byte(n + 1)}, size)
	binary.LittleEndian.PutUint32(b, uint32(n))
	return b
}

// TestInstallRacingWrite: whichever comes first, the written bytes are
// in the object afterwards; Install succeeds only if it came first.
func TestInstallRacingWrite(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	installedFirst, writtenFirst := 0, 0
	t0 := time.Now()
	if err := s.Install(proto.NewObjectID(8, 1<<31), pattern(1, 1)); err != nil {
		t.Fatal(err)
	}
	installTime := time.Since(t0)
	for round := range 60 {
		oid := proto.NewObjectID(8, uint32(round))
		pulled := pattern(oid, round)
		var installErr, writeErr error
		var wg sync.WaitGroup
		wg.Go(func() { installErr = s.Install(oid, pulled) })
		// Install copies and syncs a whole object before it checks again:
		// delay the write by up to as long, so both orders happen.
		delay := time.Duration(round%12) * installTime / 8
		wg.Go(func() {
			time.Sleep(delay)
			writeErr = s.WriteAt(oid, []byte("client write"), 100, false)
		})
		wg.Wait()
		if writeErr != nil {
			t.Fatal(writeErr)
		}
		got := readAll(t, s, oid)
		want := make([]byte, testObjectSize)
		switch {
		case installErr == nil:
			installedFirst++
			copy(want, pulled)
		case errors.Is(installErr, ErrExists):
			writtenFirst++
		default:
			t.Fatal(installErr)
		}
		copy(want[100:], "client write")
		if !bytes.Equal(got, want) {
			t.Fatalf("round %d (install err %v): object is neither install-then-write nor write-only", round, installErr)
		}
	}
	t.Logf("install first %d times, write first %d times (an install takes %v)", installedFirst, writtenFirst, installTime)
}

// TestListAllNeverMissesAMovingObject: an object held in some form all
// along is listed by every ListAll, even while it moves to stale/ or is
// installed.
func TestListAllNeverMissesAMovingObject(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	const n = 16
	for i := range n {
		if err := s.WriteAt(proto.NewObjectID(9, uint32(i)), []byte{1}, 0, false); err != nil {
			t.Fatal(err)
		}
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	wg.Go(func() {
		defer stop.Store(true)
		data := make([]byte, testObjectSize)
		data[0] = 1
		for e := uint64(1); e <= 4; e++ {
			for i := range n {
				oid := proto.NewObjectID(9, uint32(i))
				if err := s.Supersede(oid, e); err != nil {
					errs <- err
					return
				}
				if err := s.Install(oid, data); err != nil {
					errs <- err
					return
				}
			}
		}
	})
	wg.Go(func() {
		for !stop.Load() {
			var got []proto.ObjectID
			cursor := proto.ObjectID(0)
			for {
				ids, next, more := s.ListAll(got, cursor, 0, 5)
				got = ids
				if !more {
					break
				}
				cursor = next
			}
			if len(got) != n {
				errs <- fmt.Errorf("ListAll listed %d of %d objects mid-move", len(got), n)
				return
			}
		}
	})
	wg.Go(func() { // readers and stale lookups alongside
		buf := make([]byte, 1)
		for !stop.Load() {
			for i := range n {
				oid := proto.NewObjectID(9, uint32(i))
				if err := s.ReadAt(oid, buf, 0); err != nil {
					errs <- err
					return
				}
				s.StaleCopy(oid, 0)
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestStaleReadsRacingPrune: a ReadStale racing the prune of its copy
// returns the whole copy or ErrNotExist, nothing in between.
func TestStaleReadsRacingPrune(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	oid := proto.NewObjectID(10, 0)
	for e := uint64(1); e <= 30; e++ {
		if err := s.WriteAt(oid, pattern(oid, int(e)), 0, false); err != nil {
			t.Fatal(err)
		}
		if err := s.Supersede(oid, e); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Go(func() {
		for below := uint64(2); below <= 31; below++ {
			if _, err := s.PruneStale(below); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		p := make([]byte, testObjectSize)
		for e := uint64(1); e <= 30; e++ {
			err := s.ReadStale(oid, e, p)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs <- err
				return
			}
			if err == nil && !bytes.Equal(p, pattern(oid, int(e))) {
				errs <- fmt.Errorf("stale copy of epoch %d read torn while pruned", e)
				return
			}
		}
	})
	wg.Go(func() { // new copies superseded into epochs not being pruned
		other := proto.NewObjectID(10, 1)
		for e := uint64(100); e < 110; e++ {
			if err := s.WriteAt(other, []byte{byte(e)}, 0, false); err != nil {
				errs <- err
				return
			}
			if err := s.Supersede(other, e); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := s.Stats(); st.StaleObjects != 10 {
		t.Fatalf("after pruning epochs 1..30: %d stale copies, want the 10 of epochs 100..109", st.StaleObjects)
	}
}

// TestSupersedeAllRacingFlushAndWrites: with writers and flushes running,
// SupersedeAll moves whatever it finds whole; nothing deadlocks and the
// store stays consistent with its files.
func TestSupersedeAllRacingFlushAndWrites(t *testing.T) {
	s, err := Open(t.TempDir(), Options{ObjectSize: testObjectSize, MaxOpenFiles: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 2 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				oid := proto.NewObjectID(11, uint32(i%16))
				if err := s.WriteAt(oid, []byte{byte(w)}, int64(w), i%8 == 0); err != nil {
					errs <- err
					return
				}
				if i%5 == 0 {
					if err := s.Flush(); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	for e := uint64(1); e <= 20; e++ {
		if err := s.SupersedeAll(e); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	before := s.Stats()
	s = reopen(t, s)
	if after := s.Stats(); after.Objects != before.Objects || after.StaleObjects != before.StaleObjects {
		t.Fatalf("indexes disagree with the files: before reopen %+v, after %+v", before, after)
	}
}

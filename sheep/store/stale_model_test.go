package store

import (
	"bytes"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sheepblk/sheepblk/sheep/proto"
)

// storeModel is what a store should hold: current objects and stale
// copies, by content.
type storeModel struct {
	size  int
	cur   map[proto.ObjectID][]byte
	stale map[staleKey][]byte
}

func (m *storeModel) staleCopy(oid proto.ObjectID, atLeast uint64) (uint64, bool) {
	best, ok := uint64(0), false
	for k := range m.stale {
		if k.oid == oid && k.epoch >= atLeast && (!ok || k.epoch > best) {
			best, ok = k.epoch, true
		}
	}
	return best, ok
}

// verify compares every observable of s with the model.
func (m *storeModel) verify(t *testing.T, s *Store, step int, op string) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("step %d (%s): "+format, append([]any{step, op}, args...)...)
	}
	if st := s.Stats(); st.Objects != len(m.cur) || st.StaleObjects != len(m.stale) {
		fail("stats %+v, want %d objects and %d stale copies", st, len(m.cur), len(m.stale))
	}
	all := map[proto.ObjectID]bool{}
	epochs := map[uint64]bool{}
	for oid := range m.cur {
		all[oid] = true
	}
	for k := range m.stale {
		all[k.oid] = true
		epochs[k.epoch] = true
	}
	if got, _, more := s.ListAll(nil, 0, 0, 1000); more || !slices.Equal(got, slices.Sorted(maps.Keys(all))) {
		fail("ListAll = %v, want %v", got, slices.Sorted(maps.Keys(all)))
	}
	if got, _, _ := s.List(nil, 0, 0, 1000); !slices.Equal(got, slices.Sorted(maps.Keys(m.cur))) {
		fail("List = %v, want %v", got, slices.Sorted(maps.Keys(m.cur)))
	}
	if got := s.StaleEpochs(); !slices.Equal(got, slices.Sorted(maps.Keys(epochs))) {
		fail("StaleEpochs = %v, want %v", got, slices.Sorted(maps.Keys(epochs)))
	}
	buf := make([]byte, m.size)
	for oid := range all {
		want, ok := m.cur[oid]
		if !ok {
			want = make([]byte, m.size)
		}
		if s.Exists(oid) != ok {
			fail("Exists(%v) = %v", oid, !ok)
		}
		if err := s.ReadAt(oid, buf, 0); err != nil || !bytes.Equal(buf, want) {
			fail("object %v reads differently (err %v)", oid, err)
		}
		for _, atLeast := range []uint64{0, 2, 4} {
			we, wok := m.staleCopy(oid, atLeast)
			if e, ok := s.StaleCopy(oid, atLeast); e != we || ok != wok {
				fail("StaleCopy(%v, %d) = %d, %v; want %d, %v", oid, atLeast, e, ok, we, wok)
			}
		}
	}
	for k, want := range m.stale {
		if err := s.ReadStale(k.oid, k.epoch, buf); err != nil || !bytes.Equal(buf, want) {
			fail("stale copy %v@%d reads differently (err %v)", k.oid, k.epoch, err)
		}
	}
}

// TestRecoveryOpsAgainstModel runs random sequences of I/O and recovery
// operations, checking the whole store against a model after each one
// and after reopening it after each one.
func TestRecoveryOpsAgainstModel(t *testing.T) {
	const size = proto.MinObjectSize
	open := func(dir string) *Store {
		s, err := Open(dir, Options{ObjectSize: size, MaxOpenFiles: 3})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	dir := t.TempDir()
	s := open(dir)
	defer func() { s.Close() }()
	m := &storeModel{size: size, cur: map[proto.ObjectID][]byte{}, stale: map[staleKey][]byte{}}
	rng := rand.New(rand.NewPCG(5, 6))
	oids := []proto.ObjectID{proto.NewObjectID(1, 0), proto.NewObjectID(1, 1), proto.NewObjectID(2, 0), proto.NewObjectID(3, 9)}
	steps := 300
	if testing.Short() {
		steps = 60
	}
	for step := range steps {
		oid := oids[rng.IntN(len(oids))]
		epoch := uint64(rng.IntN(6))
		var op string
		switch k := rng.IntN(10); k {
		case 0, 1, 2:
			op = "write"
			off, n := rng.IntN(size), 1+rng.IntN(512)
			n = min(n, size-off)
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			if err := s.WriteAt(oid, p, int64(off), rng.IntN(2) == 0); err != nil {
				t.Fatal(err)
			}
			if m.cur[oid] == nil {
				m.cur[oid] = make([]byte, size)
			}
			copy(m.cur[oid][off:], p)
		case 3:
			op = "supersede"
			if err := s.Supersede(oid, epoch); err != nil {
				t.Fatal(err)
			}
			if b, ok := m.cur[oid]; ok {
				m.stale[staleKey{oid, epoch}] = b
				delete(m.cur, oid)
			}
		case 4:
			if rng.IntN(2) == 0 {
				op = "supersede all"
				if err := s.SupersedeAll(epoch); err != nil {
					t.Fatal(err)
				}
				for oid, b := range m.cur {
					m.stale[staleKey{oid, epoch}] = b
				}
				clear(m.cur)
				break
			}
			op = "supersede where"
			vdi := uint32(1 + rng.IntN(3))
			want := 0
			for oid, b := range m.cur {
				if oid.VDI() == vdi {
					m.stale[staleKey{oid, epoch}] = b
					delete(m.cur, oid)
					want++
				}
			}
			if n, err := s.SupersedeWhere(epoch, func(oid proto.ObjectID) bool { return oid.VDI() == vdi }); err != nil || n != want {
				t.Fatalf("step %d: SupersedeWhere = %d, %v; want %d", step, n, err, want)
			}
		case 5, 6:
			op = "install"
			data := make([]byte, size)
			if rng.IntN(3) > 0 {
				for i := range data[:rng.IntN(size)] {
					data[i] = byte(rng.Uint32())
				}
			}
			err := s.Install(oid, data)
			if _, exists := m.cur[oid]; exists != errors.Is(err, ErrExists) || (!exists && err != nil) {
				t.Fatalf("step %d: Install = %v with the object present: %v", step, err, exists)
			}
			if err == nil {
				m.cur[oid] = data
			}
		case 7:
			op = "prune"
			below := uint64(rng.IntN(7))
			want := 0
			for k := range m.stale {
				if k.epoch < below {
					delete(m.stale, k)
					want++
				}
			}
			if n, err := s.PruneStale(below); err != nil || n != want {
				t.Fatalf("step %d: PruneStale(%d) = %d, %v; want %d", step, below, n, err, want)
			}
		case 8:
			op = "remove"
			err := s.Remove(oid)
			if _, exists := m.cur[oid]; exists != (err == nil) {
				t.Fatalf("step %d: Remove = %v with the object present: %v", step, err, exists)
			}
			delete(m.cur, oid)
		case 9:
			op = "create-and-write"
			p := []byte{byte(step), 1, 2, 3}
			if err := s.CreateAndWrite(oid, p, 8, false); err != nil {
				t.Fatal(err)
			}
			m.cur[oid] = make([]byte, size)
			copy(m.cur[oid][8:], p)
		}
		m.verify(t, s, step, op)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = open(dir)
		m.verify(t, s, step, op+", reopened")
	}
}

package netns_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	sheepbackend "github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

const (
	nodes   = 3
	copies  = 3
	vdiName = "netdisk"
	vdiSize = 256 << 20
)

// TestReplicationAcrossNamespaces: three sheep processes, each in its own
// network namespace with its own address, copies=3. Random overlapping
// writes go through the client gateway; random reads, and a whole-VDI
// `dog vdi read`, return what the model says; afterwards every object
// written is a file on exactly the 3 nodes, with identical bytes that
// match the model.
func TestReplicationAcrossNamespaces(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster in network namespaces")
	}
	env := newCluster(t, clusterOptions{Nodes: nodes, Timeout: 3 * time.Minute, Copies: copies,
		NodeFlags: []string{"--log-level", "warn"}})
	env.up(all(nodes)...)
	b := env.openVDI(vdiName, vdiSize, sheepbackend.Options{
		// Content, not failure timing, is under test: a loaded host is slow.
		CallTimeout: 60 * time.Second,
	})
	vdi := b.VDI()
	if b.Size() != vdiSize || vdi.Copies != copies {
		t.Fatalf("vdi %s: size %d copies %d, want %d and %d", vdiName, b.Size(), vdi.Copies, vdiSize, copies)
	}

	// Writes: rounds of 64 extents (4 KiB..1 MiB) in distinct random 1 MiB
	// slots, 8 at a time; later rounds overwrite parts of earlier ones.
	m := newModel(vdiSize)
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	start := time.Now()
	written := 0
	for round := range 3 {
		exts := m.randomExtents(r, 64)
		parallel(t, len(exts), func(k int) error {
			e := exts[k]
			if _, err := b.WriteAt(m.bytes(e.off, e.n), e.off); err != nil {
				return fmt.Errorf("round %d: write %d bytes at %d: %w", round, e.n, e.off, err)
			}
			return nil
		})
		for _, e := range exts {
			written += e.n
		}
	}
	if err := b.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	t.Logf("wrote %d MiB in %v (%d objects touched)", written>>20, time.Since(start).Round(time.Millisecond), len(m.objects(vdi.ObjectSize)))

	// Random reads, half inside written data, half anywhere (zeros where
	// never written), compared by checksum.
	reads := make([]extent, 256)
	for k := range reads {
		n := (1 + r.IntN(2048)) * 512 // 512 B .. 1 MiB, not block aligned
		var off int64
		if k%2 == 0 {
			w := m.written[r.IntN(len(m.written))]
			off = min(w.off+int64(r.IntN(w.n/512))*512, vdiSize-int64(n))
		} else {
			off = int64(r.IntN(int(vdiSize-int64(n))/512+1)) * 512
		}
		reads[k] = extent{off: off, n: n}
	}
	parallel(t, len(reads), func(k int) error {
		e := reads[k]
		p := make([]byte, e.n)
		if _, err := b.ReadAt(p, e.off); err != nil {
			return fmt.Errorf("read %d bytes at %d: %w", e.n, e.off, err)
		}
		if sha256.Sum256(p) != sha256.Sum256(m.bytes(e.off, e.n)) {
			return fmt.Errorf("read %d bytes at %d: checksum differs from what was written", e.n, e.off)
		}
		return nil
	})

	// The whole VDI through dog, from the host namespace.
	h := sha256.New()
	if err := env.dog(h, "vdi", "read", vdiName, "--secret-file", env.secretFile); err != nil {
		t.Fatal(err)
	}
	if got, want := h.Sum(nil), m.sum(); !bytes.Equal(got, want) {
		t.Fatalf("dog vdi read: sha256 %x, want %x", got, want)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("close the backend: %v", err)
	}

	// Stop the nodes cleanly, then look at their directories.
	for i := range nodes {
		env.stop(i)
	}
	checkObjectFiles(t, m, vdi, env.dirs)
}

// checkObjectFiles: the objects written are, in every node's objects/,
// exactly the files there; each is byte-identical across the nodes and
// holds the model's bytes of its range (zeros past the file's end).
func checkObjectFiles(t *testing.T, m *model, vdi cluster.VDI, dirs []string) {
	t.Helper()
	idxs := m.objects(vdi.ObjectSize)
	var want []string // in idxs order: object ids sort as their indexes
	for _, idx := range idxs {
		want = append(want, proto.NewObjectID(vdi.ID, idx).String())
	}
	if !sort.StringsAreSorted(want) {
		t.Fatalf("object ids %v do not sort as their indexes", want)
	}
	for i, d := range dirs {
		ents, err := os.ReadDir(filepath.Join(d, "objects"))
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Fatalf("node %d holds %d objects, want exactly the %d written: missing %v, unexpected %v",
				i, len(got), len(want), minus(want, got), minus(got, want))
		}
	}
	for k, name := range want {
		var ref []byte
		for i, d := range dirs {
			data, err := os.ReadFile(filepath.Join(d, "objects", name))
			if err != nil {
				t.Fatalf("node %d: %v", i, err)
			}
			if i == 0 {
				ref = data
				continue
			}
			if !bytes.Equal(data, ref) {
				t.Fatalf("object %s: node %d's file (%d bytes) differs from node 0's (%d bytes)", name, i, len(data), len(ref))
			}
		}
		if int64(len(ref)) > vdi.ObjectSize {
			t.Fatalf("object %s: file of %d bytes, past the object size %d", name, len(ref), vdi.ObjectSize)
		}
		idx := idxs[k]
		full := append(ref, make([]byte, vdi.ObjectSize-int64(len(ref)))...)
		if !bytes.Equal(full, m.bytes(int64(idx)*vdi.ObjectSize, int(vdi.ObjectSize))) {
			t.Fatalf("object %s: the nodes agree, but not with what was written", name)
		}
	}
	t.Logf("%d objects, each on all %d nodes with identical bytes", len(want), len(dirs))
}

// minus is the sorted a without the elements of b.
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); !found {
			out = append(out, x)
		}
	}
	return out
}

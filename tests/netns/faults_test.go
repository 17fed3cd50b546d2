package netns_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	sheepbackend "github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// Parameters of TestNodeFaultsUnderLoad.
const (
	faultVDI     = "faultdisk"
	faultVDISize = 64 << 20
	faultWriters = 4
	faultPause   = 5 * time.Second // how long each fault lasts
	// faultIOTimeout is the client's request deadline: far longer than
	// any fault, so no write may fail.
	faultIOTimeout = 2 * time.Minute
)

// TestNodeFaultsUnderLoad is issue 4 §3: three sheep processes in their
// own namespaces, copies=3, checksummed writes running the whole time,
// and faults a real cluster sees, one after another:
//   - a node frozen (kill -STOP) for 5 s, then thawed (-CONT);
//   - a node's link down for 5 s, then up;
//   - a node killed (kill -9) and started again on its directory.
//
// During each fault writes stall (every object has a replica on the
// faulty node) and then continue, none fails. After each: every
// acknowledged write reads back with its checksum, and every object's
// replicas (the files in each node's objects/) are byte-identical and hold
// what was acknowledged.
func TestNodeFaultsUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster in network namespaces")
	}
	env := newCluster(t, clusterOptions{Nodes: nodes, Timeout: 10 * time.Minute, Copies: copies,
		NodeFlags: []string{"--log-level", "warn"}})
	env.up(all(nodes)...)
	b := env.openVDI(faultVDI, faultVDISize, sheepbackend.Options{
		CallTimeout: 2 * time.Second, IOTimeout: faultIOTimeout,
	})
	vdi := b.VDI()

	load := startFaultLoad(b, faultWriters)
	defer load.stop()
	load.waitWrites(t, 100)
	checkAfter := func(step string) {
		t.Helper()
		load.pause()
		defer load.resume()
		if err := load.error(); err != nil {
			t.Fatalf("%s: a write failed: %v", step, err)
		}
		if err := b.Flush(); err != nil {
			t.Fatalf("%s: flush: %v", step, err)
		}
		load.verify(t, step)
		load.checkReplicas(t, step, vdi, env.dirs)
	}
	checkAfter("before any fault")

	// A fault: writes stall meanwhile (every object has a replica on the
	// faulty node), then continue once it is over, and none fails.
	fault := func(step string, start, end func()) {
		t.Helper()
		before := load.acked()
		start()
		time.Sleep(time.Second) // writes in flight as it began may finish
		settled := load.acked()
		time.Sleep(faultPause - time.Second)
		stalled := load.acked() - settled
		end()
		t.Logf("%s: %d writes acknowledged in the fault's first second, %d after", step, settled-before, stalled)
		if stalled != 0 {
			t.Fatalf("%s: %d writes acknowledged while a replica of every object was out: the fault did not take", step, stalled)
		}
		load.waitWrites(t, 100)
		checkAfter(step)
	}
	fault("node 1 stopped for 5s (SIGSTOP, SIGCONT)",
		func() { env.signal(1, syscall.SIGSTOP) },
		func() { env.signal(1, syscall.SIGCONT) })
	fault("node 2's link down for 5s",
		func() { env.linkDown(2) },
		func() { env.linkUp(2) })
	fault("node 0 killed (SIGKILL) and started again",
		func() { env.kill(0) },
		func() { env.up(0) })
	load.stop()
	if err := load.error(); err != nil {
		t.Fatalf("a write failed: %v", err)
	}
	t.Logf("%d writes acknowledged in all", load.acked())
}

// faultLoad is writers running the whole test: each writes random
// block-aligned extents (4..64 KiB) in its own 1 MiB slots, one at a time,
// so what each block must hold is exact: the content of the last write
// acknowledged there.
type faultLoad struct {
	*load
	b       *sheepbackend.Backend
	writers int
	rngs    []*rand.Rand  // by writer
	next    atomic.Uint64 // block content tokens

	mu     sync.Mutex
	blocks map[int64]uint64 // acknowledged content, by block
}

func startFaultLoad(b *sheepbackend.Backend, writers int) *faultLoad {
	l := &faultLoad{b: b, writers: writers, blocks: map[int64]uint64{}}
	for w := range writers {
		l.rngs = append(l.rngs, rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w))))
	}
	l.load = startLoad(writers, time.Minute, l.write)
	return l
}

// write is one write of writer w, recorded once acknowledged.
func (l *faultLoad) write(w int) (int, error) {
	r := l.rngs[w]
	slots := int(l.b.Size() >> 20)
	slot := int64(r.IntN(slots/l.writers)*l.writers + w)
	n := (1 + r.IntN(16)) * blockSize
	off := slot<<20 + int64(r.IntN((1<<20-n)/blockSize+1))*blockSize
	tokens := make([]uint64, n/blockSize)
	p := make([]byte, n)
	for k := range tokens {
		tokens[k] = l.next.Add(1)
		fillBlock(p[k*blockSize:(k+1)*blockSize], tokens[k])
	}
	if _, err := l.b.WriteAt(p, off); err != nil {
		return 0, fmt.Errorf("write %d bytes at %d: %w", n, off, err)
	}
	l.mu.Lock()
	for k, tok := range tokens {
		l.blocks[off/blockSize+int64(k)] = tok
	}
	l.mu.Unlock()
	return 1, nil
}

// expected is what the VDI must hold at [off, off+n): acknowledged
// blocks, zeros elsewhere. Called while paused.
func (l *faultLoad) expected(off int64, n int) []byte {
	out := make([]byte, n)
	for blk := off / blockSize; blk*blockSize < off+int64(n); blk++ {
		if tok, ok := l.blocks[blk]; ok {
			lo := blk*blockSize - off
			fillBlock(out[lo:lo+blockSize], tok)
		}
	}
	return out
}

// verify reads every 1 MiB slot with an acknowledged write through the
// client and compares checksums. Called while paused.
func (l *faultLoad) verify(t *testing.T, step string) {
	t.Helper()
	slots := map[int64]bool{}
	for blk := range l.blocks {
		slots[blk*blockSize>>20] = true
	}
	p := make([]byte, 1<<20)
	for s := range slots {
		if _, err := l.b.ReadAt(p, s<<20); err != nil {
			t.Fatalf("%s: read slot %d: %v", step, s, err)
		}
		if sha256.Sum256(p) != sha256.Sum256(l.expected(s<<20, 1<<20)) {
			t.Fatalf("%s: slot %d (at %d) does not read back what was acknowledged", step, s, s<<20)
		}
	}
	t.Logf("%s: %d writes acknowledged so far, all %d slots written read back", step, l.acked(), len(slots))
}

// checkReplicas: every object written is a file in every node's objects/
// (copies = nodes), the files are byte-identical (zeros past a file's end
// count as the object's hole) and hold what was acknowledged. Called
// while paused, after a flush.
func (l *faultLoad) checkReplicas(t *testing.T, step string, vdi cluster.VDI, dirs []string) {
	t.Helper()
	objs := map[uint32]bool{}
	for blk := range l.blocks {
		objs[uint32(blk*blockSize/vdi.ObjectSize)] = true
	}
	idxs := make([]uint32, 0, len(objs))
	for idx := range objs {
		idxs = append(idxs, idx)
	}
	sort.Slice(idxs, func(i, j int) bool { return idxs[i] < idxs[j] })
	for _, idx := range idxs {
		name := proto.NewObjectID(vdi.ID, idx).String()
		want := l.expected(int64(idx)*vdi.ObjectSize, int(vdi.ObjectSize))
		for i, d := range dirs {
			data, err := os.ReadFile(filepath.Join(d, "objects", name))
			if errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s: object %s is missing on node %d", step, name, i)
			} else if err != nil {
				t.Fatalf("%s: node %d: %v", step, i, err)
			}
			if int64(len(data)) > vdi.ObjectSize {
				t.Fatalf("%s: object %s on node %d: %d bytes, past the object size", step, name, i, len(data))
			}
			if !bytes.Equal(data, want[:len(data)]) || !allZero(want[len(data):]) {
				t.Fatalf("%s: object %s on node %d does not hold what was acknowledged (the replicas differ)", step, name, i)
			}
		}
	}
	t.Logf("%s: %d objects, identical on all %d nodes", step, len(idxs), len(dirs))
}

func allZero(p []byte) bool {
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}

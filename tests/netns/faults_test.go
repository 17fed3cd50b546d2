package netns_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	sheepbackend "github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/rpc"
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
	env := newClusterEnv(t, nodes, 10*time.Minute)
	ctx, tn, secretFile, secret, dog := env.ctx, env.tn, env.secretFile, env.secret, env.dog
	if err := dog(io.Discard, "cluster", "format", "--copies", strconv.Itoa(copies)); err != nil {
		t.Fatal(err)
	}
	sheepBin := env.sheep()
	dirs := make([]string, nodes)
	procs := make([]*nodeProc, nodes)
	for i := range nodes {
		dirs[i] = filepath.Join(env.dir, fmt.Sprintf("node%d", i))
		procs[i] = startNode(t, ctx, tn, i, sheepBin, dirs[i], secretFile)
	}
	waitNodesUp(t, dog, procs)
	if err := dog(io.Discard, "vdi", "create", faultVDI, strconv.Itoa(faultVDISize)); err != nil {
		t.Fatal(err)
	}
	client, err := cluster.Connect(cluster.Options{Endpoints: []string{etcdURL}})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	b, err := sheepbackend.Open(ctx, sheepbackend.Options{
		Cluster: client, VDI: faultVDI,
		CallTimeout: 2 * time.Second, IOTimeout: faultIOTimeout,
		RPC: rpc.ClientOptions{Secret: secret},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
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
		load.checkReplicas(t, step, vdi, dirs)
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
	signal := func(i int, sig syscall.Signal) {
		t.Helper()
		if err := procs[i].cmd.Process.Signal(sig); err != nil {
			t.Fatalf("signal %v to node %d: %v", sig, i, err)
		}
	}
	fault("node 1 stopped for 5s (SIGSTOP, SIGCONT)",
		func() { signal(1, syscall.SIGSTOP) },
		func() { signal(1, syscall.SIGCONT) })

	veth := vethPrefix + strconv.Itoa(os.Getpid()) + "n2"
	fault("node 2's link down for 5s",
		func() {
			if err := ip("link", "set", veth, "down"); err != nil {
				t.Fatal(err)
			}
		},
		func() {
			if err := ip("link", "set", veth, "up"); err != nil {
				t.Fatal(err)
			}
		})

	fault("node 0 killed (SIGKILL) and started again",
		func() {
			signal(0, syscall.SIGKILL)
			<-procs[0].done
		},
		func() {
			procs[0] = startNode(t, ctx, tn, 0, sheepBin, dirs[0], secretFile)
			waitNodesUp(t, dog, procs)
		})
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
	b    *sheepbackend.Backend
	gate sync.RWMutex // a write holds it shared; pause takes it
	quit chan struct{}
	wg   sync.WaitGroup
	next atomic.Uint64 // block content tokens

	mu     sync.Mutex
	blocks map[int64]uint64 // acknowledged content, by block
	count  int
	err    error
	once   sync.Once
}

func startFaultLoad(b *sheepbackend.Backend, writers int) *faultLoad {
	l := &faultLoad{b: b, quit: make(chan struct{}), blocks: map[int64]uint64{}}
	for w := range writers {
		l.wg.Add(1)
		go l.write(w, writers)
	}
	return l
}

func (l *faultLoad) write(w, writers int) {
	defer l.wg.Done()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
	slots := int(l.b.Size() >> 20)
	for {
		select {
		case <-l.quit:
			return
		default:
		}
		slot := int64(r.IntN(slots/writers)*writers + w)
		n := (1 + r.IntN(16)) * blockSize
		off := slot<<20 + int64(r.IntN((1<<20-n)/blockSize+1))*blockSize
		tokens := make([]uint64, n/blockSize)
		p := make([]byte, n)
		for k := range tokens {
			tokens[k] = l.next.Add(1)
			fillBlock(p[k*blockSize:(k+1)*blockSize], tokens[k])
		}
		l.gate.RLock()
		_, err := l.b.WriteAt(p, off)
		l.gate.RUnlock()
		l.mu.Lock()
		if err != nil {
			if l.err == nil {
				l.err = fmt.Errorf("write %d bytes at %d: %w", n, off, err)
			}
			l.mu.Unlock()
			return
		}
		for k, tok := range tokens {
			l.blocks[off/blockSize+int64(k)] = tok
		}
		l.count++
		l.mu.Unlock()
	}
}

func (l *faultLoad) pause()  { l.gate.Lock() }
func (l *faultLoad) resume() { l.gate.Unlock() }

func (l *faultLoad) stop() {
	l.once.Do(func() { close(l.quit) })
	l.wg.Wait()
}

func (l *faultLoad) error() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *faultLoad) acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count
}

// waitWrites waits until n more writes were acknowledged (a minute at
// most): I/O continues.
func (l *faultLoad) waitWrites(t *testing.T, n int) {
	t.Helper()
	want := l.acked() + n
	deadline := time.Now().Add(time.Minute)
	for l.acked() < want {
		if err := l.error(); err != nil {
			t.Fatalf("a write failed: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes stalled: %d acknowledged, want %d", l.acked(), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
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
	t.Logf("%s: %d writes acknowledged so far, all %d slots written read back", step, l.count, len(slots))
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

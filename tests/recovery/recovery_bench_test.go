package recovery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	sheepbackend "github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/clustertest"
	"github.com/sheepblk/sheepblk/sheep"
)

const (
	objectSize = 4 << 20
	benchNodes = 4
	copies     = 3
	// sampleFor is how long the client's I/O rate is measured before the
	// node dies.
	sampleFor = 5 * time.Second
	ioDepth   = 16
)

// BenchmarkRecoveryUnderLoad: fill a VDI of the given size, measure the
// client's 4 KiB random I/O rate (70% reads), kill one of the four nodes
// and measure the time until the membership controller removes it (lease
// TTL + grace: writes to its objects wait meanwhile), the time until the
// cluster reports recovery complete, and the client's rate between the two
// (while the survivors re-replicate its objects). Recovery is throttled
// per node by the default (sheep.DefaultRecoveryBandwidth), by 16 MiB/s,
// or not at all.
func BenchmarkRecoveryUnderLoad(b *testing.B) {
	for _, size := range []int64{1 << 30, 4 << 30} {
		for _, bw := range []struct {
			name string
			bps  int64
		}{{"default-64MiBps", 0}, {"16MiBps", 16 << 20}, {"unlimited", -1}} {
			b.Run(fmt.Sprintf("%dGiB/%s", size>>30, bw.name), func(b *testing.B) {
				if testing.Short() {
					b.Skip("writes gigabytes")
				}
				for range b.N {
					runRecovery(b, size, bw.bps)
				}
			})
		}
	}
}

func runRecovery(b *testing.B, size, bandwidth int64) {
	b.StopTimer()
	ctx := context.Background()
	url := clustertest.Embedded(b)
	cl := clustertest.Client(b, url)
	if _, err := cl.Format(ctx, cluster.FormatOptions{Copies: copies, ObjectSize: objectSize, MemberGrace: time.Second}); err != nil {
		b.Fatal(err)
	}
	nodes := make([]*sheep.Node, benchNodes)
	for i := range nodes {
		nodes[i] = startNode(b, url, fmt.Sprintf("n%d", i), bandwidth)
	}
	waitFor(b, "all nodes members with recovery complete", func() (bool, error) {
		e, err := cl.Epoch(ctx)
		if err != nil || len(e.Members) != benchNodes {
			return false, err
		}
		done, err := cl.LastComplete(ctx)
		return done == e.Number, err
	})
	if _, err := cl.CreateVDI(ctx, cluster.CreateVDIOptions{Name: "bench", Size: size}); err != nil {
		b.Fatal(err)
	}
	be, err := sheepbackend.Open(ctx, sheepbackend.Options{Cluster: cl, VDI: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()

	fill(b, be, size)
	before := measureIOPS(b, be, size, func(t time.Duration) bool { return t < sampleFor })

	// The node dies; the clock runs until every survivor reports the new
	// epoch recovered.
	start := time.Now()
	b.StartTimer()
	if err := nodes[benchNodes-1].Close(); err != nil {
		b.Logf("close the victim: %v", err)
	}
	// Until the membership controller removes it (lease TTL + grace),
	// writes to its objects wait; that stall is reported apart.
	waitFor(b, "the dead node removed", func() (bool, error) {
		e, err := cl.Epoch(ctx)
		return err == nil && len(e.Members) == benchNodes-1, err
	})
	stall := time.Since(start)
	var recovered atomic.Bool
	var took time.Duration
	go func() {
		waitFor(b, "recovery after the node died", func() (bool, error) {
			e, err := cl.Epoch(ctx)
			if err != nil {
				return false, err
			}
			done, err := cl.LastComplete(ctx)
			return done == e.Number, err
		})
		took = time.Since(start)
		recovered.Store(true)
	}()
	during := measureIOPS(b, be, size, func(time.Duration) bool { return !recovered.Load() })
	b.StopTimer()
	var moved int64
	for _, n := range nodes[:benchNodes-1] {
		moved += n.Recovery().Bytes
	}
	b.ReportMetric(stall.Seconds(), "removal-s")
	b.ReportMetric(took.Seconds(), "recovery-s")
	b.ReportMetric(float64(moved)/1e6/(took-stall).Seconds(), "recovered-MB/s")
	b.ReportMetric(before, "iops-before")
	b.ReportMetric(during, "iops-during")
	b.ReportMetric(during/before, "during/before")
	b.Logf("node removed after %v; %d MiB of objects re-replicated, complete %v after the kill; client 4k IOPS %.0f before, %.0f during recovery (%.2fx)",
		stall.Round(time.Millisecond), moved>>20, took.Round(time.Millisecond), before, during, during/before)
}

func startNode(b *testing.B, url, id string, bandwidth int64) *sheep.Node {
	b.Helper()
	cl := clustertest.Client(b, url)
	n, err := sheep.NewNode(sheep.Options{Dir: b.TempDir(), ID: id, Cluster: cl, RegisterTTL: 2 * time.Second,
		RecoveryBandwidth: bandwidth, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = n.Serve(l) }()
	b.Cleanup(func() { _ = n.Close() })
	return n
}

// fill writes every object of the VDI whole, 8 at a time.
func fill(b *testing.B, be *sheepbackend.Backend, size int64) {
	b.Helper()
	var g errgroup.Group
	g.SetLimit(8)
	for off := int64(0); off < size; off += objectSize {
		g.Go(func() error {
			p := make([]byte, objectSize)
			r := rand.New(rand.NewPCG(uint64(off), 1))
			for i := 0; i+8 <= len(p); i += 8 {
				v := r.Uint64()
				for j := range 8 {
					p[i+j] = byte(v >> (8 * j))
				}
			}
			_, err := be.WriteAt(p, off)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatalf("fill the VDI: %v", err)
	}
}

// measureIOPS runs ioDepth workers of 4 KiB random reads (70%) and writes
// while more(elapsed) holds, and returns the rate. Any I/O error fails the
// benchmark: recovery must not cost the client errors.
func measureIOPS(b *testing.B, be *sheepbackend.Backend, size int64, more func(time.Duration) bool) float64 {
	b.Helper()
	start := time.Now()
	var ops atomic.Int64
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	for w := range ioDepth {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			p := make([]byte, 4096)
			for more(time.Since(start)) {
				off := r.Int64N(size/4096) * 4096
				var err error
				if r.IntN(10) < 7 {
					_, err = be.ReadAt(p, off)
				} else {
					_, err = be.WriteAt(p, off)
				}
				if err != nil {
					errMu.Lock()
					firstErr = errors.Join(firstErr, fmt.Errorf("4k I/O at %d: %w", off, err))
					errMu.Unlock()
					return
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	return float64(ops.Load()) / time.Since(start).Seconds()
}

func waitFor(b *testing.B, what string, cond func() (bool, error)) {
	deadline := time.Now().Add(10 * time.Minute)
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			b.Errorf("timed out waiting for %s (last error: %v)", what, last)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

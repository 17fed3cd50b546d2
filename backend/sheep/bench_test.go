package sheep_test

import (
	"fmt"
	"testing"

	"github.com/sheepblk/sheepblk/backend"
)

// BenchmarkSubmit drives the async interface the way a ublk queue does:
// a fixed set of requests (tags) kept in flight against a 3-node, 3-copy
// cluster on loopback. allocs/op counts the whole process: the client and
// the rpc transport, but also the in-process nodes (their per-request
// work, e.g. epoch admission) and the embedded etcd, which show up as
// allocs/op of their own; a memory profile (-memprofile, -memprofilerate 1,
// pprof -sample_index=alloc_objects -focus 'backend/sheep') shows the client
// itself allocating only in Open.
func BenchmarkSubmit(b *testing.B) {
	c := startCluster(b, 3, 3)
	createVDI(b, c, "disk", 1<<30)
	be := open(b, c, "disk")
	for _, op := range []backend.Op{backend.OpWrite, backend.OpRead} {
		for _, size := range []int{4 << 10, 128 << 10} {
			b.Run(fmt.Sprintf("%v/%dKiB", op, size>>10), func(b *testing.B) {
				const depth = 32
				done := make(waiter, depth)
				reqs := make([]*backend.Request, depth)
				for i := range reqs {
					reqs[i] = &backend.Request{Op: op, Length: size, Buf: make([]byte, size)}
					reqs[i].Bind(done, uint16(i))
				}
				next := int64(0)
				place := func(r *backend.Request) {
					r.Offset = (next * int64(size)) % be.Size()
					next++
				}
				// Warm up: connections, buffers, every object touched once.
				for _, r := range reqs {
					place(r)
					be.Submit(r)
				}
				for range depth {
					<-done
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				inflight := 0
				for _, r := range reqs {
					if inflight == b.N {
						break
					}
					place(r)
					be.Submit(r)
					inflight++
				}
				submitted := inflight
				for inflight > 0 {
					r := <-done
					inflight--
					if r.Result < 0 {
						b.Fatalf("%v failed: %d", op, r.Result)
					}
					if submitted < b.N {
						place(r)
						be.Submit(r)
						submitted++
						inflight++
					}
				}
			})
		}
	}
}

package sheep

import (
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkRecovery measures background recovery between nodes on
// loopback, unthrottled: n1 holds b.N objects of 1 MiB (one copy each);
// n2 joins and pulls those now placed on it. Reported: objects/s and MB/s
// recovered (about half of b.N objects move).
func BenchmarkRecovery(b *testing.B) {
	b.StopTimer()
	const size = 1 << 20
	tc := newTestClusterSized(b, 1, time.Minute, size)
	tc.start("n1", -1)
	e := tc.waitMembers("n1")
	tc.waitRecovered(e)
	tc.createVDI(b.N)
	rng := rand.New(rand.NewPCG(7, 8))
	block := randBytes(rng, size)
	for i := range b.N {
		block[0], block[1] = byte(i), byte(i>>8)
		tc.write(e, i, block, 0)
	}
	b.ReportAllocs()
	b.StartTimer()
	start := time.Now()
	tc.start("n2", -1)
	e = tc.waitMembers("n1", "n2")
	tc.waitRecovered(e)
	took := time.Since(start)
	b.StopTimer()
	p := tc.node("n2").Recovery()
	b.ReportMetric(float64(p.Done)/took.Seconds(), "objects/s")
	b.ReportMetric(float64(p.Bytes)/1e6/took.Seconds(), "MB/s")
	tc.verify(e, b.N)
}

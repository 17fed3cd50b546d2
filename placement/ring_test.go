package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func equalNodes(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{ID: NodeID(fmt.Sprintf("node-%03d", i)), Capacity: 1 << 40}
	}
	return nodes
}

func mustRing(t testing.TB, nodes []Node) *Ring {
	t.Helper()
	r, err := New(nodes)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// oids are object ids the way VDIs make them: a few VDIs, sequential
// object indexes.
func oids(n int) []uint64 {
	out := make([]uint64, 0, n)
	for vdi := uint64(1); len(out) < n; vdi++ {
		for idx := uint64(0); idx < 10000 && len(out) < n; idx++ {
			out = append(out, vdi<<32|idx)
		}
	}
	return out
}

func TestNewRejectsBadNodeSets(t *testing.T) {
	if _, err := New([]Node{{ID: "a"}, {ID: "a"}}); err == nil {
		t.Error("duplicate ids accepted")
	}
	if _, err := New([]Node{{ID: ""}}); err == nil {
		t.Error("empty id accepted")
	}
	r := mustRing(t, nil)
	if got := r.Replicas(1, 3, nil); len(got) != 0 {
		t.Errorf("empty ring gave %v", got)
	}
}

func TestReplicasDistinct(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 30} {
		r := mustRing(t, equalNodes(n))
		for _, oid := range oids(20000) {
			got := r.Replicas(oid, 3, nil)
			if want := min(3, n); len(got) != want {
				t.Fatalf("%d nodes: %d replicas of %x, want %d", n, len(got), oid, want)
			}
			seen := map[NodeID]bool{}
			for _, id := range got {
				if seen[id] {
					t.Fatalf("%d nodes: replicas of %x repeat %s: %v", n, oid, id, got)
				}
				seen[id] = true
			}
		}
	}
}

func TestZoneSpread(t *testing.T) {
	// 3 zones of 4 nodes: every object's 3 copies in 3 different zones.
	var nodes []Node
	for z := 0; z < 3; z++ {
		for i := 0; i < 4; i++ {
			nodes = append(nodes, Node{ID: NodeID(fmt.Sprintf("z%d-n%d", z, i)), Zone: fmt.Sprintf("rack%d", z)})
		}
	}
	zoneOf := map[NodeID]string{}
	for _, n := range nodes {
		zoneOf[n.ID] = n.Zone
	}
	r := mustRing(t, nodes)
	if r.Zones() != 3 {
		t.Fatalf("zones = %d", r.Zones())
	}
	perZone := map[string]int{}
	for _, oid := range oids(20000) {
		got := r.Replicas(oid, 3, nil)
		zones := map[string]bool{}
		for _, id := range got {
			zones[zoneOf[id]] = true
			perZone[zoneOf[id]]++
		}
		if len(got) != 3 || len(zones) != 3 {
			t.Fatalf("replicas of %x = %v: zones %v, want 3 distinct", oid, got, zones)
		}
	}
	// Fewer zones than copies: still distinct nodes, both zones used.
	r2 := mustRing(t, nodes[:8]) // rack0 and rack1 only
	for _, oid := range oids(5000) {
		got := r2.Replicas(oid, 3, nil)
		zones := map[string]bool{}
		nodesSeen := map[NodeID]bool{}
		for _, id := range got {
			zones[zoneOf[id]] = true
			nodesSeen[id] = true
		}
		if len(got) != 3 || len(nodesSeen) != 3 || len(zones) != 2 {
			t.Fatalf("2 zones, replicas of %x = %v: want 3 distinct nodes over both zones", oid, got)
		}
	}
}

func TestDeterministicAcrossOrderings(t *testing.T) {
	nodes := equalNodes(17)
	nodes[3].Zone, nodes[9].Zone = "a", "a"
	nodes[5].Capacity = 3 << 40
	ref := mustRing(t, nodes)
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 5; trial++ {
		shuffled := slices.Clone(nodes)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		r := mustRing(t, shuffled)
		for _, oid := range oids(5000) {
			a, b := ref.Replicas(oid, 3, nil), r.Replicas(oid, 3, nil)
			if !slices.Equal(a, b) {
				t.Fatalf("trial %d: replicas of %x differ: %v vs %v", trial, oid, a, b)
			}
		}
	}
}

// counts is how many primaries and how many replicas each node got.
func counts(r *Ring, objects []uint64, copies int) map[NodeID]int {
	c := map[NodeID]int{}
	dst := make([]NodeID, 0, copies)
	for _, oid := range objects {
		for _, id := range r.Replicas(oid, copies, dst) {
			c[id]++
		}
	}
	return c
}

func TestBalanceEqualNodes(t *testing.T) {
	for _, n := range []int{3, 10, 30} {
		// Small nodes (a cluster on one test disk) balance as well.
		small := equalNodes(n)
		for i := range small {
			small[i].Capacity = 80 << 30
		}
		r := mustRing(t, small)
		objects := oids(100000)
		c := counts(r, objects, 3)
		mean := float64(len(objects)*min(3, n)) / float64(n)
		for id, k := range c {
			// MaxVnodes per node: shares within +-20% of the mean (seen: under 12%).
			if dev := float64(k)/mean - 1; dev > 0.20 || dev < -0.20 {
				t.Errorf("%d nodes: %s holds %d replicas, mean %.0f (%+.0f%%)", n, id, k, mean, dev*100)
			}
		}
		if len(c) != n {
			t.Errorf("%d nodes: only %d hold anything", n, len(c))
		}
	}
}

func TestWeighting(t *testing.T) {
	nodes := equalNodes(10)
	nodes[0].Capacity = 4 << 40 // four times the others
	r := mustRing(t, nodes)
	c := counts(r, oids(100000), 1)
	others := 0
	for _, n := range nodes[1:] {
		others += c[n.ID]
	}
	ratio := float64(c[nodes[0].ID]) / (float64(others) / 9)
	if ratio < 3.2 || ratio > 4.8 {
		t.Fatalf("a 4x node holds %.2fx the average of the others, want ~4", ratio)
	}
	if VnodesFor(1, 1<<40) != MinVnodes || VnodesFor(0, 0) != MaxVnodes || VnodesFor(1<<62, 1<<40) != MaxVnodes || VnodesFor(1<<39, 1<<40) != MaxVnodes/2 {
		t.Fatal("VnodesFor bounds")
	}
}

// moved counts objects whose replica set changed in membership.
func moved(a, b *Ring, objects []uint64, copies int) (objectsMoved, replicasMoved int) {
	for _, oid := range objects {
		x, y := a.Replicas(oid, copies, nil), b.Replicas(oid, copies, nil)
		changed := 0
		for _, id := range x {
			if !slices.Contains(y, id) {
				changed++
			}
		}
		if changed > 0 {
			objectsMoved++
		}
		replicasMoved += changed
	}
	return objectsMoved, replicasMoved
}

func TestMinimalMovement(t *testing.T) {
	const n = 10
	objects := oids(50000)
	base := mustRing(t, equalNodes(n))
	grown := mustRing(t, equalNodes(n+1))
	shrunk := mustRing(t, equalNodes(n)[1:])
	for _, c := range []struct {
		name string
		to   *Ring
		frac float64 // the ideal share of replicas that must move
	}{
		{"add one node", grown, 1.0 / (n + 1)},
		{"remove one node", shrunk, 1.0 / n},
	} {
		for _, copies := range []int{1, 3} {
			_, reps := moved(base, c.to, objects, copies)
			got := float64(reps) / float64(len(objects)*copies)
			// Consistent hashing moves about the ideal share; a naive
			// modulo placement would move ~90%.
			if got > c.frac*1.5 || got < c.frac*0.5 {
				t.Errorf("%s, %d copies: %.1f%% of replicas moved, ideal %.1f%%", c.name, copies, got*100, c.frac*100)
			}
		}
	}
}

func TestReplicaIndexesMatchReplicas(t *testing.T) {
	r := mustRing(t, equalNodes(7))
	idx := make([]int, 0, 3)
	for _, oid := range oids(1000) {
		ids := r.Replicas(oid, 3, nil)
		idx = r.ReplicaIndexes(oid, 3, idx)
		for i := range ids {
			if r.Nodes()[idx[i]].ID != ids[i] {
				t.Fatalf("index %d of %x: %v vs %v", i, oid, idx, ids)
			}
		}
		if i, ok := r.Index(ids[0]); !ok || i != idx[0] {
			t.Fatalf("Index(%s) = %d, %v", ids[0], i, ok)
		}
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	r := mustRing(t, equalNodes(30))
	dst := make([]NodeID, 0, 3)
	idx := make([]int, 0, 3)
	allocs := testing.AllocsPerRun(1000, func() {
		dst = r.Replicas(12345, 3, dst)
		idx = r.ReplicaIndexes(12345, 3, idx)
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per lookup", allocs)
	}
}

func BenchmarkReplicas(b *testing.B) {
	for _, n := range []int{3, 30, 300} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			r := mustRing(b, equalNodes(n))
			dst := make([]NodeID, 0, 3)
			b.ReportAllocs()
			oid := uint64(7) << 32
			for b.Loop() {
				dst = r.Replicas(oid, 3, dst)
				oid++
			}
		})
	}
}

func BenchmarkReplicasZoned(b *testing.B) {
	nodes := equalNodes(300)
	for i := range nodes {
		nodes[i].Zone = fmt.Sprint("rack", i%10)
	}
	r := mustRing(b, nodes)
	dst := make([]NodeID, 0, 3)
	b.ReportAllocs()
	oid := uint64(7) << 32
	for b.Loop() {
		dst = r.Replicas(oid, 3, dst)
		oid++
	}
}

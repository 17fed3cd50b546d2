package placement

import (
	"fmt"
	"sort"
)

// NodeID names a node; placement hashes it, so it must be stable.
type NodeID string

// Node is a storage node as placement sees it.
type Node struct {
	ID NodeID
	// Zone is the failure zone; "" means the node is a zone of its own.
	Zone string
	// Capacity in bytes weights the node's share of objects; 0 counts as
	// DefaultCapacity.
	Capacity int64
}

const (
	// MaxVnodes virtual nodes go to the largest node of a ring: enough for
	// shares within ~10% of the ideal among equal nodes.
	MaxVnodes = 256
	// MinVnodes keeps tiny nodes on the ring at all (with a coarse share).
	MinVnodes = 8
	// DefaultCapacity is assumed for a node that declares none.
	DefaultCapacity = 1 << 40
)

// Ring maps object ids to nodes. It is immutable and safe for concurrent use.
type Ring struct {
	nodes  []Node  // sorted by ID
	zoneOf []int32 // node index -> zone index
	zones  int     // distinct zones
	points []uint64
	owner  []int32 // points[i] belongs to nodes[owner[i]]
}

// VnodesFor is the number of virtual nodes a node of this capacity gets in
// a ring whose largest node has maxCapacity: proportional, MaxVnodes for
// the largest. Weights are relative so that small nodes (a test cluster
// on one disk) balance as well as large ones; the price is that when the
// largest capacity in the ring changes, every node's share is rescaled.
func VnodesFor(capacity, maxCapacity int64) int {
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	if maxCapacity < capacity {
		maxCapacity = capacity
	}
	// In floating point: the ratio is what matters, exactness is not.
	v := int(float64(capacity)/float64(maxCapacity)*MaxVnodes + 0.5)
	return min(max(v, MinVnodes), MaxVnodes)
}

// New builds the ring of a node set. Node ids must be unique and non-empty.
func New(nodes []Node) (*Ring, error) {
	r := &Ring{nodes: append([]Node(nil), nodes...)}
	sort.Slice(r.nodes, func(i, j int) bool { return r.nodes[i].ID < r.nodes[j].ID })
	zoneIdx := map[string]int32{}
	r.zoneOf = make([]int32, len(r.nodes))
	var maxCap int64
	for _, n := range r.nodes {
		c := n.Capacity
		if c <= 0 {
			c = DefaultCapacity
		}
		maxCap = max(maxCap, c)
	}
	total := 0
	for i, n := range r.nodes {
		if n.ID == "" {
			return nil, fmt.Errorf("placement: node %d has an empty id", i)
		}
		if i > 0 && r.nodes[i-1].ID == n.ID {
			return nil, fmt.Errorf("placement: node id %q appears twice", n.ID)
		}
		zone := "zone:" + n.Zone
		if n.Zone == "" {
			zone = "node:" + string(n.ID) // its own zone
		}
		z, ok := zoneIdx[zone]
		if !ok {
			z = int32(len(zoneIdx))
			zoneIdx[zone] = z
		}
		r.zoneOf[i] = z
		total += VnodesFor(n.Capacity, maxCap)
	}
	r.zones = len(zoneIdx)
	type vnode struct {
		point uint64
		owner int32
	}
	vnodes := make([]vnode, 0, total)
	for i, n := range r.nodes {
		base := hashString(string(n.ID))
		for v := range VnodesFor(n.Capacity, maxCap) {
			vnodes = append(vnodes, vnode{mix64(base + uint64(v+1)*golden), int32(i)})
		}
	}
	// Ties (astronomically rare) are broken by node id order, so the ring
	// is the same whatever order the nodes came in.
	sort.Slice(vnodes, func(i, j int) bool {
		if vnodes[i].point != vnodes[j].point {
			return vnodes[i].point < vnodes[j].point
		}
		return vnodes[i].owner < vnodes[j].owner
	})
	r.points = make([]uint64, len(vnodes))
	r.owner = make([]int32, len(vnodes))
	for i, v := range vnodes {
		r.points[i], r.owner[i] = v.point, v.owner
	}
	return r, nil
}

// Nodes are the ring's nodes, sorted by ID; indexes returned by
// ReplicaIndexes refer to this slice. Do not modify it.
func (r *Ring) Nodes() []Node { return r.nodes }

// Len is the number of nodes.
func (r *Ring) Len() int { return len(r.nodes) }

// Zones is the number of distinct failure zones.
func (r *Ring) Zones() int { return r.zones }

// Index finds a node's index in Nodes.
func (r *Ring) Index(id NodeID) (int, bool) {
	i := sort.Search(len(r.nodes), func(i int) bool { return r.nodes[i].ID >= id })
	return i, i < len(r.nodes) && r.nodes[i].ID == id
}

// Replicas appends to dst[:0] the nodes that hold object oid, primary
// first: min(copies, Len()) distinct nodes, in distinct zones as far as the
// zones allow. With cap(dst) >= copies it allocates nothing.
func (r *Ring) Replicas(oid uint64, copies int, dst []NodeID) []NodeID {
	var idx [32]int
	n := r.replicaIndexes(oid, copies, idx[:0])
	dst = dst[:0]
	for _, i := range n {
		dst = append(dst, r.nodes[i].ID)
	}
	return dst
}

// ReplicaIndexes is Replicas giving indexes into Nodes, for callers that
// keep per-node state in a slice.
func (r *Ring) ReplicaIndexes(oid uint64, copies int, dst []int) []int {
	return r.replicaIndexes(oid, copies, dst[:0])
}

func (r *Ring) replicaIndexes(oid uint64, copies int, dst []int) []int {
	want := min(copies, len(r.nodes))
	if want <= 0 {
		return dst
	}
	start := r.search(mix64(oid))
	// Pass 1: walk clockwise taking nodes of zones not yet used, until as
	// many zones as can be had. Pass 2 (only when zones < copies): fill
	// up with distinct nodes, again clockwise from the same point.
	wantZones := min(want, r.zones)
	for i := 0; len(dst) < wantZones && i < len(r.points); i++ {
		o := int(r.owner[(start+i)%len(r.points)])
		if !r.zoneTaken(dst, o) {
			dst = append(dst, o)
		}
	}
	for i := 0; len(dst) < want && i < len(r.points); i++ {
		o := int(r.owner[(start+i)%len(r.points)])
		if !taken(dst, o) {
			dst = append(dst, o)
		}
	}
	return dst
}

func (r *Ring) zoneTaken(dst []int, node int) bool {
	z := r.zoneOf[node]
	for _, d := range dst {
		if r.zoneOf[d] == z {
			return true
		}
	}
	return false
}

func taken(dst []int, node int) bool {
	for _, d := range dst {
		if d == node {
			return true
		}
	}
	return false
}

// search is the index of the first point >= h, wrapping to 0.
func (r *Ring) search(h uint64) int {
	lo, hi := 0, len(r.points)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.points[m] < h {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(r.points) {
		return 0
	}
	return lo
}

const golden = 0x9e3779b97f4a7c15

// mix64 is the splitmix64 finalizer: a bijection with full avalanche, so
// consecutive object ids land all over the ring.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// hashString is FNV-1a 64, mixed.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix64(h)
}

package cluster

import "github.com/sheepblk/sheepblk/placement"

// Ring is the placement ring of the epoch's members: T(E,X), the targets
// of object X, are Ring().Replicas(X, min(copies, len(Members))).
func (e Epoch) Ring() (*placement.Ring, error) {
	nodes := make([]placement.Node, len(e.Members))
	for i, m := range e.Members {
		nodes[i] = placement.Node{ID: placement.NodeID(m.ID), Zone: m.Zone, Capacity: m.Capacity}
	}
	return placement.New(nodes)
}

// Package placement decides which storage nodes hold each object: consistent
// hashing of object ids onto virtual nodes, weighted by capacity, with
// `copies` distinct nodes per object in distinct failure zones when the
// nodes declare enough zones.
//
// Every client and node that knows the same node set computes the same
// placement (the ring depends only on the nodes' ids, zones and
// capacities, not on their order), and adding or removing one node of N
// moves only about 1/N of the objects. Lookups allocate nothing.
package placement

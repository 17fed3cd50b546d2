// Package cluster keeps the cluster's shared state in etcd: the settings
// written once by `dog cluster format`, the live storage nodes (each
// registered under a lease that expires when the node dies), the placement
// epoch (which nodes objects are placed on), and the VDI table.
//
// Key layout, under a prefix (default "/sheepblk/"), all values JSON:
//
//	<prefix>cluster                  Settings (written by Format)
//	<prefix>nodes/<node id>          Node, attached to the node's lease
//	<prefix>epoch                    Epoch: members, and while a recovery is
//	                                 pending, the membership the data is on
//	<prefix>vdis/<name>              VDI
//	<prefix>vdi-ids/<id %06x>        the VDI name owning that id
//	<prefix>next-vdi-id              the next VDI id to hand out (never decreases)
//	<prefix>vdi-open/<name>/<lease>  a client has the VDI open (under its lease)
//
// Membership is deliberately sticky: a node that dies stays a member (reads
// fail over, writes to its objects fail) and a node new to a cluster that
// holds VDIs is a spare; only an operator changes placement (`dog node
// join/remove`), and the data keeps its placement until `dog cluster
// recover` has moved it. So no read is ever sent to a node that lacks the
// object (it would read as zeros).
//
// Every change that must be atomic (format, VDI create/delete/resize) is one
// etcd transaction guarded by the revisions it read, retried on conflict, so
// two clients racing never both win and a VDI id is never handed out twice.
package cluster

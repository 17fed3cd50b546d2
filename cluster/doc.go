// Package cluster keeps the cluster's shared state in etcd: the settings
// written once by `dog cluster format`, the live storage nodes (each
// registered under a lease that expires when the node dies), and the VDI
// table.
//
// Key layout, under a prefix (default "/sheepblk/"), all values JSON:
//
//	<prefix>cluster            Settings (written by Format)
//	<prefix>nodes/<node id>    Node, attached to the node's lease
//	<prefix>vdis/<name>        VDI
//	<prefix>vdi-ids/<id %06x>  the VDI name owning that id
//	<prefix>next-vdi-id        the next VDI id to hand out (never decreases)
//
// Every change that must be atomic (format, VDI create/delete/resize) is one
// etcd transaction guarded by the revisions it read, retried on conflict, so
// two clients racing never both win and a VDI id is never handed out twice.
package cluster

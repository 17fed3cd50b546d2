// Package cluster keeps the cluster's shared state in etcd: the settings
// written once by `dog cluster format`, the live storage nodes (each
// registered under a lease that expires when the node dies), the epochs
// (which nodes objects are placed on, and the history of every earlier
// membership), the nodes' recovery progress, and the VDI table.
//
// Key layout, under a prefix (default "/sheepblk/"), all values JSON:
//
//	<prefix>cluster                  Settings (written by Format)
//	<prefix>nodes/<node id>          Node, attached to the node's lease
//	<prefix>epoch                    Epoch: the current membership
//	<prefix>epochs/<number %020d>    Epoch: every membership ever, written in
//	                                 the same transaction as epoch
//	<prefix>recovery/<node id>       RecoveryStatus: the node's last report
//	                                 (not lease-bound: outlives the node)
//	<prefix>recovery-complete        decimal: the greatest epoch every one
//	                                 of whose members finished recovering
//	<prefix>vdis/<name>              VDI
//	<prefix>vdi-ids/<id %06x>        the VDI name owning that id
//	<prefix>next-vdi-id              the next VDI id to hand out (never decreases)
//	<prefix>vdi-open/<name>/<lease>  a client has the VDI open (under its lease)
//
// Membership is automatic: every node runs the membership controller
// (RunMembership), which adds registered nodes and removes members that
// have been unregistered for the member grace; each change is a new epoch.
// Nodes then recover (pull) the objects the new placement gives them,
// report progress under recovery/, and once all have finished the epoch
// is marked recovery-complete (MarkComplete). Registering alone never
// changes the membership.
//
// Every change that must be atomic (format, epoch change, VDI
// create/delete/resize, recovery-complete) is one etcd transaction guarded
// by the revisions it read, retried on conflict, so two clients racing
// never both win and a VDI id is never handed out twice.
package cluster

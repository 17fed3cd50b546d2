// Package store keeps a sheep node's objects on its local disk: one sparse
// file per object under objects/, named by the object id in hex.
//
// The directory carries a small format file (format.json: format name,
// version, object size) written when the store is created and checked at
// every open, so a node never serves a directory of another format or
// another object size; it is flock'ed while open, so two nodes never share
// one. CreateAndWrite stages a whole new object in tmp/ and renames it into
// place; tmp/ is emptied at open.
//
// Durability follows a disk with a volatile cache: a write is durable once
// Flush returns (Flush fdatasyncs every object written since the last
// Flush, and the objects directory if entries changed), or at once when it
// was written with FUA. Reads of ranges never written, and of objects that
// do not exist, return zeros. Open file descriptors are kept in a bounded
// LRU cache so hot objects are not reopened per I/O. ReadAtNoWait reads
// only what the page cache holds (preadv2 RWF_NOWAIT) and says when a
// read would wait for the disk, for a caller that must not wait (the
// node's connection reader).
//
// For online recovery the store also keeps superseded copies: presence in
// objects/ means "valid at the node's current epoch"; a copy that stops
// being current (the node is no longer one of the object's targets, or
// left the membership) is moved by Supersede to stale/<epoch>/<oid>, where
// epoch is the last epoch it was valid in. Recovery reads such copies
// (StaleCopy, ReadStale), installs pulled objects (Install: only if no
// write got there first), lists every object held in any form (ListAll)
// and deletes stale copies once the cluster agrees recovery is complete
// (PruneStale). Every move is a rename made durable before it returns, so
// a crash never leaves an object in neither place or half-installed.
// recovery-state.json (LoadRecoveryState, SaveRecoveryState) is the
// node's recovery progress, written atomically.
package store

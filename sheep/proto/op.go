package proto

import "fmt"

// Version is the protocol version every message starts with.
const Version = 1

// Op is a request's operation.
type Op uint8

const (
	OpRead           Op = iota + 1 // read Length bytes at Offset; absent data reads as zeros
	OpWrite                        // write the body at Offset, creating the object if needed
	OpCreateAndWrite               // replace the object with a new one holding only the body at Offset
	OpRemove                       // delete the object
	OpDiscard                      // forget [Offset, Offset+Length): it reads as zeros afterwards
	OpFlush                        // make every acknowledged write on the node durable
	OpListObjects                  // list object ids in [Object, Aux) (Aux 0: no bound), at most Length of them
	OpNodeInfo                     // describe the node (NodeInfo in the body)
	// OpReadPeer reads a whole object for a recovering peer: Epoch is the
	// epoch the caller wants the object as of (an argument, not checked
	// against the node's), Offset 0, Length the object size. The reply is
	// the object (OK), an authoritative NotFound, or NotReady ("cannot
	// say"); its Aux is the epoch the returned copy is valid through.
	OpReadPeer
	numOp
)

var opNames = [...]string{
	OpRead:           "read",
	OpWrite:          "write",
	OpCreateAndWrite: "create-and-write",
	OpRemove:         "remove",
	OpDiscard:        "discard",
	OpFlush:          "flush",
	OpListObjects:    "list-objects",
	OpNodeInfo:       "node-info",
	OpReadPeer:       "read-peer",
}

func (o Op) String() string {
	if o > 0 && o < numOp {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Known reports whether o is an operation this version defines.
func (o Op) Known() bool { return o > 0 && o < numOp }

// IsDataOp reports whether o touches one object's data, and so is bound to
// the cluster epoch. OpReadPeer is not: its epoch is an argument.
func (o Op) IsDataOp() bool {
	switch o {
	case OpRead, OpWrite, OpCreateAndWrite, OpRemove, OpDiscard:
		return true
	}
	return false
}

// IsUpdate reports whether o changes an object's data: the ops whose Aux
// is a write id (Request.WriteID).
func (o Op) IsUpdate() bool {
	return o == OpWrite || o == OpCreateAndWrite || o == OpDiscard
}

// Flags modify a request.
type Flags uint16

const (
	// FlagFUA asks that the write be durable before the reply (Force Unit
	// Access): valid on Write, CreateAndWrite and Discard.
	FlagFUA Flags = 1 << iota
	// FlagAllCopies on ListObjects lists every object the node holds in
	// any form (current and stale copies), deduplicated, paged as usual;
	// valid only on ListObjects.
	FlagAllCopies

	knownRequestFlags = FlagFUA | FlagAllCopies
)

// ResponseFlags modify a response.
type ResponseFlags uint16

const (
	// RespMore on a ListObjects reply says more ids follow: ask again from
	// the reply's Aux (the next cursor).
	RespMore ResponseFlags = 1 << iota

	knownResponseFlags = RespMore
)

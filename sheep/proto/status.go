package proto

import "fmt"

// Status is the outcome of a request, carried in every response. A Status
// other than StatusOK is also an error, so callers can write
// errors.Is(err, proto.StatusNotFound).
type Status uint8

const (
	StatusOK                 Status = iota
	StatusInvalidArgument           // malformed request: bad flags, fields that must be zero, body length mismatch
	StatusUnsupportedVersion        // the peer speaks another protocol version
	StatusUnknownOp                 // an opcode this node does not know
	StatusOutOfRange                // offset/length outside the object, page too large
	StatusNotFound                  // the object does not exist (Remove)
	StatusIOError                   // the node's disk failed
	StatusNoSpace                   // the node's disk is full
	StatusWrongEpoch                // the request's epoch is not the node's; the response carries the node's
	StatusShuttingDown              // the node is stopping; retry on another replica or later
	StatusInternal                  // a bug on the node; the message says what
	StatusNotReady                  // the object is not recovered on this node yet, or the node is not serving; retry
	numStatus
)

var statusNames = [...]string{
	StatusOK:                 "ok",
	StatusInvalidArgument:    "invalid argument",
	StatusUnsupportedVersion: "unsupported protocol version",
	StatusUnknownOp:          "unknown operation",
	StatusOutOfRange:         "out of range",
	StatusNotFound:           "object not found",
	StatusIOError:            "I/O error",
	StatusNoSpace:            "no space left on node",
	StatusWrongEpoch:         "wrong epoch",
	StatusShuttingDown:       "node shutting down",
	StatusInternal:           "internal error",
	StatusNotReady:           "not ready",
}

func (s Status) String() string {
	if s < numStatus {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Error makes a Status usable as an error.
func (s Status) Error() string { return "sheep: " + s.String() }

// Err is nil for StatusOK and the status itself otherwise.
func (s Status) Err() error {
	if s == StatusOK {
		return nil
	}
	return s
}

// Known reports whether s is a status this version defines.
func (s Status) Known() bool { return s < numStatus }

package proto

import (
	"encoding/binary"
	"strconv"
)

// RequestSize is the size of an encoded Request header.
const RequestSize = 40

// Request is the header of a request to a sheep node. Its encoding:
//
//	off size field
//	  0    1 version (Version)
//	  1    1 op
//	  2    2 flags
//	  4    4 length: bytes to read/write/discard; max ids for ListObjects;
//	         the object size for ReadPeer
//	  8    8 epoch: the cluster epoch the client routes by (0: don't check);
//	         ReadPeer: the epoch the object is wanted as of
//	 16    8 object id (ListObjects: first id to list)
//	 24    8 offset within the object
//	 32    8 aux: ListObjects: end of the listed range, exclusive (0: none);
//	         Write, CreateAndWrite, Discard: the write id in the high 48
//	         bits and the attempt (from 1) in the low 16, or 0 for none
//	         (see WriteID); else 0
type Request struct {
	Op     Op
	Flags  Flags
	Length uint32
	Epoch  uint64
	Object ObjectID
	Offset uint64
	Aux    uint64
}

// AppendBinary appends the encoded header to dst. It never fails; the
// error is there to satisfy encoding.BinaryAppender.
func (r *Request) AppendBinary(dst []byte) ([]byte, error) {
	dst = append(dst, Version, byte(r.Op))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(r.Flags))
	dst = binary.LittleEndian.AppendUint32(dst, r.Length)
	dst = binary.LittleEndian.AppendUint64(dst, r.Epoch)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.Object))
	dst = binary.LittleEndian.AppendUint64(dst, r.Offset)
	dst = binary.LittleEndian.AppendUint64(dst, r.Aux)
	return dst, nil
}

// UnmarshalBinary decodes a header, checking its shape: size, version, a
// known op, known flags. Bounds that depend on the node (the object size)
// are Check's job; DecodeRequest does both.
func (r *Request) UnmarshalBinary(b []byte) error {
	if len(b) == 0 {
		return errorf(StatusInvalidArgument, "empty request header")
	}
	if b[0] != Version {
		return errorf(StatusUnsupportedVersion, "request version "+strconv.Itoa(int(b[0]))+", this node speaks "+strconv.Itoa(Version))
	}
	if len(b) != RequestSize {
		return errorf(StatusInvalidArgument, "request header is "+strconv.Itoa(len(b))+" bytes, want "+strconv.Itoa(RequestSize))
	}
	*r = Request{
		Op:     Op(b[1]),
		Flags:  Flags(binary.LittleEndian.Uint16(b[2:])),
		Length: binary.LittleEndian.Uint32(b[4:]),
		Epoch:  binary.LittleEndian.Uint64(b[8:]),
		Object: ObjectID(binary.LittleEndian.Uint64(b[16:])),
		Offset: binary.LittleEndian.Uint64(b[24:]),
		Aux:    binary.LittleEndian.Uint64(b[32:]),
	}
	if !r.Op.Known() {
		return errorf(StatusUnknownOp, "unknown op "+strconv.Itoa(int(r.Op)))
	}
	if r.Flags&^knownRequestFlags != 0 {
		return errorf(StatusInvalidArgument, "unknown flags "+strconv.FormatUint(uint64(r.Flags&^knownRequestFlags), 16))
	}
	return nil
}

// Check bounds the request's fields for a node of the given object size:
// the byte range lies inside the object, fields an op does not use are
// zero, a ListObjects page is at most MaxListPage.
func (r *Request) Check(objectSize uint32) error {
	if r.Flags&FlagFUA != 0 && r.Op != OpWrite && r.Op != OpCreateAndWrite && r.Op != OpDiscard {
		return errorf(StatusInvalidArgument, "FUA on "+r.Op.String())
	}
	if r.Flags&FlagAllCopies != 0 && r.Op != OpListObjects {
		return errorf(StatusInvalidArgument, "all-copies flag on "+r.Op.String())
	}
	switch r.Op {
	case OpRead, OpWrite, OpDiscard:
		if r.Length == 0 {
			return errorf(StatusInvalidArgument, r.Op.String()+" of zero bytes")
		}
		return r.checkRange(objectSize)
	case OpCreateAndWrite:
		return r.checkRange(objectSize)
	case OpReadPeer:
		// Always the whole object: a recovering peer installs it whole.
		if r.Offset != 0 || r.Length != objectSize {
			return errorf(StatusInvalidArgument, "read-peer of "+strconv.FormatUint(r.Offset, 10)+"+"+strconv.FormatUint(uint64(r.Length), 10)+
				", want the whole "+strconv.FormatUint(uint64(objectSize), 10)+"-byte object")
		}
		return r.checkRange(objectSize)
	case OpRemove:
		if r.Offset != 0 || r.Length != 0 || r.Aux != 0 {
			return errorf(StatusInvalidArgument, "remove takes no offset, length or aux")
		}
		return r.checkObject()
	case OpFlush, OpNodeInfo:
		if r.Object != 0 || r.Offset != 0 || r.Length != 0 || r.Aux != 0 {
			return errorf(StatusInvalidArgument, r.Op.String()+" takes no object, offset, length or aux")
		}
	case OpListObjects:
		if r.Length == 0 || r.Length > MaxListPage {
			return errorf(StatusOutOfRange, "list page of "+strconv.FormatUint(uint64(r.Length), 10)+" ids, want 1.."+strconv.Itoa(MaxListPage))
		}
		if r.Offset != 0 {
			return errorf(StatusInvalidArgument, "list-objects takes no offset")
		}
		if r.Aux != 0 && r.Aux <= uint64(r.Object) {
			return errorf(StatusInvalidArgument, "list-objects range end is not after its start")
		}
	}
	return nil
}

func (r *Request) checkObject() error {
	if !r.Object.Valid() {
		return errorf(StatusInvalidArgument, "object id "+r.Object.String()+" has reserved bits set")
	}
	return nil
}

func (r *Request) checkRange(objectSize uint32) error {
	if err := r.checkObject(); err != nil {
		return err
	}
	if r.Aux != 0 && !r.Op.IsUpdate() {
		return errorf(StatusInvalidArgument, r.Op.String()+" takes no aux")
	}
	if id, attempt := r.WriteID(); (id == 0) != (attempt == 0) {
		return errorf(StatusInvalidArgument, "write id "+strconv.FormatUint(id, 10)+" with attempt "+strconv.Itoa(int(attempt)))
	}
	// Offset is 64 bits: compare before adding so a huge offset cannot wrap.
	if r.Offset > uint64(objectSize) || uint64(r.Length) > uint64(objectSize)-r.Offset {
		return errorf(StatusOutOfRange, "range "+strconv.FormatUint(r.Offset, 10)+"+"+strconv.FormatUint(uint64(r.Length), 10)+
			" is outside the "+strconv.FormatUint(uint64(objectSize), 10)+"-byte object")
	}
	return nil
}

// DecodeRequest decodes and bounds a request header for a node of the
// given object size. It does not allocate unless the header is bad.
func DecodeRequest(b []byte, objectSize uint32) (Request, error) {
	var r Request
	if err := r.UnmarshalBinary(b); err != nil {
		return r, err
	}
	return r, r.Check(objectSize)
}

// MaxWriteID is the largest write id: it has 48 bits.
const MaxWriteID = 1<<48 - 1

// WriteAux is the Aux of attempt number attempt (from 1; past 65535 it
// stays there) of the update with write id id (1..MaxWriteID).
func WriteAux(id uint64, attempt int) uint64 {
	return (id&MaxWriteID)<<16 | uint64(min(attempt, 1<<16-1))
}

// WriteID is the write id and the attempt of an update (Aux of a Write,
// CreateAndWrite or Discard); 0, 0 for none and for other ops. A client
// resends an update whose reply it did not get in time, with the same id
// and the next attempt number; an earlier attempt may still be held on
// the node (waiting for the object's recovery, throttled halfway through
// a multi-page write under memory pressure, or not even read yet from a
// connection the client gave up on). Were the resend applied and
// acknowledged, and the old attempt applied after a newer write to the
// same range, that write would be lost. A node therefore serves an
// update only when no other attempt with its id is in progress, and
// never one older than an attempt it already started.
func (r *Request) WriteID() (id uint64, attempt uint16) {
	if !r.Op.IsUpdate() {
		return 0, 0
	}
	return r.Aux >> 16, uint16(r.Aux)
}

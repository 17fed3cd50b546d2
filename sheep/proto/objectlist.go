package proto

import (
	"encoding/binary"
	"strconv"
)

// ObjectList is the body of a ListObjects reply: object ids, 8 bytes each,
// little-endian, strictly ascending. It is a view on the reply's bytes.
type ObjectList []byte

// AppendObjectID appends one id to a listing being built.
func AppendObjectID(dst []byte, id ObjectID) []byte {
	return binary.LittleEndian.AppendUint64(dst, uint64(id))
}

// DecodeObjectList checks a listing body of at most maxIDs ids (the page
// size the request asked for; never more than MaxListPage) and returns a
// view on it. The ids must be valid and strictly ascending, so a client can
// trust the last one as a cursor. It does not allocate unless the body is bad.
func DecodeObjectList(body []byte, maxIDs uint32) (ObjectList, error) {
	if maxIDs > MaxListPage {
		maxIDs = MaxListPage
	}
	if len(body)%8 != 0 {
		return nil, errorf(StatusInvalidArgument, "listing of "+strconv.Itoa(len(body))+" bytes is not a whole number of ids")
	}
	if uint64(len(body)/8) > uint64(maxIDs) {
		return nil, errorf(StatusOutOfRange, "listing of "+strconv.Itoa(len(body)/8)+" ids, at most "+strconv.FormatUint(uint64(maxIDs), 10)+" asked for")
	}
	l := ObjectList(body)
	for i := range l.Len() {
		id := l.At(i)
		if !id.Valid() {
			return nil, errorf(StatusInvalidArgument, "listed object id "+id.String()+" has reserved bits set")
		}
		if i > 0 && id <= l.At(i-1) {
			return nil, errorf(StatusInvalidArgument, "listing is not strictly ascending at id "+id.String())
		}
	}
	return l, nil
}

// Len is the number of ids.
func (l ObjectList) Len() int { return len(l) / 8 }

// At is the i'th id.
func (l ObjectList) At(i int) ObjectID { return ObjectID(binary.LittleEndian.Uint64(l[i*8:])) }

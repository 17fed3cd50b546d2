package proto

import (
	"encoding/binary"
	"strconv"
)

// ResponseSize is the size of an encoded Response header.
const ResponseSize = 24

// Response is the header of a sheep node's reply. Its encoding:
//
//	off size field
//	  0    1 version (Version)
//	  1    1 status
//	  2    2 flags (RespMore)
//	  4    4 length: bytes of body (read data, 8 per listed id, node info,
//	         or the error message of a failed request)
//	  8    8 epoch: the node's cluster epoch
//	 16    8 aux: ListObjects: the cursor to continue from; ReadPeer: the
//	         epoch the returned copy is valid through; else 0
type Response struct {
	Status Status
	Flags  ResponseFlags
	Length uint32
	Epoch  uint64
	Aux    uint64
}

// AppendBinary appends the encoded header to dst. It never fails; the
// error is there to satisfy encoding.BinaryAppender.
func (r *Response) AppendBinary(dst []byte) ([]byte, error) {
	dst = append(dst, Version, byte(r.Status))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(r.Flags))
	dst = binary.LittleEndian.AppendUint32(dst, r.Length)
	dst = binary.LittleEndian.AppendUint64(dst, r.Epoch)
	dst = binary.LittleEndian.AppendUint64(dst, r.Aux)
	return dst, nil
}

// UnmarshalBinary decodes a response header, checking size, version, a
// known status and known flags.
func (r *Response) UnmarshalBinary(b []byte) error {
	if len(b) == 0 {
		return errorf(StatusInvalidArgument, "empty response header")
	}
	if b[0] != Version {
		return errorf(StatusUnsupportedVersion, "response version "+strconv.Itoa(int(b[0]))+", this client speaks "+strconv.Itoa(Version))
	}
	if len(b) != ResponseSize {
		return errorf(StatusInvalidArgument, "response header is "+strconv.Itoa(len(b))+" bytes, want "+strconv.Itoa(ResponseSize))
	}
	*r = Response{
		Status: Status(b[1]),
		Flags:  ResponseFlags(binary.LittleEndian.Uint16(b[2:])),
		Length: binary.LittleEndian.Uint32(b[4:]),
		Epoch:  binary.LittleEndian.Uint64(b[8:]),
		Aux:    binary.LittleEndian.Uint64(b[16:]),
	}
	if !r.Status.Known() {
		return errorf(StatusInvalidArgument, "unknown status "+strconv.Itoa(int(r.Status)))
	}
	if r.Flags&^knownResponseFlags != 0 {
		return errorf(StatusInvalidArgument, "unknown response flags "+strconv.FormatUint(uint64(r.Flags&^knownResponseFlags), 16))
	}
	return nil
}

// CheckBody bounds a reply's body against its header and the request it
// answers: the body is exactly Length bytes; a successful read returns
// exactly the bytes asked for; a listing holds at most the ids asked for;
// an error message is at most MaxErrorMessage bytes.
func (r *Response) CheckBody(req *Request, body []byte) error {
	if uint64(len(body)) != uint64(r.Length) {
		return errorf(StatusInvalidArgument, "reply body is "+strconv.Itoa(len(body))+" bytes, header says "+strconv.FormatUint(uint64(r.Length), 10))
	}
	if r.Flags&RespMore != 0 && (r.Status != StatusOK || req.Op != OpListObjects) {
		return errorf(StatusInvalidArgument, "more flag on a reply that is not a listing")
	}
	if r.Status != StatusOK {
		if r.Length > MaxErrorMessage {
			return errorf(StatusInvalidArgument, "error message of "+strconv.FormatUint(uint64(r.Length), 10)+" bytes")
		}
		return nil
	}
	want := uint32(0)
	switch req.Op {
	case OpRead, OpReadPeer:
		want = req.Length
	case OpListObjects:
		if r.Length%8 != 0 || r.Length/8 > req.Length {
			return errorf(StatusInvalidArgument, "listing of "+strconv.FormatUint(uint64(r.Length), 10)+" bytes for a page of "+strconv.FormatUint(uint64(req.Length), 10)+" ids")
		}
		return nil
	case OpNodeInfo:
		if r.Length < nodeInfoFixedSize || r.Length > nodeInfoMaxSize {
			return errorf(StatusInvalidArgument, "node info of "+strconv.FormatUint(uint64(r.Length), 10)+" bytes")
		}
		return nil
	}
	if r.Length != want {
		return errorf(StatusInvalidArgument, req.Op.String()+" reply of "+strconv.FormatUint(uint64(r.Length), 10)+" bytes, want "+strconv.FormatUint(uint64(want), 10))
	}
	return nil
}

// Err is nil for a successful reply and otherwise an *Error carrying the
// status and the node's message (body, already bounded by CheckBody).
func (r *Response) Err(body []byte) error {
	if r.Status == StatusOK {
		return nil
	}
	if len(body) > MaxErrorMessage {
		body = body[:MaxErrorMessage]
	}
	return &Error{Status: r.Status, Reason: string(body)}
}

// DecodeResponse decodes a reply header and bounds its body against the
// request it answers. It does not allocate unless the reply is bad.
func DecodeResponse(hdr, body []byte, req *Request) (Response, error) {
	var r Response
	if err := r.UnmarshalBinary(hdr); err != nil {
		return r, err
	}
	return r, r.CheckBody(req, body)
}

// AppendErrorMessage appends msg, cut to MaxErrorMessage bytes, as an
// error reply's body.
func AppendErrorMessage(dst []byte, msg string) []byte {
	if len(msg) > MaxErrorMessage {
		msg = msg[:MaxErrorMessage]
	}
	return append(dst, msg...)
}

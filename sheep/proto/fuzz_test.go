package proto

import (
	"bytes"
	"testing"
)

// The fuzz targets feed each decoder arbitrary bytes: it must never panic,
// and whatever it accepts must re-encode to the same bytes and satisfy the
// bounds it promises.

func FuzzDecodeRequest(f *testing.F) {
	for _, r := range []Request{
		{Op: OpRead, Object: 1, Length: 4096},
		{Op: OpWrite, Flags: FlagFUA, Object: NewObjectID(2, 3), Offset: 100, Length: 7},
		{Op: OpListObjects, Length: 10, Aux: 100},
		{Op: OpFlush},
		{Op: OpListObjects, Flags: FlagAllCopies, Object: 5, Length: MaxListPage},
		{Op: OpReadPeer, Epoch: 3, Object: NewObjectID(4, 5), Length: DefaultObjectSize},
		{Op: OpReadPeer, Flags: FlagAllCopies, Object: 1, Length: DefaultObjectSize},
		{Op: 99},
	} {
		f.Add(encodeRequest(r), uint32(DefaultObjectSize))
	}
	f.Add([]byte{}, uint32(MinObjectSize))
	f.Add([]byte{Version, 1, 0}, uint32(MinObjectSize))
	f.Fuzz(func(t *testing.T, b []byte, objectSize uint32) {
		if CheckObjectSize(objectSize) != nil {
			objectSize = DefaultObjectSize
		}
		r, err := DecodeRequest(b, objectSize)
		if err != nil {
			if !StatusOf(err).Known() || StatusOf(err) == StatusOK {
				t.Fatalf("error %v carries status %v", err, StatusOf(err))
			}
			return
		}
		if enc := encodeRequest(r); !bytes.Equal(enc, b) {
			t.Fatalf("accepted %x, re-encodes to %x", b, enc)
		}
		switch r.Op {
		case OpRead, OpWrite, OpDiscard, OpCreateAndWrite:
			if r.Offset+uint64(r.Length) > uint64(objectSize) {
				t.Fatalf("accepted range %d+%d in a %d-byte object", r.Offset, r.Length, objectSize)
			}
			if r.Op == OpRead && r.Aux != 0 {
				t.Fatalf("accepted a read with aux %d", r.Aux)
			}
			if id, attempt := r.WriteID(); (id == 0) != (attempt == 0) {
				t.Fatalf("accepted write id %d with attempt %d", id, attempt)
			}
		case OpListObjects:
			if r.Length == 0 || r.Length > MaxListPage {
				t.Fatalf("accepted page of %d", r.Length)
			}
		case OpReadPeer:
			if r.Offset != 0 || r.Length != objectSize || r.Aux != 0 || !r.Object.Valid() {
				t.Fatalf("accepted read-peer %+v for a %d-byte object", r, objectSize)
			}
		}
		if r.Flags&FlagAllCopies != 0 && r.Op != OpListObjects {
			t.Fatalf("accepted all-copies on %v", r.Op)
		}
		if r.Flags&FlagFUA != 0 && r.Op != OpWrite && r.Op != OpCreateAndWrite && r.Op != OpDiscard {
			t.Fatalf("accepted FUA on %v", r.Op)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	enc := func(r Response) []byte { b, _ := r.AppendBinary(nil); return b }
	f.Add(enc(Response{Length: 3}), []byte("abc"), byte(OpRead), uint32(3))
	f.Add(enc(Response{Length: 8, Flags: RespMore}), AppendObjectID(nil, 1), byte(OpListObjects), uint32(4))
	f.Add(enc(Response{Status: StatusIOError, Length: 2}), []byte("no"), byte(OpWrite), uint32(2))
	f.Add([]byte{1}, []byte{}, byte(OpFlush), uint32(0))
	f.Add(enc(Response{Length: 4, Aux: 6}), []byte("objx"), byte(OpReadPeer), uint32(4))
	f.Add(enc(Response{Status: StatusNotReady, Length: 3}), []byte("not"), byte(OpReadPeer), uint32(4096))
	f.Fuzz(func(t *testing.T, hdr, body []byte, op byte, length uint32) {
		req := Request{Op: Op(op), Length: length}
		r, err := DecodeResponse(hdr, body, &req)
		if err != nil {
			return
		}
		if !bytes.Equal(hdr, func() []byte { b, _ := r.AppendBinary(nil); return b }()) {
			t.Fatalf("accepted header %x does not re-encode", hdr)
		}
		if int(r.Length) != len(body) {
			t.Fatalf("accepted length %d with a %d-byte body", r.Length, len(body))
		}
		if r.Status != StatusOK && len(body) > MaxErrorMessage {
			t.Fatalf("accepted a %d-byte error message", len(body))
		}
		if r.Status == StatusOK && (req.Op == OpRead || req.Op == OpReadPeer) && r.Length != req.Length {
			t.Fatalf("accepted a %d-byte read for %d", r.Length, req.Length)
		}
		_ = r.Err(body)
	})
}

func FuzzDecodeObjectList(f *testing.F) {
	f.Add(AppendObjectID(AppendObjectID(nil, 1), 2), uint32(2))
	f.Add([]byte{1, 2, 3}, uint32(MaxListPage))
	f.Add([]byte{}, uint32(0))
	f.Fuzz(func(t *testing.T, body []byte, maxIDs uint32) {
		l, err := DecodeObjectList(body, maxIDs)
		if err != nil {
			return
		}
		if l.Len() > int(min(maxIDs, MaxListPage)) {
			t.Fatalf("accepted %d ids for a page of %d", l.Len(), maxIDs)
		}
		for i := 1; i < l.Len(); i++ {
			if l.At(i) <= l.At(i-1) || !l.At(i).Valid() {
				t.Fatalf("accepted id %v after %v", l.At(i), l.At(i-1))
			}
		}
	})
}

func FuzzDecodeNodeInfo(f *testing.F) {
	b, _ := (&NodeInfo{ID: "a", Zone: "z", SoftwareVersion: "v1", ObjectSize: DefaultObjectSize, Capacity: 10}).AppendBinary(nil)
	f.Add(b)
	f.Add(b[:nodeInfoFixedSize])
	f.Add([]byte{Version, 255, 255, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := DecodeNodeInfo(b)
		if err != nil {
			return
		}
		enc, err := n.AppendBinary(nil)
		if err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("accepted %x, re-encodes to %x, %v", b, enc, err)
		}
	})
}

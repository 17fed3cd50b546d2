package proto

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const testObjectSize = DefaultObjectSize

func TestObjectID(t *testing.T) {
	id := NewObjectID(0xabcdef, 0x12345678)
	if id.VDI() != 0xabcdef || id.Index() != 0x12345678 {
		t.Fatalf("NewObjectID(0xabcdef, 0x12345678) = %v: vdi %x index %x", id, id.VDI(), id.Index())
	}
	if got, want := id.String(), "00abcdef12345678"; got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
	if !id.Valid() || ObjectID(1<<56).Valid() {
		t.Fatal("Valid is wrong about reserved bits")
	}
	if NewObjectID(0xffffffff, 0).VDI() != MaxVDI || !NewObjectID(0xffffffff, 0).Valid() {
		t.Fatal("NewObjectID does not drop VDI bits above 24")
	}
}

func TestRequestRoundTrip(t *testing.T) {
	for _, want := range []Request{
		{Op: OpRead, Epoch: 7, Object: NewObjectID(1, 2), Offset: 4096, Length: 512},
		{Op: OpWrite, Flags: FlagFUA, Object: NewObjectID(MaxVDI, 1<<32-1), Offset: testObjectSize - 1, Length: 1},
		{Op: OpWrite, Object: NewObjectID(1, 2), Length: 4096, Aux: WriteAux(MaxWriteID, 1<<16-1)},
		{Op: OpDiscard, Object: 9, Length: 512, Aux: WriteAux(7, 1)},
		{Op: OpCreateAndWrite, Object: NewObjectID(3, 0), Length: testObjectSize},
		{Op: OpCreateAndWrite, Object: NewObjectID(3, 0)},
		{Op: OpDiscard, Flags: FlagFUA, Object: 9, Offset: 0, Length: testObjectSize},
		{Op: OpRemove, Epoch: 1<<64 - 1, Object: 9},
		{Op: OpFlush},
		{Op: OpNodeInfo},
		{Op: OpListObjects, Object: NewObjectID(5, 0), Aux: uint64(NewObjectID(6, 0)), Length: MaxListPage},
		{Op: OpListObjects, Flags: FlagAllCopies, Object: 1, Length: 3},
		{Op: OpReadPeer, Epoch: 12, Object: NewObjectID(7, 8), Length: testObjectSize},
		{Op: OpReadPeer, Object: NewObjectID(7, 8), Length: testObjectSize},
	} {
		b, err := want.AppendBinary([]byte("prefix"))
		if err != nil || len(b) != len("prefix")+RequestSize || string(b[:6]) != "prefix" {
			t.Fatalf("AppendBinary(%+v) = %d bytes, %v", want, len(b), err)
		}
		got, err := DecodeRequest(b[6:], testObjectSize)
		if err != nil || got != want {
			t.Errorf("round trip of %+v = %+v, %v", want, got, err)
		}
	}
}

func encodeRequest(r Request) []byte {
	b, _ := r.AppendBinary(nil)
	return b
}

func TestDecodeRequestRefusesBadInput(t *testing.T) {
	good := encodeRequest(Request{Op: OpRead, Object: 1, Length: 4096})
	withByte := func(i int, v byte) []byte {
		b := bytes.Clone(good)
		b[i] = v
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want Status
	}{
		{"empty", nil, StatusInvalidArgument},
		{"truncated", good[:RequestSize-1], StatusInvalidArgument},
		{"too long", append(bytes.Clone(good), 0), StatusInvalidArgument},
		{"version", withByte(0, 2), StatusUnsupportedVersion},
		{"op zero", withByte(1, 0), StatusUnknownOp},
		{"op unknown", withByte(1, 200), StatusUnknownOp},
		{"unknown flag", withByte(2, 2), StatusInvalidArgument},
		{"read of zero", encodeRequest(Request{Op: OpRead, Object: 1}), StatusInvalidArgument},
		{"length past object", encodeRequest(Request{Op: OpRead, Object: 1, Length: testObjectSize + 1}), StatusOutOfRange},
		{"offset past object", encodeRequest(Request{Op: OpWrite, Object: 1, Offset: testObjectSize, Length: 1}), StatusOutOfRange},
		{"offset wraps", encodeRequest(Request{Op: OpWrite, Object: 1, Offset: 1<<64 - 1, Length: 2}), StatusOutOfRange},
		{"end past object", encodeRequest(Request{Op: OpDiscard, Object: 1, Offset: testObjectSize - 10, Length: 11}), StatusOutOfRange},
		{"reserved id bits", encodeRequest(Request{Op: OpRead, Object: 1 << 60, Length: 1}), StatusInvalidArgument},
		{"aux on read", encodeRequest(Request{Op: OpRead, Object: 1, Length: 1, Aux: 1}), StatusInvalidArgument},
		{"write attempt without id", encodeRequest(Request{Op: OpWrite, Object: 1, Length: 1, Aux: 1}), StatusInvalidArgument},
		{"write id without attempt", encodeRequest(Request{Op: OpWrite, Object: 1, Length: 1, Aux: 1 << 16}), StatusInvalidArgument},
		{"FUA on read", encodeRequest(Request{Op: OpRead, Flags: FlagFUA, Object: 1, Length: 1}), StatusInvalidArgument},
		{"remove with length", encodeRequest(Request{Op: OpRemove, Object: 1, Length: 1}), StatusInvalidArgument},
		{"flush with object", encodeRequest(Request{Op: OpFlush, Object: 1}), StatusInvalidArgument},
		{"list page zero", encodeRequest(Request{Op: OpListObjects}), StatusOutOfRange},
		{"list page too big", encodeRequest(Request{Op: OpListObjects, Length: MaxListPage + 1}), StatusOutOfRange},
		{"list empty range", encodeRequest(Request{Op: OpListObjects, Object: 5, Aux: 5, Length: 1}), StatusInvalidArgument},
		{"all copies on read", encodeRequest(Request{Op: OpRead, Flags: FlagAllCopies, Object: 1, Length: 1}), StatusInvalidArgument},
		{"all copies on read-peer", encodeRequest(Request{Op: OpReadPeer, Flags: FlagAllCopies, Object: 1, Length: testObjectSize}), StatusInvalidArgument},
		{"FUA on list", encodeRequest(Request{Op: OpListObjects, Flags: FlagFUA, Length: 1}), StatusInvalidArgument},
		{"read-peer partial", encodeRequest(Request{Op: OpReadPeer, Object: 1, Length: testObjectSize - 1}), StatusInvalidArgument},
		{"read-peer zero", encodeRequest(Request{Op: OpReadPeer, Object: 1}), StatusInvalidArgument},
		{"read-peer offset", encodeRequest(Request{Op: OpReadPeer, Object: 1, Offset: 4096, Length: testObjectSize}), StatusInvalidArgument},
		{"read-peer too long", encodeRequest(Request{Op: OpReadPeer, Object: 1, Length: testObjectSize * 2}), StatusInvalidArgument},
		{"read-peer aux", encodeRequest(Request{Op: OpReadPeer, Object: 1, Length: testObjectSize, Aux: 1}), StatusInvalidArgument},
		{"read-peer reserved id bits", encodeRequest(Request{Op: OpReadPeer, Object: 1 << 60, Length: testObjectSize}), StatusInvalidArgument},
		{"unknown flag bit 2", withByte(2, 4), StatusInvalidArgument},
	} {
		_, err := DecodeRequest(tc.in, testObjectSize)
		if err == nil {
			t.Errorf("%s: decoded without error", tc.name)
			continue
		}
		if got := StatusOf(err); got != tc.want || !errors.Is(err, tc.want) {
			t.Errorf("%s: status %v (%v), want %v", tc.name, got, err, tc.want)
		}
	}
}

func TestResponseRoundTrip(t *testing.T) {
	read := Request{Op: OpRead, Object: 1, Length: 3}
	list := Request{Op: OpListObjects, Length: 2}
	peer := Request{Op: OpReadPeer, Epoch: 7, Object: 1, Length: 8}
	allCopies := Request{Op: OpListObjects, Flags: FlagAllCopies, Length: 1}
	for _, tc := range []struct {
		resp Response
		req  *Request
		body []byte
	}{
		{Response{Status: StatusOK, Length: 3, Epoch: 4}, &read, []byte("abc")},
		{Response{Status: StatusOK, Flags: RespMore, Length: 16, Aux: 99}, &list, AppendObjectID(AppendObjectID(nil, 1), 2)},
		{Response{Status: StatusOutOfRange, Length: 4}, &read, []byte("oops")},
		{Response{Status: StatusOK}, &Request{Op: OpFlush}, nil},
		{Response{Status: StatusOK, Length: 8, Epoch: 9, Aux: 7}, &peer, []byte("objbytes")},
		{Response{Status: StatusNotReady, Length: 5, Epoch: 9}, &peer, []byte("later")},
		{Response{Status: StatusNotFound, Epoch: 9}, &peer, nil},
		{Response{Status: StatusOK, Length: 8}, &allCopies, AppendObjectID(nil, 3)},
	} {
		b, _ := tc.resp.AppendBinary(nil)
		if len(b) != ResponseSize {
			t.Fatalf("encoded response is %d bytes", len(b))
		}
		got, err := DecodeResponse(b, tc.body, tc.req)
		if err != nil || got != tc.resp {
			t.Errorf("round trip of %+v = %+v, %v", tc.resp, got, err)
		}
		if (got.Err(tc.body) == nil) != (tc.resp.Status == StatusOK) {
			t.Errorf("Err of %+v = %v", got, got.Err(tc.body))
		}
	}
	e := (&Response{Status: StatusNotFound}).Err([]byte("object 1"))
	if !errors.Is(e, StatusNotFound) || StatusOf(e) != StatusNotFound {
		t.Fatalf("Err does not unwrap to its status: %v", e)
	}
}

func TestDecodeResponseRefusesBadInput(t *testing.T) {
	read := Request{Op: OpRead, Object: 1, Length: 3}
	enc := func(r Response) []byte { b, _ := r.AppendBinary(nil); return b }
	for _, tc := range []struct {
		name string
		hdr  []byte
		body []byte
		req  *Request
	}{
		{"empty", nil, nil, &read},
		{"truncated", enc(Response{})[:ResponseSize-1], nil, &read},
		{"version", append([]byte{9}, enc(Response{})[1:]...), nil, &read},
		{"unknown status", enc(Response{Status: 200}), nil, &read},
		{"unknown flag", enc(Response{Flags: 4}), nil, &read},
		{"body shorter than length", enc(Response{Length: 3}), []byte("ab"), &read},
		{"short read", enc(Response{Length: 2}), []byte("ab"), &read},
		{"long error", enc(Response{Status: StatusIOError, Length: MaxErrorMessage + 1}), make([]byte, MaxErrorMessage+1), &read},
		{"listing too long", enc(Response{Length: 24}), make([]byte, 24), &Request{Op: OpListObjects, Length: 2}},
		{"listing ragged", enc(Response{Length: 12}), make([]byte, 12), &Request{Op: OpListObjects, Length: 2}},
		{"more on read", enc(Response{Flags: RespMore, Length: 3}), []byte("abc"), &read},
		{"node info short", enc(Response{Length: 3}), []byte("abc"), &Request{Op: OpNodeInfo}},
		{"short read-peer", enc(Response{Length: 3}), []byte("abc"), &Request{Op: OpReadPeer, Object: 1, Length: 4}},
		{"empty read-peer", enc(Response{}), nil, &Request{Op: OpReadPeer, Object: 1, Length: 4}},
		{"more on read-peer", enc(Response{Flags: RespMore, Length: 4}), []byte("abcd"), &Request{Op: OpReadPeer, Object: 1, Length: 4}},
	} {
		if _, err := DecodeResponse(tc.hdr, tc.body, tc.req); err == nil {
			t.Errorf("%s: decoded without error", tc.name)
		}
	}
}

func TestObjectList(t *testing.T) {
	var b []byte
	ids := []ObjectID{NewObjectID(1, 0), NewObjectID(1, 7), NewObjectID(2, 0)}
	for _, id := range ids {
		b = AppendObjectID(b, id)
	}
	l, err := DecodeObjectList(b, 3)
	if err != nil || l.Len() != 3 {
		t.Fatalf("DecodeObjectList = %d ids, %v", l.Len(), err)
	}
	for i, id := range ids {
		if l.At(i) != id {
			t.Errorf("At(%d) = %v, want %v", i, l.At(i), id)
		}
	}
	if _, err := DecodeObjectList(b, 2); err == nil {
		t.Error("a listing longer than asked for decoded")
	}
	if _, err := DecodeObjectList(AppendObjectID(AppendObjectID(nil, 5), 5), 8); err == nil {
		t.Error("a listing with a repeated id decoded")
	}
	if _, err := DecodeObjectList(AppendObjectID(nil, 1<<62), 8); err == nil {
		t.Error("a listing with an invalid id decoded")
	}
	if _, err := DecodeObjectList(b[:7], 8); err == nil {
		t.Error("a ragged listing decoded")
	}
}

func TestNodeInfoRoundTrip(t *testing.T) {
	want := NodeInfo{ProtocolVersion: Version, ID: "127.0.0.1:7000", Zone: "rack-1", SoftwareVersion: "dev",
		ObjectSize: DefaultObjectSize, Capacity: 1 << 40, Used: 1 << 30, Objects: 256, Epoch: 3}
	b, err := want.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeNodeInfo(b)
	if err != nil || got != want {
		t.Fatalf("round trip = %+v, %v; want %+v", got, err, want)
	}
	if _, err := (&NodeInfo{ID: string(make([]byte, MaxNodeString+1))}).AppendBinary(nil); err == nil {
		t.Error("an oversized id encoded")
	}
	for name, bad := range map[string][]byte{
		"short":          b[:nodeInfoFixedSize-1],
		"strings cut":    b[:len(b)-1],
		"trailing bytes": append(bytes.Clone(b), 'x'),
		"version":        append([]byte{0}, b[1:]...),
		"object size":    append(append(bytes.Clone(b[:4]), 0, 0, 0, 3), b[8:]...),
		"not utf-8":      append(append(bytes.Clone(b[:1]), 1, 0, 0), append(bytes.Clone(b[4:nodeInfoFixedSize]), 0xff)...),
	} {
		if _, err := DecodeNodeInfo(bad); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestNamesAndKinds(t *testing.T) {
	for o := Op(1); o.Known(); o++ {
		if name := o.String(); strings.HasPrefix(name, "op(") {
			t.Errorf("op %d has no name", uint8(o))
		}
	}
	for st := Status(0); st.Known(); st++ {
		if name := st.String(); strings.HasPrefix(name, "status(") {
			t.Errorf("status %d has no name", uint8(st))
		}
	}
	if OpReadPeer.String() != "read-peer" || !OpReadPeer.Known() || Op(OpReadPeer+1).Known() {
		t.Errorf("OpReadPeer is not the last known op named read-peer")
	}
	if StatusNotReady.String() != "not ready" || !StatusNotReady.Known() || Status(StatusNotReady+1).Known() {
		t.Errorf("StatusNotReady is not the last known status named not ready")
	}
	// Epoch checking applies to the client's data ops only; a peer read
	// names its epoch as an argument.
	for _, o := range []Op{OpRead, OpWrite, OpCreateAndWrite, OpRemove, OpDiscard} {
		if !o.IsDataOp() {
			t.Errorf("%v is not a data op", o)
		}
	}
	for _, o := range []Op{OpFlush, OpListObjects, OpNodeInfo, OpReadPeer} {
		if o.IsDataOp() {
			t.Errorf("%v is a data op", o)
		}
	}
	if err := (&Response{Status: StatusNotReady}).Err(nil); !errors.Is(err, StatusNotReady) {
		t.Errorf("a not-ready reply's error %v is not StatusNotReady", err)
	}
}

func TestCheckObjectSize(t *testing.T) {
	for size, ok := range map[uint32]bool{DefaultObjectSize: true, MinObjectSize: true, MaxObjectSize: true,
		0: false, MinObjectSize / 2: false, MaxObjectSize * 2: false, 3 << 20: false} {
		if (CheckObjectSize(size) == nil) != ok {
			t.Errorf("CheckObjectSize(%d) = %v", size, CheckObjectSize(size))
		}
	}
}

func TestCodecDoesNotAllocate(t *testing.T) {
	req := Request{Op: OpWrite, Flags: FlagFUA, Object: NewObjectID(1, 2), Offset: 512, Length: 4096, Epoch: 1}
	resp := Response{Length: 4096, Epoch: 1}
	buf := make([]byte, 0, 64)
	body := make([]byte, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		b, _ := req.AppendBinary(buf[:0])
		if _, err := DecodeRequest(b, testObjectSize); err != nil {
			t.Fatal(err)
		}
		b, _ = resp.AppendBinary(buf[:0])
		rr := Request{Op: OpRead, Object: 1, Length: 4096}
		if _, err := DecodeResponse(b, body, &rr); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("encode+decode allocates %v times per round", allocs)
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	hdr := encodeRequest(Request{Op: OpRead, Object: NewObjectID(1, 2), Offset: 512, Length: 4096, Epoch: 1})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRequest(hdr, testObjectSize); err != nil {
			b.Fatal(err)
		}
	}
}

// The write id and attempt are the Aux of updates only.
func TestWriteID(t *testing.T) {
	for _, c := range []struct {
		r       Request
		id      uint64
		attempt uint16
	}{
		{Request{Op: OpWrite, Aux: WriteAux(5, 1)}, 5, 1},
		{Request{Op: OpCreateAndWrite, Aux: WriteAux(MaxWriteID, 70000)}, MaxWriteID, 1<<16 - 1},
		{Request{Op: OpDiscard, Aux: WriteAux(7, 2)}, 7, 2},
		{Request{Op: OpWrite}, 0, 0},
		{Request{Op: OpRead}, 0, 0},
		{Request{Op: OpListObjects, Aux: 8 << 16}, 0, 0},
	} {
		if id, attempt := c.r.WriteID(); id != c.id || attempt != c.attempt {
			t.Errorf("%v with aux %#x: WriteID %d, %d, want %d, %d", c.r.Op, c.r.Aux, id, attempt, c.id, c.attempt)
		}
	}
}

package sheep

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

const testObjectSize = 1 << 20

// testNode is a node serving on a loopback port.
type testNode struct {
	*Node
	addr   string
	served chan error
}

func startNode(t testing.TB, opts Options) *testNode {
	t.Helper()
	if opts.ObjectSize == 0 {
		opts.ObjectSize = testObjectSize
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	n, err := NewNode(opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{Node: n, addr: l.Addr().String(), served: make(chan error, 1)}
	go func() { tn.served <- n.Serve(l) }()
	t.Cleanup(func() { n.Close() })
	return tn
}

func (tn *testNode) shutdown(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tn.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-tn.served; !errors.Is(err, rpc.ErrServerClosed) {
		t.Fatalf("Serve returned %v after Shutdown", err)
	}
}

// client speaks proto over an rpc.Client, as the sheep backend will.
type client struct {
	rc *rpc.Client
}

func newClient(t testing.TB, addr string) *client {
	t.Helper()
	rc := rpc.NewClient(addr, rpc.ClientOptions{MaxBody: testObjectSize + 64<<10})
	t.Cleanup(func() { rc.Close() })
	return &client{rc: rc}
}

// do sends req with body and returns the decoded, bounded reply.
func (c *client) do(req proto.Request, body []byte) (proto.Response, []byte, error) {
	hdr, _ := req.AppendBinary(nil)
	return c.doRaw(&req, hdr, body)
}

func (c *client) doRaw(req *proto.Request, hdr, body []byte) (proto.Response, []byte, error) {
	call := &rpc.Call{ReqHeader: hdr, ReqBody: body,
		RespHeader: make([]byte, 64), RespBody: make([]byte, testObjectSize)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.rc.Do(ctx, call); err != nil {
		return proto.Response{}, nil, err
	}
	resp, err := proto.DecodeResponse(call.RespHeader, call.RespBody, req)
	if err != nil {
		return resp, nil, err
	}
	return resp, call.RespBody, resp.Err(call.RespBody)
}

func (c *client) write(oid proto.ObjectID, p []byte, off uint64, fua bool) error {
	var flags proto.Flags
	if fua {
		flags = proto.FlagFUA
	}
	_, _, err := c.do(proto.Request{Op: proto.OpWrite, Flags: flags, Object: oid, Offset: off, Length: uint32(len(p))}, p)
	return err
}

func (c *client) read(oid proto.ObjectID, off uint64, n int) ([]byte, error) {
	_, body, err := c.do(proto.Request{Op: proto.OpRead, Object: oid, Offset: off, Length: uint32(n)}, nil)
	return body, err
}

func randBytes(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	return p
}

func TestConcurrentClientsWriteAndReadBack(t *testing.T) {
	n := startNode(t, Options{})
	const clients, perClient, objects = 4, 3, 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	want := map[proto.ObjectID][]byte{}
	errs := make(chan error, clients*perClient)
	for c := range clients {
		cl := newClient(t, n.addr)
		for g := range perClient {
			wg.Go(func() {
				// Each goroutine owns its objects, so it knows their content.
				worker := c*perClient + g
				rng := rand.New(rand.NewPCG(uint64(worker), 1))
				mine := map[proto.ObjectID][]byte{}
				for range 40 {
					oid := proto.NewObjectID(uint32(worker+1), uint32(rng.IntN(objects)))
					size := 1 + rng.IntN(128<<10)
					off := uint64(rng.IntN(testObjectSize - size + 1))
					p := randBytes(rng, size)
					if err := cl.write(oid, p, off, rng.IntN(8) == 0); err != nil {
						errs <- err
						return
					}
					if mine[oid] == nil {
						mine[oid] = make([]byte, testObjectSize)
					}
					copy(mine[oid][off:], p)
				}
				mu.Lock()
				for k, v := range mine {
					want[k] = v
				}
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	cl := newClient(t, n.addr)
	for oid, content := range want {
		got, err := cl.read(oid, 0, testObjectSize)
		if err != nil {
			t.Fatal(err)
		}
		if sha256.Sum256(got) != sha256.Sum256(content) {
			t.Fatalf("object %v: checksum of what was read differs from what was written", oid)
		}
	}
	// An object never written reads as zeros.
	got, err := cl.read(proto.NewObjectID(999, 0), 100, 4096)
	if err != nil || !bytes.Equal(got, make([]byte, 4096)) {
		t.Fatalf("absent object: %v", err)
	}
}

func TestBadRequestsGetErrorRepliesAndNodeKeepsServing(t *testing.T) {
	n := startNode(t, Options{})
	bad := newClient(t, n.addr)
	good := newClient(t, n.addr)
	oid := proto.NewObjectID(1, 1)
	if err := good.write(oid, []byte("keep me"), 10, false); err != nil {
		t.Fatal(err)
	}
	enc := func(r proto.Request) []byte { b, _ := r.AppendBinary(nil); return b }
	readReq := proto.Request{Op: proto.OpRead, Object: oid, Length: 1}
	garbage := bytes.Repeat([]byte{0xff}, proto.RequestSize)
	wrongVersion := enc(readReq)
	wrongVersion[0] = 7
	for _, tc := range []struct {
		name string
		hdr  []byte
		body []byte
		want proto.Status
	}{
		{"oversized length", enc(proto.Request{Op: proto.OpRead, Object: oid, Length: testObjectSize + 1}), nil, proto.StatusOutOfRange},
		{"unknown opcode", enc(proto.Request{Op: 77, Object: oid, Length: 1}), nil, proto.StatusUnknownOp},
		{"offset past the object", enc(proto.Request{Op: proto.OpWrite, Object: oid, Offset: testObjectSize, Length: 1}), []byte{1}, proto.StatusOutOfRange},
		{"range crossing the end", enc(proto.Request{Op: proto.OpRead, Object: oid, Offset: testObjectSize - 1, Length: 2}), nil, proto.StatusOutOfRange},
		{"truncated header", enc(readReq)[:proto.RequestSize-3], nil, proto.StatusInvalidArgument},
		{"empty header", nil, nil, proto.StatusInvalidArgument},
		{"garbage header", garbage, nil, proto.StatusUnsupportedVersion},
		{"wrong version", wrongVersion, nil, proto.StatusUnsupportedVersion},
		{"write body shorter than length", enc(proto.Request{Op: proto.OpWrite, Object: oid, Length: 10}), []byte("short"), proto.StatusInvalidArgument},
		{"body on a read", enc(readReq), []byte("x"), proto.StatusInvalidArgument},
		{"remove of a missing object", enc(proto.Request{Op: proto.OpRemove, Object: proto.NewObjectID(5, 5)}), nil, proto.StatusNotFound},
	} {
		_, _, err := bad.doRaw(&readReq, tc.hdr, tc.body)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want status %v", tc.name, err, tc.want)
		}
	}
	// Frame-level garbage on a raw connection: rpc drops that connection.
	conn, err := net.Dial("tcp", n.addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write(bytes.Repeat([]byte("not a frame at all "), 10))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("garbage connection was not closed by the node: %v", err)
	}
	conn.Close()

	for _, c := range []*client{bad, good} {
		got, err := c.read(oid, 10, 7)
		if err != nil || string(got) != "keep me" {
			t.Fatalf("after bad input, read = %q, %v", got, err)
		}
	}
}

func TestOperations(t *testing.T) {
	n := startNode(t, Options{Zone: "rack-9", Capacity: 1 << 40})
	c := newClient(t, n.addr)
	oid := proto.NewObjectID(7, 3)
	data := bytes.Repeat([]byte("sheep!"), 10000)

	t.Run("create-and-write replaces", func(t *testing.T) {
		if err := c.write(oid, bytes.Repeat([]byte{9}, 100000), 0, false); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.do(proto.Request{Op: proto.OpCreateAndWrite, Flags: proto.FlagFUA, Object: oid, Offset: 4096, Length: uint32(len(data))}, data); err != nil {
			t.Fatal(err)
		}
		got, err := c.read(oid, 0, 4096+len(data)+10)
		want := append(append(make([]byte, 4096), data...), make([]byte, 10)...)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("after create-and-write the object differs (err %v)", err)
		}
	})
	t.Run("discard", func(t *testing.T) {
		if _, _, err := c.do(proto.Request{Op: proto.OpDiscard, Object: oid, Offset: 5000, Length: 1000}, nil); err != nil {
			t.Fatal(err)
		}
		got, err := c.read(oid, 4096, len(data))
		want := bytes.Clone(data)
		clear(want[5000-4096 : 6000-4096])
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("after discard the object differs (err %v)", err)
		}
	})
	t.Run("flush", func(t *testing.T) {
		if err := c.write(oid, []byte("dirty"), 0, false); err != nil {
			t.Fatal(err)
		}
		before := n.Store().Stats()
		if before.Dirty == 0 {
			t.Fatal("a plain write left nothing dirty")
		}
		if _, _, err := c.do(proto.Request{Op: proto.OpFlush}, nil); err != nil {
			t.Fatal(err)
		}
		after := n.Store().Stats()
		if after.Dirty != 0 || after.Syncs <= before.Syncs {
			t.Fatalf("flush left %d dirty after %d syncs", after.Dirty, after.Syncs-before.Syncs)
		}
	})
	t.Run("list objects in pages", func(t *testing.T) {
		var all []proto.ObjectID
		for i := range 10 {
			id := proto.NewObjectID(8, uint32(i*3))
			if err := c.write(id, []byte{1}, 0, false); err != nil {
				t.Fatal(err)
			}
			all = append(all, id)
		}
		var got []proto.ObjectID
		req := proto.Request{Op: proto.OpListObjects, Object: proto.NewObjectID(8, 0), Aux: uint64(proto.NewObjectID(9, 0)), Length: 4}
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("listing never ends")
			}
			resp, body, err := c.do(req, nil)
			if err != nil {
				t.Fatal(err)
			}
			l, err := proto.DecodeObjectList(body, req.Length)
			if err != nil {
				t.Fatal(err)
			}
			for i := range l.Len() {
				got = append(got, l.At(i))
			}
			if resp.Flags&proto.RespMore == 0 {
				break
			}
			req.Object = proto.ObjectID(resp.Aux)
		}
		if len(got) != len(all) {
			t.Fatalf("listed %v, want %v", got, all)
		}
		for i := range got {
			if got[i] != all[i] {
				t.Fatalf("listed %v, want %v", got, all)
			}
		}
	})
	t.Run("remove", func(t *testing.T) {
		if _, _, err := c.do(proto.Request{Op: proto.OpRemove, Object: oid}, nil); err != nil {
			t.Fatal(err)
		}
		if n.Store().Exists(oid) {
			t.Fatal("removed object exists")
		}
		if _, _, err := c.do(proto.Request{Op: proto.OpRemove, Object: oid}, nil); !errors.Is(err, proto.StatusNotFound) {
			t.Fatalf("second remove: %v", err)
		}
	})
	t.Run("node info", func(t *testing.T) {
		_, body, err := c.do(proto.Request{Op: proto.OpNodeInfo}, nil)
		if err != nil {
			t.Fatal(err)
		}
		info, err := proto.DecodeNodeInfo(body)
		if err != nil {
			t.Fatal(err)
		}
		if info.ID != n.addr || info.Zone != "rack-9" || info.Capacity != 1<<40 || info.ObjectSize != testObjectSize ||
			info.Objects != uint64(n.Store().Stats().Objects) || info.Objects == 0 || info.Used == 0 {
			t.Fatalf("node info %+v", info)
		}
	})
	t.Run("epoch", func(t *testing.T) {
		n.SetEpoch(5)
		defer n.SetEpoch(0)
		resp, _, err := c.do(proto.Request{Op: proto.OpRead, Epoch: 4, Object: oid, Length: 1}, nil)
		if !errors.Is(err, proto.StatusWrongEpoch) || resp.Epoch != 5 {
			t.Fatalf("stale epoch: %v, node epoch in reply %d", err, resp.Epoch)
		}
		if _, _, err := c.do(proto.Request{Op: proto.OpRead, Epoch: 5, Object: oid, Length: 1}, nil); err != nil {
			t.Fatalf("current epoch: %v", err)
		}
	})
}

func TestRestartKeepsDataAndID(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, Options{Dir: dir})
	c := newClient(t, n.addr)
	oid := proto.NewObjectID(3, 0)
	p := randBytes(rand.New(rand.NewPCG(5, 5)), 200000)
	if err := c.write(oid, p, 1234, false); err != nil { // no FUA: Shutdown must flush it
		t.Fatal(err)
	}
	syncsBefore := n.Store().Stats().Syncs
	n.shutdown(t)
	if n.Store().Stats().Syncs <= syncsBefore {
		t.Fatal("shutdown did not sync the written object")
	}
	if _, err := c.read(oid, 0, 1); err == nil {
		t.Fatal("a shut-down node still answers")
	}

	n2 := startNode(t, Options{Dir: dir})
	if n2.ID() != n.addr {
		t.Fatalf("restarted node id %q, want the first address %q", n2.ID(), n.addr)
	}
	got, err := newClient(t, n2.addr).read(oid, 1234, len(p))
	if err != nil || !bytes.Equal(got, p) {
		t.Fatalf("data after restart differs (err %v)", err)
	}
}

func TestNewNodeRefusesMismatches(t *testing.T) {
	dir := t.TempDir()
	n, err := NewNode(Options{Dir: dir, ObjectSize: testObjectSize, ID: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	if _, err := NewNode(Options{Dir: dir, ObjectSize: testObjectSize, ID: "node-b"}); err == nil {
		t.Fatal("a node started with another id on the same dir")
	}
	if _, err := NewNode(Options{Dir: dir, ObjectSize: 2 * testObjectSize}); err == nil {
		t.Fatal("a node started with another object size on the same dir")
	}
	n, err = NewNode(Options{Dir: dir})
	if err != nil || n.ID() != "node-a" {
		t.Fatalf("reopen: id %q, err %v", n.ID(), err)
	}
	n.Close()
}

func TestServeRPCWithRawBytes(t *testing.T) {
	// The handler alone, without a network: a length that lies about the
	// body must be refused before anything is written.
	n, err := NewNode(Options{Dir: t.TempDir(), ObjectSize: testObjectSize})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	hdr, _ := (&proto.Request{Op: proto.OpWrite, Object: 1, Length: 8}).AppendBinary(nil)
	var resp rpc.Response
	if err := n.Service().ServeRPC(context.Background(), &rpc.Request{Header: hdr, Body: []byte{1, 2, 3}}, &resp); err != nil {
		t.Fatal(err)
	}
	var r proto.Response
	if err := r.UnmarshalBinary(resp.Header); err != nil || r.Status != proto.StatusInvalidArgument {
		t.Fatalf("reply %+v, %v", r, err)
	}
	if n.Store().Exists(1) {
		t.Fatal("a refused write created the object")
	}
	if int(binary.LittleEndian.Uint32(resp.Header[4:])) != len(resp.Body) {
		t.Fatal("error reply length does not match its message")
	}
}

func FuzzServeRPC(f *testing.F) {
	enc := func(r proto.Request) []byte { b, _ := r.AppendBinary(nil); return b }
	f.Add(enc(proto.Request{Op: proto.OpWrite, Object: 1, Offset: 10, Length: 3}), []byte("abc"))
	f.Add(enc(proto.Request{Op: proto.OpRead, Object: 1, Length: 4096}), []byte{})
	f.Add(enc(proto.Request{Op: proto.OpListObjects, Length: 10}), []byte{})
	f.Add(enc(proto.Request{Op: proto.OpDiscard, Object: 1, Length: 5}), []byte{})
	f.Add([]byte{1, 2, 3}, []byte{})
	n, err := NewNode(Options{Dir: f.TempDir(), ObjectSize: proto.MinObjectSize, MaxOpenFiles: 8})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { n.Close() })
	f.Fuzz(func(t *testing.T, hdr, body []byte) {
		var resp rpc.Response
		if err := n.Service().ServeRPC(context.Background(), &rpc.Request{Header: hdr, Body: body}, &resp); err != nil {
			t.Fatalf("ServeRPC returned %v", err)
		}
		var r proto.Response
		if err := r.UnmarshalBinary(resp.Header); err != nil {
			t.Fatalf("the node sent an undecodable reply: %v", err)
		}
		if int(r.Length) != len(resp.Body) {
			t.Fatalf("reply length %d, body %d bytes", r.Length, len(resp.Body))
		}
	})
}

func BenchmarkRead4KOverRPC(b *testing.B) {
	n := startNode(b, Options{})
	c := newClient(b, n.addr)
	oid := proto.NewObjectID(1, 0)
	if err := c.write(oid, make([]byte, 4096), 0, false); err != nil {
		b.Fatal(err)
	}
	req := proto.Request{Op: proto.OpRead, Object: oid, Length: 4096}
	hdr, _ := req.AppendBinary(nil)
	call := &rpc.Call{ReqHeader: hdr, RespHeader: make([]byte, 64), RespBody: make([]byte, 4096)}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(4096)
	for b.Loop() {
		call.RespHeader, call.RespBody = call.RespHeader[:cap(call.RespHeader)], call.RespBody[:cap(call.RespBody)]
		if err := c.rc.Do(ctx, call); err != nil {
			b.Fatal(err)
		}
		if _, err := proto.DecodeResponse(call.RespHeader, call.RespBody, &req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWrite4KOverRPC(b *testing.B) {
	n := startNode(b, Options{})
	c := newClient(b, n.addr)
	req := proto.Request{Op: proto.OpWrite, Object: proto.NewObjectID(1, 0), Offset: 8192, Length: 4096}
	hdr, _ := req.AppendBinary(nil)
	call := &rpc.Call{ReqHeader: hdr, ReqBody: make([]byte, 4096), RespHeader: make([]byte, 64), RespBody: make([]byte, 64)}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(4096)
	for b.Loop() {
		call.RespHeader, call.RespBody = call.RespHeader[:cap(call.RespHeader)], call.RespBody[:cap(call.RespBody)]
		if err := c.rc.Do(ctx, call); err != nil {
			b.Fatal(err)
		}
		if _, err := proto.DecodeResponse(call.RespHeader, call.RespBody, &req); err != nil {
			b.Fatal(err)
		}
	}
}

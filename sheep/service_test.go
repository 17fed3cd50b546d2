package sheep

import (
	"context"
	"fmt"
	"io/fs"
	"testing"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
	"github.com/sheepblk/sheepblk/sheep/store"
)

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want proto.Status
	}{
		{fmt.Errorf("wrapped: %w", store.ErrRange), proto.StatusOutOfRange},
		{store.ErrClosed, proto.StatusShuttingDown},
		{fmt.Errorf("remove object 1: %w", fs.ErrNotExist), proto.StatusNotFound},
		{fmt.Errorf("write object 1: %w", unix.ENOSPC), proto.StatusNoSpace},
		{fmt.Errorf("write object 1: %w", unix.EDQUOT), proto.StatusNoSpace},
		{fmt.Errorf("read object 1: %w", unix.EIO), proto.StatusIOError},
		{&proto.Error{Status: proto.StatusWrongEpoch, Reason: "x"}, proto.StatusWrongEpoch},
	} {
		if got := statusOf(tc.err); got != tc.want {
			t.Errorf("statusOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// ServeInline serves only requests that touch nothing but the local
// store: reads and writes without FUA; on a node in a cluster, only once
// its epoch is complete and the VDI is known without asking etcd
// (placement is checked for every request). What it declines it leaves
// untouched, for a worker.
func TestServeInlinePicksLocalRequests(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{ObjectSize: proto.MinObjectSize})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := NewService(st, zerolog.Nop())
	oid := proto.NewObjectID(7, 1)
	req := func(op proto.Op, flags proto.Flags) *rpc.Request {
		pr := proto.Request{Op: op, Flags: flags, Object: oid, Length: 512}
		h, _ := pr.AppendBinary(nil)
		r := &rpc.Request{Header: h}
		if op == proto.OpWrite {
			r.Body = make([]byte, 512)
		}
		return r
	}
	check := func(what string, r *rpc.Request, want bool) {
		t.Helper()
		var resp rpc.Response
		served, err := s.ServeInline(context.Background(), r, &resp)
		if err != nil || served != want {
			t.Errorf("%s: ServeInline = %v, %v; want %v, nil", what, served, err, want)
		}
		if !served && (resp.Header != nil || resp.Body != nil) {
			t.Errorf("%s: declined, but the reply was filled in", what)
		}
		if served && len(resp.Header) != proto.ResponseSize {
			t.Errorf("%s: served with a reply header of %d bytes", what, len(resp.Header))
		}
	}
	check("read", req(proto.OpRead, 0), true)
	check("write", req(proto.OpWrite, 0), true)
	check("FUA write", req(proto.OpWrite, proto.FlagFUA), false)
	check("flush", req(proto.OpFlush, 0), false)
	check("recovery read", req(proto.OpReadPeer, 0), false)
	check("garbage header", &rpc.Request{Header: []byte{1, 2, 3}}, false)

	r := &recoverer{vdis: newVDICache(nil)}
	s.epochs.Store(r)
	check("read, epoch not complete", req(proto.OpRead, 0), false)
	check("write, epoch not complete", req(proto.OpWrite, 0), false)
	r.complete.Store(true)
	check("read, VDI unknown", req(proto.OpRead, 0), false)
	check("write, VDI unknown", req(proto.OpWrite, 0), false)
	r.vdis.table[oid.VDI()] = 3
	// Served: the answer is an error reply (this recoverer has no epoch).
	check("read, VDI known", req(proto.OpRead, 0), true)
	check("write, VDI known", req(proto.OpWrite, 0), true)
}

package sheep

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
	"github.com/sheepblk/sheepblk/sheep/store"
)

// SoftwareVersion is what NodeInfo reports as the node's software version.
var SoftwareVersion = "dev"

// usageTTL is how long a computed disk usage is reused: it stats every
// object, so NodeInfo polled in a loop must not redo it each time.
const usageTTL = 5 * time.Second

// Identity is what a Service says about its node in NodeInfo.
type Identity struct {
	ID, Zone string
	Capacity uint64
}

// Service serves sheep requests on a store. It implements rpc.Handler.
type Service struct {
	st  *store.Store
	log zerolog.Logger

	epoch    atomic.Uint64
	identity atomic.Pointer[Identity]
	// epochs, when set (a node in a cluster), admits data requests by
	// epoch and object readiness and answers peers' recovery reads.
	epochs atomic.Pointer[recoverer]
	// writes orders the attempts of one update (proto.Request.WriteID).
	writes writeOrder

	// active counts requests being served; once closing is set, new ones
	// are refused with StatusShuttingDown, so Drain can wait for the store
	// to be idle before it is closed.
	active  atomic.Int64
	closing atomic.Bool

	usageMu   sync.Mutex
	usage     uint64
	usageTime time.Time
}

// NewService returns a service for st.
func NewService(st *store.Store, log zerolog.Logger) *Service {
	s := &Service{st: st, log: log}
	s.identity.Store(&Identity{})
	return s
}

// SetEpoch sets the cluster epoch the node is in. Data requests that carry
// another (non-zero) epoch get StatusWrongEpoch; 0 turns the check off.
func (s *Service) SetEpoch(e uint64) { s.epoch.Store(e) }

// Epoch is the node's cluster epoch.
func (s *Service) Epoch() uint64 { return s.epoch.Load() }

// SetIdentity sets what NodeInfo reports about the node.
func (s *Service) SetIdentity(id Identity) { s.identity.Store(&id) }

// ServeRPC handles one request. Every failure becomes an error reply with a
// status and a short message; it never returns an error, so the rpc layer
// keeps the connection.
func (s *Service) ServeRPC(ctx context.Context, req *rpc.Request, resp *rpc.Response) error {
	s.handle(ctx, req, resp, false)
	return nil
}

// ServeInline implements rpc.InlineHandler: reads whose bytes the page
// cache holds, and writes without FUA (into the page cache), are served
// on the connection's reader once the node needs no recovery for them and
// no etcd lookup (recoverer.quick). A read that would wait for the disk,
// FUA writes (an fdatasync), flushes, recovery reads and listings go to
// workers.
func (s *Service) ServeInline(ctx context.Context, req *rpc.Request, resp *rpc.Response) (bool, error) {
	var r proto.Request
	if r.UnmarshalBinary(req.Header) != nil {
		return false, nil // ServeRPC answers it, from a worker
	}
	if r.Op != proto.OpRead && (r.Op != proto.OpWrite || r.Flags&proto.FlagFUA != 0) {
		return false, nil
	}
	if epochs := s.epochs.Load(); epochs != nil && !epochs.quick(r.Object) {
		return false, nil
	}
	return s.handle(ctx, req, resp, true), nil
}

// handle serves req into resp; with nowait it serves nothing, and reports
// false, if a read would wait for the disk.
func (s *Service) handle(ctx context.Context, req *rpc.Request, resp *rpc.Response, nowait bool) bool {
	s.active.Add(1)
	defer s.active.Add(-1)
	out := proto.Response{Epoch: s.epoch.Load()}
	r, err := proto.DecodeRequest(req.Header, s.st.ObjectSize())
	if err == nil && s.closing.Load() {
		err = &proto.Error{Status: proto.StatusShuttingDown, Reason: "the node is stopping"}
	}
	if err == nil {
		err = s.serve(ctx, &r, req.Body, resp, &out, nowait)
	}
	if errors.Is(err, store.ErrWouldWait) {
		return false
	}
	if err != nil {
		status := statusOf(err)
		msg := err.Error()
		body := proto.AppendErrorMessage(resp.Buf(min(len(msg), proto.MaxErrorMessage))[:0], msg)
		out = proto.Response{Status: status, Length: uint32(len(body)), Epoch: out.Epoch}
		resp.Body = body
		ev := s.log.Debug()
		if status == proto.StatusIOError || status == proto.StatusInternal || status == proto.StatusNoSpace {
			ev = s.log.Error()
		}
		ev.Err(err).Stringer("op", r.Op).Stringer("object", r.Object).Stringer("status", status).
			Stringer("remote", req.RemoteAddr).Msg("request failed")
	}
	resp.Header, _ = out.AppendBinary(resp.Buf(proto.ResponseSize)[:0])
	return true
}

// Drain refuses new requests and waits until none is being served, or
// until ctx ends.
func (s *Service) Drain(ctx context.Context) error {
	s.closing.Store(true)
	for s.active.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d requests still running: %w", s.active.Load(), ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// serve runs a decoded, bounded request, filling resp's body and out. With
// nowait, whatever would wait returns store.ErrWouldWait: a read the page
// cache cannot answer, an earlier attempt of the same write still running,
// an object that must be recovered first.
func (s *Service) serve(ctx context.Context, r *proto.Request, body []byte, resp *rpc.Response, out *proto.Response, nowait bool) error {
	wantBody := 0
	if r.Op == proto.OpWrite || r.Op == proto.OpCreateAndWrite {
		wantBody = int(r.Length)
	}
	if len(body) != wantBody {
		return &proto.Error{Status: proto.StatusInvalidArgument, Reason: r.Op.String() + " with a body of the wrong length"}
	}
	if id, attempt := r.WriteID(); id != 0 {
		key := writeKey{r.Object, id}
		serve, err := s.writes.enter(ctx, key, attempt, nowait)
		if errors.Is(err, store.ErrWouldWait) {
			return err
		}
		if err != nil {
			return notReady("write %d: %v", id, err)
		}
		if !serve {
			// A newer attempt of this update started: this one is stale,
			// and the client, which only resends once it gave up on an
			// attempt, no longer waits for its reply.
			return nil
		}
		defer s.writes.leave(key)
	}
	epochs := s.epochs.Load()
	if r.Op.IsDataOp() {
		if epochs != nil {
			if err := epochs.admit(ctx, r, nowait); err != nil {
				return err
			}
			defer epochs.release()
		} else if mine := out.Epoch; r.Epoch != 0 && mine != 0 && r.Epoch != mine {
			return &proto.Error{Status: proto.StatusWrongEpoch, Reason: "request epoch differs from the node's"}
		}
	}
	fua := r.Flags&proto.FlagFUA != 0
	off := int64(r.Offset)
	switch r.Op {
	case proto.OpRead:
		// Read straight into the reply buffer: no copy.
		buf := resp.Buf(int(r.Length))
		read := s.st.ReadAt
		if nowait {
			read = s.st.ReadAtNoWait
		}
		if err := read(r.Object, buf, off); err != nil {
			return err
		}
		resp.Body = buf
		out.Length = r.Length
	case proto.OpWrite:
		return s.st.WriteAt(r.Object, body, off, fua)
	case proto.OpCreateAndWrite:
		return s.st.CreateAndWrite(r.Object, body, off, fua)
	case proto.OpDiscard:
		return s.st.Discard(r.Object, off, int64(r.Length), fua)
	case proto.OpRemove:
		return s.st.Remove(r.Object)
	case proto.OpFlush:
		return s.st.Flush()
	case proto.OpListObjects:
		if epochs != nil && r.Flags&proto.FlagAllCopies != 0 && !epochs.listingTrusted() {
			return &proto.Error{Status: proto.StatusWrongEpoch, Reason: "node lost its directory: its listing misses what it held before; ask again once the cluster recovered"}
		}
		s.list(r, resp, out)
		if epochs != nil && r.Flags&proto.FlagAllCopies != 0 {
			// A recovering peer trusts a listing only from a node that
			// has settled in its epoch (see recoverer.settledEpoch).
			out.Epoch = epochs.settledEpoch()
		}
	case proto.OpNodeInfo:
		return s.nodeInfo(resp, out)
	case proto.OpReadPeer:
		return s.readPeer(ctx, epochs, r, resp, out)
	default:
		// DecodeRequest refuses unknown ops; this is a guard against a
		// new op added to proto and not here.
		return &proto.Error{Status: proto.StatusUnknownOp, Reason: r.Op.String()}
	}
	return nil
}

func (s *Service) list(r *proto.Request, resp *rpc.Response, out *proto.Response) {
	buf := resp.Buf(int(r.Length) * 8)[:0]
	limit := int(r.Length)
	if r.Flags&proto.FlagAllCopies != 0 {
		ids, next, more := s.st.ListAll(make([]proto.ObjectID, 0, min(limit, 1024)), r.Object, proto.ObjectID(r.Aux), limit)
		for _, id := range ids {
			buf = proto.AppendObjectID(buf, id)
		}
		if more {
			out.Flags |= proto.RespMore
			out.Aux = uint64(next)
		}
		resp.Body = buf
		out.Length = uint32(len(buf))
		return
	}
	s.st.Range(r.Object, proto.ObjectID(r.Aux), func(oid proto.ObjectID) bool {
		if len(buf) == limit*8 {
			out.Flags |= proto.RespMore
			out.Aux = uint64(oid)
			return false
		}
		buf = proto.AppendObjectID(buf, oid)
		return true
	})
	resp.Body = buf
	out.Length = uint32(len(buf))
}

// readPeer answers a recovering peer's OpReadPeer: the whole object as of
// the asked epoch or later (Aux: the epoch the copy is valid through), an
// authoritative NotFound, or NotReady. A standalone node has no epochs and
// cannot say.
func (s *Service) readPeer(ctx context.Context, epochs *recoverer, r *proto.Request, resp *rpc.Response, out *proto.Response) error {
	if epochs == nil {
		return &proto.Error{Status: proto.StatusNotReady, Reason: "standalone node: no epochs"}
	}
	buf := resp.Buf(int(r.Length))
	a, validThrough, err := epochs.answerPeer(ctx, r.Object, r.Epoch, buf)
	if err != nil {
		return err
	}
	switch a {
	case answerData:
		resp.Body = buf
		out.Length = r.Length
		out.Aux = validThrough
		return nil
	case answerAbsent:
		return &proto.Error{Status: proto.StatusNotFound, Reason: fmt.Sprintf("object %v did not exist here at epoch %d", r.Object, r.Epoch)}
	default:
		return &proto.Error{Status: proto.StatusNotReady, Reason: fmt.Sprintf("no copy of object %v as of epoch %d here", r.Object, r.Epoch)}
	}
}

func (s *Service) nodeInfo(resp *rpc.Response, out *proto.Response) error {
	id := s.identity.Load()
	used, err := s.diskUsage()
	if err != nil {
		return err
	}
	info := proto.NodeInfo{
		ProtocolVersion: proto.Version,
		ID:              id.ID,
		Zone:            id.Zone,
		SoftwareVersion: SoftwareVersion,
		ObjectSize:      s.st.ObjectSize(),
		Capacity:        id.Capacity,
		Used:            used,
		Objects:         uint64(s.st.Stats().Objects),
		Epoch:           out.Epoch,
	}
	body, err := info.AppendBinary(resp.Buf(40 + 3*proto.MaxNodeString)[:0])
	if err != nil {
		return err
	}
	resp.Body = body
	out.Length = uint32(len(body))
	return nil
}

func (s *Service) diskUsage() (uint64, error) {
	s.usageMu.Lock()
	defer s.usageMu.Unlock()
	if time.Since(s.usageTime) < usageTTL {
		return s.usage, nil
	}
	u, err := s.st.DiskUsage()
	if err != nil {
		return 0, err
	}
	s.usage, s.usageTime = u, time.Now()
	return u, nil
}

// statusOf maps an error of the store or of proto to the status a client
// acts on.
func statusOf(err error) proto.Status {
	var perr *proto.Error
	switch {
	case errors.As(err, &perr):
		return perr.Status
	case errors.Is(err, store.ErrRange):
		return proto.StatusOutOfRange
	case errors.Is(err, store.ErrClosed):
		return proto.StatusShuttingDown
	case errors.Is(err, fs.ErrNotExist):
		return proto.StatusNotFound
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return proto.StatusNoSpace
	default:
		return proto.StatusIOError
	}
}

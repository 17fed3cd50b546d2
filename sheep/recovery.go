package sheep

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/sheep/proto"
	"github.com/sheepblk/sheepblk/sheep/store"
)

// DefaultRecoveryBandwidth bounds background recovery (bytes/s) when
// Options leave it 0.
const DefaultRecoveryBandwidth = 64 << 20

// recoveryStore is what epochs and recovery need of the object store
// (package store).
type recoveryStore interface {
	ObjectSize() uint32
	Exists(oid proto.ObjectID) bool
	ReadAt(oid proto.ObjectID, p []byte, off int64) error
	Range(from, to proto.ObjectID, fn func(proto.ObjectID) bool)
	Supersede(oid proto.ObjectID, epoch uint64) error
	SupersedeAll(epoch uint64) error
	StaleCopy(oid proto.ObjectID, atLeast uint64) (uint64, bool)
	ReadStale(oid proto.ObjectID, epoch uint64, p []byte) error
	Install(oid proto.ObjectID, data []byte) error
	PruneStale(below uint64) (int, error)
	ListAll(dst []proto.ObjectID, from, to proto.ObjectID, max int) ([]proto.ObjectID, proto.ObjectID, bool)
}

// recoveryCluster is what epochs and recovery need of the cluster (package
// cluster's Client).
type recoveryCluster interface {
	epochSource
	vdiSource
	Epoch(ctx context.Context) (cluster.Epoch, error)
	WatchEpoch(ctx context.Context) <-chan cluster.Epoch
	Nodes(ctx context.Context) ([]cluster.Node, error)
	LastComplete(ctx context.Context) (uint64, error)
	WatchLastComplete(ctx context.Context) <-chan uint64
	MarkComplete(ctx context.Context, e uint64) error
	RemoveMember(ctx context.Context, id string) (cluster.Epoch, error)
	SetRecoveryStatus(ctx context.Context, s cluster.RecoveryStatus) error
}

// recoveryState is the node's recovery bookkeeping, persisted in its
// directory: the epoch its objects/ is valid at, whether it completed
// recovering it, whether it had completed the one before, and the epochs
// it completed.
type recoveryState = store.RecoveryState

// completedAt reports whether the node completed recovery of epoch e.
func completedAt(s recoveryState, e uint64) bool {
	return (s.Epoch == e && s.Complete) || s.HasCompleted(e)
}

// RecoveryProgress is the node's recovery of its current epoch, as it
// reports it to the cluster.
type RecoveryProgress struct {
	Epoch       uint64
	Member      bool
	Total, Done int64 // objects to pull, and pulled or found absent
	Bytes       int64 // bytes copied
	Complete    bool
	Waiting     string // why recovery is stuck, "" if it is not
}

// recoveryOptions configure a recoverer.
type recoveryOptions struct {
	Self      string
	Store     recoveryStore
	Cluster   recoveryCluster
	LoadState func() (recoveryState, error)
	SaveState func(recoveryState) error
	// StateMissing reports that the node has no saved state at all (nil:
	// never); see amnesia.go.
	StateMissing func() bool
	// MemberBeforeRegister: the node's id was a member of the epoch read
	// before this run registered (so not added for this run).
	MemberBeforeRegister bool
	// EpochBeforeRegister is the number of the epoch read just before the
	// node registered: only membership up to it can be a previous run's
	// (later epochs may be the controller adding this run).
	EpochBeforeRegister uint64
	// DistrustFile is where the epoch below which the node cannot vouch
	// for "no copy here" is kept ("": nowhere, tests).
	DistrustFile string
	Peers        *peerSet
	// Bandwidth bounds background pulls in bytes/s; <0: unlimited.
	Bandwidth int64
	// Live reports whether the node's registration is live; nil: always.
	Live func() bool
	// SetEpoch tells the service the node's epoch (for reply headers).
	SetEpoch func(uint64)
	Logger   zerolog.Logger
	// RetryInterval is how often a stuck recovery retries (default 2s).
	RetryInterval time.Duration
}

// recoverer runs the node's side of epochs: it applies epoch transitions,
// decides whether an object is ready to be served, pulls objects from their
// previous holders (on access and in the background) and answers peers
// asking for its copies.
type recoverer struct {
	opts    recoveryOptions
	self    string
	st      recoveryStore
	cl      recoveryCluster
	log     zerolog.Logger
	epochs  *epochCache
	vdis    *vdiCache
	limiter *rate.Limiter // nil: unlimited
	bufs    sync.Pool     // object-sized []byte
	flight  singleflight.Group

	// filesMu is held for writing while a transition moves files, and for
	// reading while a peer is answered from them: an answer never sees an
	// object half-way between objects/ and stale/.
	filesMu sync.RWMutex

	mu          sync.Mutex
	loaded      bool // state was loaded from disk
	state       recoveryState
	cur         *epochView // the epoch the node is at; nil before start
	prev        *epochView // the epoch before cur
	serving     bool       // data requests admitted (member, started, not in a transition)
	inflight    int
	idle        *sync.Cond // signalled when inflight drops to 0
	absent      map[proto.ObjectID]struct{}
	epochCtx    context.Context // ends when cur ends: cancels pulls of cur
	epochCancel context.CancelFunc
	bgDone      chan struct{} // closed when cur's background recovery ends
	progress    RecoveryProgress
	lastReport  time.Time

	complete     atomic.Bool   // the node completed cur: nothing left to pull
	lastComplete atomic.Uint64 // the cluster's recovery-complete epoch
	prunedBelow  atomic.Uint64 // stale copies below this may be gone
	// distrustBelow: below this epoch the node cannot vouch that having
	// no copy means it took no write (it lost its state: see amnesia.go).
	distrustBelow atomic.Uint64
	bytes         atomic.Int64
}

func newRecoverer(opts recoveryOptions) *recoverer {
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = 2 * time.Second
	}
	if opts.Live == nil {
		opts.Live = func() bool { return true }
	}
	if opts.SetEpoch == nil {
		opts.SetEpoch = func(uint64) {}
	}
	r := &recoverer{
		opts:   opts,
		self:   opts.Self,
		st:     opts.Store,
		cl:     opts.Cluster,
		log:    opts.Logger,
		epochs: newEpochCache(opts.Cluster),
		vdis:   newVDICache(opts.Cluster),
		absent: map[proto.ObjectID]struct{}{},
	}
	r.idle = sync.NewCond(&r.mu)
	size := int(opts.Store.ObjectSize())
	r.bufs.New = func() any { return make([]byte, size) }
	if opts.Bandwidth >= 0 {
		bw := opts.Bandwidth
		if bw == 0 {
			bw = DefaultRecoveryBandwidth
		}
		r.limiter = rate.NewLimiter(rate.Limit(bw), max(size, int(bw)))
	}
	r.epochCtx, r.epochCancel = context.WithCancel(context.Background())
	return r
}

func notReady(format string, args ...any) error {
	return &proto.Error{Status: proto.StatusNotReady, Reason: fmt.Sprintf(format, args...)}
}

// admit lets a data request in, or says why not: StatusWrongEpoch if it
// is for another epoch, StatusNotReady if the node is not serving or the
// object is not recovered yet (and cannot be now). On success the caller
// must call release when the request is done: a transition waits for
// admitted requests before it moves files. With nowait (a request served
// inline) it returns store.ErrWouldWait unless it can answer with no
// network wait (quick): the epoch may have changed since ServeInline
// asked, and a pull from a peer, whose node may be read by the same
// thread, must not run there.
func (r *recoverer) admit(ctx context.Context, req *proto.Request, nowait bool) error {
	if nowait && !r.quick(req.Object) {
		return store.ErrWouldWait
	}
	r.mu.Lock()
	cur := r.cur
	switch {
	case cur == nil:
		r.mu.Unlock()
		return notReady("node starting")
	case req.Epoch != cur.Number:
		r.mu.Unlock()
		return &proto.Error{Status: proto.StatusWrongEpoch, Reason: "request for epoch " + strconv.FormatUint(req.Epoch, 10) +
			", node at " + strconv.FormatUint(cur.Number, 10)}
	case !r.serving:
		r.mu.Unlock()
		return notReady("node not serving epoch %d (not a member, or changing epoch)", cur.Number)
	case !r.opts.Live():
		r.mu.Unlock()
		return notReady("node not registered in the cluster (lease lost)")
	}
	r.inflight++
	prev, prevComplete, pctx := r.prev, r.state.PrevComplete, r.epochCtx
	r.mu.Unlock()
	if err := r.ready(ctx, pctx, cur, prev, prevComplete, req); err != nil {
		r.release()
		return err
	}
	return nil
}

func (r *recoverer) release() {
	r.mu.Lock()
	r.inflight--
	if r.inflight == 0 {
		r.idle.Broadcast()
	}
	r.mu.Unlock()
}

// ready answers "is X ready on this node at epoch cur?", pulling X now if
// it must be (see epochs.md). An object that is not ready is never served:
// a read would answer zeros for data that exists elsewhere, a write would
// create an object missing its older data.
func (r *recoverer) ready(ctx, pctx context.Context, cur, prev *epochView, prevComplete bool, req *proto.Request) error {
	oid := req.Object
	// Placement is checked even once the epoch is complete: a client
	// never asks a node that is not a target, but if one did (a bug),
	// the object is not here and the read would answer zeros. copies is
	// a cache hit after the first request of a VDI, and isTarget a hash
	// lookup.
	copies, err := r.vdis.copies(ctx, oid.VDI())
	if errors.Is(err, errUnknownVDI) && req.Op == proto.OpRemove {
		return nil // garbage of a deleted VDI (ids are never reused): removing it is always safe
	}
	if err != nil {
		return notReady("object %v: %v", oid, err)
	}
	if !cur.isTarget(r.self, oid, copies) {
		return notReady("object %v is not placed on node %s in epoch %d", oid, r.self, cur.Number)
	}
	if r.complete.Load() || r.st.Exists(oid) || r.isAbsent(oid) {
		return nil
	}
	if prevComplete && prev.isTarget(r.self, oid, copies) {
		return nil // it would be here if it existed at the previous epoch
	}
	if req.Op == proto.OpRead {
		// A read does not wait for a whole-object pull: the client reads
		// another replica (one that held the object in the previous epoch
		// is ready) and comes back later; the pull, started now, brings
		// this copy up meanwhile. Writes must wait: they land on it.
		r.startPull(pctx, cur, oid, copies)
		return notReady("object %v not recovered on %s yet: pulling it now", oid, r.self)
	}
	_, err = r.pull(ctx, pctx, cur, oid, copies)
	return err
}

// quick reports whether admit would answer a request on oid with no
// network wait: the node has completed its epoch (no pulls) and knows the
// VDI's copies without asking etcd.
func (r *recoverer) quick(oid proto.ObjectID) bool {
	return r.complete.Load() && r.vdis.known(oid.VDI())
}

func (r *recoverer) isAbsent(oid proto.ObjectID) bool {
	r.mu.Lock()
	_, ok := r.absent[oid]
	r.mu.Unlock()
	return ok
}

// startPull starts recovering X for epoch cur unless that is under way,
// and returns the channel its result arrives on (buffered: nobody has to
// read it). The pull runs until it ends or cur does.
func (r *recoverer) startPull(pctx context.Context, cur *epochView, oid proto.ObjectID, copies int) <-chan singleflight.Result {
	key := strconv.FormatUint(cur.Number, 10) + "/" + strconv.FormatUint(uint64(oid), 16)
	return r.flight.DoChan(key, func() (any, error) {
		// Counted as in flight: a transition (which cancels pctx under
		// mu, then waits for in-flight work) never moves files under an
		// Install of the epoch it leaves.
		r.mu.Lock()
		if err := pctx.Err(); err != nil {
			r.mu.Unlock()
			return nil, err
		}
		r.inflight++
		r.mu.Unlock()
		defer r.release()
		return r.recoverObject(pctx, cur, oid, copies)
	})
}

// pull recovers X for epoch cur, once however many requests (and the
// background recovery) want it at the same time, and says how many bytes
// that copied. ctx bounds the caller's wait; the pull itself runs until it
// ends or cur does.
func (r *recoverer) pull(ctx, pctx context.Context, cur *epochView, oid proto.ObjectID, copies int) (int, error) {
	ch := r.startPull(pctx, cur, oid, copies)
	select {
	case res := <-ch:
		if res.Err != nil {
			return 0, notReady("object %v not recovered yet: %v", oid, res.Err)
		}
		return res.Val.(int), nil
	case <-ctx.Done():
		return 0, notReady("object %v not recovered yet: %v", oid, ctx.Err())
	}
}

// recoverObject walks back through the epochs for X and installs what it
// finds (returning its size), or records that X is absent at cur.
func (r *recoverer) recoverObject(ctx context.Context, cur *epochView, oid proto.ObjectID, copies int) (int, error) {
	if r.st.Exists(oid) || r.isAbsent(oid) {
		return 0, nil
	}
	floor := r.lastComplete.Load()
	if floor >= cur.Number {
		// The cluster recovered this epoch or a later one without this
		// node: nothing before it can be asked. The node is behind; it
		// catches up by transitions.
		return 0, fmt.Errorf("object %v: %w: the cluster recovered epoch %d, this node is at %d", oid, errBlocked, floor, cur.Number)
	}
	buf := r.bufs.Get().([]byte)
	defer r.bufs.Put(buf)
	src := walkSourceFunc{r: r, copies: copies}
	out, err := walkBack(ctx, oid, cur.Number, floor, src, buf)
	if err != nil {
		return 0, err
	}
	if !out.Found {
		r.mu.Lock()
		if r.cur == cur {
			r.absent[oid] = struct{}{}
		}
		r.mu.Unlock()
		r.log.Debug().Stringer("object", oid).Uint64("epoch", cur.Number).Str("source", out.Source).Uint64("at", out.Epoch).Msg("object absent")
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := r.st.Install(oid, buf); err != nil && !errors.Is(err, store.ErrExists) {
		return 0, fmt.Errorf("install object %v: %w", oid, err)
	}
	r.bytes.Add(int64(len(buf)))
	r.log.Debug().Stringer("object", oid).Uint64("epoch", cur.Number).Str("source", out.Source).Uint64("at", out.Epoch).Msg("object recovered")
	return len(buf), nil
}

// walkSourceFunc adapts the recoverer to walkBack for one object.
type walkSourceFunc struct {
	r      *recoverer
	copies int
}

func (w walkSourceFunc) sourcesAt(ctx context.Context, e uint64, oid proto.ObjectID) ([]string, error) {
	v, err := w.r.epochs.at(ctx, e)
	if err != nil {
		return nil, err
	}
	var buf [cluster.MaxCopies + 1]placementID
	ts := v.targets(oid, w.copies, buf[:0])
	out := make([]string, 0, len(ts))
	// Itself first: its own stale copies cost no network.
	for _, t := range ts {
		if string(t) == w.r.self {
			out = append(out, string(t))
		}
	}
	for _, t := range ts {
		if string(t) != w.r.self {
			out = append(out, string(t))
		}
	}
	return out, nil
}

func (w walkSourceFunc) ask(ctx context.Context, source string, oid proto.ObjectID, e uint64, buf []byte) peerAnswer {
	if source == w.r.self {
		a, _, err := w.r.answerPeer(ctx, oid, e, buf)
		if err != nil {
			w.r.log.Debug().Err(err).Stringer("object", oid).Msg("no answer from own copies")
			return answerUnreachable
		}
		return a
	}
	return w.r.opts.Peers.readPeer(ctx, source, oid, e, buf)
}

// answerPeer answers "X as of epoch e" from this node's copies (OpReadPeer,
// and the node itself as a source), once the node has left e (so no more
// writes of e can reach it): its current copy, else its newest stale copy
// valid through e or later (answerData, buf holds it, validThrough says
// until when); authoritative absence if it was a target of X in e, had
// completed recovering e, and its stale copies of e are not pruned; else
// unknown, which only ever means "no copy here, and none will come".
func (r *recoverer) answerPeer(ctx context.Context, oid proto.ObjectID, e uint64, buf []byte) (a peerAnswer, validThrough uint64, err error) {
	r.filesMu.RLock()
	defer r.filesMu.RUnlock()
	r.mu.Lock()
	state, loaded := r.state, r.loaded
	r.mu.Unlock()
	if !loaded {
		// Without its state the node cannot tell how current its copies
		// are; NotReady would wrongly say "no copy here", and a peer
		// could conclude the object absent. Say nothing instead.
		return answerUnreachable, 0, &proto.Error{Status: proto.StatusWrongEpoch, Reason: "node starting: recovery state not loaded yet"}
	}
	if state.Epoch <= e {
		// The node has not left epoch e: it may still take writes of e
		// that get acknowledged, so neither its copy nor "no copy here"
		// is final yet. No answer: the peer asks again later.
		return answerUnreachable, 0, &proto.Error{Status: proto.StatusWrongEpoch,
			Reason: fmt.Sprintf("node at epoch %d has not left epoch %d yet", state.Epoch, e)}
	}
	if r.st.Exists(oid) {
		if err := r.st.ReadAt(oid, buf, 0); err != nil {
			return answerUnreachable, 0, fmt.Errorf("read object %v for a peer: %w", oid, err)
		}
		return answerData, state.Epoch, nil
	}
	if se, ok := r.st.StaleCopy(oid, e); ok {
		if err := r.st.ReadStale(oid, se, buf); err != nil {
			return answerUnreachable, 0, fmt.Errorf("read stale copy of %v for a peer: %w", oid, err)
		}
		return answerData, se, nil
	}
	if e < r.distrustBelow.Load() {
		return answerUnreachable, 0, &proto.Error{Status: proto.StatusWrongEpoch,
			Reason: fmt.Sprintf("node lost its recovery state: it cannot say what it held at epoch %d", e)}
	}
	if !completedAt(state, e) || e < r.prunedBelow.Load() {
		return answerUnknown, 0, nil
	}
	copies, err := r.vdis.copies(ctx, oid.VDI())
	if err != nil {
		return answerUnknown, 0, nil // no copy here is all we can say
	}
	v, err := r.epochs.at(ctx, e)
	if err != nil || !v.isTarget(r.self, oid, copies) {
		return answerUnknown, 0, nil
	}
	return answerAbsent, 0, nil
}

// settledEpoch is the epoch the node has fully moved to (files moved,
// requests of earlier epochs drained), 0 before its state is loaded: a
// listing of its objects taken at settledEpoch >= e misses nothing a write
// of an epoch before e could still add.
func (r *recoverer) settledEpoch() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.loaded {
		return 0
	}
	return r.state.Epoch
}

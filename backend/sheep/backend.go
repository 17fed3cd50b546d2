package sheep

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/sheepblk/sheepblk/backend"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/placement"
	"github.com/sheepblk/sheepblk/rpc"
)

// Options configures a Backend.
type Options struct {
	// Cluster is the connection to the cluster's etcd. Required; the
	// Backend does not close it.
	Cluster *cluster.Client
	// VDI names the VDI to serve. Required.
	VDI string
	// CallTimeout bounds every read, write and discard call to a node
	// (default 5s): a read fails over to the next replica after it, a
	// write is sent again. It must be well below IOTimeout, or a request
	// gets no second try.
	CallTimeout time.Duration
	// IOTimeout bounds a whole request, retries included (default 30s,
	// at least CallTimeout): a write resends to a target that does not
	// answer and is re-planned when the epoch changes, a read tries every
	// replica in rounds, until then; after it the request fails with EIO
	// naming the last error. (ublkctl add --io-timeout.)
	IOTimeout time.Duration
	// FlushTimeout bounds a flush call (default 60s): a node's flush
	// syncs everything written since the last one, which can take far
	// longer than one write, and a failed flush is an I/O error the file
	// system above may not survive.
	FlushTimeout time.Duration
	// OpenTimeout bounds Open's wait for the cluster's membership (default
	// 10s).
	OpenTimeout time.Duration
	// MaxInFlight is how many request states are preallocated (default
	// 256): the ublk device's queues times their depth. More requests in
	// flight still work, at the cost of an allocation each.
	MaxInFlight int
	// MaxIOSize is the largest request the preallocated states cover
	// without allocating (default 1 MiB).
	MaxIOSize int
	// RPC configures the connection to each node.
	RPC    rpc.ClientOptions
	Logger zerolog.Logger
}

// DefaultIOTimeout is Options.IOTimeout's default: the SCSI layer's
// default command timeout.
const DefaultIOTimeout = 30 * time.Second

// ErrClosed fails requests submitted after Close.
var ErrClosed = errors.New("sheep backend closed")

// Backend serves one VDI from a sheep cluster.
type Backend struct {
	opts    Options
	vdi     cluster.VDI
	objSize int64
	log     zerolog.Logger
	errLog  zerolog.Logger // request failures, sampled: a dead node fails many
	minLog  zerolog.Logger // writes below min-copies, sampled harder

	// minCopies is the fewest targets a write may have (the cluster's
	// min-copies for the VDI's copies): fewer fails it at once.
	minCopies int

	topo      atomic.Pointer[topology]
	ready     chan struct{} // closed once the first topology is in
	free      chan *ioState // preallocated request states
	maxPieces int           // object pieces each preallocated state holds

	mu    sync.Mutex
	peers map[string]*peer // every node ever seen, by id

	handle *cluster.VDIHandle // the VDI is in use while we are open

	closed   atomic.Bool
	gone     atomic.Bool  // the VDI was deleted (or replaced by another of its name)
	inflight atomic.Int64 // requests submitted and not yet done
	// lastWriteID numbers updates (proto.Request.WriteID): from a random
	// start, so that two clients' ids practically never meet (a node
	// keys them with the object, so meeting ids matter only for writes
	// to the same object).
	lastWriteID atomic.Uint64
	// poller reads the nodes' replies on the ublk queue thread (UsePoller);
	// nil until a queue offers one.
	poller   atomic.Pointer[backend.SocketPoller]
	ctx      context.Context // ends at Close: watchers and verifiers stop
	stop     context.CancelFunc
	watchers sync.WaitGroup
}

// peer is one storage node, for the life of the Backend.
type peer struct {
	id    string
	up    atomic.Bool                // registered and not leaving
	conn  atomic.Pointer[rpc.Client] // verified connection to addr; nil: none yet
	dirty atomic.Bool                // acknowledged writes since the last flush
	tried atomic.Bool                // the current address was asked once

	// Under Backend.mu: the registered address, and a generation that
	// grows when it changes (a verifier for an old address gives up).
	addr string
	gen  uint64
}

// topology is an immutable snapshot: the ring of the current epoch and,
// by ring index, the peers.
type topology struct {
	epoch uint64
	ring  *placement.Ring
	peers []*peer
}

// has reports whether p is a member.
func (t *topology) has(p *peer) bool {
	for _, q := range t.peers {
		if q == p {
			return true
		}
	}
	return false
}

var (
	_ backend.AsyncBackend  = (*Backend)(nil)
	_ backend.PolledBackend = (*Backend)(nil)
	_ backend.Flusher       = (*Backend)(nil)
	_ backend.Discarder     = (*Backend)(nil)
	_ backend.ZeroWriter    = (*Backend)(nil)
)

// Open looks the VDI up, waits for the cluster's membership and starts
// watching it.
func Open(ctx context.Context, opts Options) (*Backend, error) {
	if opts.Cluster == nil {
		return nil, errors.New("open sheep backend: no cluster client")
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 5 * time.Second
	}
	if opts.IOTimeout <= 0 {
		opts.IOTimeout = max(DefaultIOTimeout, opts.CallTimeout)
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = max(60*time.Second, opts.CallTimeout)
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = 10 * time.Second
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 256
	}
	if opts.MaxIOSize <= 0 {
		opts.MaxIOSize = 1 << 20
	}
	if opts.RPC.TimeoutResolution <= 0 {
		// Calls time out after seconds (CallTimeout, at most IOTimeout):
		// finding that 50 ms late is fine, and no node client's deadline
		// scanner then wakes the daemon more than 20 times a second.
		opts.RPC.TimeoutResolution = 50 * time.Millisecond
	}
	vdi, err := opts.Cluster.VDI(ctx, opts.VDI)
	if err != nil {
		return nil, fmt.Errorf("open sheep backend: %w", err)
	}
	settings, err := opts.Cluster.Settings(ctx)
	if err != nil {
		return nil, fmt.Errorf("open sheep backend: %w", err)
	}
	// Mark the VDI in use (VDI deletion waits for it).
	handle, err := opts.Cluster.OpenVDI(ctx, vdi.Name, 0)
	if err != nil {
		return nil, fmt.Errorf("open sheep backend: %w", err)
	}
	b := &Backend{
		opts:    opts,
		vdi:     vdi,
		objSize: vdi.ObjectSize,
		log:     opts.Logger.With().Str("vdi", vdi.Name).Logger(),
		errLog: opts.Logger.With().Str("vdi", vdi.Name).Logger().
			Sample(&zerolog.BurstSampler{Burst: 5, Period: time.Second}),
		minLog: opts.Logger.With().Str("vdi", vdi.Name).Logger().
			Sample(&zerolog.BurstSampler{Burst: 1, Period: 10 * time.Second}),
		minCopies: settings.MinCopiesFor(vdi.Copies),
		ready:     make(chan struct{}),
		free:      make(chan *ioState, opts.MaxInFlight),
		peers:     map[string]*peer{},
		handle:    handle,
	}
	b.lastWriteID.Store(rand.Uint64())
	// Enough pieces for a MaxIOSize request straddling objects.
	b.maxPieces = opts.MaxIOSize/int(vdi.ObjectSize) + 2
	for range opts.MaxInFlight {
		b.free <- b.newState()
	}
	if opts.CallTimeout*2 > opts.IOTimeout {
		b.log.Warn().Dur("call_timeout", opts.CallTimeout).Dur("io_timeout", opts.IOTimeout).
			Msg("the call timeout leaves no room for retries within the io-timeout: a request to a hung node fails instead of waiting for it or for the membership change")
	}
	b.ctx, b.stop = context.WithCancel(context.Background())
	b.watchers.Add(2)
	go b.watch(b.ctx)
	go b.watchVDI(b.ctx)
	select {
	case <-b.ready:
	case <-ctx.Done():
		b.Close()
		return nil, fmt.Errorf("open sheep backend for vdi %s: waiting for the cluster membership: %w", vdi.Name, ctx.Err())
	case <-time.After(opts.OpenTimeout):
		b.Close()
		return nil, fmt.Errorf("open sheep backend for vdi %s: no cluster membership from etcd at %s after %v", vdi.Name, opts.Cluster.Endpoints(), opts.OpenTimeout)
	}
	// Let every live node be asked who it is once, so the first I/O does
	// not find them "down"; one that cannot be reached stays down (and
	// is retried in the background).
	deadline := time.Now().Add(opts.OpenTimeout)
	for !b.allTried() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	return b, nil
}

// allTried: every member that is up has been verified or asked once.
func (b *Backend) allTried() bool {
	t := b.topo.Load()
	for _, p := range t.peers {
		if p.up.Load() && p.conn.Load() == nil && !p.tried.Load() {
			return false
		}
	}
	return true
}

// Epoch is the number of the cluster epoch requests are placed on now.
func (b *Backend) Epoch() uint64 { return b.topo.Load().epoch }

// VDI is the VDI served.
func (b *Backend) VDI() cluster.VDI { return b.vdi }

// Size is the VDI's size in bytes (as of Open).
func (b *Backend) Size() int64 { return b.vdi.Size }

// watch keeps the topology current from the epoch and the live nodes.
func (b *Backend) watch(ctx context.Context) {
	defer b.watchers.Done()
	epochs := b.opts.Cluster.WatchEpoch(ctx)
	nodes := b.opts.Cluster.WatchNodes(ctx)
	var (
		epoch          cluster.Epoch
		live           []cluster.Node
		haveE, haveN   bool
		announcedReady bool
	)
	for {
		select {
		case e, ok := <-epochs:
			if !ok {
				return
			}
			epoch, haveE = e, true
		case n, ok := <-nodes:
			if !ok {
				return
			}
			live, haveN = n, true
		}
		if !haveE || !haveN {
			continue
		}
		b.rebuild(epoch, live)
		if !announcedReady {
			announcedReady = true
			close(b.ready)
		}
	}
}

// watchVDI notices the VDI's deletion: from then on requests fail, so
// writes do not recreate objects of a deleted VDI.
func (b *Backend) watchVDI(ctx context.Context) {
	defer b.watchers.Done()
	for v := range b.opts.Cluster.WatchVDI(ctx, b.vdi.Name) {
		if v == nil || v.ID != b.vdi.ID {
			if !b.gone.Swap(true) {
				b.log.Error().Msg("the vdi was deleted; its device fails every request from now on")
			}
		}
	}
}

// rebuild installs the topology of an epoch and the live node list.
func (b *Backend) rebuild(e cluster.Epoch, live []cluster.Node) {
	// The ring is every member of the epoch, up or not: the nodes recover
	// what they now hold, so I/O always goes by the current membership.
	members := make([]placement.Node, len(e.Members))
	for i, m := range e.Members {
		members[i] = placement.Node{ID: placement.NodeID(m.ID), Zone: m.Zone, Capacity: m.Capacity}
	}
	ring, err := placement.New(members)
	if err != nil {
		b.log.Error().Err(err).Uint64("epoch", e.Number).Msg("cannot place objects on this epoch; keeping the previous one")
		return
	}
	liveByID := make(map[string]cluster.Node, len(live))
	for _, n := range live {
		liveByID[n.ID] = n
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return
	}
	var retired []*rpc.Client
	for _, n := range live {
		p := b.peers[n.ID]
		if p == nil {
			p = &peer{id: n.ID}
			b.peers[n.ID] = p
		}
		if p.addr != n.Addr {
			// A new address: nothing goes there until the node behind it
			// proves it is this node (see verify). Calls in flight to the
			// old address fail (reads fail over).
			p.addr = n.Addr
			p.gen++
			p.tried.Store(false)
			if old := p.conn.Swap(nil); old != nil {
				retired = append(retired, old)
			}
			b.watchers.Add(1)
			go b.verify(p, n.Addr, p.gen)
		}
	}
	for id, p := range b.peers {
		n, ok := liveByID[id]
		up := ok && n.State != cluster.NodeLeaving
		if p.up.Swap(up) != up {
			b.log.Info().Str("node", id).Bool("up", up).Msg("node state changed")
		}
	}
	t := &topology{epoch: e.Number, ring: ring, peers: make([]*peer, ring.Len())}
	for i, n := range ring.Nodes() {
		p := b.peers[string(n.ID)]
		if p == nil {
			p = &peer{id: string(n.ID)} // a member never seen live: down
			b.peers[p.id] = p
		}
		t.peers[i] = p
	}
	if old := b.topo.Swap(t); old == nil || old.epoch != t.epoch {
		b.log.Info().Uint64("epoch", t.epoch).Int("members", ring.Len()).Msg("placement epoch")
	}
	for _, c := range retired {
		go c.Close() // Close waits for the client's goroutines; not under mu
	}
}

// UsePoller implements backend.PolledBackend: the first queue that offers
// its thread reads the replies of the node connections (those open now
// are redialed for it once idle; see rpc.Client.SetPoller), so a reply
// wakes that thread and nothing else.
func (b *Backend) UsePoller(p backend.SocketPoller) {
	if !b.poller.CompareAndSwap(nil, &p) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, peer := range b.peers {
		if c := peer.conn.Load(); c != nil {
			c.SetPoller(p)
		}
	}
}

// Close fails new requests, waits for those in flight (a retrying request
// gives up at its next round; each call has a deadline, so this is
// bounded) and closes the connections to the nodes.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed.Swap(true) {
		b.mu.Unlock()
		return nil
	}
	b.mu.Unlock()
	b.stop()
	b.watchers.Wait()
	// Bounded: every call has a deadline.
	for b.inflight.Load() > 0 {
		time.Sleep(time.Millisecond)
	}
	b.mu.Lock()
	for _, p := range b.peers {
		if c := p.conn.Load(); c != nil {
			c.Close()
		}
	}
	b.mu.Unlock()
	// Last: the VDI is no longer in use once no request can reach a node.
	if err := b.handle.Close(); err != nil {
		return fmt.Errorf("close sheep backend for vdi %s: %w", b.vdi.Name, err)
	}
	return nil
}

// NodeStatus is what the backend knows of a node.
type NodeStatus struct {
	// Addr is the node's registered address.
	Addr string
	// Up: registered and not leaving.
	Up bool
	// Verified: the node at Addr proved to be this node; I/O goes to it.
	Verified bool
}

// Node reports what the backend knows of a node.
func (b *Backend) Node(id string) NodeStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.peers[id]
	if p == nil {
		return NodeStatus{}
	}
	c := p.conn.Load()
	return NodeStatus{Addr: p.addr, Up: p.up.Load(), Verified: c != nil && c.Addr() == p.addr}
}

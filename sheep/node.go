package sheep

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
	"github.com/sheepblk/sheepblk/sheep/store"
)

// idFile holds the node's id in its directory, so the id (which placement
// hashes) survives restarts and address changes.
const idFile = "node-id"

// Options configure a Node.
type Options struct {
	// Dir is the node's directory: its object store and id file.
	Dir string
	// ObjectSize is the cluster's object size. 0: the cluster's settings
	// when Cluster is set, else the directory's (or the default for a new
	// directory).
	ObjectSize uint32
	// ID names the node. "": the id stored in Dir, else one derived from
	// the address the node first serves on, stored in Dir from then on.
	ID string
	// Addr is the address clients reach the node at, as registered in the
	// cluster. "": the address of the listener Serve is given.
	Addr string
	// Zone is the node's failure zone.
	Zone string
	// Capacity is the storage the node offers, in bytes. 0: the free space
	// of Dir's file system at start.
	Capacity uint64
	// MaxOpenFiles bounds the store's cache of open object files.
	MaxOpenFiles int
	// Cluster registers the node in the cluster's etcd when set; nil runs
	// the node standalone. The node does not close it.
	Cluster *cluster.Client
	// RegisterTTL is how long the node stays listed after it dies
	// (DefaultRegisterTTL if 0).
	RegisterTTL time.Duration
	// RPC tunes the rpc server; MaxBody is raised to fit a whole object
	// and its Logger is Logger.
	RPC rpc.ServerOptions
	// PeerRPC tunes the node's connections to other nodes (recovery): set
	// its TLSConfig as the cluster's clients do; its Secret defaults to
	// RPC's. MaxBody is raised to fit a whole object.
	PeerRPC rpc.ClientOptions
	// RecoveryBandwidth bounds background recovery in bytes/s:
	// DefaultRecoveryBandwidth if 0, unlimited if negative.
	RecoveryBandwidth int64
	// MemberGrace is how long a member may be unregistered before the
	// node's membership controller removes it; 0: the cluster's setting.
	MemberGrace time.Duration
	// RecoveryRetry is how often a stuck recovery retries (2s if 0).
	RecoveryRetry time.Duration
	Logger        zerolog.Logger
}

// DefaultRegisterTTL is how long a dead node stays in the node list.
const DefaultRegisterTTL = 10 * time.Second

// Node is a running storage node.
type Node struct {
	opts    Options
	log     zerolog.Logger
	store   *store.Store
	service *Service
	server  *rpc.Server

	// ctx is cancelled when the node stops, ending a registration retry.
	ctx    context.Context
	cancel context.CancelFunc

	mu           sync.Mutex
	id           string
	registration *cluster.Registration
	shutdown     bool

	// epochs runs the node's epochs and recovery (nil standalone);
	// background ends when its goroutines have.
	epochs     *recoverer
	peers      *peerSet
	background sync.WaitGroup
}

// NewNode opens the node's store (creating it in a new dir) and, with a
// cluster, reads the cluster's object size. It does not listen: Serve does.
func NewNode(opts Options) (*Node, error) {
	if opts.Dir == "" {
		return nil, errors.New("new node: no directory given")
	}
	log := opts.Logger
	if opts.ObjectSize == 0 && opts.Cluster != nil {
		settings, err := opts.Cluster.Settings(context.Background())
		if err != nil {
			if errors.Is(err, cluster.ErrNotFormatted) {
				return nil, fmt.Errorf("new node: cluster at %s is not formatted: run `dog cluster format` first", opts.Cluster.Endpoints())
			}
			return nil, fmt.Errorf("new node: %w", err)
		}
		opts.ObjectSize = uint32(settings.ObjectSize)
	}
	st, err := store.Open(opts.Dir, store.Options{
		ObjectSize:     opts.ObjectSize,
		MaxOpenFiles:   opts.MaxOpenFiles,
		AllowedEntries: []string{idFile},
		Logger:         log,
	})
	if err != nil {
		return nil, fmt.Errorf("new node: %w", err)
	}
	n := &Node{opts: opts, log: log, store: st, service: NewService(st, log)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if n.opts.Capacity == 0 {
		free, err := st.FreeSpace()
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("new node: capacity: %w", err)
		}
		n.opts.Capacity = free
	}
	id, err := n.loadID()
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("new node: %w", err)
	}
	n.id = id
	n.updateIdentity()
	rpcOpts := opts.RPC
	// A read reply or write request carries up to a whole object.
	rpcOpts.MaxBody = max(rpcOpts.MaxBody, int(st.ObjectSize())+64<<10, rpc.DefaultMaxBody)
	rpcOpts.Logger = log
	// The node's connections are few (its clients' daemons, its peers)
	// and busy: a thread of their own serves them for less CPU.
	rpcOpts.DetachReaders = true
	n.server = rpc.NewServer(n.service, rpcOpts)
	return n, nil
}

// loadID returns the id in Options, or the one stored in Dir ("" if none
// yet). An id in Options that differs from the stored one is refused: the
// id decides where data lives, so changing it silently would lose data.
func (n *Node) loadID() (string, error) {
	path := filepath.Join(n.opts.Dir, idFile)
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read node id: %w", err)
	}
	stored := strings.TrimSpace(string(b))
	switch {
	case n.opts.ID == "":
		return stored, nil
	case stored == "":
		return n.opts.ID, n.storeID(n.opts.ID)
	case stored != n.opts.ID:
		return "", fmt.Errorf("%s holds node id %q, not %q: use that id or another dir", n.opts.Dir, stored, n.opts.ID)
	}
	return stored, nil
}

func (n *Node) storeID(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	return store.WriteFileAtomic(filepath.Join(n.opts.Dir, idFile), []byte(id+"\n"))
}

func checkID(id string) error {
	if id == "" || len(id) > 128 || strings.ContainsAny(id, "/\x00\n") {
		return fmt.Errorf("node id %q must be 1..128 bytes without '/' or newlines", id)
	}
	return nil
}

func (n *Node) updateIdentity() {
	n.service.SetIdentity(Identity{ID: n.id, Zone: n.opts.Zone, Capacity: n.opts.Capacity})
}

// ID is the node's id ("" until it first serves, if it had none).
func (n *Node) ID() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.id
}

// Store is the node's object store.
func (n *Node) Store() *store.Store { return n.store }

// Service is the node's rpc handler.
func (n *Node) Service() *Service { return n.service }

// SetEpoch sets the cluster epoch the node checks data requests against.
func (n *Node) SetEpoch(e uint64) { n.service.SetEpoch(e) }

// Serve serves l until Shutdown; it returns rpc.ErrServerClosed then. The
// first Serve settles the node's id (from its address if it had none) and
// registers the node in the cluster, if it has one.
func (n *Node) Serve(l net.Listener) error {
	if err := n.start(l.Addr().String()); err != nil {
		l.Close()
		return err
	}
	return n.server.Serve(l)
}

func (n *Node) start(listenAddr string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.shutdown {
		return rpc.ErrServerClosed
	}
	addr := n.opts.Addr
	if addr == "" {
		addr = listenAddr
	}
	if n.id == "" {
		if err := n.storeID(addr); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		n.id = addr
		n.updateIdentity()
	}
	if n.opts.Cluster == nil || n.registration != nil {
		return nil
	}
	// Read before registering: a membership that already holds this id
	// is a previous run's, not one the controller made for this run.
	before, err := n.opts.Cluster.Epoch(n.ctx)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	reg, err := n.register(addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	n.registration = reg
	n.log.Info().Str("node", n.id).Str("addr", addr).Str("etcd", n.opts.Cluster.Endpoints()).Msg("registered in cluster")
	n.startEpochs(reg, before)
	return nil
}

// startEpochs starts the node's side of epochs (see epochs.md): the
// start-up transition, then following the epoch, pruning stale copies and
// the membership controller, until the node stops. Data requests get
// NotReady until the start-up transition is done.
func (n *Node) startEpochs(reg *cluster.Registration, before cluster.Epoch) {
	peerOpts := n.opts.PeerRPC
	if peerOpts.Secret == nil {
		// The secret the node requires of its clients is the cluster's:
		// its peers require the same.
		peerOpts.Secret = n.opts.RPC.Secret
	}
	peerOpts.MaxBody = max(peerOpts.MaxBody, int(n.store.ObjectSize())+64<<10, rpc.DefaultMaxBody)
	n.peers = newPeerSet(n.opts.Cluster, peerOpts, n.log)
	dir := n.opts.Dir
	n.epochs = newRecoverer(recoveryOptions{
		Self:      n.id,
		Store:     n.store,
		Cluster:   n.opts.Cluster,
		LoadState: func() (recoveryState, error) { return store.LoadRecoveryState(dir) },
		SaveState: func(s recoveryState) error { return store.SaveRecoveryState(dir, s) },
		StateMissing: func() bool {
			_, err := os.Stat(filepath.Join(dir, store.RecoveryStateFile))
			return errors.Is(err, os.ErrNotExist)
		},
		DistrustFile:         filepath.Join(dir, distrustFile),
		MemberBeforeRegister: before.Has(n.id),
		EpochBeforeRegister:  before.Number,
		Peers:                n.peers,
		Bandwidth:            n.opts.RecoveryBandwidth,
		Live:                 reg.Live,
		SetEpoch:             n.service.SetEpoch,
		Logger:               n.log,
		RetryInterval:        n.opts.RecoveryRetry,
	})
	n.service.epochs.Store(n.epochs)
	n.background.Add(1)
	go func() {
		defer n.background.Done()
		for {
			err := n.epochs.start(n.ctx)
			if err == nil {
				break
			}
			if n.ctx.Err() != nil {
				return
			}
			n.log.Error().Err(err).Msg("cannot bring the node to the cluster's epoch; retrying")
			select {
			case <-n.ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
		}
		n.background.Add(2)
		go func() { defer n.background.Done(); n.epochs.prune(n.ctx) }()
		go func() {
			defer n.background.Done()
			err := n.opts.Cluster.RunMembership(n.ctx, cluster.MembershipOptions{Grace: n.opts.MemberGrace, Logger: n.log})
			if err != nil && n.ctx.Err() == nil {
				n.log.Error().Err(err).Msg("membership controller stopped")
			}
		}()
		n.epochs.follow(n.ctx)
	}()
}

// Recovery is the node's recovery progress (zero standalone).
func (n *Node) Recovery() RecoveryProgress {
	if e := n.recoverer(); e != nil {
		return e.Progress()
	}
	return RecoveryProgress{}
}

// recoverer is the node's epochs and recovery (nil standalone or before
// Serve registered the node).
func (n *Node) recoverer() *recoverer {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.epochs
}

// register adds the node to the cluster's node list. An entry of the same
// id that is still live is most likely this node's own from before a crash:
// its lease expires within the TTL, so wait that long for it before
// concluding another node holds the id.
func (n *Node) register(addr string) (*cluster.Registration, error) {
	ttl := n.opts.RegisterTTL
	if ttl <= 0 {
		ttl = DefaultRegisterTTL
	}
	giveUp := time.Now().Add(ttl + 2*time.Second)
	for logged := false; ; logged = true {
		reg, err := n.opts.Cluster.Register(n.ctx, cluster.Node{
			ID: n.id, Addr: addr, Zone: n.opts.Zone, Capacity: int64(n.opts.Capacity),
		}, cluster.RegisterOptions{
			TTL: ttl,
			OnLost: func(err error) {
				n.log.Warn().Err(err).Str("node", n.id).Msg("cluster registration lost; registering again")
			},
		})
		if err == nil || !errors.Is(err, cluster.ErrNodeExists) || time.Now().After(giveUp) {
			return reg, err
		}
		if !logged {
			n.log.Warn().Str("node", n.id).Dur("ttl", ttl).Msg("node id still registered (a previous run that crashed?); waiting for its lease to expire")
		}
		select {
		case <-n.ctx.Done():
			return nil, n.ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Shutdown stops the node gracefully: it marks itself leaving in the
// cluster, stops taking requests and lets those in flight finish, flushes
// every object, closes the store and removes itself from the node list.
// If ctx ends first, in-flight requests are cut off, but the store is
// still flushed and closed.
func (n *Node) Shutdown(ctx context.Context) error {
	return n.stop(ctx, false)
}

// Close stops the node at once: connections are cut and replies of
// requests in flight dropped; the store is still flushed and closed and the
// registration removed.
func (n *Node) Close() error {
	return n.stop(context.Background(), true)
}

func (n *Node) stop(ctx context.Context, now bool) error {
	n.cancel() // first: a Serve still registering holds mu
	n.mu.Lock()
	if n.shutdown {
		n.mu.Unlock()
		return nil
	}
	n.shutdown = true
	reg, epochs := n.registration, n.epochs
	n.mu.Unlock()

	var errs []error
	if epochs != nil {
		// n.ctx is cancelled: the epoch goroutines end; recovery stops
		// before the store closes under it.
		epochs.stop()
		n.background.Wait()
		epochs.stop() // a start-up that began recovery meanwhile
		n.peers.Close()
	}
	if reg != nil {
		node := reg.Node()
		node.State = cluster.NodeLeaving
		if err := reg.Update(ctx, node); err != nil {
			n.log.Warn().Err(err).Msg("could not mark the node leaving")
		}
	}
	if now {
		n.server.Close()
	} else if err := n.server.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop serving: %w", err))
	}
	// The rpc server no longer hands out requests, but after Close (or an
	// expired ctx) handlers may still run: let them finish before the store
	// closes under them. Disk I/O ends; a few seconds is plenty.
	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := n.service.Drain(dctx); err != nil {
		errs = append(errs, fmt.Errorf("drain: %w", err))
	}
	cancel()
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close store: %w", err))
	}
	if reg != nil {
		if err := reg.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Info is the node's NodeInfo, as a client would get it.
func (n *Node) Info() proto.NodeInfo {
	id := n.service.identity.Load()
	st := n.store.Stats()
	used, _ := n.service.diskUsage()
	return proto.NodeInfo{ProtocolVersion: proto.Version, ID: id.ID, Zone: id.Zone, SoftwareVersion: SoftwareVersion,
		ObjectSize: st.ObjectSize, Capacity: id.Capacity, Used: used, Objects: uint64(st.Objects), Epoch: n.service.Epoch()}
}

package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/embedetcd"
	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep"
)

// Options configures a local cluster.
type Options struct {
	// Dir holds everything: DIR/etcd and DIR/node-<i>. Required.
	Dir string
	// Nodes is the number of sheep nodes this process runs. 0 runs etcd
	// alone, for nodes started as processes of their own (sheep --etcd),
	// as a deployment runs them.
	Nodes int
	// Copies is the replica count written by format (default min(3, Nodes),
	// or 3 without nodes).
	Copies int
	// ObjectSize for format (default cluster.DefaultObjectSize).
	ObjectSize int64
	// MinCopies and MemberGrace for format (see cluster.Settings).
	MinCopies   int
	MemberGrace time.Duration
	// EtcdPort is etcd's client port on 127.0.0.1 (0: a free one). Its
	// peer port is the next one up when EtcdPort is set.
	EtcdPort int
	// BasePort: node i listens on 127.0.0.1:BasePort+i (0: free ports).
	BasePort int
	// RegisterTTL is how long a dead node stays listed (default 10s).
	RegisterTTL time.Duration
	// NodeCapacity is each node's declared capacity (0: its free space).
	NodeCapacity uint64
	// Secret, if set, is the cluster secret the nodes require of every
	// client (rpc.ServerOptions.Secret).
	Secret []byte
	Logger zerolog.Logger
}

// Cluster is a running local cluster.
type Cluster struct {
	opts   Options
	etcd   *embedetcd.Server
	client *cluster.Client

	mu    sync.Mutex
	nodes []*nodeSlot
}

type nodeSlot struct {
	id    string
	dir   string
	addr  string // fixed after the first start, so restarts keep it
	node  *sheep.Node
	serve chan error
}

// Start starts etcd, formats the cluster if it is not formatted (an
// existing DIR keeps its settings and data) and starts the nodes.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("start local cluster: no directory given")
	}
	if opts.Nodes < 0 {
		return nil, fmt.Errorf("start local cluster: %d nodes", opts.Nodes)
	}
	if opts.Copies <= 0 {
		opts.Copies = 3
		if opts.Nodes > 0 {
			opts.Copies = min(3, opts.Nodes)
		}
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("start local cluster: %w", err)
	}
	peerPort := 0
	if opts.EtcdPort != 0 {
		peerPort = opts.EtcdPort + 1
	}
	etcd, err := embedetcd.Start(embedetcd.Options{Dir: filepath.Join(opts.Dir, "etcd"), ClientPort: opts.EtcdPort, PeerPort: peerPort})
	if err != nil {
		return nil, fmt.Errorf("start local cluster: %w", err)
	}
	cl, err := cluster.Connect(cluster.Options{Endpoints: []string{etcd.ClientURL()}})
	if err != nil {
		etcd.Close()
		return nil, fmt.Errorf("start local cluster: %w", err)
	}
	c := &Cluster{opts: opts, etcd: etcd, client: cl}
	if _, err := cl.Settings(ctx); errors.Is(err, cluster.ErrNotFormatted) {
		if _, err := cl.Format(ctx, cluster.FormatOptions{
			Copies: opts.Copies, ObjectSize: opts.ObjectSize, MinCopies: opts.MinCopies, MemberGrace: opts.MemberGrace,
		}); err != nil {
			c.Close()
			return nil, fmt.Errorf("start local cluster: %w", err)
		}
	} else if err != nil {
		c.Close()
		return nil, fmt.Errorf("start local cluster: %w", err)
	}
	for i := range opts.Nodes {
		addr := "127.0.0.1:0"
		if opts.BasePort != 0 {
			addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.BasePort+i))
		}
		id := fmt.Sprintf("node-%d", i)
		c.nodes = append(c.nodes, &nodeSlot{id: id, dir: filepath.Join(opts.Dir, id), addr: addr})
		if err := c.StartNode(i); err != nil {
			c.Close()
			return nil, fmt.Errorf("start local cluster: %w", err)
		}
	}
	return c, nil
}

// EtcdURL is the client URL of the cluster's etcd.
func (c *Cluster) EtcdURL() string { return c.etcd.ClientURL() }

// Client is a cluster client connected to the cluster's etcd.
func (c *Cluster) Client() *cluster.Client { return c.client }

// Nodes is the number of node slots.
func (c *Cluster) Nodes() int { return len(c.nodes) }

// Node is node i while it runs, else nil.
func (c *Cluster) Node(i int) *sheep.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].node
}

// NodeDir is node i's data directory.
func (c *Cluster) NodeDir(i int) string { return c.nodes[i].dir }

// NodeAddr is node i's address.
func (c *Cluster) NodeAddr(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].addr
}

// StartNode starts node i (again) on its address and waits until it is
// registered.
func (c *Cluster) StartNode(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.nodes[i]
	if s.node != nil {
		return fmt.Errorf("node %s already runs", s.id)
	}
	n, err := sheep.NewNode(sheep.Options{
		Dir: s.dir, ID: s.id, Cluster: c.client, RegisterTTL: c.opts.RegisterTTL,
		Capacity: c.opts.NodeCapacity, Logger: c.opts.Logger, RPC: rpc.ServerOptions{Secret: c.opts.Secret},
	})
	if err != nil {
		return fmt.Errorf("start node %s: %w", s.id, err)
	}
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		n.Close()
		return fmt.Errorf("start node %s: %w", s.id, err)
	}
	s.addr = l.Addr().String()
	s.node = n
	s.serve = make(chan error, 1)
	go func() { s.serve <- n.Serve(l) }()
	// Serve registers before it accepts; wait for the registration so
	// callers see the node listed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		nodes, err := c.client.Nodes(context.Background())
		if err == nil {
			for _, nd := range nodes {
				if nd.ID == s.id && nd.Addr == s.addr && nd.State == cluster.NodeUp {
					return nil
				}
			}
		}
		select {
		case err := <-s.serve:
			s.node = nil
			n.Close()
			return fmt.Errorf("start node %s: %w", s.id, err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("start node %s: not registered after 10s", s.id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// AddNode starts one more node (on the next base port, or a free one) and
// returns its index. The membership controller makes it a member shortly.
func (c *Cluster) AddNode() (int, error) {
	c.mu.Lock()
	i := len(c.nodes)
	addr := "127.0.0.1:0"
	if c.opts.BasePort != 0 {
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(c.opts.BasePort+i))
	}
	id := fmt.Sprintf("node-%d", i)
	c.nodes = append(c.nodes, &nodeSlot{id: id, dir: filepath.Join(c.opts.Dir, id), addr: addr})
	c.mu.Unlock()
	return i, c.StartNode(i)
}

// KillNode stops node i at once (connections cut, replies in flight lost),
// as close to a crash as one process allows; its store is still closed.
func (c *Cluster) KillNode(i int) error { return c.stopNode(i, true) }

// StopNode stops node i gracefully.
func (c *Cluster) StopNode(i int) error { return c.stopNode(i, false) }

func (c *Cluster) stopNode(i int, now bool) error {
	c.mu.Lock()
	s := c.nodes[i]
	n, serve := s.node, s.serve
	s.node = nil
	c.mu.Unlock()
	if n == nil {
		return nil
	}
	var err error
	if now {
		err = n.Close()
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = n.Shutdown(ctx)
		cancel()
	}
	<-serve
	if err != nil {
		return fmt.Errorf("stop node %s: %w", s.id, err)
	}
	return nil
}

// Close stops every node gracefully, then etcd.
func (c *Cluster) Close() error {
	var errs []error
	for i := range c.nodes {
		if err := c.StopNode(i); err != nil {
			errs = append(errs, err)
		}
	}
	c.client.Close()
	c.etcd.Close()
	return errors.Join(errs...)
}

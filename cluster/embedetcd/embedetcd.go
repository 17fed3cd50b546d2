package embedetcd

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Options configures an embedded etcd server.
type Options struct {
	// Dir holds etcd's data (created if missing). Required.
	Dir string
	// ClientPort is the client port on 127.0.0.1; 0 picks a free one.
	ClientPort int
	// PeerPort is the peer (raft) port on 127.0.0.1; 0 picks a free one.
	PeerPort int
	// Name is the member name; "default" if empty.
	Name string
	// InitialCluster lists every member of a new multi-member cluster as
	// name=peerURL pairs, comma-separated (this one included, under Name
	// and on PeerPort); "": a single-member cluster. Ignored when Dir
	// already holds the member's data (a restart).
	InitialCluster string
	// ClusterToken tells the members of one cluster from another's
	// ("etcd-cluster" if empty).
	ClusterToken string
	// StartTimeout bounds how long Start waits for the server to be ready
	// (default 30s).
	StartTimeout time.Duration
	// Logger receives etcd's own logs; nil discards them (etcd is chatty).
	Logger *zap.Logger
}

// Server is a running embedded etcd.
type Server struct {
	etcd      *embed.Etcd
	clientURL string
}

// Start starts an etcd server listening on 127.0.0.1 only and waits until it
// serves requests (a member of a multi-member cluster: until the cluster
// has a quorum, so start the members concurrently).
func Start(opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("start embedded etcd: no data directory given")
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	if opts.Name == "" {
		opts.Name = "default"
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	var err error
	if opts.ClientPort == 0 {
		if opts.ClientPort, err = freePort(); err != nil {
			return nil, err
		}
	}
	if opts.PeerPort == 0 {
		if opts.PeerPort, err = freePort(); err != nil {
			return nil, err
		}
	}
	lg := opts.Logger
	if lg == nil {
		lg = zap.NewNop()
	}

	cfg := embed.NewConfig()
	cfg.Name = opts.Name
	cfg.Dir = opts.Dir
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	clientURL := loopbackURL(opts.ClientPort)
	peerURL := loopbackURL(opts.PeerPort)
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	if opts.InitialCluster != "" {
		cfg.InitialCluster = opts.InitialCluster
	}
	if opts.ClusterToken != "" {
		cfg.InitialClusterToken = opts.ClusterToken
	}
	// No metrics listener, no pprof: this is a private, single-member etcd.
	cfg.Metrics = "basic"

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s on %s: %w", opts.Dir, clientURL.Host, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("start embedded etcd in %s: %w", opts.Dir, err)
	case <-time.After(opts.StartTimeout):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("start embedded etcd in %s: not ready after %v", opts.Dir, opts.StartTimeout)
	}
	return &Server{etcd: e, clientURL: clientURL.String()}, nil
}

// ClientURL is the URL clients connect to, e.g. http://127.0.0.1:2379.
func (s *Server) ClientURL() string { return s.clientURL }

// Err reports a fatal server error after start.
func (s *Server) Err() <-chan error { return s.etcd.Err() }

// Close stops the server and waits for it to release its ports and data
// directory.
func (s *Server) Close() {
	s.etcd.Close()
}

// PeerURL is the peer URL of a member on port, for InitialCluster.
func PeerURL(port int) string {
	u := loopbackURL(port)
	return u.String()
}

func loopbackURL(port int) url.URL {
	return url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
}

// freePort asks the kernel for a free port on 127.0.0.1. Another process
// could take it before etcd binds it; the window is small and tests retry
// by failing loudly rather than silently sharing a port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreePort finds a free TCP port on 127.0.0.1 (for tests and tools that
// start servers on free ports).
func FreePort() (int, error) { return freePort() }

package netns_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	sheepbackend "github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/rpc"
)

const (
	nodePort = "7000"
	etcdURL  = "http://" + hostAddr + ":2379"
)

// clusterOptions is how a test's cluster is set up.
type clusterOptions struct {
	// Nodes is how many node namespaces (and directories) there are; a
	// test starts the nodes it wants with up.
	Nodes int
	// Timeout bounds the whole test (its context).
	Timeout time.Duration
	// Copies is the cluster's replica count.
	Copies int
	// FormatFlags are more `dog cluster format` flags.
	FormatFlags []string
	// NodeFlags are more sheep flags for every node.
	NodeFlags []string
}

// clusterEnv is what every cluster test here runs on: the test network,
// sheep and dog built from this checkout, etcd on the bridge, a cluster
// secret, the cluster formatted, a client of its etcd, and the sheep
// nodes, node i in namespace i with directory dirs[i]. A test reads as
// its scenario: up, openVDI, then faults through kill, signal and
// linkDown.
type clusterEnv struct {
	t          *testing.T
	ctx        context.Context
	opts       clusterOptions
	tn         *testNet
	bin        string // directory holding sheep and dog
	dir        string // the test's scratch directory
	secretFile string
	secret     []byte
	client     *cluster.Client
	dirs       []string    // node i's directory
	procs      []*nodeProc // node i's latest process; nil if never started
	starts     int         // processes started, for distinct log names
}

// newCluster builds the environment and formats the cluster. Everything
// it starts ends with the test.
func newCluster(t *testing.T, opts clusterOptions) *clusterEnv {
	t.Helper()
	e := &clusterEnv{t: t, opts: opts, tn: newTestNet(t, opts.Nodes)}
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	t.Cleanup(cancel)
	e.ctx = ctx
	e.bin = buildBinaries(t)
	e.dir = t.TempDir()
	startEtcd(t, filepath.Join(e.dir, "etcd"))
	e.secretFile = filepath.Join(e.dir, "secret")
	secret, err := rpc.CreateSecretFile(e.secretFile)
	if err != nil {
		t.Fatal(err)
	}
	e.secret = secret
	for i := range opts.Nodes {
		e.dirs = append(e.dirs, filepath.Join(e.dir, nodeID(i)))
	}
	e.procs = make([]*nodeProc, opts.Nodes)
	format := append([]string{"cluster", "format", "--copies", strconv.Itoa(opts.Copies)}, opts.FormatFlags...)
	if err := e.dog(io.Discard, format...); err != nil {
		t.Fatal(err)
	}
	client, err := cluster.Connect(cluster.Options{Endpoints: []string{etcdURL}})
	if err != nil {
		t.Fatalf("connect to etcd at %s: %v", etcdURL, err)
	}
	t.Cleanup(func() { client.Close() })
	e.client = client
	return e
}

// nodeID is node i's sheep id.
func nodeID(i int) string { return "n" + strconv.Itoa(i) }

// dog runs dog against the test's etcd; its stdout goes to stdout, and a
// failure's error carries dog's stderr.
func (e *clusterEnv) dog(stdout io.Writer, args ...string) error {
	cmd := exec.CommandContext(e.ctx, filepath.Join(e.bin, "dog"), append([]string{"--etcd", etcdURL}, args...)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("dog %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// up starts nodes (again, on their directories as they were left) and
// waits until `dog node list` shows every running node up at its own
// namespace's address.
func (e *clusterEnv) up(nodes ...int) {
	e.t.Helper()
	for _, i := range nodes {
		e.start(i)
	}
	e.waitNodesUp()
}

// all is 0..n-1, for up.
func all(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// nodeProc is one running sheep.
type nodeProc struct {
	i    int
	addr string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// running: the process has not exited.
func (p *nodeProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// start runs node i in its namespace; its log is a file of its own, shown
// if the test fails.
func (e *clusterEnv) start(i int) {
	e.t.Helper()
	t := e.t
	e.starts++
	p := &nodeProc{i: i, addr: nodeAddr(i) + ":" + nodePort, log: fmt.Sprintf("%s.%d.log", e.dirs[i], e.starts), done: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = e.tn.command(e.ctx, i, filepath.Join(e.bin, "sheep"), append([]string{
		"--dir", e.dirs[i], "--id", nodeID(i), "--listen", p.addr, "--etcd", etcdURL, "--secret-file", e.secretFile,
		"--capacity", "1T", "--log-format", "json"}, e.opts.NodeFlags...)...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start node %d: %v", i, err)
	}
	go func() { _ = p.cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			log, _ := os.ReadFile(p.log)
			t.Logf("node %d (%s) log %s:\n%s", i, p.addr, filepath.Base(p.log), tail(string(log), 4000))
		}
	})
	e.procs[i] = p
}

// waitNodesUp waits until `dog node list` shows every running node up at
// its own namespace's address, and no other node up.
func (e *clusterEnv) waitNodesUp() {
	e.t.Helper()
	var procs []*nodeProc
	for _, p := range e.procs {
		if p != nil && p.running() {
			procs = append(procs, p)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		var out bytes.Buffer
		err := e.dog(&out, "node", "list", "--json")
		var list []cluster.Node
		if err == nil {
			err = json.Unmarshal(out.Bytes(), &list)
		}
		up := map[string]bool{}
		for _, n := range list {
			if n.State == cluster.NodeUp {
				up[n.Addr] = true
			}
		}
		all := err == nil
		for _, p := range procs {
			all = all && up[p.addr]
		}
		if all && len(up) == len(procs) {
			return
		}
		last = fmt.Sprintf("%s %v", strings.TrimSpace(out.String()), err)
		for _, p := range procs {
			if !p.running() {
				log, _ := os.ReadFile(p.log)
				e.t.Fatalf("node %d exited at start (%v):\n%s", p.i, p.cmd.ProcessState, tail(string(log), 4000))
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("nodes not all up after 30s; dog node list: %s", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// openVDI creates VDI name of size bytes and opens it through the client
// gateway (backend/sheep) with o (Cluster, VDI and the secret filled in).
// The backend is closed when the test ends.
func (e *clusterEnv) openVDI(name string, size int64, o sheepbackend.Options) *sheepbackend.Backend {
	e.t.Helper()
	if err := e.dog(io.Discard, "vdi", "create", name, strconv.FormatInt(size, 10)); err != nil {
		e.t.Fatal(err)
	}
	o.Cluster, o.VDI, o.RPC.Secret = e.client, name, e.secret
	b, err := sheepbackend.Open(e.ctx, o)
	if err != nil {
		e.t.Fatalf("open vdi %s: %v", name, err)
	}
	e.t.Cleanup(func() { b.Close() })
	return b
}

// signal sends sig to node i.
func (e *clusterEnv) signal(i int, sig syscall.Signal) {
	e.t.Helper()
	if err := e.procs[i].cmd.Process.Signal(sig); err != nil {
		e.t.Fatalf("signal %v to node %d: %v", sig, i, err)
	}
}

// kill ends node i with SIGKILL (no clean leave: its lease just expires)
// and waits for it.
func (e *clusterEnv) kill(i int) {
	e.t.Helper()
	e.signal(i, syscall.SIGKILL)
	<-e.procs[i].done
}

// stop ends node i with SIGTERM (a clean shutdown) and waits for it.
func (e *clusterEnv) stop(i int) {
	e.t.Helper()
	p := e.procs[i]
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		e.t.Fatalf("node %d still running 20s after SIGTERM", p.i)
	}
	if st := p.cmd.ProcessState; st == nil || !st.Success() {
		e.t.Fatalf("node %d exited with %v after SIGTERM", p.i, st)
	}
}

// linkDown and linkUp take node i's link (the host end of its veth) down
// and up.
func (e *clusterEnv) linkDown(i int) { e.setLink(i, "down") }
func (e *clusterEnv) linkUp(i int)   { e.setLink(i, "up") }

func (e *clusterEnv) setLink(i int, state string) {
	e.t.Helper()
	if err := ip("link", "set", vethPrefix+strconv.Itoa(os.Getpid())+"n"+strconv.Itoa(i), state); err != nil {
		e.t.Fatal(err)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// buildBinaries builds sheep and dog from this checkout (not bin/, which
// may be stale) into a temporary directory.
func buildBinaries(t *testing.T) string {
	t.Helper()
	out := t.TempDir()
	cmd := exec.Command("go", "build", "-trimpath", "-o", out+"/",
		"github.com/sheepblk/sheepblk/cmd/sheep", "github.com/sheepblk/sheepblk/cmd/dog")
	// sheep sets PR_SET_IO_FLUSHER on all threads, which a cgo binary refuses.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build sheep and dog: %v\n%s", err, msg)
	}
	return out
}

// startEtcd runs an embedded etcd listening on the bridge's host address
// only, where every namespace reaches it.
func startEtcd(t *testing.T, dir string) {
	t.Helper()
	client, _ := url.Parse(etcdURL)
	peer, _ := url.Parse("http://" + hostAddr + ":2380")
	cfg := embed.NewConfig()
	cfg.Name = "netns"
	cfg.Dir = dir
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*client}, []url.URL{*client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*peer}, []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.Metrics = "basic"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("start etcd on %s: %v", etcdURL, err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcd on %s: %v", etcdURL, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("etcd on %s not ready after 30s", etcdURL)
	}
}

// parallel runs f for 0..n-1 on 8 goroutines and fails on the first error.
func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var g errgroup.Group
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error { return f(i) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

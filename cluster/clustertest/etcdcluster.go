package clustertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/cluster/embedetcd"
)

// EtcdCluster is a multi-member etcd on 127.0.0.1 whose members a test
// stops and starts again (quorum tests).
type EtcdCluster struct {
	t       testing.TB
	members []*etcdMember
	initial string // name=peerURL,...
	start   func(m *etcdMember, initial string) (stop func(), err error)
}

type etcdMember struct {
	name                 string
	dir                  string
	clientPort, peerPort int
	stop                 func() // nil while stopped
}

// ClientURL is member i's client URL.
func (m *etcdMember) clientURL() string {
	return fmt.Sprintf("http://127.0.0.1:%d", m.clientPort)
}

// EmbeddedCluster starts an n-member cluster of in-process etcds.
func EmbeddedCluster(t testing.TB, n int) *EtcdCluster {
	t.Helper()
	return newEtcdCluster(t, n, func(m *etcdMember, initial string) (func(), error) {
		srv, err := embedetcd.Start(embedetcd.Options{
			Dir: m.dir, Name: m.name, ClientPort: m.clientPort, PeerPort: m.peerPort,
			InitialCluster: initial, ClusterToken: "test-" + filepath.Base(filepath.Dir(m.dir)),
			StartTimeout: 60 * time.Second,
		})
		if err != nil {
			return nil, err
		}
		return srv.Close, nil
	})
}

// ExternalCluster starts an n-member cluster of the `etcd` binary on
// $PATH (Debian's etcd-server); it skips the test if there is none.
func ExternalCluster(t testing.TB, n int) *EtcdCluster {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("no etcd binary on $PATH: apt-get install -y etcd-server to run the tests against a real etcd")
	}
	return newEtcdCluster(t, n, func(m *etcdMember, initial string) (func(), error) {
		logf, err := os.OpenFile(m.dir+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(bin,
			"--name", m.name,
			"--data-dir", m.dir,
			"--listen-client-urls", m.clientURL(),
			"--advertise-client-urls", m.clientURL(),
			"--listen-peer-urls", embedetcd.PeerURL(m.peerPort),
			"--initial-advertise-peer-urls", embedetcd.PeerURL(m.peerPort),
			"--initial-cluster", initial,
			"--initial-cluster-token", "test-"+filepath.Base(filepath.Dir(m.dir)),
			"--log-level", "error",
			"--logger", "zap",
		)
		cmd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH=")
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return nil, err
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited); logf.Close() }()
		if err := WaitReady(m.clientURL(), 60*time.Second); err != nil {
			_ = cmd.Process.Kill()
			<-exited
			log, _ := os.ReadFile(m.dir + ".log")
			return nil, fmt.Errorf("%w\n%s", err, tail(string(log), 2000))
		}
		return func() { _ = cmd.Process.Kill(); <-exited }, nil
	})
}

func newEtcdCluster(t testing.TB, n int, start func(*etcdMember, string) (func(), error)) *EtcdCluster {
	t.Helper()
	c := &EtcdCluster{t: t, start: start}
	dir := t.TempDir()
	var peers []string
	for i := range n {
		cp, err := embedetcd.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		pp, err := embedetcd.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		m := &etcdMember{name: fmt.Sprintf("m%d", i), dir: filepath.Join(dir, fmt.Sprintf("m%d", i)), clientPort: cp, peerPort: pp}
		c.members = append(c.members, m)
		peers = append(peers, m.name+"="+embedetcd.PeerURL(pp))
	}
	c.initial = strings.Join(peers, ",")
	// Concurrently: a member is ready only once the cluster has a quorum.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, m := range c.members {
		wg.Go(func() {
			m.stop, errs[i] = start(m, c.initial)
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, m := range c.members {
			if m.stop != nil {
				m.stop()
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start etcd member %d: %v", i, err)
		}
	}
	return c
}

// ClientURLs are every member's client URL.
func (c *EtcdCluster) ClientURLs() []string {
	urls := make([]string, len(c.members))
	for i, m := range c.members {
		urls[i] = m.clientURL()
	}
	return urls
}

// Stop stops member i (as a crash would: no clean leave from the cluster).
func (c *EtcdCluster) Stop(i int) {
	c.t.Helper()
	m := c.members[i]
	if m.stop == nil {
		c.t.Fatalf("etcd member %d is not running", i)
	}
	m.stop()
	m.stop = nil
}

// Start starts stopped member i again on its data; it returns once the
// member serves, which needs a quorum with it.
func (c *EtcdCluster) Start(i int) {
	c.t.Helper()
	m := c.members[i]
	if m.stop != nil {
		c.t.Fatalf("etcd member %d is running", i)
	}
	stop, err := c.start(m, c.initial)
	if err != nil {
		c.t.Fatalf("restart etcd member %d: %v", i, err)
	}
	m.stop = stop
}

// WaitQuorum waits until every running member serves reads again (after a
// Stop of the leader, an election takes a second or two).
func (c *EtcdCluster) WaitQuorum() {
	c.t.Helper()
	for i, m := range c.members {
		if m.stop == nil {
			continue
		}
		if err := WaitReady(m.clientURL(), 30*time.Second); err != nil {
			c.t.Fatalf("etcd member %d: %v", i, err)
		}
	}
}

package netns_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test network: a bridge in the host namespace holding subnet's first
// address (etcd listens there, and the test process reaches the nodes
// through it), and one namespace per node, joined to the bridge by a veth
// pair, holding nodeAddr(i). Nothing else on the host is touched.
const (
	subnet     = "10.77.0.0/24"
	hostAddr   = "10.77.0.1"
	prefixLen  = "/24"
	nsPrefix   = "sheepblk-" // namespaces: sheepblk-<pid>-<node>
	brPrefix   = "sbbr"      // bridge: sbbr<pid>
	vethPrefix = "sbv"       // host end of node i's veth: sbv<pid>n<i>
	lockName   = "sheepblk-netns-test.lock"
)

func nodeAddr(i int) string { return "10.77.0." + strconv.Itoa(11+i) }

// testNet is the network of one test run.
type testNet struct {
	bridge string
	ns     []string // by node

	once     sync.Once
	teardown []string // ip commands (space-separated args) run in reverse by Close
}

// requireNetns skips the test unless it can create namespaces: root, and
// iproute2's ip on $PATH.
func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: creating network namespaces and veth links needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipped: no `ip` command on $PATH (apt-get install -y iproute2)")
	}
}

// ip runs the ip command; its output is in the error.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func ipOutput(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// lockHost serializes runs of this test on one host (go test -count=2, two
// checkouts): they would share the subnet. The lock goes with the process.
func lockHost(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("open the test's host lock: %v", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("take the test's host lock: %v", err)
	}
	t.Cleanup(func() { f.Close() })
}

// pidAlive: the run that created a namespace or link named after pid is
// still going.
func pidAlive(pid int) bool {
	return pid > 0 && unix.Kill(pid, 0) != unix.ESRCH
}

// sweepStale deletes the namespaces and bridges of earlier runs whose
// process is gone (a run killed by go test's timeout, which runs no
// cleanup). Deleting a namespace deletes its veth end, and with it the
// host end.
func sweepStale(t *testing.T) {
	t.Helper()
	out, err := ipOutput("netns", "list")
	if err != nil {
		t.Fatalf("list network namespaces: %v", err)
	}
	for _, line := range strings.Split(out, "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		if pid, err := strconv.Atoi(pidStr); err == nil && !pidAlive(pid) {
			t.Logf("removing namespace %s left by an earlier run", name)
			if err := deleteNamespace(name); err != nil {
				t.Log(err)
			}
		}
	}
	out, err = ipOutput("-o", "link", "show", "type", "bridge")
	if err != nil {
		t.Fatalf("list bridges: %v", err)
	}
	for _, line := range strings.Split(out, "\n") {
		// "7: sbbr1234: <BROADCAST,...": the name is the second field.
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(f[1], ":")
		if pid, err := strconv.Atoi(strings.TrimPrefix(name, brPrefix)); err == nil && strings.HasPrefix(name, brPrefix) && !pidAlive(pid) {
			t.Logf("removing bridge %s left by an earlier run", name)
			if err := ip("link", "delete", name); err != nil {
				t.Log(err)
			}
		}
	}
}

// deleteNamespace kills every process left in namespace ns (nodes of a
// run that was killed), then deletes it.
func deleteNamespace(ns string) error {
	out, err := ipOutput("netns", "pids", ns)
	if err != nil {
		return err
	}
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	return ip("netns", "delete", ns)
}

// requireSubnetFree skips the test when the host already uses the subnet:
// adding it would disturb whatever does.
func requireSubnetFree(t *testing.T) {
	t.Helper()
	addrs, err := ipOutput("-4", "-o", "addr", "show", "to", subnet)
	if err != nil {
		t.Fatalf("list addresses: %v", err)
	}
	routes, err := ipOutput("-4", "route", "show", "root", subnet)
	if err != nil {
		t.Fatalf("list routes: %v", err)
	}
	if strings.TrimSpace(addrs+routes) != "" {
		t.Skipf("skipped: subnet %s is already in use on this host:\n%s%s", subnet, addrs, routes)
	}
}

// newTestNet builds the bridge and one namespace per node. Whatever it
// created is deleted when the test ends, fails, or the process gets
// SIGINT/SIGTERM.
func newTestNet(t *testing.T, nodes int) *testNet {
	t.Helper()
	requireNetns(t)
	lockHost(t)
	sweepStale(t)
	requireSubnetFree(t)

	pid := strconv.Itoa(os.Getpid())
	n := &testNet{bridge: brPrefix + pid}
	t.Cleanup(n.Close)
	stopSignals := n.closeOnSignal()
	t.Cleanup(stopSignals)

	// Each step that creates something records how to undo it before the
	// next step runs, so a failure midway leaves nothing behind.
	step := func(undo string, args ...string) {
		t.Helper()
		if err := ip(args...); err != nil {
			if strings.Contains(err.Error(), "Operation not permitted") || strings.Contains(err.Error(), "Permission denied") {
				t.Skipf("skipped: this host refuses network namespaces to root (a restricted container?): %v", err)
			}
			t.Fatalf("build the test network: %v", err)
		}
		if undo != "" {
			n.teardown = append(n.teardown, undo)
		}
	}
	step("link delete "+n.bridge, "link", "add", n.bridge, "type", "bridge", "forward_delay", "0", "stp_state", "0")
	step("", "addr", "add", hostAddr+prefixLen, "dev", n.bridge)
	step("", "link", "set", n.bridge, "up")
	for i := range nodes {
		ns := nsPrefix + pid + "-" + strconv.Itoa(i)
		host := vethPrefix + pid + "n" + strconv.Itoa(i)
		peer := host + "p"
		step("netns delete "+ns, "netns", "add", ns)
		n.ns = append(n.ns, ns)
		step("link delete "+host, "link", "add", host, "type", "veth", "peer", "name", peer)
		step("", "link", "set", peer, "netns", ns)
		step("", "-n", ns, "link", "set", peer, "name", "eth0")
		step("", "-n", ns, "addr", "add", nodeAddr(i)+prefixLen, "dev", "eth0")
		step("", "-n", ns, "link", "set", "eth0", "up")
		step("", "-n", ns, "link", "set", "lo", "up")
		step("", "link", "set", host, "master", n.bridge, "up")
	}
	return n
}

// Close deletes everything the test network created, newest first. Links
// already gone with their namespace are not an error.
func (n *testNet) Close() {
	n.once.Do(func() {
		for i := len(n.teardown) - 1; i >= 0; i-- {
			args := strings.Fields(n.teardown[i])
			var err error
			if args[0] == "netns" && args[1] == "delete" {
				err = deleteNamespace(args[2])
			} else {
				err = ip(args...)
			}
			if err != nil && !strings.Contains(err.Error(), "Cannot find device") {
				fmt.Fprintf(os.Stderr, "netns test cleanup: %v\n", err)
			}
		}
	})
}

// closeOnSignal tears the network down if the test process is interrupted
// (Ctrl-C on go test), which would otherwise skip every cleanup.
func (n *testNet) closeOnSignal() (stop func()) {
	sig := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case s := <-sig:
			n.Close()
			fmt.Fprintf(os.Stderr, "netns test: %v: removed the test network\n", s)
			os.Exit(1)
		case <-done:
		}
	}()
	return func() { signal.Stop(sig); close(done) }
}

// command is a command to run inside node i's namespace. It runs through
// nsenter, which execs the command itself (ip netns exec forks and waits),
// so the child is the command, and the kernel kills it if the test
// process dies. Without nsenter it falls back to ip netns exec; the
// namespace's processes are then killed when it is deleted.
func (n *testNet) command(ctx context.Context, i int, name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if nsenter, err := exec.LookPath("nsenter"); err == nil {
		cmd = exec.CommandContext(ctx, nsenter, append([]string{"--net=/run/netns/" + n.ns[i], "--", name}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.ns[i], name}, args...)...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

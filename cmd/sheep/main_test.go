package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/clustertest"
	"github.com/sheepblk/sheepblk/reclaim"
	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
	"github.com/sheepblk/sheepblk/sheep/store"
)

// The tests run the command as a real process, the test binary re-executed
// as `sheep`: signals, exit statuses and stderr are what a user gets, and
// the reclaim protections (mlockall, oom_score_adj) hit that process, not
// the test runner.
func TestMain(m *testing.M) {
	if os.Getenv("SHEEP_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func sheepCommand(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "SHEEP_TEST_RUN_MAIN=1")
	// A sheep must never outlive the test that started it, even one the
	// test timeout kills: it would keep serving on its port.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

func TestBadUsageExitsTwoWithOneLine(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--dir"},
		{"--dir", t.TempDir(), "--bogus"},
		{"--dir", t.TempDir(), "extra-arg"},
		{"--dir", t.TempDir(), "--listen", "nonsense"},
		{"--dir", t.TempDir(), "--capacity", "lots"},
		{"--dir", t.TempDir(), "--etcd", "", "--log-level", "loud"},
		{"--dir", t.TempDir(), "--etcd", "", "--log-format", "xml"},
		{"--dir", t.TempDir(), "--etcd", "http://127.0.0.1:1", "--object-size", "4M"},
		{"--dir", t.TempDir(), "--etcd", "", "--object-size", "3M"},
		{"--dir", t.TempDir(), "--etcd", "", "--recovery-bandwidth", "fast"},
		{"--dir", t.TempDir(), "--etcd", "", "--recovery-bandwidth", "-1M"},
	} {
		out, code := runToEnd(t, args...)
		if code != exitUsage || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "sheep: ") {
			t.Errorf("sheep %q: exit %d, stderr %q; want exit 2 and one line", args, code, out)
		}
	}
}

func TestFailuresExitOneWithOneLine(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(file, []byte("x"), 0o644)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	fourMiB := t.TempDir()
	s, err := store.Open(fourMiB, store.Options{ObjectSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"dir is a file":    {[]string{"--dir", file, "--etcd", ""}, "a-file"},
		"other objectsize": {[]string{"--dir", fourMiB, "--etcd", "", "--object-size", "8M"}, "8388608"},
		"port taken":       {[]string{"--dir", t.TempDir(), "--etcd", "", "--listen", taken.Addr().String()}, "listen on " + taken.Addr().String()},
	} {
		out, code := runToEnd(t, tc.args...)
		last := lastLine(out)
		if code != exitFailure || !strings.HasPrefix(last, "sheep: ") || !strings.Contains(last, tc.want) || strings.Contains(out, "goroutine ") {
			t.Errorf("%s: exit %d, stderr %q; want exit 1 and a line naming %q", name, code, out, tc.want)
		}
	}
}

// runToEnd runs sheep with JSON logs and returns its stderr without log
// lines (what is left is the CLI's own error) and its exit status.
func runToEnd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	// JSON logs first, so a --log-format under test overrides it.
	cmd := sheepCommand(t, append([]string{"--log-format", "json"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// These runs must end by themselves; one that serves instead is a bug.
	timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, line := range strings.SplitAfter(stderr.String(), "\n") {
		if !strings.HasPrefix(line, "{") && line != "" {
			out.WriteString(line)
		}
	}
	return out.String(), code
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// runningSheep is a sheep process serving on a loopback port.
type runningSheep struct {
	cmd       *exec.Cmd
	startLogs []map[string]any // up to "sheep serving"
	addr      string
	logs      chan map[string]any
	done      chan error
}

func startSheep(t *testing.T, args ...string) *runningSheep {
	t.Helper()
	cmd := sheepCommand(t, append(args, "--listen", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug")...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rs := &runningSheep{cmd: cmd, logs: make(chan map[string]any, 100), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				m = map[string]any{"message": sc.Text()}
			}
			select {
			case rs.logs <- m:
			default:
			}
		}
		close(rs.logs)
		rs.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-rs.logs:
			if !ok {
				t.Fatalf("sheep exited before serving: %v", <-rs.done)
			}
			rs.startLogs = append(rs.startLogs, m)
			if m["message"] == "sheep serving" {
				rs.addr = m["listen"].(string)
				return rs
			}
		case <-deadline:
			t.Fatal("sheep did not start serving")
		}
	}
}

// stop sends SIGTERM and returns the exit status and the log messages
// written meanwhile.
func (rs *runningSheep) stop(t *testing.T) (int, []string) {
	t.Helper()
	rs.cmd.Process.Signal(syscall.SIGTERM)
	var msgs []string
	for m := range rs.logs {
		msgs = append(msgs, fmt.Sprint(m["message"]))
	}
	err := <-rs.done
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), msgs
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, msgs
}

func call(t *testing.T, c *rpc.Client, req proto.Request, body []byte) []byte {
	t.Helper()
	hdr, _ := req.AppendBinary(nil)
	cl := &rpc.Call{ReqHeader: hdr, ReqBody: body, RespHeader: make([]byte, 64), RespBody: make([]byte, 1<<20)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Do(ctx, cl); err != nil {
		t.Fatal(err)
	}
	resp, err := proto.DecodeResponse(cl.RespHeader, cl.RespBody, &req)
	if err == nil {
		err = resp.Err(cl.RespBody)
	}
	if err != nil {
		t.Fatalf("%v: %v", req.Op, err)
	}
	return cl.RespBody
}

func TestStandaloneServesAndFlushesOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	rs := startSheep(t, "--dir", dir, "--etcd", "", "--object-size", "1M", "--zone", "z1")
	c := rpc.NewClient(rs.addr, rpc.ClientOptions{})
	defer c.Close()
	oid := proto.NewObjectID(1, 2)
	data := bytes.Repeat([]byte("flush me "), 1000)
	call(t, c, proto.Request{Op: proto.OpWrite, Object: oid, Offset: 77, Length: uint32(len(data))}, data)
	got := call(t, c, proto.Request{Op: proto.OpRead, Object: oid, Offset: 77, Length: uint32(len(data))}, nil)
	if !bytes.Equal(got, data) {
		t.Fatal("read back over the network differs")
	}
	info, err := proto.DecodeNodeInfo(call(t, c, proto.Request{Op: proto.OpNodeInfo}, nil))
	if err != nil || info.ID != rs.addr || info.Zone != "z1" || info.ObjectSize != 1<<20 {
		t.Fatalf("node info %+v, %v", info, err)
	}

	checkReclaimWarnings(t, rs)
	code, msgs := rs.stop(t)
	if code != 0 {
		t.Fatalf("sheep exited %d after SIGTERM; log %q", code, msgs)
	}
	if !contains(msgs, "shutting down: finishing requests, flushing objects") || !contains(msgs, "sheep stopped") {
		t.Fatalf("log lacks the shutdown: %q", msgs)
	}
	s, err := store.Open(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	back := make([]byte, len(data))
	if err := s.ReadAt(oid, back, 77); err != nil || !bytes.Equal(back, data) {
		t.Fatalf("data in the dir after shutdown differs (err %v)", err)
	}
	id, _ := os.ReadFile(filepath.Join(dir, "node-id"))
	if strings.TrimSpace(string(id)) != rs.addr {
		t.Fatalf("stored node id %q, want %q", id, rs.addr)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestRegistersInEtcdAndLeavesOnSIGTERM(t *testing.T) {
	url := clustertest.Embedded(t)
	prefix := "/sheep-test/"
	cl, err := cluster.Connect(cluster.Options{Endpoints: []string{url}, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()

	out, code := runToEnd(t, "--dir", t.TempDir(), "--etcd", url, "--prefix", prefix)
	if code != exitFailure || !strings.Contains(out, "dog cluster format") {
		t.Fatalf("unformatted cluster: exit %d, %q", code, out)
	}

	if _, err := cl.Format(ctx, cluster.FormatOptions{Copies: 1, ObjectSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rs := startSheep(t, "--dir", dir, "--etcd", url, "--prefix", prefix, "--id", "sheep-a", "--zone", "rack1", "--capacity", "10G")
	nodes, err := cl.Nodes(ctx)
	if err != nil || len(nodes) != 1 {
		t.Fatalf("nodes %+v, %v", nodes, err)
	}
	if n := nodes[0]; n.ID != "sheep-a" || n.Addr != rs.addr || n.Zone != "rack1" || n.Capacity != 10<<30 || n.State != cluster.NodeUp {
		t.Fatalf("registered node %+v", n)
	}
	c := rpc.NewClient(rs.addr, rpc.ClientOptions{})
	defer c.Close()
	info, err := proto.DecodeNodeInfo(call(t, c, proto.Request{Op: proto.OpNodeInfo}, nil))
	if err != nil || info.ObjectSize != 1<<20 {
		t.Fatalf("the node does not use the cluster's object size: %+v, %v", info, err)
	}

	if code, msgs := rs.stop(t); code != 0 {
		t.Fatalf("exit %d; log %q", code, msgs)
	}
	nodes, err = cl.Nodes(ctx)
	if err != nil || len(nodes) != 0 {
		t.Fatalf("after SIGTERM the node list is %+v, %v; want empty at once", nodes, err)
	}
}

// checkReclaimWarnings checks the node logged a warning for each reclaim
// protection its process lacks, and none for those it has.
func checkReclaimWarnings(t *testing.T, rs *runningSheep) {
	t.Helper()
	pid := rs.cmd.Process.Pid
	flags, err := reclaim.ThreadFlags(pid)
	if err != nil {
		t.Fatal(err)
	}
	hasFlusher := len(flags) > 0
	for _, f := range flags {
		hasFlusher = hasFlusher && f&reclaim.PFMemallocNoIO != 0
	}
	locked, err := reclaim.LockedKiB(pid)
	if err != nil {
		t.Fatal(err)
	}
	adj, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid))
	if err != nil {
		t.Fatal(err)
	}
	warned := map[string]bool{}
	for _, m := range rs.startLogs {
		if m["level"] == "warn" && m["protection"] != nil {
			warned[m["protection"].(string)] = true
		}
	}
	for name, has := range map[string]bool{
		"io_flusher":    hasFlusher,
		"mlockall":      locked > 0,
		"oom_score_adj": strings.TrimSpace(string(adj)) == "-1000",
	} {
		if has == warned[name] {
			t.Errorf("protection %s: in effect %v, warned %v", name, has, warned[name])
		}
	}
}

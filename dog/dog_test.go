package dog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/clustertest"
	"github.com/sheepblk/sheepblk/dog"
)

// result is what one dog run produced.
type result struct {
	code           int
	stdout, stderr string
}

// dogRun runs dog in-process with the etcd URL taken from the environment,
// the way a user sets SHEEPBLK_ETCD.
func dogRun(t *testing.T, etcd string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := dog.Execute(context.Background(), args, dog.IO{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string {
			if k == dog.EnvEtcd {
				return etcd
			}
			return ""
		},
	})
	return result{code, out.String(), errb.String()}
}

func (r result) must(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	if code != 0 {
		if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "dog: ") {
			t.Fatalf("error output is not one 'dog: ' line: %q", r.stderr)
		}
		if strings.Contains(r.stderr, "goroutine") || strings.Contains(r.stderr, "panic") {
			t.Fatalf("stack trace on stderr: %q", r.stderr)
		}
	}
	return r
}

func TestDogWorkflow(t *testing.T) {
	etcd := clustertest.Embedded(t)

	info := dogRun(t, etcd, "cluster", "info").must(t, 0)
	if !strings.Contains(info.stdout, "not formatted") {
		t.Fatalf("info of fresh cluster: %q", info.stdout)
	}
	dogRun(t, etcd, "vdi", "create", "a", "1G").must(t, 1) // not formatted yet
	out := dogRun(t, etcd, "cluster", "format", "--copies", "2").must(t, 0)
	if !strings.Contains(out.stdout, "2 copies (writes need 1), 4M objects, member grace 10s") {
		t.Fatalf("format said %q", out.stdout)
	}
	refused := dogRun(t, etcd, "cluster", "format", "--copies", "3").must(t, 1)
	if !strings.Contains(refused.stderr, "--force") {
		t.Fatalf("refusal should mention --force: %q", refused.stderr)
	}

	var ci dog.ClusterInfo
	if err := json.Unmarshal([]byte(dogRun(t, etcd, "cluster", "info", "--json").must(t, 0).stdout), &ci); err != nil {
		t.Fatal(err)
	}
	if !ci.Formatted || ci.Settings.Copies != 2 || ci.Settings.ObjectSize != 4<<20 || ci.Etcd != etcd {
		t.Fatalf("cluster info --json = %+v", ci)
	}

	var created cluster.VDI
	if err := json.Unmarshal([]byte(dogRun(t, etcd, "vdi", "create", "disk0", "20G", "--json").must(t, 0).stdout), &created); err != nil {
		t.Fatal(err)
	}
	if created.Name != "disk0" || created.Size != 20<<30 || created.Copies != 2 || created.ID == 0 {
		t.Fatalf("created %+v", created)
	}
	dogRun(t, etcd, "vdi", "create", "disk1", "512M", "--copies", "1").must(t, 0)
	dogRun(t, etcd, "vdi", "create", "disk0", "1G").must(t, 1) // exists

	list := dogRun(t, etcd, "vdi", "list").must(t, 0).stdout
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") ||
		strings.Join(strings.Fields(lines[1])[:6], " ") != "disk0 1 20G 2 4096 5120" ||
		strings.Join(strings.Fields(lines[2])[:6], " ") != "disk1 2 512M 1 4096 128" {
		t.Fatalf("vdi list:\n%s", list)
	}

	dogRun(t, etcd, "vdi", "resize", "disk0", "30G").must(t, 0)
	dogRun(t, etcd, "vdi", "resize", "disk0", "10G").must(t, 1) // shrink
	dogRun(t, etcd, "vdi", "resize", "disk0", "10G", "--force").must(t, 0)
	dogRun(t, etcd, "vdi", "delete", "disk1").must(t, 0)
	dogRun(t, etcd, "vdi", "delete", "disk1").must(t, 1)

	var vdis []cluster.VDI
	if err := json.Unmarshal([]byte(dogRun(t, etcd, "vdi", "list", "--json").must(t, 0).stdout), &vdis); err != nil {
		t.Fatal(err)
	}
	if len(vdis) != 1 || vdis[0].Name != "disk0" || vdis[0].Size != 10<<30 {
		t.Fatalf("vdi list --json = %+v", vdis)
	}

	// A node registered by a sheep shows up in node list: joining until
	// it is a member, then recovering until it reports the epoch done.
	cl, err := cluster.Connect(cluster.Options{Endpoints: []string{etcd}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	reg, err := cl.Register(ctx, cluster.Node{ID: "sheep-0", Addr: clustertest.ClosedAddr(t), Zone: "r1", Capacity: 1 << 40}, cluster.RegisterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	nodeRows := func(extra ...string) [][]string {
		t.Helper()
		nl := dogRun(t, etcd, append([]string{"node", "list"}, extra...)...).must(t, 0).stdout
		lines := strings.Split(strings.TrimSpace(nl), "\n")
		if !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "USED") {
			t.Fatalf("node list:\n%s", nl)
		}
		var rows [][]string
		for _, l := range lines[1:] {
			rows = append(rows, strings.Fields(l))
		}
		return rows
	}
	// ID ADDRESS ZONE CAPACITY USED STATE STARTED
	if r := nodeRows(); len(r) != 1 || r[0][0] != "sheep-0" || r[0][2] != "r1" || r[0][3] != "1T" || r[0][4] != "-" || r[0][5] != "joining" {
		t.Fatalf("node list rows: %v", r)
	}
	dogRun(t, etcd, "node", "join", "nope").must(t, 1) // not running
	dogRun(t, etcd, "node", "join").must(t, 2)
	if out := dogRun(t, etcd, "node", "join", "sheep-0").must(t, 0).stdout; !strings.Contains(out, "epoch 1, 1 members") {
		t.Fatalf("join: %s", out)
	}
	if r := nodeRows(); r[0][5] != "recovering" {
		t.Fatalf("node list rows after join: %v", r)
	}
	if err := cl.SetRecoveryStatus(ctx, cluster.RecoveryStatus{Node: "sheep-0", Epoch: 1, Total: 4, Done: 4, Bytes: 16 << 20, Complete: true}); err != nil {
		t.Fatal(err)
	}
	if r := nodeRows(); r[0][5] != "up" {
		t.Fatalf("node list rows after recovery: %v", r)
	}
	var nodes []dog.NodeStatus
	if err := json.Unmarshal([]byte(dogRun(t, etcd, "node", "list", "--json").must(t, 0).stdout), &nodes); err != nil ||
		len(nodes) != 1 || nodes[0].ID != "sheep-0" || nodes[0].State != cluster.NodeUp || nodes[0].Used != nil || nodes[0].Unreachable == "" {
		t.Fatalf("node list --json: %v %+v", err, nodes)
	}
	// The epoch is not marked recovered yet: deletes wait.
	dogRun(t, etcd, "vdi", "create", "tmp", "1G").must(t, 0)
	if r := dogRun(t, etcd, "vdi", "delete", "tmp").must(t, 1); !strings.Contains(r.stderr, "recovery in progress (epoch 1)") {
		t.Fatalf("delete during recovery: %q", r.stderr)
	}
	text := dogRun(t, etcd, "cluster", "info").must(t, 0).stdout
	for _, want := range []string{"1 registered, 1 members", "Epoch:          1", "Recovery:       in progress in epoch 1: 4 of 4 objects, 16M copied",
		"operator joined node sheep-0", "complete"} {
		if !strings.Contains(text, want) {
			t.Fatalf("cluster info lacks %q:\n%s", want, text)
		}
	}
	if err := cl.MarkComplete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// --watch returns at once: the epoch is recovered.
	if err := json.Unmarshal([]byte(dogRun(t, etcd, "cluster", "info", "--watch", "--json").must(t, 0).stdout), &ci); err != nil {
		t.Fatal(err)
	}
	if !ci.Recovered || ci.RecoveryComplete != 1 || len(ci.History) != 1 || ci.History[0].Reason != "operator joined node sheep-0" ||
		ci.Recovery["sheep-0"].Bytes != 16<<20 || ci.MinCopies != 1 || ci.Grace != 10*time.Second {
		t.Fatalf("cluster info --json after recovery: %+v", ci)
	}
	dogRun(t, etcd, "vdi", "delete", "tmp").must(t, 0)

	// Once it is gone it is listed as a down member.
	reg.Close()
	if r := nodeRows(); r[0][0] != "sheep-0" || r[0][1] != "-" || r[0][5] != "down" {
		t.Fatalf("node list rows after the node left: %v", r)
	}
	dogRun(t, etcd, "node", "remove", "nope").must(t, 2)
	dogRun(t, etcd, "node", "remove", "sheep-0").must(t, 0)
	if r := nodeRows(); len(r) != 0 {
		t.Fatalf("node list rows after remove: %v", r)
	}
	if r := nodeRows("--all"); len(r) != 1 || r[0][5] != "gone" {
		t.Fatalf("node list --all rows after remove: %v", r)
	}
	if info := dogRun(t, etcd, "cluster", "info").must(t, 0).stdout; !strings.Contains(info, "operator removed node sheep-0") {
		t.Fatalf("cluster info after a removal:\n%s", info)
	}

	// --etcd beats the environment.
	dogRun(t, "http://"+clustertest.ClosedAddr(t), "vdi", "list", "--etcd", etcd).must(t, 0)
	// --force re-format forgets VDIs.
	dogRun(t, etcd, "cluster", "format", "--copies", "3", "--force").must(t, 0)
	if l := dogRun(t, etcd, "vdi", "list", "--json").must(t, 0).stdout; strings.TrimSpace(l) != "[]" {
		t.Fatalf("after forced format: %s", l)
	}
}

func TestDogBadUsage(t *testing.T) {
	etcd := clustertest.Embedded(t)
	dogRun(t, etcd, "cluster", "format").must(t, 0)
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"vdi"},
		{"vdi", "bogus"},
		{"vdi", "create"},
		{"vdi", "create", "x"},
		{"vdi", "create", "x", "20Q"},
		{"vdi", "create", "x", "1000"},           // not a block multiple
		{"vdi", "create", "a/b", "1G"},           // bad name
		{"vdi", "create", "x", "1G", "--copies"}, // flag without value
		{"vdi", "create", "x", "1G", "--copies", "many"},
		{"vdi", "create", "x", "1G", "--copies", "99"},
		{"vdi", "create", "x", "1G", "extra"},
		{"vdi", "resize", "x"},
		{"vdi", "delete"},
		{"vdi", "list", "extra"},
		{"cluster", "format", "--copies", "0", "--force"},
		{"cluster", "format", "--object-size", "3M", "--force"},
		{"cluster", "format", "--object-size", "lots", "--force"},
		{"cluster", "format", "--copies", "2", "--min-copies", "3", "--force"},
		{"cluster", "format", "--member-grace", "-1s", "--force"},
		{"cluster", "format", "--member-grace", "soon", "--force"},
		{"cluster", "info", "--history", "-1"},
		{"cluster", "recover"},
		{"node", "list", "--nope"},
		{"vdi", "list", "--etcd", ""},
	} {
		r := dogRun(t, etcd, args...)
		if r.code != 2 {
			t.Errorf("dog %v: exit %d, want 2 (stderr %q)", args, r.code, r.stderr)
			continue
		}
		r.must(t, 2)
	}
}

func TestDogUnreachableEtcd(t *testing.T) {
	addr := clustertest.ClosedAddr(t)
	r := dogRun(t, "http://"+addr, "vdi", "list", "--timeout", "500ms").must(t, 1)
	if !strings.Contains(r.stderr, addr) {
		t.Fatalf("error should name the etcd endpoint: %q", r.stderr)
	}
}

func TestDogClusterCheck(t *testing.T) {
	etcd := clustertest.Embedded(t)
	dogRun(t, etcd, "cluster", "format", "--copies", "1").must(t, 0)
	if out := dogRun(t, etcd, "cluster", "check").must(t, 0).stdout; !strings.Contains(out, "checked 0 objects of 0 vdis in epoch 0: 0 problems") {
		t.Fatalf("check of an empty cluster: %q", out)
	}
	dogRun(t, etcd, "cluster", "check", "--vdi", "nope").must(t, 1)
	dogRun(t, etcd, "cluster", "check", "extra").must(t, 2)
	// A member that never reports recovery: the check is refused.
	cl, err := cluster.Connect(cluster.Options{Endpoints: []string{etcd}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Join(context.Background(), cluster.Member{ID: "ghost"}); err != nil {
		t.Fatal(err)
	}
	r := dogRun(t, etcd, "cluster", "check", "--repair").must(t, 1)
	if !strings.Contains(r.stderr, "recovery in progress (epoch 1)") {
		t.Fatalf("check during recovery: %q", r.stderr)
	}
}

// TestDogClusterInfoWatch: --watch returns once the epoch is recovered,
// not before.
func TestDogClusterInfoWatch(t *testing.T) {
	etcd := clustertest.Embedded(t)
	dogRun(t, etcd, "cluster", "format", "--copies", "1").must(t, 0)
	cl, err := cluster.Connect(cluster.Options{Endpoints: []string{etcd}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if _, err := cl.Join(ctx, cluster.Member{ID: "a"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() { done <- dogRun(t, etcd, "cluster", "info", "--watch", "--json") }()
	select {
	case r := <-done:
		t.Fatalf("--watch returned before recovery: %+v", r)
	case <-time.After(time.Second):
	}
	if err := cl.SetRecoveryStatus(ctx, cluster.RecoveryStatus{Node: "a", Epoch: 1, Total: 1, Done: 1, Complete: true}); err != nil {
		t.Fatal(err)
	}
	if err := cl.MarkComplete(ctx, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		var ci dog.ClusterInfo
		if err := json.Unmarshal([]byte(r.must(t, 0).stdout), &ci); err != nil || !ci.Recovered || ci.RecoveryComplete != 1 {
			t.Fatalf("--watch printed %+v, %v", ci, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("--watch did not return after recovery")
	}
}

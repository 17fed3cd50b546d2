package cluster

import (
	"strings"
	"testing"
	"time"
)

func ids(ms []Member) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.ID
	}
	return strings.Join(s, ",")
}

// TestDecide walks one controller through time: absences are measured
// from when it first saw them, a node back in time is forgiven, several
// changes go in one epoch, the last old member is never removed.
func TestDecide(t *testing.T) {
	m := &membership{absentSince: map[string]time.Time{}}
	grace := 10 * time.Second
	t0 := time.Unix(1000, 0)
	up := func(ids ...string) []Node {
		var ns []Node
		for _, id := range ids {
			ns = append(ns, Node{ID: id, State: NodeUp, Zone: "z" + id, Capacity: 7})
		}
		return ns
	}
	step := func(e *Epoch, nodes []Node, at time.Duration, wantChanged bool, wantMembers, wantReason string) time.Duration {
		t.Helper()
		next, changed := m.decide(e, nodes, grace, t0.Add(at))
		if changed != wantChanged || (changed && (ids(e.Members) != wantMembers || e.Reason != wantReason)) {
			t.Fatalf("at %v: changed %v members %s reason %q; want %v %s %q", at, changed, ids(e.Members), e.Reason, wantChanged, wantMembers, wantReason)
		}
		return next
	}
	e := &Epoch{}
	step(e, up("a", "b"), 0, true, "a,b", "node a joined; node b joined")
	e.Members = []Member{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	// A leaving node is not added; a registered non-up node neither.
	step(e, append(up("a", "b", "c"), Node{ID: "d", State: NodeLeaving}), 0, false, "", "")
	// c vanishes at 1s: gone at 11s, not before.
	if next := step(e, up("a", "b"), time.Second, false, "", ""); next != grace {
		t.Fatalf("next wake %v, want %v", next, grace)
	}
	if next := step(e, up("a", "b"), 6*time.Second, false, "", ""); next != 5*time.Second {
		t.Fatalf("next wake %v, want 5s", next)
	}
	step(e, up("a", "b"), 11*time.Second, true, "a,b", "node c gone for 10s")
	// b vanishes and comes back within the grace: forgiven; vanishes
	// again: counted from then.
	e.Members = []Member{{ID: "a"}, {ID: "b"}}
	step(e, up("a"), 12*time.Second, false, "", "")
	step(e, up("a", "b"), 15*time.Second, false, "", "")
	step(e, up("a"), 20*time.Second, false, "", "")
	step(e, up("a"), 29*time.Second, false, "", "")
	// Both gone, a new node joins: b (gone longest) goes, a stays (the
	// last old member), e joins — one epoch.
	step(e, up("e"), 31*time.Second, true, "a,e", "node b gone for 11s; node e joined")
	// All old members gone for good: the last one stays.
	e.Members = []Member{{ID: "a"}}
	step(e, nil, 60*time.Second, false, "", "")
	if e.Members[0].ID != "a" {
		t.Fatalf("members %s", ids(e.Members))
	}
}

package cluster

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func FuzzDecodeRecords(f *testing.F) {
	seed := func(v any) {
		b, _ := json.Marshal(v)
		f.Add(b)
	}
	seed(VDI{Name: "a", ID: 1, Size: 1 << 30, Copies: 3, BlockSize: 4096, ObjectSize: 4 << 20, Created: time.Unix(0, 0)})
	seed(Settings{Copies: 3, ObjectSize: 4 << 20})
	seed(Node{ID: "n", Addr: "127.0.0.1:7000", Capacity: 1})
	seed(Epoch{Number: 2, Members: []Member{{ID: "a"}, {ID: "b"}}, Reason: "node b joined"})
	seed(Settings{Copies: 3, ObjectSize: 4 << 20, MinCopies: 2, MemberGrace: time.Second})
	seed(RecoveryStatus{Node: "a", Epoch: 3, Total: 10, Done: 4, Bytes: 1 << 20, Waiting: "node b unreachable"})
	for _, s := range []string{`{"object_size":0,"size":4096,"copies":1,"block_size":4096,"id":1,"name":"x"}`,
		`{"members":[{"id":"b"},{"id":"a"}]}`, `{"copies":3,"object_size":4096,"min_copies":4}`,
		`{"node":"a","total":-1}`, `{"node":"a/b"}`, `{"capacity":-1,"id":"x"}`, `null`, `[]`, `{"size":1e300}`, ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := decodeVDI(b); err == nil {
			// What clients divide and shift by is sane.
			if v.ObjectSize <= 0 || v.ObjectSize&(v.ObjectSize-1) != 0 || v.Size <= 0 || v.Objects() > MaxObjectsPerVDI || v.Copies < 1 {
				t.Fatalf("accepted %+v", v)
			}
		} else if !errors.Is(err, errCorrupt) {
			t.Fatalf("error %v does not wrap errCorrupt", err)
		}
		if s, err := decodeSettings(b); err == nil && (s.Copies < 1 || !validObjectSize(s.ObjectSize)) {
			t.Fatalf("accepted %+v", s)
		}
		if n, err := decodeNode(b); err == nil && (n.ID == "" || strings.Contains(n.ID, "/")) {
			t.Fatalf("accepted %+v", n)
		}
		if s, err := decodeSettings(b); err == nil && (s.MinCopies < 0 || s.MinCopies > s.Copies || s.MemberGrace < 0 || s.MinCopiesFor(s.Copies) < 1) {
			t.Fatalf("accepted %+v", s)
		}
		if r, err := decodeRecoveryStatus(b); err == nil && (validNodeID(r.Node) != nil || r.Total < 0 || r.Done < 0 || r.Bytes < 0) {
			t.Fatalf("accepted %+v", r)
		}
		if e, err := decodeEpoch(b); err == nil {
			for i := 1; i < len(e.Members); i++ {
				if e.Members[i-1].ID >= e.Members[i].ID {
					t.Fatalf("accepted unsorted %+v", e)
				}
			}
		}
	})
}

func TestDecodeRejectsOversizedRecord(t *testing.T) {
	big := `{"name":"` + strings.Repeat("a", maxRecord) + `"}`
	if _, err := decodeVDI([]byte(big)); !errors.Is(err, errCorrupt) {
		t.Fatalf("oversized record: %v", err)
	}
}

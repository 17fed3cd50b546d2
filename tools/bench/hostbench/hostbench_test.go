package hostbench

import (
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/sheepblk/sheepblk/ublk
cpu: AMD EPYC
BenchmarkDispatch-2   	 1000000	      1053 ns/op	       0 B/op	       0 allocs/op
PASS
ok  	github.com/sheepblk/sheepblk/ublk	2.1s
pkg: github.com/sheepblk/sheepblk/rpc
BenchmarkCall/rpc-2   	  200000	      5012 ns/op	 817.2 MB/s	      16 B/op	       1 allocs/op
BenchmarkCall/grpc-2  	   50000	     21000 ns/op	    9000 B/op	     150 allocs/op
BenchmarkBroken-2 --- FAIL
Benchmark notanumber ns/op
`

func TestParse(t *testing.T) {
	got, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("parsed %d benchmarks, want 3: %+v", len(got), got)
	}
	d := got[0]
	if d.Package != "github.com/sheepblk/sheepblk/ublk" || d.Name != "BenchmarkDispatch" || d.Procs != 2 || d.Iterations != 1000000 {
		t.Errorf("first = %+v", d)
	}
	if v, ok := d.Get("allocs/op"); !ok || v != 0 {
		t.Errorf("allocs/op = %v, %v; want 0, true", v, ok)
	}
	r := got[1]
	if r.Package != "github.com/sheepblk/sheepblk/rpc" || r.Name != "BenchmarkCall/rpc" {
		t.Errorf("second = %+v", r)
	}
	if v, _ := r.Get("MB/s"); v != 817.2 {
		t.Errorf("MB/s = %v, want 817.2", v)
	}
	if v, _ := got[2].Get("allocs/op"); v != 150 {
		t.Errorf("grpc allocs/op = %v, want 150", v)
	}
	if _, ok := d.Get("furlongs"); ok {
		t.Error("Get found a unit the line does not have")
	}
}

package rpc

import "testing"

func TestBufferClasses(t *testing.T) {
	for _, tc := range []struct{ n, size int }{
		{0, 512}, {1, 512}, {512, 512}, {513, 1024}, {4096, 4096}, {4097, 8192},
		{4 << 20, 4 << 20}, {4<<20 + 1, 5 << 20}, {DefaultMaxBody, 9 << 20}, {maxPooled, maxPooled},
	} {
		class, size := classOf(tc.n)
		if size != tc.size || class < 0 || class >= numClasses {
			t.Errorf("classOf(%d) = class %d size %d, want size %d", tc.n, class, size, tc.size)
		}
		b := getBuffer(tc.n)
		if len(b.b) != tc.n || cap(b.b) != tc.size {
			t.Errorf("getBuffer(%d): len %d cap %d, want cap %d", tc.n, len(b.b), cap(b.b), tc.size)
		}
		putBuffer(b)
	}
	// Every size class is distinct and increasing.
	prev := 0
	for n := 1; n <= maxPooled; n += 4093 {
		class, size := classOf(n)
		if size < n || class < prev {
			t.Fatalf("classOf(%d) = %d/%d after class %d", n, class, size, prev)
		}
		prev = class
	}
	if b := getBuffer(maxPooled + 1); len(b.b) != maxPooled+1 {
		t.Fatalf("oversized getBuffer: len %d", len(b.b))
	}
}

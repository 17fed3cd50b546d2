package rpc

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

const (
	benchInFlight = 64
	benchSize     = 4 << 10
)

// echoHandler replies with the request's header and a copy of its body in a
// pooled reply buffer, the shape of a sheep read.
type echoHandler struct{}

func (echoHandler) ServeRPC(_ context.Context, req *Request, resp *Response) error {
	resp.Header = req.Header[:0]
	if len(req.Body) > 0 {
		resp.Body = resp.Buf(len(req.Body))
		copy(resp.Body, req.Body)
	}
	return nil
}

func benchServer(b *testing.B) *testServer {
	return startServer(b, echoHandler{}, ServerOptions{Logger: zerolog.Nop()})
}

func reportCalls(b *testing.B, start time.Time) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
}

// setParallelism makes RunParallel use n goroutines (rounded up to a
// multiple of GOMAXPROCS).
func setParallelism(b *testing.B, n int) {
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((n + procs - 1) / procs)
}

// BenchmarkRPC4KiB: 64 callers each with one call in flight (Do), 4 KiB
// request body, 4 KiB reply, one connection over loopback. allocs/op counts
// client and server together.
func BenchmarkRPC4KiB(b *testing.B) {
	ts := benchServer(b)
	c := newTestClient(b, ts.addr, ClientOptions{Logger: zerolog.Nop()})
	setParallelism(b, benchInFlight)
	b.SetBytes(2 * benchSize)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		call := &Call{ReqHeader: make([]byte, 16), ReqBody: make([]byte, benchSize),
			RespHeader: make([]byte, 16), RespBody: make([]byte, benchSize)}
		ctx := context.Background()
		for pb.Next() {
			call.RespHeader, call.RespBody = call.RespHeader[:cap(call.RespHeader)], call.RespBody[:cap(call.RespBody)]
			if err := c.Do(ctx, call); err != nil {
				b.Error(err)
				return
			}
			if len(call.RespBody) != benchSize {
				b.Errorf("reply body %d bytes", len(call.RespBody))
				return
			}
		}
	})
	reportCalls(b, start)
}

// BenchmarkRPC4KiBAsync keeps 64 calls in flight from one goroutine through
// Go and Done callbacks, the way the ublk sheep backend drives the client.
func BenchmarkRPC4KiBAsync(b *testing.B) {
	ts := benchServer(b)
	c := newTestClient(b, ts.addr, ClientOptions{Logger: zerolog.Nop()})
	var issued, completed atomic.Int64
	var failed atomic.Pointer[error]
	all := make(chan struct{})
	n := int64(b.N)
	calls := make([]*Call, benchInFlight)
	for i := range calls {
		calls[i] = &Call{ReqHeader: make([]byte, 16), ReqBody: make([]byte, benchSize),
			RespHeader: make([]byte, 16), RespBody: make([]byte, benchSize)}
		calls[i].Done = func(call *Call) {
			if call.Err != nil {
				err := call.Err
				failed.Store(&err)
			}
			if completed.Add(1) == n {
				close(all)
			}
			if issued.Add(1) <= n {
				call.RespHeader, call.RespBody = call.RespHeader[:16], call.RespBody[:benchSize]
				c.Go(call)
			}
		}
	}
	b.SetBytes(2 * benchSize)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for _, call := range calls {
		if issued.Add(1) <= n {
			c.Go(call)
		}
	}
	<-all
	reportCalls(b, start)
	if p := failed.Load(); p != nil {
		b.Fatal(*p)
	}
}

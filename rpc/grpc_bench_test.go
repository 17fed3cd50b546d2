package rpc

// The gRPC comparison lives in a _test file so grpc is never linked into a
// binary that imports rpc.

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// rawCodec passes []byte messages through unchanged, so no protoc output is
// needed and gRPC's cost is measured without a marshalling layer.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }

func (rawCodec) Unmarshal(data []byte, v any) error {
	p := v.(*[]byte)
	*p = append((*p)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "sheepblk-raw" }

const grpcEchoMethod = "/sheepblk.bench.Echo/Echo"

var grpcEchoDesc = grpc.ServiceDesc{
	ServiceName: "sheepblk.bench.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var msg []byte
			if err := dec(&msg); err != nil {
				return nil, err
			}
			return &msg, nil
		},
	}},
	Metadata: "bench",
}

// BenchmarkGRPC4KiB is BenchmarkRPC4KiB with grpc-go: 64 callers, 4 KiB
// request, 4 KiB reply, one HTTP/2 connection over loopback.
func BenchmarkGRPC4KiB(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}))
	srv.RegisterService(&grpcEchoDesc, struct{}{})
	go srv.Serve(l)
	defer srv.Stop()
	conn, err := grpc.NewClient(l.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()

	setParallelism(b, benchInFlight)
	b.SetBytes(2 * benchSize)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		req := make([]byte, benchSize)
		resp := make([]byte, 0, benchSize)
		ctx := context.Background()
		for pb.Next() {
			if err := conn.Invoke(ctx, grpcEchoMethod, &req, &resp); err != nil {
				b.Error(err)
				return
			}
			if len(resp) != benchSize {
				b.Errorf("reply %d bytes", len(resp))
				return
			}
		}
	})
	reportCalls(b, start)
}

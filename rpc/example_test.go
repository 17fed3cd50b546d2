package rpc_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/sheepblk/sheepblk/rpc"
)

// A server whose handler upper-cases the request body into a pooled reply
// buffer, and a client calling it synchronously and asynchronously.
func Example() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := rpc.NewServer(rpc.HandlerFunc(func(ctx context.Context, req *rpc.Request, resp *rpc.Response) error {
		if string(req.Header) != "upper" {
			return fmt.Errorf("unknown op %q", req.Header)
		}
		resp.Body = resp.Buf(len(req.Body)) // released after the reply is written
		copy(resp.Body, strings.ToUpper(string(req.Body)))
		return nil
	}), rpc.ServerOptions{})
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())

	c := rpc.NewClient(l.Addr().String(), rpc.ClientOptions{CallTimeout: 5 * time.Second})
	defer c.Close()

	// Synchronous: the reply lands in the caller's RespBody.
	call := &rpc.Call{ReqHeader: []byte("upper"), ReqBody: []byte("sheep"), RespBody: make([]byte, 64)}
	if err := c.Do(context.Background(), call); err != nil {
		panic(err)
	}
	fmt.Println(string(call.RespBody))

	// Asynchronous: Done runs on an internal goroutine.
	done := make(chan *rpc.Call, 1)
	c.Go(&rpc.Call{ReqHeader: []byte("lower"), Done: func(call *rpc.Call) { done <- call }})
	fmt.Println((<-done).Err)
	// Output:
	// SHEEP
	// rpc: remote error: unknown op "lower"
}

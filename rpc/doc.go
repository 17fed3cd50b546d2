// Package rpc is the project's pipelined request/response transport, built on
// the ideas of valyala/fastrpc (which cannot be fetched here; see design.md):
// one TCP connection carries many calls, every frame carries a request ID,
// the server runs requests concurrently and replies out of order, and each
// side batches its writes, flushing when its send queue drains, so N
// concurrent calls cost about one write syscall.
//
// # Wire format
//
// A frame is a 24-byte little-endian header followed by the service's own
// header bytes and then the bulk body bytes:
//
//	off size field
//	  0    2 magic       0x4253 ("SB")
//	  2    1 version     1
//	  3    1 flags       request | response [| error]
//	  4    4 reserved    must be zero
//	  8    8 request id  chosen by the client, echoed by the server
//	 16    4 header len  <= MaxHeader (default 64 KiB)
//	 20    4 body len    <= MaxBody (default 8 MiB + 64 KiB)
//
// An error reply (flags response|error) carries the handler's error string as
// its header and no body; the client surfaces it as a *RemoteError. Lengths are
// checked against their bounds before anything is allocated or read; a
// malformed frame closes that one connection and is logged.
//
// # Client
//
// Client.Go never blocks on the network: it takes a slot in the connection's
// slot table (the request ID is slot index plus a generation, so a late reply
// to a timed-out call is recognised and discarded), appends the slot to the
// send queue and wakes the connection's writer goroutine. The writer sends the
// caller's ReqHeader and ReqBody with writev (net.Buffers), without copying,
// everything queued by then in one batch. Client.Queue and Client.Flush are
// the same for a caller that knows its batches (the ublk queue thread, one
// round of requests at a time): Queue only queues, and Flush writes the
// queue on the caller's own thread with non-blocking writev, handing to the
// writer goroutine only what the socket does not take at once. A request
// then costs no wakeup of another thread, the difference that shows at
// queue depth 1.
// The reader goroutine reads each reply header and then the reply straight
// into the caller's RespHeader and RespBody buffers. The reply parser is
// resumable (it says where the next bytes go and is told how many came),
// so a Poller can drive it instead: Client.SetPoller gives the reading of
// plain TCP connections to a thread that already sleeps in the kernel for
// other reasons (the ublk queue thread, in io_uring_enter), which reads
// only what a socket holds when woken. Such a connection is detached from
// the Go netpoller, whose epoll would otherwise wake a thread for every
// reply; its few blocking waits (a full socket, a reader after the poller
// stopped) are in poll(2). One scanner goroutine per Client expires calls
// past their deadline; it sleeps until the earliest one is due (at most a
// second), and a call due sooner wakes it. While the transport still uses a call's
// buffers (writing its request, reading its reply), its completion is
// deferred until it lets go of them, so once Done runs the caller may reuse
// every buffer of the Call. A connection is closed as stuck only when it has
// received nothing at all for ClientOptions.StallTimeout while requests
// awaited replies: a call past its deadline fails alone, and a peer that
// answers anything keeps the connection (one slow call never cuts the
// others sharing it). Connections are
// dialed lazily; a lost connection fails its pending calls at once with an
// error that wraps ErrConnection, and the next call redials, with
// exponential backoff after failed dials (calls made during the backoff fail
// fast with ErrConnection, so a caller can turn to another replica).
//
// Done runs on the client's reader, writer or deadline goroutine, on the
// Poller's thread, on the goroutine calling Flush (for calls that failed while it wrote them), or on
// a fresh one for calls that fail before entering a connection; it must not
// block, may resubmit its Call, and must not call Client.Close.
//
// # Server
//
// Each connection has a reader goroutine and a bounded set of worker
// goroutines (at most MaxInFlightPerConn, started on demand). A worker
// writes its own reply, and every other reply queued by the time it
// writes, unless another worker is writing already, which then writes its
// reply too: no writer goroutine to wake, and still one writev per batch
// under load. A Handler that is also an InlineHandler serves on the reader
// itself whatever it can without waiting (a read the page cache holds),
// and declines the rest, which go to workers; the reader holds the inline
// replies back while more requests are buffered and writes them together
// before it waits for the client again. On the lab's 2 vCPUs this halved a
// node's CPU per 4 KiB read at queue depth 32: the hand-off to a worker,
// and the workers contending for the store's locks, were most of it.
// A plain socket is read and written with raw system calls (rawRead,
// vecWriter): they never block on a non-blocking socket, and the
// scheduler's entersyscall, which syscall.Syscall runs, wakes the runtime's
// sysmon thread whenever the process was idle, about 3 context switches
// per request at queue depth 1. With ServerOptions.DetachReaders a plain
// connection leaves the netpoller after its handshake and is read by the
// process's one readPoller thread, which waits in one poll(2) on all such
// sockets (none on one CPU, since the thread keeps a P while it waits): a
// request wakes that thread straight into the reader, without the
// scheduler's park, netpoll and wake-up, which on the lab cost the node a
// third of its CPU per 4 KiB write at queue depth 32. Every request and
// reply goes through one frameStream parser, whether a goroutine reads
// it blocking or a poller's thread reads only what the socket holds; the
// poller's thread never waits for one connection (a full socket hands the
// rest of its replies to a goroutine; a connection with no in-flight slot
// free is left out of the poll until a reply frees one). Shutdown wakes
// the poller by shutting the sockets' read side.
// Request bytes are read into pooled buffers; Response.Buf hands the handler
// pooled buffers that are released once the reply has been written.
// Shutdown stops reading new requests, lets in-flight handlers finish, flushes
// their replies and then closes the connections; a connection whose reading
// ends otherwise (a bad frame, the client's EOF) is drained the same way.
// Close closes everything at once. A connection holds at most
// MaxInFlightPerConn requests, so its request memory is bounded by
// MaxInFlightPerConn × (MaxHeader + MaxBody); size the two for the node.
//
// Steady-state calls allocate nothing on either side (BenchmarkRPC4KiB
// reports allocs/op).
//
// # Who may connect
//
// With ServerOptions.Secret and ClientOptions.Secret set (the cluster
// secret, read with ReadSecretFile from a file only its owner may read),
// every connection runs a challenge–response handshake before its first
// frame (auth.go has the messages): the client proves with HMAC-SHA256 that
// it holds the secret, then the server proves the same, so a client never
// sends a request to an impostor. A peer that fails gets a closed
// connection (nothing but the random challenge was sent) and the server
// logs a line, rate-limited. With TLSConfig on both sides connections run
// over TLS 1.3 and the handshake runs inside it, bound to the TLS session.
// Handshakes are fixed-size messages bounded by HandshakeTimeout, and at
// most MaxHandshakes run at once on a server; a failed client handshake is
// a connection error wrapping ErrAuth, retried with the dial backoff.
//
// # Additions to the agreed API
//
// ErrConnection (wrapped by every connection error) and ErrTooLarge (a request
// or reply larger than its bound or buffer) let callers tell retryable
// transport failures apart; they are additions, none of the agreed names or
// shapes changed. ServerOptions also has Context (the base context handed to
// handlers, cancelled by Close).
package rpc

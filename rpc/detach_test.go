package rpc

import (
	"context"
	"net"
	"testing"
	"time"
)

// The server's tests again, with every connection read by the readPoller
// (ServerOptions.DetachReaders, on one CPU too):
// round trips, inline batches, bad frames, slow and silent peers, a killed
// server, and a Shutdown that must wake a reader waiting in poll(2) and
// still answer what it read.
func TestDetachedReaders(t *testing.T) {
	detachAllReaders.Store(true)
	detachAlways.Store(true)
	t.Cleanup(func() {
		detachAllReaders.Store(false)
		detachAlways.Store(false)
	})
	t.Run("IsDetached", func(t *testing.T) {
		ts := startServer(t, checksumHandler{}, ServerOptions{})
		c := newTestClient(t, ts.addr, ClientOptions{Conns: 2})
		for i := range 4 {
			call := &Call{ReqHeader: make([]byte, 12), ReqBody: make([]byte, 100*i), RespHeader: make([]byte, 12), RespBody: make([]byte, 1000)}
			if err := c.Do(context.Background(), call); err != nil {
				t.Fatal(err)
			}
			if err := checkReply(call); err != nil {
				t.Fatal(err)
			}
		}
		if n := ts.detached(); n != 2 {
			t.Fatalf("%d of the client's 2 connections detached", n)
		}
	})
	for name, test := range map[string]func(*testing.T){
		"RoundTripRandomSizesConcurrent":     TestRoundTripRandomSizesConcurrent,
		"QueueFlushBatches":                  TestQueueFlushBatches,
		"OutOfOrderCompletion":               TestOutOfOrderCompletion,
		"DeadlineExpiry":                     TestDeadlineExpiry,
		"RemoteErrorAndPanic":                TestRemoteErrorAndPanic,
		"TooLarge":                           TestTooLarge,
		"ServerKilledAndRestarted":           TestServerKilledAndRestarted,
		"ShutdownDrainsInFlight":             TestShutdownDrainsInFlight,
		"ShutdownContextExpires":             TestShutdownContextExpires,
		"ClientCloseFailsPending":            TestClientCloseFailsPending,
		"InlineRequestsNeedNoWorker":         TestInlineRequestsNeedNoWorker,
		"InlineBatchesAllAnswered":           TestInlineBatchesAllAnswered,
		"InlineReplyNotHeldBehindHalfAFrame": TestInlineReplyNotHeldBehindHalfAFrame,
		"BadFramesCloseOnlyThatConnection":   TestBadFramesCloseOnlyThatConnection,
		"PollerReadsReplies":                 TestPollerReadsReplies,
		"SlowCallKeepsConnection":            TestSlowCallKeepsConnection,
		"SilentPeerClosed":                   TestSilentPeerClosed,
		"AuthAccepted":                       TestAuthAccepted,
	} {
		t.Run(name, test)
	}
	// One thread reads every detached connection, so none may make it
	// wait: a peer that sends requests served inline and never reads the
	// replies fills its socket, and the rest of that batch goes to a
	// goroutine while the poller keeps serving another client.
	t.Run("StuckPeerDoesNotStallOthers", func(t *testing.T) {
		ts := startServer(t, inlineChecksumHandler{}, ServerOptions{})
		stuck, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer stuck.Close()
		const requests, size = 16, 1 << 20 // 16 MiB of replies: more than a socket holds
		sent := make(chan error, 1)
		go func() {
			var err error
			for i := range requests {
				if _, err = stuck.Write(rawFrame(flagRequest, uint64(i), make([]byte, 12), make([]byte, size))); err != nil {
					break
				}
			}
			sent <- err
		}()
		select {
		case err := <-sent:
			if err != nil {
				t.Fatalf("writing the stuck peer's requests: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the server stopped reading the stuck peer's requests")
		}
		c := newTestClient(t, ts.addr, ClientOptions{CallTimeout: 5 * time.Second})
		for i := range 20 {
			call := &Call{ReqHeader: delayHeader(make([]byte, 12), uint64(i), 0), ReqBody: make([]byte, 4<<10),
				RespHeader: make([]byte, 12), RespBody: make([]byte, 4<<10)}
			if err := c.Do(context.Background(), call); err != nil {
				t.Fatalf("call %d beside a stuck peer: %v", i, err)
			}
			if err := checkReply(call); err != nil {
				t.Fatal(err)
			}
		}
		if n := ts.detached(); n != 2 {
			t.Fatalf("%d of 2 connections detached", n)
		}
		// The stuck peer's replies cannot all be written: closing it
		// fails the write, and Shutdown then finds nothing left.
		stuck.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Close()
		if err := ts.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown after the stuck peer left: %v", err)
		}
	})
	// An idle detached reader is in poll(2): Shutdown must wake it and
	// return at once.
	t.Run("ShutdownWakesIdleReader", func(t *testing.T) {
		ts := startServer(t, checksumHandler{}, ServerOptions{})
		c := newTestClient(t, ts.addr, ClientOptions{})
		if err := c.Do(context.Background(), &Call{ReqHeader: make([]byte, 12), RespHeader: make([]byte, 12)}); err != nil {
			t.Fatal(err)
		}
		if ts.detached() != 1 {
			t.Fatal("the connection is not detached")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		if err := ts.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown with an idle detached reader: %v after %v", err, time.Since(start))
		}
	})
}

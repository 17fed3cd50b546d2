package rpc

import (
	"context"
	"testing"
	"time"
)

// The server's tests again, with every connection's reader detached from
// the netpoller (ServerOptions.DetachReaders, the process limit lifted):
// round trips, inline batches, bad frames, slow and silent peers, a killed
// server, and a Shutdown that must wake a reader waiting in poll(2) and
// still answer what it read.
func TestDetachedReaders(t *testing.T) {
	detachAllReaders.Store(true)
	detachedReadersLimit.Store(1 << 20)
	t.Cleanup(func() {
		detachAllReaders.Store(false)
		detachedReadersLimit.Store(0)
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

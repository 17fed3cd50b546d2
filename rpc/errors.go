package rpc

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed completes calls still pending when Client.Close runs, and
	// calls made after it.
	ErrClosed = errors.New("rpc: client closed")
	// ErrTimeout completes a call whose deadline passed before its reply.
	ErrTimeout = errors.New("rpc: call timed out")
	// ErrServerClosed is returned by Server.Serve after Shutdown or Close.
	ErrServerClosed = errors.New("rpc: server closed")
	// ErrConnection is wrapped by every error caused by a failed dial or a
	// lost connection: the request may or may not have reached the server,
	// and the caller decides whether to retry.
	ErrConnection = errors.New("rpc: connection failed")
	// ErrTooLarge is wrapped when a request exceeds the client's bounds or a
	// reply does not fit the buffers the caller provided.
	ErrTooLarge = errors.New("rpc: message too large")
)

// RemoteError is the error a server's handler returned, carried back to the
// caller as a string.
type RemoteError struct {
	Msg string
}

func (e *RemoteError) Error() string { return "rpc: remote error: " + e.Msg }

// connError wraps cause as a connection failure to addr.
func connError(addr, what string, cause error) error {
	return fmt.Errorf("%w: %s: %s: %w", ErrConnection, addr, what, cause)
}

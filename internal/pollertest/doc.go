// Package pollertest is a socket poller for host tests: it stands in for
// the ublk queue thread that reads a backend's sockets (rpc.Poller,
// backend.SocketPoller) where there is no ublk.
package pollertest

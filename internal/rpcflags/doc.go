// Package rpcflags gives the project's commands one set of flags for who
// may connect to the node port: --secret-file (the cluster secret) and
// --tls-cert, --tls-key, --tls-ca (optional TLS), and turns them into the
// rpc package's client and server options.
package rpcflags

package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// DefaultPrefix is the etcd key prefix of a cluster's state.
const DefaultPrefix = "/sheepblk/"

// DefaultEndpoint is the etcd endpoint used when none is given.
const DefaultEndpoint = "http://127.0.0.1:2379"

// Options configures a connection to the cluster's etcd.
type Options struct {
	// Endpoints are etcd client URLs; DefaultEndpoint if empty.
	Endpoints []string
	// Prefix is the key prefix of this cluster; DefaultPrefix if empty.
	// It lets several clusters (or tests) share one etcd.
	Prefix string
	// DialTimeout bounds the initial connection (default 5s).
	DialTimeout time.Duration
	// RequestTimeout bounds each call whose context has no deadline
	// (default 5s), so an unreachable etcd is an error, never a hang.
	RequestTimeout time.Duration
}

// Client is a connection to a cluster's state in etcd. It is safe for
// concurrent use.
type Client struct {
	etcd    *clientv3.Client
	prefix  string
	timeout time.Duration
	eps     string
}

// Connect opens a client. It does not wait for etcd to answer: the first
// call does, within the request timeout.
func Connect(opts Options) (*Client, error) {
	if len(opts.Endpoints) == 0 {
		opts.Endpoints = []string{DefaultEndpoint}
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(opts.Prefix, "/") {
		opts.Prefix += "/"
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 5 * time.Second
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   opts.Endpoints,
		DialTimeout: opts.DialTimeout,
		Logger:      zap.NewNop(),
		// Keep the gRPC connection probed so a dead etcd is noticed.
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd at %s: %w", strings.Join(opts.Endpoints, ","), err)
	}
	return &Client{etcd: cli, prefix: opts.Prefix, timeout: opts.RequestTimeout, eps: strings.Join(opts.Endpoints, ",")}, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.etcd.Close() }

// Etcd is the underlying etcd client, for callers that need raw access.
func (c *Client) Etcd() *clientv3.Client { return c.etcd }

// Prefix is the key prefix of this cluster.
func (c *Client) Prefix() string { return c.prefix }

// Endpoints is the comma-separated list of etcd endpoints.
func (c *Client) Endpoints() string { return c.eps }

func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// etcdErr adds the endpoints to errors that mean etcd could not be reached,
// which is what an operator needs to fix.
func (c *Client) etcdErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("etcd at %s did not answer in time (is it running?): %w", c.eps, err)
	}
	return err
}

func (c *Client) settingsKey() string      { return c.prefix + "cluster" }
func (c *Client) nodesPrefix() string      { return c.prefix + "nodes/" }
func (c *Client) nodeKey(id string) string { return c.nodesPrefix() + id }
func (c *Client) vdisPrefix() string       { return c.prefix + "vdis/" }
func (c *Client) vdiKey(name string) string {
	return c.vdisPrefix() + name
}
func (c *Client) vdiIDKey(id uint32) string { return fmt.Sprintf("%svdi-ids/%06x", c.prefix, id) }
func (c *Client) nextVDIIDKey() string      { return c.prefix + "next-vdi-id" }

package cluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// VDIHandle marks a VDI as in use by one client (a key under a lease) for
// as long as it lives: a recovery does not switch placement while any VDI
// is in use. A client that dies releases it when its lease expires.
type VDIHandle struct {
	c      *Client
	key    string
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	lease clientv3.LeaseID
}

func (c *Client) openPrefix() string { return c.prefix + "vdi-open/" }

// openNames lists the VDIs named by in-use keys, for error messages.
func (c *Client) openNames(kvs []*mvccpb.KeyValue) string {
	seen := map[string]bool{}
	for _, kv := range kvs {
		rest := strings.TrimPrefix(string(kv.Key), c.openPrefix())
		if i := strings.LastIndexByte(rest, '/'); i > 0 {
			seen[rest[:i]] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// OpenVDI marks the VDI in use until the handle is closed (or this client
// dies: ttl after, default 10s).
func (c *Client) OpenVDI(ctx context.Context, name string, ttl time.Duration) (*VDIHandle, error) {
	if err := validVDIName(name); err != nil {
		return nil, fmt.Errorf("open vdi: %w", err)
	}
	if ttl < 2*time.Second {
		ttl = 10 * time.Second
	}
	bg, cancel := context.WithCancel(context.Background())
	h := &VDIHandle{c: c, cancel: cancel, done: make(chan struct{})}
	ka, err := h.acquire(ctx, bg, name, ttl)
	if err != nil {
		cancel()
		return nil, err
	}
	go h.keep(bg, ka, name, ttl)
	return h, nil
}

func (h *VDIHandle) acquire(ctx, bg context.Context, name string, ttl time.Duration) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
	c := h.c
	tctx, cancel := c.withTimeout(ctx)
	defer cancel()
	lease, err := c.etcd.Grant(tctx, int64((ttl+time.Second-1)/time.Second))
	if err != nil {
		return nil, fmt.Errorf("open vdi %s: grant lease: %w", name, c.etcdErr(err))
	}
	key := fmt.Sprintf("%s%s/%016x", c.openPrefix(), name, int64(lease.ID))
	if _, err := c.etcd.Put(tctx, key, "", clientv3.WithLease(lease.ID)); err != nil {
		return nil, fmt.Errorf("open vdi %s: %w", name, c.etcdErr(err))
	}
	ka, err := c.etcd.KeepAlive(bg, lease.ID)
	if err != nil {
		return nil, fmt.Errorf("open vdi %s: keep lease alive: %w", name, c.etcdErr(err))
	}
	h.mu.Lock()
	h.lease, h.key = lease.ID, key
	h.mu.Unlock()
	return ka, nil
}

// keep renews the lease, and takes a new one if it is ever lost.
func (h *VDIHandle) keep(bg context.Context, ka <-chan *clientv3.LeaseKeepAliveResponse, name string, ttl time.Duration) {
	defer close(h.done)
	for {
		for range ka {
		}
		for {
			select {
			case <-bg.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			var err error
			if ka, err = h.acquire(bg, bg, name, ttl); err == nil {
				break
			}
		}
	}
}

// Close releases the VDI.
func (h *VDIHandle) Close() error {
	h.cancel()
	<-h.done
	h.mu.Lock()
	lease := h.lease
	h.mu.Unlock()
	ctx, cancel := h.c.withTimeout(context.Background())
	defer cancel()
	if _, err := h.c.etcd.Revoke(ctx, lease); err != nil {
		return fmt.Errorf("release vdi: %w", h.c.etcdErr(err))
	}
	return nil
}

// VDIsInUse counts the open handles of each VDI in use.
func (c *Client) VDIsInUse(ctx context.Context) (map[string]int, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.etcd.Get(ctx, c.openPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("list vdis in use: %w", c.etcdErr(err))
	}
	use := map[string]int{}
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), c.openPrefix())
		if i := strings.LastIndexByte(rest, '/'); i > 0 {
			use[rest[:i]]++
		}
	}
	return use, nil
}

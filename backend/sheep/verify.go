package sheep

import (
	"context"
	"fmt"
	"time"

	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// verify connects to a peer's new address and asks the node there who it
// is; only if it is the peer (same id, same object size) does the backend
// send it I/O. Anything else listening there (a node of another cluster, a
// new node on a reused port) would answer reads of objects it lacks with
// zeros. It retries until it succeeds, the address changes again (gen) or
// the backend closes.
func (b *Backend) verify(p *peer, addr string, gen uint64) {
	defer b.watchers.Done()
	opts := b.opts.RPC
	if opts.CallTimeout == 0 {
		opts.CallTimeout = b.opts.CallTimeout
	}
	opts.Logger = b.opts.Logger
	client := rpc.NewClient(addr, opts)
	current := func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return p.gen == gen && !b.closed.Load()
	}
	wait := 100 * time.Millisecond
	var lastErr string
	for current() {
		ctx, cancel := context.WithTimeout(b.ctx, b.opts.CallTimeout)
		err := identify(ctx, client, p.id, b.objSize)
		cancel()
		if err != nil {
			b.mu.Lock()
			if p.gen == gen {
				p.tried.Store(true)
			}
			b.mu.Unlock()
		}
		if err == nil {
			b.mu.Lock()
			if p.gen == gen && !b.closed.Load() {
				if poller := b.poller.Load(); poller != nil {
					client.SetPoller(*poller)
				}
				p.conn.Store(client)
				b.mu.Unlock()
				b.log.Debug().Str("node", p.id).Str("addr", addr).Msg("node verified")
				return
			}
			b.mu.Unlock()
			break
		}
		if msg := err.Error(); msg != lastErr { // log each new reason once
			lastErr = msg
			b.log.Warn().Err(err).Str("node", p.id).Str("addr", addr).Msg("node not verified; no I/O goes to it")
		}
		select {
		case <-b.ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
	client.Close()
}

// identify asks the node at client's address for its NodeInfo and checks
// it is node id with objects of objSize bytes.
func identify(ctx context.Context, client *rpc.Client, id string, objSize int64) error {
	body, _, err := roundTrip(ctx, client, proto.Request{Op: proto.OpNodeInfo}, make([]byte, 4096), time.Minute)
	if err != nil {
		return err
	}
	info, err := proto.DecodeNodeInfo(body)
	if err != nil {
		return err
	}
	if info.ID != id {
		return fmt.Errorf("the node there is %q, not %q", info.ID, id)
	}
	if int64(info.ObjectSize) != objSize {
		return fmt.Errorf("the node there has %d-byte objects, the vdi %d-byte ones", info.ObjectSize, objSize)
	}
	return nil
}

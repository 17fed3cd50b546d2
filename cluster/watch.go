package cluster

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// sendLatest puts v on a 1-buffered channel that only this goroutine sends
// on, replacing an unread older value: a slow reader sees the newest state.
func sendLatest[T any](out chan T, v T) {
	select {
	case out <- v:
		return
	default:
	}
	select {
	case <-out:
	default:
	}
	out <- v
}

// watchLatest calls load now and again after every change under key, until
// ctx is done. load reads the whole state (and publishes it) and returns
// the store revision it read at; the watch starts just after it, so no
// change is missed. Errors (etcd down, compaction) restart with a fresh
// load after a pause.
func (c *Client) watchLatest(ctx context.Context, key string, prefix bool, load func(context.Context) (int64, error)) {
	pause := func(d time.Duration) {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	reload := func() (int64, error) {
		lctx, cancel := c.withTimeout(ctx)
		defer cancel()
		return load(lctx)
	}
	for ctx.Err() == nil {
		rev, err := reload()
		if err != nil {
			pause(time.Second)
			continue
		}
		opts := []clientv3.OpOption{clientv3.WithRev(rev + 1)}
		if prefix {
			opts = append(opts, clientv3.WithPrefix())
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for resp := range c.etcd.Watch(wctx, key, opts...) {
			if resp.Err() != nil {
				break
			}
			if len(resp.Events) > 0 {
				if _, err := reload(); err != nil {
					break
				}
			}
		}
		cancel()
		pause(200 * time.Millisecond)
	}
}

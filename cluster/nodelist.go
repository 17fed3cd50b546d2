package cluster

import (
	"context"
	"fmt"
	"sort"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ListNodesOptions tunes ListNodes.
type ListNodesOptions struct {
	// Gone also lists nodes that were members in an earlier epoch and are
	// neither members nor registered now (NodeGone).
	Gone bool
}

// ListNodes lists every node the cluster knows, sorted by ID, with the
// state an operator cares about: registered nodes as registered (up or
// leaving) except up non-members (NodeJoining) and up members that have not
// finished recovering the current epoch (NodeRecovering); members not
// registered as NodeDown and, with opts.Gone, former members as NodeGone,
// both with only their placement fields set.
func (c *Client) ListNodes(ctx context.Context, opts ListNodesOptions) ([]Node, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	// One consistent snapshot: a node must not look down because it
	// registered between two reads.
	resp, err := c.etcd.Txn(ctx).Then(
		clientv3.OpGet(c.nodesPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(c.epochKey()),
		clientv3.OpGet(c.recoveryPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(c.recoveryCompleteKey()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", c.etcdErr(err))
	}
	live, err := c.decodeNodes(resp.Responses[0].GetResponseRange().Kvs)
	if err != nil {
		return nil, err
	}
	var e Epoch
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		if e, err = decodeEpoch(kvs[0].Value); err != nil {
			return nil, fmt.Errorf("decode epoch at %s: %w", c.epochKey(), err)
		}
	}
	statuses, err := c.decodeRecoveryStatuses(resp.Responses[2].GetResponseRange().Kvs)
	if err != nil {
		return nil, err
	}
	complete, err := c.decodeLastComplete(resp.Responses[3].GetResponseRange().Kvs)
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(live))
	for i, n := range live {
		seen[n.ID] = true
		switch {
		case !e.Has(n.ID) && n.State == NodeUp:
			live[i].State = NodeJoining
		case n.State == NodeUp && complete < e.Number && !statuses[n.ID].CompleteFor(e.Number):
			live[i].State = NodeRecovering
		}
	}
	for _, m := range e.Members {
		if !seen[m.ID] {
			seen[m.ID] = true
			live = append(live, Node{ID: m.ID, Zone: m.Zone, Capacity: m.Capacity, State: NodeDown})
		}
	}
	if opts.Gone && e.Number > 1 {
		history, err := c.Epochs(ctx, 1, e.Number-1)
		if err != nil {
			return nil, err
		}
		for i := len(history) - 1; i >= 0; i-- { // the newest record of each
			for _, m := range history[i].Members {
				if !seen[m.ID] {
					seen[m.ID] = true
					live = append(live, Node{ID: m.ID, Zone: m.Zone, Capacity: m.Capacity, State: NodeGone})
				}
			}
		}
	}
	sort.Slice(live, func(i, j int) bool { return live[i].ID < live[j].ID })
	return live, nil
}

// Members lists every member of the current epoch plus every registered
// node that is not one (ListNodes without the gone ones).
func (c *Client) Members(ctx context.Context) ([]Node, error) {
	return c.ListNodes(ctx, ListNodesOptions{})
}

package dog

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/dog/nodeclient"
	"github.com/sheepblk/sheepblk/internal/units"
	"github.com/sheepblk/sheepblk/rpc"
)

// NodeStatus is one row of `dog node list --json`: the node as the cluster
// knows it (State: up, joining, recovering, leaving, down, gone) plus what
// the node itself said, if it answered.
type NodeStatus struct {
	cluster.Node
	// Used and Objects are the node's own report (NodeInfo); absent if
	// it did not answer.
	Used    *uint64 `json:"used,omitempty"`
	Objects *uint64 `json:"objects,omitempty"`
	// Unreachable says why a registered node did not answer.
	Unreachable string `json:"unreachable,omitempty"`
}

func nodeListCmd(g *globals) *cobra.Command {
	var all bool
	c := nodeFlags(g, &cobra.Command{
		Use:   "list",
		Short: "List the storage nodes and their state: up, joining, recovering, leaving, down (and gone with --all)",
		Long: "States: up (member, serving), joining (registered, not a member yet: the membership controller adds\n" +
			"it shortly), recovering (member still pulling the objects of the current epoch), leaving (shutting\n" +
			"down), down (member that is not registered: removed after the member grace), gone (a former member,\n" +
			"not registered; shown with --all). USED is what the node reports, if it answers.",
		Args: cobra.NoArgs,
		RunE: g.withClient(func(cmd *cobra.Command, _ []string, cl *cluster.Client) error {
			var rpcOpts rpc.ClientOptions
			if err := g.security.ApplyClient(&rpcOpts); err != nil {
				return err
			}
			nodes, err := cl.ListNodes(cmd.Context(), cluster.ListNodesOptions{Gone: all})
			if err != nil {
				return err
			}
			rows := nodeStatuses(cmd.Context(), nodes, rpcOpts, g.timeout)
			if g.json {
				return printJSON(g.io.Stdout, rows)
			}
			t := newTable(g.io.Stdout, "ID", "ADDRESS", "ZONE", "CAPACITY", "USED", "STATE", "STARTED")
			for _, r := range rows {
				used := "-"
				if r.Used != nil {
					used = units.FormatSize(int64(*r.Used))
				}
				t.row(r.ID, dash(r.Addr), dash(r.Zone), units.FormatSize(r.Capacity), used, string(r.State), formatTime(r.Started))
			}
			return t.flush()
		}),
	})
	c.Flags().BoolVar(&all, "all", false, "also list former members that are gone")
	return c
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// nodeStatuses asks every registered node for its info, in parallel.
func nodeStatuses(ctx context.Context, nodes []cluster.Node, opts rpc.ClientOptions, timeout time.Duration) []NodeStatus {
	rows := make([]NodeStatus, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		rows[i].Node = n
		if n.Addr == "" {
			continue
		}
		wg.Go(func() {
			nc := nodeclient.Dial(n.ID, n.Addr, opts, timeout)
			defer nc.Close()
			info, err := nc.Info(ctx)
			if err != nil {
				rows[i].Unreachable = err.Error()
				return
			}
			rows[i].Used, rows[i].Objects = &info.Used, &info.Objects
		})
	}
	wg.Wait()
	return rows
}

func nodeJoinCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "join ID",
		Short: "Make a registered node a member now (the membership controller does it by itself)",
		Args:  args(1, "a node ID"),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, cl *cluster.Client) error {
			ctx := cmd.Context()
			nodes, err := cl.Nodes(ctx)
			if err != nil {
				return err
			}
			var node *cluster.Node
			for i := range nodes {
				if nodes[i].ID == args[0] {
					node = &nodes[i]
				}
			}
			if node == nil {
				return fmt.Errorf("node %s is not running: start it first, then join it", args[0])
			}
			e, err := cl.Join(ctx, cluster.Member{ID: node.ID, Zone: node.Zone, Capacity: node.Capacity})
			if err != nil {
				return err
			}
			return printEpochChange(g, "node "+node.ID+" is a member", e)
		}),
	}
}

func nodeRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove ID",
		Short: "Take a node out of the membership now; the other members recover its objects",
		Long: "The membership controller removes a member by itself once it has been gone for the member grace;\n" +
			"remove does it at once. A removed node that is still running is added back by the controller\n" +
			"(stop it first).",
		Args: args(1, "a node ID"),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, cl *cluster.Client) error {
			e, err := cl.RemoveMember(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printEpochChange(g, "node "+args[0]+" is no longer a member", e)
		}),
	}
}

// printEpochChange reports a membership change.
func printEpochChange(g *globals, what string, e cluster.Epoch) error {
	if g.json {
		return printJSON(g.io.Stdout, e)
	}
	_, err := fmt.Fprintf(g.io.Stdout, "%s: epoch %d, %d members; they now recover its objects\n", what, e.Number, len(e.Members))
	return err
}

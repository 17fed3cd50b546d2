package dog

import (
	"errors"
	"fmt"
	"github.com/sheepblk/sheepblk/internal/units"

	"github.com/spf13/cobra"

	"github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/rpc"
)

func clusterFormatCmd(g *globals) *cobra.Command {
	var (
		copies     int
		objectSize string
		force      bool
	)
	c := &cobra.Command{
		Use:   "format",
		Short: "Write the cluster settings (refuses a formatted cluster unless --force)",
		Args:  cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			osize, err := units.ParseSize(objectSize)
			if err != nil {
				return usagef("--object-size: %v", err)
			}
			cl, err := g.connect()
			if err != nil {
				return err
			}
			defer cl.Close()
			s, err := cl.Format(cmd.Context(), cluster.FormatOptions{Copies: copies, ObjectSize: osize, Force: force})
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.io.Stdout, s)
			}
			_, err = fmt.Fprintf(g.io.Stdout, "formatted: %d copies, %s objects\n", s.Copies, units.FormatSize(s.ObjectSize))
			return err
		}),
	}
	c.Flags().IntVar(&copies, "copies", 3, "replicas of each object")
	c.Flags().StringVar(&objectSize, "object-size", "4M", "object size, a power of two (e.g. 4M)")
	c.Flags().BoolVar(&force, "force", false, "re-format a formatted cluster, forgetting every VDI")
	return c
}

// ClusterInfo is `dog cluster info --json`.
type ClusterInfo struct {
	Formatted bool              `json:"formatted"`
	Settings  *cluster.Settings `json:"settings,omitempty"`
	Nodes     int               `json:"nodes"` // live
	Epoch     cluster.Epoch     `json:"epoch"`
	VDIs      int               `json:"vdis"`
	Etcd      string            `json:"etcd"`
}

func clusterInfoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "info",
		Short: "Show the cluster settings and how many nodes and VDIs it has",
		Args:  cobra.NoArgs,
		RunE: g.withClient(func(cmd *cobra.Command, _ []string, cl *cluster.Client) error {
			ctx := cmd.Context()
			info := ClusterInfo{Etcd: cl.Endpoints()}
			s, err := cl.Settings(ctx)
			switch {
			case err == nil:
				info.Formatted, info.Settings = true, &s
			case !errors.Is(err, cluster.ErrNotFormatted):
				return err
			}
			nodes, err := cl.Nodes(ctx)
			if err != nil {
				return err
			}
			vdis, err := cl.VDIs(ctx)
			if err != nil {
				return err
			}
			if info.Epoch, err = cl.Epoch(ctx); err != nil {
				return err
			}
			info.Nodes, info.VDIs = len(nodes), len(vdis)
			if g.json {
				return printJSON(g.io.Stdout, info)
			}
			w := g.io.Stdout
			if !info.Formatted {
				fmt.Fprintf(w, "Cluster status: not formatted (run 'dog cluster format')\n")
			} else {
				fmt.Fprintf(w, "Cluster status: running\n")
				fmt.Fprintf(w, "Formatted:      %s\n", formatTime(s.FormattedAt))
				fmt.Fprintf(w, "Copies:         %d\n", s.Copies)
				fmt.Fprintf(w, "Object size:    %s\n", units.FormatSize(s.ObjectSize))
			}
			fmt.Fprintf(w, "Nodes:          %d up of %d members\n", info.Nodes, len(info.Epoch.Members))
			fmt.Fprintf(w, "Epoch:          %d\n", info.Epoch.Number)
			fmt.Fprintf(w, "VDIs:           %d\n", info.VDIs)
			_, err = fmt.Fprintf(w, "etcd:           %s\n", info.Etcd)
			return err
		}),
	}
}

func nodeListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the storage nodes: up, spare (live, not a member: holds no data) or down (a member not running)",
		Args:  cobra.NoArgs,
		RunE: g.withClient(func(cmd *cobra.Command, _ []string, cl *cluster.Client) error {
			nodes, err := cl.Members(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.io.Stdout, nodes)
			}
			t := newTable(g.io.Stdout, "ID", "ADDRESS", "ZONE", "CAPACITY", "STATE", "STARTED")
			for _, n := range nodes {
				zone := n.Zone
				if zone == "" {
					zone = "-"
				}
				addr := n.Addr
				if addr == "" {
					addr = "-"
				}
				t.row(n.ID, addr, zone, units.FormatSize(n.Capacity), string(n.State), formatTime(n.Started))
			}
			return t.flush()
		}),
	}
}

func nodeJoinCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "join ID",
		Short: "Make a spare node a member; `dog cluster recover` then moves objects onto it",
		Long: "A node that first registers in a cluster already holding VDIs stays a spare. join makes it a\n" +
			"member; the data stays where it is (and I/O follows it) until `dog cluster recover` copies\n" +
			"each object to its new place and switches the placement.",
		Args: args(1, "a node ID"),
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
		Short: "Take a node out of the membership for good; `dog cluster recover` then re-replicates its objects",
		Args:  args(1, "a node ID"),
		RunE: g.withClient(func(cmd *cobra.Command, args []string, cl *cluster.Client) error {
			e, err := cl.RemoveMember(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printEpochChange(g, "node "+args[0]+" is no longer a member", e)
		}),
	}
}

// printEpochChange reports a membership change and what is left to do.
func printEpochChange(g *globals, what string, e cluster.Epoch) error {
	if g.json {
		return printJSON(g.io.Stdout, e)
	}
	msg := fmt.Sprintf("%s: epoch %d, %d members; the members now recover its objects", what, e.Number, len(e.Members))
	_, err := fmt.Fprintln(g.io.Stdout, msg)
	return err
}

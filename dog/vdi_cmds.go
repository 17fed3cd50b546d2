package dog

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/internal/units"
	"github.com/sheepblk/sheepblk/rpc"
)

func vdiCommands(g *globals) []*cobra.Command {
	return []*cobra.Command{vdiCreateCmd(g), vdiListCmd(g), vdiDeleteCmd(g), vdiResizeCmd(g), vdiWriteCmd(g), vdiReadCmd(g)}
}

// printVDI reports one VDI after a change.
func printVDI(g *globals, verb string, v cluster.VDI) error {
	if g.json {
		return printJSON(g.io.Stdout, v)
	}
	_, err := fmt.Fprintf(g.io.Stdout, "%s vdi %s: id %d, %s, %d copies\n", verb, v.Name, v.ID, units.FormatSize(v.Size), v.Copies)
	return err
}

func vdiCreateCmd(g *globals) *cobra.Command {
	var copies, blockSize int
	c := &cobra.Command{
		Use:   "create NAME SIZE",
		Short: "Create a VDI (SIZE like 20G or 512M)",
		Args:  args(2, "a NAME and a SIZE"),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			size, err := units.ParseSize(args[1])
			if err != nil {
				return usagef("%v", err)
			}
			cl, err := g.connect()
			if err != nil {
				return err
			}
			defer cl.Close()
			v, err := cl.CreateVDI(cmd.Context(), cluster.CreateVDIOptions{Name: args[0], Size: size, Copies: copies, BlockSize: blockSize})
			if err != nil {
				return err
			}
			return printVDI(g, "created", v)
		}),
	}
	c.Flags().IntVar(&copies, "copies", 0, "replicas of each object (default: the cluster's)")
	c.Flags().IntVar(&blockSize, "block-size", cluster.DefaultBlockSize, "logical block size, 512 or 4096")
	return c
}

func vdiListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the VDIs",
		Args:  cobra.NoArgs,
		RunE: g.withClient(func(cmd *cobra.Command, _ []string, cl *cluster.Client) error {
			vdis, err := cl.VDIs(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.io.Stdout, vdis)
			}
			t := newTable(g.io.Stdout, "NAME", "ID", "SIZE", "COPIES", "BLOCK", "OBJECTS", "CREATED")
			for _, v := range vdis {
				t.row(v.Name, strconv.FormatUint(uint64(v.ID), 10), units.FormatSize(v.Size), strconv.Itoa(v.Copies),
					strconv.Itoa(v.BlockSize), strconv.FormatInt(v.Objects(), 10), formatTime(v.Created))
			}
			return t.flush()
		}),
	}
}

// DeletedVDI is `dog vdi delete --json`.
type DeletedVDI struct {
	cluster.VDI
	// Purge is what happened to the VDI's objects (absent with --keep-data).
	Purge *sheep.PurgeResult `json:"purge,omitempty"`
}

func vdiDeleteCmd(g *globals) *cobra.Command {
	var keepData bool
	c := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a VDI and remove its objects from the nodes",
		Args:  args(1, "a NAME"),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			// The secret first: a bad secret file must not leave a deleted
			// VDI whose objects cannot be purged.
			var rpcOpts rpc.ClientOptions
			if err := g.security.ApplyClient(&rpcOpts); err != nil {
				return err
			}
			cl, err := g.connect()
			if err != nil {
				return err
			}
			defer cl.Close()
			v, err := cl.DeleteVDI(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			out := DeletedVDI{VDI: v}
			var purgeErr error
			if !keepData {
				// The VDI is gone from the table first, so nothing writes
				// its objects while they are removed.
				res, err := sheep.Purge(cmd.Context(), sheep.PurgeOptions{Cluster: cl, VDI: v, CallTimeout: g.timeout, RPC: rpcOpts})
				out.Purge, purgeErr = &res, err
			}
			if g.json {
				if err := printJSON(g.io.Stdout, out); err != nil {
					return err
				}
			} else {
				msg := fmt.Sprintf("deleted vdi %s: id %d, %s", v.Name, v.ID, units.FormatSize(v.Size))
				if out.Purge != nil {
					msg += fmt.Sprintf(", %d objects removed", out.Purge.Removed)
				}
				fmt.Fprintln(g.io.Stdout, msg)
			}
			if purgeErr != nil || (out.Purge != nil && len(out.Purge.Unreached) > 0) {
				// The delete itself succeeded; say what is left, once.
				fmt.Fprintf(g.io.Stderr, "dog: warning: objects of vdi %s remain on nodes %s (down or failing): they are garbage, never read again\n",
					v.Name, strings.Join(out.Purge.Unreached, ", "))
			}
			return nil
		}),
	}
	c.Flags().BoolVar(&keepData, "keep-data", false, "only delete the VDI from the table; leave its objects on the nodes")
	return nodeFlags(g, c)
}

func vdiResizeCmd(g *globals) *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "resize NAME SIZE",
		Short: "Grow a VDI (shrinking needs --force)",
		Args:  args(2, "a NAME and a SIZE"),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			size, err := units.ParseSize(args[1])
			if err != nil {
				return usagef("%v", err)
			}
			cl, err := g.connect()
			if err != nil {
				return err
			}
			defer cl.Close()
			v, err := cl.ResizeVDI(cmd.Context(), cluster.ResizeVDIOptions{Name: args[0], Size: size, Force: force})
			if err != nil {
				return err
			}
			return printVDI(g, "resized", v)
		}),
	}
	c.Flags().BoolVar(&force, "force", false, "allow shrinking (drops the data past the new end)")
	return c
}

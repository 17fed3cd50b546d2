package dog

import (
	"fmt"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/dog/check"
	"github.com/sheepblk/sheepblk/rpc"
)

func clusterCheckCmd(g *globals) *cobra.Command {
	var (
		repair bool
		vdi    string
	)
	c := nodeFlags(g, &cobra.Command{
		Use:   "check",
		Short: "Verify every object has its copies, identical, where the current epoch places them (--repair fixes)",
		Long: "Reads every object some node holds, of every VDI (or --vdi), from each node the current epoch places\n" +
			"it on, and compares checksums (an absent replica reads as zeros). Prints one line per object with\n" +
			"fewer replicas readable than copies or with differing replicas, then a summary; exits 1 if any\n" +
			"problem is left. --repair gives differing or missing replicas the majority's content (a tie is\n" +
			"refused). Refused while a recovery is in progress: replicas are expected to differ until it ends.",
		Args: cobra.NoArgs,
		RunE: g.withClient(func(cmd *cobra.Command, _ []string, cl *cluster.Client) error {
			var rpcOpts rpc.ClientOptions
			if err := g.security.ApplyClient(&rpcOpts); err != nil {
				return err
			}
			opts := check.Options{Cluster: cl, RPC: rpcOpts, Timeout: g.timeout, VDI: vdi, Repair: repair}
			if f, ok := terminal(g.io.Stderr); ok {
				var bar *progressbar.ProgressBar
				opts.Progress = func(done, total int64) {
					if bar == nil {
						bar = newObjectBar(f, total)
						bar.Describe("checking objects")
					}
					bar.ChangeMax64(total)
					_ = bar.Set64(done)
				}
				defer func() {
					if bar != nil {
						_ = bar.Finish()
						fmt.Fprintln(f)
					}
				}()
			}
			res, err := check.Run(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if g.json {
				if err := printJSON(g.io.Stdout, res); err != nil {
					return err
				}
			} else {
				for _, p := range res.Problems {
					fmt.Fprintln(g.io.Stdout, p.String())
				}
				fmt.Fprintf(g.io.Stdout, "checked %d objects of %d vdis in epoch %d: %d problems, %d repaired\n",
					res.Objects, res.VDIs, res.Epoch, len(res.Problems), res.Repaired)
			}
			if n := res.Unrepaired(); n > 0 {
				hint := "run with --repair to fix what can be fixed"
				if repair {
					hint = "see the lines above"
				}
				return fmt.Errorf("cluster check: %d problems left: %s", n, hint)
			}
			return nil
		}),
	})
	c.Flags().BoolVar(&repair, "repair", false, "give replicas that differ from the majority the majority's content")
	c.Flags().StringVar(&vdi, "vdi", "", "check only this VDI")
	return c
}

package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sheepblk/sheepblk/tools/lab/kernel"
)

func newKernelCommand(g *globalFlags) *cobra.Command {
	var label string
	var refresh bool
	cmd := &cobra.Command{
		Use:   "kernel",
		Short: "Download and cache the guest kernels (6.12 from trixie, 7.3 from trixie-backports)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			labels := []string{label}
			if label == "all" {
				labels = kernel.Labels()
			} else if _, ok := kernel.Suites[label]; !ok {
				return usageError{fmt.Errorf("unknown --kernel %q: want all or one of %v", label, kernel.Labels())}
			}
			for _, l := range labels {
				k, err := kernel.Fetch(cmd.Context(), l, kernel.Options{CacheDir: g.cacheDir, Refresh: refresh, Log: g.logger()})
				if err != nil {
					return err
				}
				fmt.Printf("%s\t%s\t%s\n", k.Label, k.Version, k.Dir)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&label, "kernel", "all", "kernel label: all, 6.12 or 7.3")
	cmd.Flags().BoolVar(&refresh, "refresh", false, "re-resolve the label against the archive even if cached")
	return cmd
}

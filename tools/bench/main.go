package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// usageError marks errors in how the command was called (exit status 2).
type usageError struct{ error }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := newRootCommand().ExecuteContext(ctx)
	if err == nil {
		return
	}
	fmt.Fprintf(os.Stderr, "bench: %v\n", err)
	var usage usageError
	if errors.As(err, &usage) {
		os.Exit(2)
	}
	os.Exit(1)
}

func newRootCommand() *cobra.Command {
	o := defaultOptions()
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Benchmark ublk targets against the kernel's drivers and nbd in the lab VM, and write the report",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unexpected argument %q: bench takes only flags (see bench --help)", args[0])}
			}
			return nil
		},
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.smoke && o.long {
				return usageError{fmt.Errorf("--smoke and --long exclude each other: pick one")}
			}
			if o.rerender != "" {
				return rerender(o)
			}
			p, err := o.plan(cmd.Flags().Changed)
			if err != nil {
				return usageError{err}
			}
			return run(cmd.Context(), o, p)
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see bench --help)", err)}
	})
	o.register(cmd)
	return cmd
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/sheepblk/sheepblk/internal/logging"
)

// usageError marks errors in how the command was called (exit status 2).
type usageError struct{ error }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCommand()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return
	}
	var fail *failedRun
	if errors.As(err, &fail) {
		os.Exit(1) // the report already said what failed
	}
	fmt.Fprintf(os.Stderr, "lab: %v\n", err)
	var usage usageError
	if errors.As(err, &usage) {
		os.Exit(2)
	}
	os.Exit(1)
}

// globalFlags are shared by every subcommand.
type globalFlags struct {
	cacheDir string
	logLevel string
	verbose  bool
}

func (g *globalFlags) logger() zerolog.Logger {
	log, err := logging.New(os.Stderr, logging.FormatAuto, g.logLevel)
	if err != nil {
		log, _ = logging.New(os.Stderr, logging.FormatAuto, "info")
	}
	return log
}

func newRootCommand() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "lab",
		Short:         "Build and boot the ublk lab VM and run its tests",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see `lab --help`)", err)}
	})
	root.PersistentFlags().StringVar(&g.cacheDir, "cache-dir", "", "kernel and initramfs cache (default ${XDG_CACHE_HOME:-$HOME/.cache}/sheepblk-lab)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level of the runner's own messages")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "stream the guest console to the terminal")
	root.AddCommand(newKernelCommand(g), newRunCommand(g), newShellCommand(g))
	return root
}

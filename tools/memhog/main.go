package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sheepblk/sheepblk/internal/logging"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type usageError struct{ error }

// run is the whole command; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		opts           Options
		stepMiB        int64
		maxMiB         int64
		logLevel       string
		oomScoreAdjust bool
	)
	cmd := &cobra.Command{
		Use:   "memhog --duration D [flags]",
		Short: "Hold memory until MemAvailable is down to a few percent, for a bounded time",
		Long: "memhog maps and touches anonymous memory in steps until MemAvailable, less dirty and\n" +
			"writeback pages, is --avail-percent of MemTotal, holds it (re-touching every page), gives a\n" +
			"step back when the machine falls far below that, and frees everything after --duration.\n" +
			"It makes itself the OOM killer's first victim (oom_score_adj 1000). On exit it prints one\n" +
			"summary line on stdout.",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("duration") {
				return usageError{errors.New("--duration is required: say how long to hold the memory, e.g. --duration 60s")}
			}
			if stepMiB < 1 || maxMiB < 0 {
				return usageError{errors.New("--step-mib must be at least 1 and --max-mib not negative")}
			}
			opts.Step, opts.Max = stepMiB<<20, maxMiB<<20
			log, err := logging.New(stderr, logging.FormatAuto, logLevel)
			if err != nil {
				return usageError{fmt.Errorf("--log-level: %w", err)}
			}
			opts.Log = log
			h, err := New(opts)
			if err != nil {
				return usageError{err}
			}
			if oomScoreAdjust {
				// If anything is killed for memory, it must be the hog, not the test or a daemon.
				if err := os.WriteFile("/proc/self/oom_score_adj", []byte("1000"), 0); err != nil {
					log.Warn().Err(err).Msg("cannot make memhog the OOM killer's first victim")
				}
			}
			start := time.Now()
			st, err := h.Run(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "memhog: %s: peak held %d MiB of MemTotal %d MiB, available (less dirty) min %d MiB (%.1f%%, target %d MiB), "+
				"%s near the target, %d steps, %d released, %d re-touch passes\n",
				time.Since(start).Round(100*time.Millisecond), st.PeakHeld>>20, st.Total>>20, st.MinAvailable>>20,
				100*float64(st.MinAvailable)/float64(max(st.Total, 1)), st.Target>>20,
				st.TimeAtTarget.Round(100*time.Millisecond), st.Steps, st.Releases, st.Retouches)
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	cmd.SetOut(stderr)
	cmd.SetErr(stderr)
	f := cmd.Flags()
	f.DurationVar(&opts.Duration, "duration", 0, "how long to hold the memory (required)")
	f.Float64Var(&opts.AvailPercent, "avail-percent", 5, "share of MemTotal to leave available (MemAvailable less Dirty and Writeback)")
	f.Int64Var(&stepMiB, "step-mib", 16, "memory mapped per step, MiB")
	f.Int64Var(&maxMiB, "max-mib", 0, "most memory to hold, MiB (0: only the target limits it)")
	f.DurationVar(&opts.Interval, "interval", 100*time.Millisecond, "pause between steps")
	f.DurationVar(&opts.Retouch, "retouch", time.Second, "how often every held page is written again")
	f.BoolVar(&oomScoreAdjust, "oom-victim", true, "set oom_score_adj to 1000 (be the OOM killer's first victim)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	var u usageError
	if errors.As(err, &u) {
		fmt.Fprintf(stderr, "memhog: %s (see 'memhog --help')\n", msg)
		return exitUsage
	}
	fmt.Fprintf(stderr, "memhog: %s\n", msg)
	return exitFailure
}

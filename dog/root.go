package dog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/internal/rpcflags"
	"github.com/sheepblk/sheepblk/reclaim"
)

// EnvEtcd names the environment variable with the default etcd endpoints.
const EnvEtcd = "SHEEPBLK_ETCD"

// Exit statuses.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// IO is where a command reads and writes; the process's own by default.
type IO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads the environment (os.Getenv if nil).
	Getenv func(string) string
	// Reclaim applies reclaim protections to the process (the command sets
	// reclaim.Apply); `cluster start-local` calls it before starting the
	// nodes. Nil applies none: tests running dog in-process leave their
	// test binary alone.
	Reclaim func(reclaim.Options) reclaim.Report
}

// usageError is bad usage: exit status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// failure marks an error raised while doing the work: exit status 1.
type failure struct{ err error }

func (e failure) Error() string { return e.err.Error() }
func (e failure) Unwrap() error { return e.err }

// globals are the flags every command takes.
type globals struct {
	etcd    string
	prefix  string
	json    bool
	timeout time.Duration
	// ioTimeout bounds one VDI read or write, retries included.
	ioTimeout time.Duration
	io        IO
	// security is --secret-file and the TLS flags of the commands that
	// talk to the nodes.
	security rpcflags.Security
}

// connect opens the cluster client the flags describe.
func (g *globals) connect() (*cluster.Client, error) {
	var eps []string
	for _, e := range strings.Split(g.etcd, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	if len(eps) == 0 {
		return nil, usagef("--etcd is empty: give an etcd URL like http://127.0.0.1:2379")
	}
	return cluster.Connect(cluster.Options{Endpoints: eps, Prefix: g.prefix, RequestTimeout: g.timeout})
}

// run adapts a command body: its errors are failures (exit 1) unless they
// say they are bad usage (usageError, or cluster.ErrInvalid: a value the
// cluster refuses, such as a size that is not a block multiple).
// withClient is run for a command that needs the cluster: it connects
// first and closes the connection after.
func (g *globals) withClient(f func(cmd *cobra.Command, args []string, cl *cluster.Client) error) func(*cobra.Command, []string) error {
	return run(func(cmd *cobra.Command, args []string) error {
		cl, err := g.connect()
		if err != nil {
			return err
		}
		defer cl.Close()
		return f(cmd, args, cl)
	})
}

func run(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := f(cmd, args)
		var u usageError
		if err == nil || errors.As(err, &u) {
			return err
		}
		if errors.Is(err, cluster.ErrInvalid) {
			return usageError{err}
		}
		return failure{err}
	}
}

// args wraps a cobra argument check so its complaint is a usage error that
// names the expected arguments.
func args(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s wants %s, got %d argument(s)", cmd.CommandPath(), names, len(args))
		}
		return nil
	}
}

// group is a command that only holds subcommands.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names := make([]string, 0, len(cmd.Commands()))
			for _, s := range cmd.Commands() {
				if s.IsAvailableCommand() {
					names = append(names, s.Name())
				}
			}
			return usagef("%s needs a subcommand: %s", cmd.CommandPath(), strings.Join(names, ", "))
		},
	}
	c.AddCommand(subs...)
	return c
}

// NewCommand builds the dog command tree.
func NewCommand(stdio IO) *cobra.Command {
	if stdio.Stdin == nil {
		stdio.Stdin = os.Stdin
	}
	if stdio.Stdout == nil {
		stdio.Stdout = os.Stdout
	}
	if stdio.Stderr == nil {
		stdio.Stderr = os.Stderr
	}
	if stdio.Getenv == nil {
		stdio.Getenv = os.Getenv
	}
	g := &globals{io: stdio}
	root := &cobra.Command{
		Use:           "dog",
		Short:         "Administer a sheepblk cluster: format it, list its nodes, manage its VDIs",
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usagef("dog needs a command: cluster, node or vdi")
		},
	}
	root.SetIn(stdio.Stdin)
	root.SetOut(stdio.Stdout)
	root.SetErr(stdio.Stderr)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w for '%s'", err, cmd.CommandPath())}
	})
	defEtcd := stdio.Getenv(EnvEtcd)
	if defEtcd == "" {
		defEtcd = cluster.DefaultEndpoint
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.etcd, "etcd", defEtcd, "etcd endpoints, comma-separated; $"+EnvEtcd+" sets the default")
	pf.StringVar(&g.prefix, "prefix", cluster.DefaultPrefix, "etcd key prefix of the cluster")
	pf.BoolVar(&g.json, "json", false, "print JSON for scripts instead of tables")
	pf.DurationVar(&g.timeout, "timeout", 5*time.Second, "how long to wait for etcd or a node on each request")

	root.AddCommand(
		group("cluster", "Format the cluster, show its state and recovery, check its replicas, run a local one",
			clusterFormatCmd(g), clusterInfoCmd(g), clusterCheckCmd(g), clusterStartLocalCmd(g)),
		group("node", "Show the storage nodes and their state; join or remove one at once", nodeListCmd(g), nodeJoinCmd(g), nodeRemoveCmd(g)),
		group("vdi", "Manage virtual disk images", vdiCommands(g)...),
	)
	return root
}

// Execute runs dog with args (without the program name) and returns the
// exit status. Errors are printed as one line on stderr.
func Execute(ctx context.Context, args []string, stdio IO) int {
	root := NewCommand(stdio)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	stderr := stdio.Stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	var f failure
	if errors.As(err, &f) {
		fmt.Fprintf(stderr, "dog: %s\n", msg)
		return ExitFailure
	}
	// Unknown commands, bad flags and bad arguments all land here.
	help := "dog"
	if cmd != nil {
		help = cmd.CommandPath()
	}
	fmt.Fprintf(stderr, "dog: %s (see '%s --help')\n", msg, help)
	return ExitUsage
}

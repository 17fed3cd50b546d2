// Command sheep runs a storage node: it keeps objects of VDIs in --dir and
// serves them on --listen, registered in the cluster's etcd (or standalone
// with --etcd ""). See package sheep.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/internal/logging"
	"github.com/sheepblk/sheepblk/internal/rpcflags"
	"github.com/sheepblk/sheepblk/internal/units"
	"github.com/sheepblk/sheepblk/reclaim"
	"github.com/sheepblk/sheepblk/sheep"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// envEtcd names the environment variable with the default etcd endpoints,
// the one dog reads too. (Not imported from package dog: the daemon locks
// all its memory, so it links no CLI it does not run.)
const envEtcd = "SHEEPBLK_ETCD"

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	os.Exit(run(os.Args[1:], os.Stderr, sigs, nil))
}

// config is the command line.
type config struct {
	dir, listen, advertise string
	etcd, prefix           string
	zone, capacity, id     string
	objectSize             string
	recoveryBandwidth      string
	maxOpenFiles           int
	registerTTL            time.Duration
	shutdownTimeout        time.Duration
	logFormat, logLevel    string
	security               rpcflags.Security
}

// usageError is bad usage: exit status 2.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// run is the whole command; ready, if set, is told the address the node
// serves on (tests use it). It returns the exit status.
func run(args []string, stderr io.Writer, sigs <-chan os.Signal, ready func(addr string)) int {
	var cfg config
	cmd := &cobra.Command{
		Use:   "sheep --dir DIR [flags]",
		Short: "Run a sheepblk storage node",
		Long: "sheep stores objects of virtual disk images in --dir and serves them to the cluster's\n" +
			"clients on --listen. It registers itself in the cluster's etcd (--etcd) and needs a\n" +
			"formatted cluster (dog cluster format); --etcd \"\" runs it standalone.",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cfg, stderr, sigs, ready)
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	cmd.SetOut(stderr)
	cmd.SetErr(stderr)
	defEtcd := os.Getenv(envEtcd)
	if _, set := os.LookupEnv(envEtcd); !set {
		defEtcd = cluster.DefaultEndpoint
	}
	f := cmd.Flags()
	f.StringVar(&cfg.dir, "dir", "", "directory of the node's objects (created if missing; required)")
	f.StringVar(&cfg.listen, "listen", "127.0.0.1:7000", "address to serve on")
	f.StringVar(&cfg.advertise, "advertise", "", "address clients reach the node at (default: the listen address)")
	f.StringVar(&cfg.etcd, "etcd", defEtcd, "cluster etcd endpoints, comma-separated (default from $"+envEtcd+"); \"\" runs standalone")
	f.StringVar(&cfg.prefix, "prefix", cluster.DefaultPrefix, "etcd key prefix of the cluster")
	f.StringVar(&cfg.zone, "zone", "", "failure zone of the node (rack, host): replicas go to distinct zones")
	f.StringVar(&cfg.capacity, "capacity", "", "storage the node offers, e.g. 500G (default: free space of --dir)")
	f.StringVar(&cfg.id, "id", "", "node id (default: the one stored in --dir, else the advertised address)")
	f.StringVar(&cfg.objectSize, "object-size", "", "object size of a standalone node, e.g. 4M (default: the dir's, else 4M); with etcd the cluster's")
	f.StringVar(&cfg.recoveryBandwidth, "recovery-bandwidth", "64M", "bytes per second background recovery may copy from other nodes, e.g. 64M; 0: unlimited (reads of objects not recovered yet are never held back)")
	f.IntVar(&cfg.maxOpenFiles, "max-open-files", 0, "object files kept open (default 1024)")
	f.DurationVar(&cfg.registerTTL, "register-ttl", sheep.DefaultRegisterTTL, "how long a dead node stays in the node list")
	f.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for requests in flight")
	cfg.security.Register(f, rpcflags.Server)
	f.StringVar(&cfg.logFormat, "log-format", string(logging.FormatAuto), "log format: auto, console or json")
	f.StringVar(&cfg.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.SetArgs(args)

	err := cmd.Execute()
	if err == nil {
		return exitOK
	}
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	var u usageError
	if errors.As(err, &u) || strings.HasPrefix(err.Error(), "unknown command") {
		fmt.Fprintf(stderr, "sheep: %s (see 'sheep --help')\n", msg)
		return exitUsage
	}
	fmt.Fprintf(stderr, "sheep: %s\n", msg)
	return exitFailure
}

// nodeOptions checks the command line and turns it into node options.
func (cfg config) nodeOptions() (sheep.Options, error) {
	opts := sheep.Options{Dir: cfg.dir, ID: cfg.id, Addr: cfg.advertise, Zone: cfg.zone,
		MaxOpenFiles: cfg.maxOpenFiles, RegisterTTL: cfg.registerTTL}
	if cfg.dir == "" {
		return opts, usagef("--dir is required: give the directory the node keeps its objects in")
	}
	if _, _, err := net.SplitHostPort(cfg.listen); err != nil {
		return opts, usagef("--listen %q: want host:port, e.g. 127.0.0.1:7000", cfg.listen)
	}
	if cfg.advertise != "" {
		if _, _, err := net.SplitHostPort(cfg.advertise); err != nil {
			return opts, usagef("--advertise %q: want host:port", cfg.advertise)
		}
	}
	if cfg.capacity != "" {
		c, err := units.ParseSize(cfg.capacity)
		if err != nil || c == 0 {
			return opts, usagef("--capacity %q: want a size such as 500G", cfg.capacity)
		}
		opts.Capacity = uint64(c)
	}
	if cfg.objectSize != "" {
		if cfg.etcd != "" {
			return opts, usagef("--object-size is for standalone nodes: with --etcd the cluster's object size is used")
		}
		s, err := units.ParseSize(cfg.objectSize)
		if err != nil || s <= 0 || s > proto.MaxObjectSize || proto.CheckObjectSize(uint32(s)) != nil {
			return opts, usagef("--object-size %q: want a power of two from 4K to 1G", cfg.objectSize)
		}
		opts.ObjectSize = uint32(s)
	}
	if cfg.maxOpenFiles < 0 {
		return opts, usagef("--max-open-files must not be negative")
	}
	bw, err := units.ParseSize(cfg.recoveryBandwidth)
	if err != nil || bw < 0 {
		return opts, usagef("--recovery-bandwidth %q: want bytes per second such as 64M, or 0 for unlimited", cfg.recoveryBandwidth)
	}
	opts.RecoveryBandwidth = bw
	if bw == 0 {
		opts.RecoveryBandwidth = -1 // unlimited
	}

	return opts, nil
}

// serve runs the node until a signal.
func serve(cfg config, stderr io.Writer, sigs <-chan os.Signal, ready func(string)) error {
	opts, err := cfg.nodeOptions()
	if err != nil {
		return err
	}
	format, err := logging.ParseFormat(cfg.logFormat)
	if err != nil {
		return usageError{fmt.Errorf("--log-format: %w", err)}
	}
	log, err := logging.New(stderr, format, cfg.logLevel)
	if err != nil {
		return usageError{fmt.Errorf("--log-level: %w", err)}
	}
	applyReclaim(log)
	opts.Logger = log
	if err := cfg.security.ApplyServer(&opts.RPC); err != nil {
		return err
	}
	// Recovery connects to the other nodes as their clients do.
	if err := cfg.security.ApplyClient(&opts.PeerRPC); err != nil {
		return err
	}
	if opts.RPC.Secret == nil {
		log.Warn().Msg("no --" + rpcflags.SecretFileFlag + ": any peer that reaches the node port may read and write every VDI")
	}

	if cfg.etcd != "" {
		var eps []string
		for _, e := range strings.Split(cfg.etcd, ",") {
			if e = strings.TrimSpace(e); e != "" {
				eps = append(eps, e)
			}
		}
		cl, err := cluster.Connect(cluster.Options{Endpoints: eps, Prefix: cfg.prefix})
		if err != nil {
			return err
		}
		defer cl.Close()
		opts.Cluster = cl
	} else {
		log.Warn().Msg("running standalone (--etcd \"\"): the node is in no cluster")
	}

	node, err := sheep.NewNode(opts)
	if err != nil {
		if opts.Cluster != nil && !errors.Is(err, cluster.ErrNotFormatted) && strings.Contains(err.Error(), "etcd") {
			return fmt.Errorf("%w (or run standalone with --etcd \"\")", err)
		}
		return err
	}
	l, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		node.Close()
		return fmt.Errorf("listen on %s: %w", cfg.listen, err)
	}
	served := make(chan error, 1)
	go func() { served <- node.Serve(l) }()

	// Serve registers before it accepts; give it a moment to fail fast
	// (etcd down, id taken) so the log says "serving" only when it is.
	select {
	case err := <-served:
		node.Close()
		return err
	case <-time.After(100 * time.Millisecond):
	}
	info := node.Info()
	log.Info().Str("node", info.ID).Str("listen", l.Addr().String()).Str("dir", cfg.dir).
		Uint64("capacity", info.Capacity).Uint32("object_size", info.ObjectSize).Uint64("objects", info.Objects).Msg("sheep serving")
	if ready != nil {
		ready(l.Addr().String())
	}

	select {
	case err := <-served:
		// Serve ended without a signal: a registration failure or a dead listener.
		node.Close()
		return err
	case sig := <-sigs:
		log.Info().Stringer("signal", sig).Dur("timeout", cfg.shutdownTimeout).Msg("shutting down: finishing requests, flushing objects")
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	go func() {
		// A second signal: stop waiting for requests in flight.
		select {
		case sig := <-sigs:
			log.Warn().Stringer("signal", sig).Msg("second signal: cutting requests in flight")
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := node.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("shutdown: %w", err)
	}
	<-served
	log.Info().Msg("sheep stopped")
	return nil
}

// applyReclaim keeps the node out of memory reclaim (see package reclaim);
// each protection that fails is a warning, not a reason to stop.
func applyReclaim(log zerolog.Logger) {
	r := reclaim.Apply(reclaim.Default)
	for _, p := range []struct {
		name string
		err  error
	}{{"io_flusher", r.IOFlusher}, {"mlockall", r.LockMemory}, {"oom_score_adj", r.OOMNever}} {
		if p.err != nil {
			log.Warn().Err(p.err).Str("protection", p.name).Msg("reclaim protection not applied; the node runs without it")
		}
	}
}

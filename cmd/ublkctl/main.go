// Command ublkctl creates, lists and removes ublk block devices and serves
// them: `ublkctl add` starts a daemon per device. See the README.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/daemon"
	"github.com/sheepblk/sheepblk/internal/logging"
	"github.com/sheepblk/sheepblk/internal/rpcflags"
	"github.com/sheepblk/sheepblk/internal/units"
	"github.com/sheepblk/sheepblk/ublk"
	"github.com/sheepblk/sheepblk/ublk/uapi"
)

// usageError is bad input on the command line: exit status 2.
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func main() {
	root := &cobra.Command{
		Use:           "ublkctl",
		Short:         "Create and serve ublk block devices (/dev/ublkbN)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(addCmd(), recoverCmd(), delCmd(), listCmd(), featuresCmd(), doctorCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "ublkctl: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		var u usageError
		if errors.As(err, &u) || strings.HasPrefix(err.Error(), "unknown command") || strings.Contains(err.Error(), "accepts ") {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// daemonFlags are the flags of every command that runs a device daemon.
type daemonFlags struct {
	foreground bool
	logFormat  string
	logLevel   string
	logFile    string
	readyFD    int
}

func (df *daemonFlags) register(c *cobra.Command) {
	fl := c.Flags()
	fl.BoolVar(&df.foreground, "foreground", false, "serve in this process instead of starting a daemon")
	fl.StringVar(&df.logFormat, "log-format", "auto", "log format: auto, console or json")
	fl.StringVar(&df.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fl.StringVar(&df.logFile, "log-file", "", "daemon log file (default "+daemon.StateDir+"/ublkd-PID.log)")
	fl.IntVar(&df.readyFD, "ready-fd", 0, "internal: report start-up on this descriptor")
	fl.MarkHidden("ready-fd")
}

type addFlags struct {
	daemonFlags
	target      daemon.Target
	size        string
	id          int
	queues      int
	depth       int
	blockSize   int
	maxIO       string
	recovery    bool
	zeroCopy    bool
	unprotected bool
}

func addCmd() *cobra.Command {
	var f addFlags
	c := &cobra.Command{
		Use:   "add -t null|mem|file|sheep [flags]",
		Short: "Create a device and start the daemon that serves it; prints the device path",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runAdd(&f) },
	}
	fl := c.Flags()
	fl.StringVarP(&f.target.Type, "type", "t", "", "target: null, mem, file or sheep")
	fl.StringVar(&f.target.VDI, "vdi", "", "sheep target: the VDI to serve")
	fl.StringVar(&f.target.Etcd, "etcd", "", "sheep target: etcd endpoints, comma-separated (default $"+daemon.EnvEtcd+", else "+cluster.DefaultEndpoint+")")
	f.target.Security.Register(fl, rpcflags.Client)
	fl.DurationVar(&f.target.IOTimeout, "io-timeout", daemon.DefaultIOTimeout, "sheep target: deadline of each request, retries included (reads fail over, writes are resent); past it the request fails with EIO")
	fl.StringVar(&f.target.File, "file", "", "file target: backing file or block device (created sparse at --size if missing)")
	fl.StringVar(&f.size, "size", "", "device size, e.g. 8G (file target: defaults to the file's size)")
	fl.IntVarP(&f.id, "number", "n", ublk.AnyID, "device id (default: the first free one)")
	fl.IntVarP(&f.queues, "queues", "q", ublk.DefaultQueues, "hardware queues (one thread and io_uring each)")
	fl.IntVarP(&f.depth, "depth", "d", ublk.DefaultDepth, "queue depth")
	fl.IntVar(&f.blockSize, "block-size", 512, "logical block size: 512 or 4096")
	fl.StringVar(&f.maxIO, "max-io", "512K", "largest request (4K..1M)")
	fl.BoolVar(&f.target.Buffered, "buffered", false, "file target: use the page cache instead of O_DIRECT")
	fl.BoolVar(&f.recovery, "recovery", false, "keep the device when the daemon dies, for `ublkctl recover`")
	fl.BoolVar(&f.zeroCopy, "zero-copy", true, "file target: move data between the kernel's pages and the file with no copy, where ublk has AUTO_BUF_REG (6.16+); false copies through the daemon's buffers")
	fl.StringVar(&f.target.FailRange, "fail-range", "", "testing: fail reads and writes touching OFFSET:LENGTH with EIO")
	fl.BoolVar(&f.unprotected, "unprotected", false, "experiment: skip PR_SET_IO_FLUSHER and mlockall")
	fl.MarkHidden("fail-range")
	fl.MarkHidden("unprotected")
	f.daemonFlags.register(c)
	return c
}

func recoverCmd() *cobra.Command {
	var df daemonFlags
	var id int
	c := &cobra.Command{
		Use:   "recover -n ID",
		Short: "Start a new daemon for a --recovery device whose daemon died; I/O resumes where it stopped",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id < 0 {
				return usagef("give the device with -n ID")
			}
			st, ok, err := daemon.ReadState(uint32(id))
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("no record of device %d in %s: it was not made by ublkctl add --recovery on this host", id, daemon.StateDir)
			}
			if st.Pid != os.Getpid() && daemon.Alive(st.Pid) && !df.foreground {
				return fmt.Errorf("device %d is still served by pid %d", id, st.Pid)
			}
			opts := daemon.Options{
				Target:    st.Spec,
				Device:    ublk.Options{Recovery: true, BlockSize: st.BlockSize},
				Recover:   true,
				RecoverID: uint32(id),
			}
			return df.run(opts)
		},
	}
	c.Flags().IntVarP(&id, "number", "n", -1, "device id")
	df.register(c)
	return c
}

// options checks the flags and turns them into the daemon's options.
func (f *addFlags) options() (daemon.Options, error) {
	var o daemon.Options
	var err error
	if f.size != "" {
		if f.target.Size, err = units.ParseSize(f.size); err != nil {
			return o, usageError{err}
		}
		if f.target.Size == 0 {
			return o, usagef("--size must be greater than 0")
		}
	}
	maxIO, err := units.ParseSize(f.maxIO)
	if err != nil {
		return o, usageError{err}
	}
	if err := f.target.Check(); err != nil {
		return o, usageError{err}
	}
	// Absolute paths, so `recover` from another directory finds them too.
	for _, p := range []*string{&f.target.Security.SecretFile, &f.target.Security.TLS.Cert, &f.target.Security.TLS.Key, &f.target.Security.TLS.CA} {
		if *p != "" {
			if *p, err = filepath.Abs(*p); err != nil {
				return o, usageError{err}
			}
		}
	}
	o.Target = f.target
	o.Device = ublk.Options{ID: f.id, Queues: f.queues, Depth: f.depth, BlockSize: f.blockSize, MaxIO: int(maxIO), Recovery: f.recovery, NoZeroCopy: !f.zeroCopy}
	// File and sheep targets without --size take the size of the file or
	// VDI, known only once open; check the rest with a size that passes.
	size := f.target.Size
	if size == 0 {
		size = int64(f.blockSize)
	}
	if err := o.Device.Validate(size); err != nil {
		return o, usageError{err}
	}
	o.Unprotected = f.unprotected
	return o, nil
}

func runAdd(f *addFlags) error {
	opts, err := f.options()
	if err != nil {
		return err
	}
	return f.run(opts)
}

// run serves the device in this process (--foreground) or starts a daemon
// that does: this same command line, plus --foreground and a pipe.
func (f *daemonFlags) run(opts daemon.Options) error {
	if _, err := os.Stat(ublk.ControlPath); err != nil {
		return ublk.ErrNoUblk
	}
	if !f.foreground {
		return f.spawn()
	}
	format, err := logging.ParseFormat(f.logFormat)
	if err != nil {
		return usageError{err}
	}
	out := os.Stderr
	if f.logFile != "" {
		if out, err = os.OpenFile(f.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
			return fmt.Errorf("open log file: %w", err)
		}
	}
	if opts.Logger, err = logging.New(out, format, f.logLevel); err != nil {
		return usageError{err}
	}
	opts.Device.Logger = opts.Logger
	opts.LogFile = f.logFile
	var rep *daemon.Reporter
	if f.readyFD > 0 {
		rep = daemon.ReporterFromFD(f.readyFD)
	}
	started := false
	err = daemon.Serve(opts, func(id uint32) {
		started = true
		if rep != nil {
			rep.OK(id)
		} else {
			fmt.Printf("/dev/ublkb%d\n", id)
		}
	})
	if err != nil && !started {
		rep.Fail(err)
	}
	if err != nil {
		opts.Logger.Error().Err(err).Msg("daemon failed")
	}
	return err
}

// spawn runs this command line with --foreground in the background and
// prints the device the daemon serves.
func (f *daemonFlags) spawn() error {
	logFile := f.logFile
	if logFile == "" {
		logFile = fmt.Sprintf("%s/ublkd-%d-%d.log", daemon.StateDir, os.Getpid(), time.Now().Unix())
	}
	args := append([]string{}, os.Args[1:]...)
	args = append(args, "--foreground", fmt.Sprintf("--ready-fd=%d", daemon.ReadyFD), "--log-file="+logFile)
	if f.logFormat == "auto" {
		args = append(args, "--log-format=json")
	}
	id, err := daemon.Spawn(args, logFile)
	if err != nil {
		return err
	}
	fmt.Printf("/dev/ublkb%d\n", id)
	return nil
}

func delCmd() *cobra.Command {
	var id int
	var all, force bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "del -n ID | -a",
		Short: "Stop and remove devices (and their daemons)",
		Args:  cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			if all == (id >= 0) {
				return usagef("give either -n ID or -a")
			}
			return nil
		},
		RunE: withController(func(ctrl *ublk.Controller) error {
			ids := []uint32{uint32(id)}
			if all {
				var err error
				if ids, err = daemon.DeviceIDs(); err != nil {
					return err
				}
			}
			var errs []error
			for _, i := range ids {
				if err := daemon.Delete(ctrl, i, timeout, force); err != nil {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		}),
	}
	c.Flags().IntVarP(&id, "number", "n", -1, "device id")
	c.Flags().BoolVarP(&all, "all", "a", false, "every device")
	c.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for a daemon to stop before killing it")
	c.Flags().BoolVar(&force, "force", false, "remove a device even while a file system on it is mounted")
	return c
}

// withController runs fn with the control device open.
func withController(fn func(*ublk.Controller) error) func(*cobra.Command, []string) error {
	return func(*cobra.Command, []string) error {
		ctrl, err := ublk.OpenController()
		if err != nil {
			return err
		}
		defer ctrl.Close()
		return fn(ctrl)
	}
}

func printJSON(v any) error { return json.NewEncoder(os.Stdout).Encode(v) }

func listCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List ublk devices",
		Args:  cobra.NoArgs,
		RunE: withController(func(ctrl *ublk.Controller) error {
			devs, err := daemon.List(ctrl)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(devs)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tQUEUES\tDEPTH\tSIZE\tTARGET\tPID")
			for _, d := range devs {
				fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\t%d\n", d.ID, d.State, d.Queues, d.Depth, units.FormatSize(d.Size), d.Target, d.Pid)
			}
			return tw.Flush()
		}),
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func doctorCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check this host for what makes a ublk daemon hang or stall",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bad := 0
			for _, c := range daemon.Doctor() {
				fmt.Printf("%-5s %-22s %s\n", c.Level, c.Name, c.Detail)
				if c.Level == daemon.LevelFail {
					bad++
				}
			}
			if bad > 0 {
				return fmt.Errorf("%d check(s) failed", bad)
			}
			return nil
		},
	}
}

func featuresCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "features",
		Short: "Show what the running kernel's ublk driver supports",
		Args:  cobra.NoArgs,
		RunE: withController(func(ctrl *ublk.Controller) error {
			f := ctrl.Features()
			names := uapi.FeatureList(f)
			if asJSON {
				return printJSON(map[string]any{"bits": fmt.Sprintf("%#x", f), "features": names})
			}
			fmt.Printf("features %#x\n", f)
			for _, n := range names {
				fmt.Println(n)
			}
			return nil
		}),
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

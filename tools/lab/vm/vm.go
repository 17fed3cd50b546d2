package vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrTimeout is returned when the guest outlived Options.Timeout.
var ErrTimeout = errors.New("lab VM timed out")

// DefaultCmdline is the guest kernel's command line: serial console, an
// immediate reboot (so QEMU exits, given -no-reboot) on panic, and quiet so
// test output is not drowned in boot messages.
const DefaultCmdline = "console=ttyS0 panic=-1 quiet"

// Options describe one boot.
type Options struct {
	Qemu      string // default qemu-system-x86_64
	Kernel    string // -kernel
	Initrd    string // -initrd
	MemoryMiB int    // -m, default 2048
	CPUs      int    // -smp, default 2
	// Cmdline is the kernel command line; default DefaultCmdline.
	Cmdline string
	// Disks are raw images attached as virtio disks (vda, vdb, ...) with
	// cache=none, so the guest's I/O reaches the host file directly.
	Disks   []string
	Timeout time.Duration
	// Console receives everything the guest prints (a log file, and the
	// terminal when verbose).
	Console io.Writer
	// Interactive connects the terminal's stdin to the guest console
	// (no line parsing; for a lab shell).
	Interactive bool
	// OnLine sees each console line; if it returns true (the guest kernel
	// crashed), QEMU is killed after CrashGrace, enough for the rest of
	// the oops to reach the log.
	OnLine     func(line string) (crashed bool)
	CrashGrace time.Duration
}

// Args returns QEMU's command line for opts.
func (o *Options) Args() []string {
	mem, cpus, cmdline := o.MemoryMiB, o.CPUs, o.Cmdline
	if mem == 0 {
		mem = 2048
	}
	if cpus == 0 {
		cpus = 2
	}
	if cmdline == "" {
		cmdline = DefaultCmdline
	}
	args := []string{
		"-accel", "tcg,thread=single", "-cpu", "max,-cx16",
		"-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		// No NIC: the guest uses loopback only, and QEMU then loads no
		// network boot ROM.
		"-nographic", "-no-reboot", "-nic", "none",
		"-kernel", o.Kernel, "-initrd", o.Initrd, "-append", cmdline,
	}
	for _, d := range o.Disks {
		args = append(args, "-drive", "file="+d+",format=raw,if=virtio,cache=none")
	}
	return args
}

// Boot runs the guest until it powers off, the timeout fires, or ctx is
// cancelled.
func Boot(ctx context.Context, opts Options) error {
	qemu := opts.Qemu
	if qemu == "" {
		qemu = "qemu-system-x86_64"
	}
	if _, err := exec.LookPath(qemu); err != nil {
		return fmt.Errorf("%s not found: install qemu-system-x86", qemu)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Minute
	}
	console := opts.Console
	if console == nil {
		console = io.Discard
	}
	runCtx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	crashCtx, crashed := context.WithCancel(runCtx)
	defer crashed()

	cmd := exec.CommandContext(crashCtx, qemu, opts.Args()...)
	cmd.WaitDelay = 5 * time.Second
	cmd.Stderr = console
	if opts.Interactive {
		cmd.Stdin = os.Stdin
		cmd.Stdout = console
		err := cmd.Run()
		return boundErr(runCtx, ctx, opts.Timeout, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("qemu stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", qemu, err)
	}
	var once sync.Once
	readErr := readLines(stdout, console, func(line string) {
		if opts.OnLine != nil && opts.OnLine(line) {
			once.Do(func() { time.AfterFunc(opts.CrashGrace, crashed) })
		}
	})
	err = cmd.Wait()
	if err == nil && readErr != nil {
		err = fmt.Errorf("read guest console: %w", readErr)
	}
	if crashCtx.Err() != nil && runCtx.Err() == nil && ctx.Err() == nil {
		return nil // killed on purpose after a crash; the caller saw it
	}
	return boundErr(runCtx, ctx, opts.Timeout, err)
}

func boundErr(runCtx, parent context.Context, timeout time.Duration, err error) error {
	switch {
	case parent.Err() != nil:
		return fmt.Errorf("lab VM interrupted: %w", parent.Err())
	case runCtx.Err() != nil:
		return fmt.Errorf("%w after %s: QEMU killed", ErrTimeout, timeout)
	case err != nil:
		return fmt.Errorf("qemu: %w", err)
	}
	return nil
}

// readLines copies r to console and calls fn per line (a final partial
// line included), without limiting line length.
func readLines(r io.Reader, console io.Writer, fn func(string)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if len(line) > 0 {
			_, _ = io.WriteString(console, line)
			fn(strings.TrimRight(line, "\r\n"))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

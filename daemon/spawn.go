package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ReadyFD is the descriptor on which a spawned daemon reports: "ok ID" once
// the device is live, or "error MESSAGE".
const ReadyFD = 3

// startTimeout bounds how long `add` waits for the daemon; creating a device
// takes well under a second, and even an emulated machine does it in a few.
const startTimeout = 60 * time.Second

// Spawn runs this executable with args as a background daemon in its own
// session, with stdout and stderr appended to logFile, and waits for it to
// report. It returns the new device's id.
func Spawn(args []string, logFile string) (uint32, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find own executable: %w", err)
	}
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return 0, fmt.Errorf("create %s: %w", StateDir, err)
	}
	log, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("open log file: %w", err)
	}
	defer log.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.ExtraFiles = []*os.File{w} // becomes ReadyFD
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, fmt.Errorf("start daemon: %w", err)
	}
	w.Close()
	// The daemon outlives us; reap it if it dies while we wait.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case s := <-line:
		return parseReport(s, logFile)
	case <-time.After(startTimeout):
		cmd.Process.Signal(syscall.SIGTERM)
		return 0, fmt.Errorf("daemon did not report within %v; see %s", startTimeout, logFile)
	}
}

func parseReport(s, logFile string) (uint32, error) {
	if rest, ok := strings.CutPrefix(s, "ok "); ok {
		id, err := strconv.ParseUint(rest, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("daemon reported %q", s)
		}
		return uint32(id), nil
	}
	if msg, ok := strings.CutPrefix(s, "error "); ok {
		return 0, errors.New(msg)
	}
	return 0, fmt.Errorf("daemon exited during start-up; see %s", logFile)
}

// Reporter is what a spawned daemon uses to answer Spawn; a nil Reporter
// (foreground run) does nothing.
type Reporter struct{ w io.WriteCloser }

// ReporterFromFD returns the reporter for a daemon started by Spawn.
func ReporterFromFD(fd int) *Reporter {
	return &Reporter{w: os.NewFile(uintptr(fd), "ready")}
}

// OK reports the live device.
func (r *Reporter) OK(id uint32) {
	if r != nil {
		fmt.Fprintf(r.w, "ok %d\n", id)
		r.w.Close()
	}
}

// Fail reports why the device could not be made.
func (r *Reporter) Fail(err error) {
	if r != nil {
		fmt.Fprintf(r.w, "error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		r.w.Close()
	}
}

package daemon

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/sheepblk/sheepblk/reclaim"
	"github.com/sheepblk/sheepblk/ublk"
)

// Options is everything one daemon needs.
type Options struct {
	Target  Target
	Device  ublk.Options
	LogFile string
	// Unprotected skips PR_SET_IO_FLUSHER and mlockall: only for the
	// experiment that shows what the protections are for.
	Unprotected bool
	// Recover takes over an existing device (created with --recovery)
	// whose daemon died, instead of creating one.
	Recover   bool
	RecoverID uint32
	Logger    zerolog.Logger
}

// Started is called once the device is live, with its id.
type Started func(id uint32)

// Serve creates the device, calls started once it is live, and serves it
// until SIGTERM or SIGINT (then stops and deletes it) or until it is
// stopped from outside. Any error before started is the reason the device
// could not be made; nothing is left behind then.
func Serve(opts Options, started Started) error {
	log := opts.Logger
	prot := reclaim.Default
	if opts.Unprotected {
		prot = reclaim.Options{OOMNever: true}
		log.Warn().Msg("running WITHOUT PR_SET_IO_FLUSHER and mlockall (--unprotected): reclaim may deadlock on this device")
	}
	// Before anything is allocated: MCL_FUTURE locks what comes after.
	report := reclaim.Apply(prot)
	var unprotected []string
	for _, p := range []struct {
		name string
		err  error
	}{{"io_flusher", report.IOFlusher}, {"mlock", report.LockMemory}, {"oom_score_adj", report.OOMNever}} {
		if p.err != nil {
			unprotected = append(unprotected, p.name)
			log.Warn().Err(p.err).Msg("protection not applied")
		}
	}
	be, err := opts.Target.Open(OpenOptions{
		InFlight: opts.Device.Queues * opts.Device.Depth, MaxIO: opts.Device.MaxIO, Logger: log,
	})
	if err != nil {
		return err
	}
	defer be.Close()
	ctrl, err := ublk.OpenController()
	if err != nil {
		return err
	}
	defer ctrl.Close()
	var dev *ublk.Device
	if opts.Recover {
		dev, err = ublk.Recover(ctrl, be, opts.RecoverID, opts.Device)
	} else {
		dev, err = ublk.New(ctrl, be, opts.Device)
	}
	if err != nil {
		return err
	}
	// Signals are caught from here on, so a SIGTERM during start-up still
	// ends in a clean stop.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	if err := dev.Start(); err != nil {
		return err
	}
	info := dev.Info()
	st := &State{
		ID: dev.ID(), Pid: os.Getpid(), Target: opts.Target.Type, Backing: opts.Target.Backing(),
		Size: be.Size(), BlockSize: opts.Device.BlockSize, Queues: int(info.NrHwQueues), Depth: int(info.QueueDepth),
		MaxIO: int(info.MaxIOBufBytes), QueueTIDs: dev.QueueThreadIDs(), Recovery: opts.Device.Recovery,
		LogFile: opts.LogFile, Unprotected: unprotected, Spec: opts.Target,
	}
	if err := writeState(st); err != nil {
		dev.Stop()
		return err
	}
	log.Info().Str("target", st.Target).Str("backing", st.Backing).Str("size", sizeString(st.Size)).
		Ints("queue_tids", st.QueueTIDs).Msg("serving")
	started(dev.ID())

	select {
	case sig := <-sigs:
		if opts.Device.Recovery {
			// Kept for `ublkctl recover`, which needs the state file.
			log.Info().Str("signal", sig.String()).Msg("detaching; the device stays for ublkctl recover")
			dev.Detach()
			return nil
		}
		log.Info().Str("signal", sig.String()).Msg("stopping device")
		err = dev.Stop()
	case <-dev.Done():
		log.Info().Msg("device stopped from outside; deleting it")
		err = dev.Stop()
	}
	RemoveState(dev.ID())
	if err != nil && !errors.Is(err, syscall.ENODEV) {
		return fmt.Errorf("stop: %w", err)
	}
	log.Info().Msg("device removed")
	return nil
}

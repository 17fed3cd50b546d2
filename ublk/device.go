package ublk

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/backend"
	"github.com/sheepblk/sheepblk/ublk/uapi"
)

// Limits and defaults of a device's shape.
const (
	AnyID           = -1
	DefaultQueues   = 1
	DefaultDepth    = 128
	DefaultMaxIO    = 512 << 10
	MaxQueues       = 64 // what ublksrv allows too; far more than hardware queues we meet
	minMaxIO        = 4 << 10
	maxMaxIO        = 1 << 20
	nodeWaitTimeout = 5 * time.Second
)

// Options is the shape of a new device.
type Options struct {
	ID        int // device id, or AnyID
	Queues    int // hardware queues, one io_uring and one thread each
	Depth     int // requests in flight per queue
	MaxIO     int // largest request in bytes (DefaultMaxIO)
	BlockSize int // logical block size: 512 or 4096
	// Recovery keeps the device when its daemon dies, so a new daemon can
	// take it over (UBLK_F_USER_RECOVERY, with _REISSUE where the kernel
	// has it, so requests in flight are re-sent rather than failed).
	Recovery bool
	// NoZeroCopy keeps the copy of every request's data through the
	// queue's buffers even where the kernel and the backend could do
	// without (UBLK_F_AUTO_BUF_REG, see zeroCopyBackend): for comparison.
	NoZeroCopy bool
	Logger     zerolog.Logger
}

// zeroCopyBackend reports whether be can serve its reads and writes
// straight from the kernel's pages: a RingFile reads and writes its file
// with READ_FIXED and WRITE_FIXED on the queue's ring, so with automatic
// buffer registration the driver's pages go to the file with no copy. A
// backend that touches the data in the daemon's memory (mem, sheep, a
// file served inline) cannot.
func zeroCopyBackend(be backend.Backend) bool {
	rf, ok := be.(backend.RingFile)
	if !ok {
		return false
	}
	_, ok = rf.RingFD()
	return ok
}

// Validate checks a device shape for a backend of the given size; its
// errors are one line each and say what to change.
func (o *Options) Validate(size int64) error {
	switch {
	case o.ID < AnyID || o.ID >= 1<<20:
		return fmt.Errorf("device id %d out of range (0..%d, or -1 for any)", o.ID, 1<<20-1)
	case o.Queues < 1 || o.Queues > MaxQueues:
		return fmt.Errorf("queue count %d out of range (1..%d)", o.Queues, MaxQueues)
	case o.Depth < 1 || o.Depth > uapi.MaxQueueDepth:
		return fmt.Errorf("queue depth %d out of range (1..%d)", o.Depth, uapi.MaxQueueDepth)
	case o.BlockSize != 512 && o.BlockSize != 4096:
		return fmt.Errorf("block size %d not supported (512 or 4096)", o.BlockSize)
	case o.MaxIO < minMaxIO || o.MaxIO > maxMaxIO || o.MaxIO%minMaxIO != 0:
		return fmt.Errorf("max I/O size %d out of range (a multiple of 4 KiB from 4 KiB to 1 MiB)", o.MaxIO)
	case size <= 0:
		return fmt.Errorf("device size must be greater than 0")
	case size%int64(o.BlockSize) != 0:
		return fmt.Errorf("device size %d is not a multiple of the block size %d", size, o.BlockSize)
	}
	return nil
}

// Device is a ublk block device served by this process.
type Device struct {
	ctrl   *Controller
	be     backend.Backend
	opts   Options
	info   uapi.DevInfo
	log    zerolog.Logger
	cdev   *os.File
	queues []*queue
	wg     sync.WaitGroup
	done   chan struct{}
	// recovering: the device exists already and this process takes it
	// over from a daemon that died (Recover), so Start ends the recovery
	// instead of starting the device, and Stop does not delete it.
	recovering bool
}

// New creates a device for be (ADD_DEV and SET_PARAMS). It is not visible
// as a disk until Start. On error nothing is left behind.
func New(ctrl *Controller, be backend.Backend, opts Options) (*Device, error) {
	if opts.MaxIO == 0 {
		opts.MaxIO = DefaultMaxIO
	}
	if err := opts.Validate(be.Size()); err != nil {
		return nil, err
	}
	info := uapi.DevInfo{
		NrHwQueues:    uint16(opts.Queues),
		QueueDepth:    uint16(opts.Depth),
		MaxIOBufBytes: uint32(opts.MaxIO),
		DevID:         uint32(opts.ID),
		UblksrvPid:    int32(os.Getpid()),
		Flags:         ctrl.deviceFlags(opts.Recovery, !opts.NoZeroCopy && zeroCopyBackend(be)),
	}
	if opts.Recovery && ctrl.Features()&uapi.FUserRecovery == 0 && ctrl.Features() != 0 {
		return nil, errors.New("--recovery: this kernel's ublk has no USER_RECOVERY")
	}
	if err := ctrl.AddDevice(&info); err != nil {
		return nil, err
	}
	d := &Device{ctrl: ctrl, be: be, opts: opts, info: info, done: make(chan struct{})}
	d.log = opts.Logger.With().Uint32("dev_id", info.DevID).Logger()
	if err := ctrl.SetParams(info.DevID, d.params()); err != nil {
		d.remove()
		return nil, err
	}
	return d, nil
}

// Recover takes over device id, whose daemon died, for be: the device
// must have been created with Options.Recovery. Start then resumes it.
// The kernel lets a new daemon in only once the old one is fully gone
// and the device quiesced, so START_USER_RECOVERY is retried for a while.
func Recover(ctrl *Controller, be backend.Backend, id uint32, opts Options) (*Device, error) {
	info, err := ctrl.DeviceInfo(id)
	if err != nil {
		return nil, err
	}
	if info.Flags&uapi.FUserRecovery == 0 {
		return nil, fmt.Errorf("device %d was not created with --recovery; it cannot be taken over", id)
	}
	if info.Flags&uapi.FAutoBufReg != 0 && !zeroCopyBackend(be) {
		return nil, fmt.Errorf("device %d serves its data by zero copy (a file target on its ring); this backend cannot take it over", id)
	}
	p, err := ctrl.Params(id)
	if err != nil {
		return nil, err
	}
	if size := int64(p.Basic.DevSectors) << 9; size != be.Size() {
		return nil, fmt.Errorf("device %d has %d bytes but the backend has %d", id, size, be.Size())
	}
	opts.ID, opts.Queues, opts.Depth, opts.MaxIO = int(id), int(info.NrHwQueues), int(info.QueueDepth), int(info.MaxIOBufBytes)
	opts.BlockSize = 1 << p.Basic.LogicalBSShift
	deadline := time.Now().Add(recoveryWait)
	for {
		err = ctrl.StartRecovery(id)
		if err == nil || !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("%w: the old daemon of device %d still holds it (is it still running?)", err, id)
		}
		return nil, err
	}
	d := &Device{ctrl: ctrl, be: be, opts: opts, info: info, done: make(chan struct{}), recovering: true}
	d.log = opts.Logger.With().Uint32("dev_id", id).Logger()
	return d, nil
}

const recoveryWait = 10 * time.Second

// deviceFlags are the UBLK_F_* flags a new device asks for: zeroCopy
// asks for automatic buffer registration where the kernel has it.
func (c *Controller) deviceFlags(recovery, zeroCopy bool) uint64 {
	var f uint64
	if zeroCopy && c.features&uapi.FAutoBufReg != 0 {
		f |= uapi.FAutoBufReg
	}
	if c.features&uapi.FCmdIoctlEncode != 0 {
		f |= uapi.FCmdIoctlEncode
	}
	if recovery {
		f |= uapi.FUserRecovery
		if c.features&uapi.FUserRecoveryReissue != 0 {
			f |= uapi.FUserRecoveryReissue
		}
	}
	return f
}

func shiftOf(n int) uint8 {
	var s uint8
	for 1<<s < n {
		s++
	}
	return s
}

// params describes the disk to the block layer: sizes, and what the
// backend can do (a volatile cache, so FLUSH and FUA reach it; discard and
// write-zeroes).
func (d *Device) params() *uapi.Params {
	p := &uapi.Params{Types: uapi.ParamTypeBasic}
	p.Basic = uapi.ParamBasic{
		LogicalBSShift:  shiftOf(d.opts.BlockSize),
		PhysicalBSShift: 12,
		IOOptShift:      12,
		IOMinShift:      shiftOf(d.opts.BlockSize),
		MaxSectors:      d.info.MaxIOBufBytes >> 9,
		DevSectors:      uint64(d.be.Size()) >> 9,
	}
	if _, ok := d.be.(backend.Flusher); ok {
		p.Basic.Attrs |= uapi.AttrVolatileCache | uapi.AttrFUA
	}
	_, canDiscard := d.be.(backend.Discarder)
	if canDiscard {
		p.Types |= uapi.ParamTypeDiscard
		p.Discard = uapi.ParamDiscard{
			DiscardGranularity:    4096,
			MaxDiscardSectors:     ^uint32(0) >> 9,
			MaxWriteZeroesSectors: ^uint32(0) >> 9,
			MaxDiscardSegments:    1,
		}
	}
	return p
}

// ZeroCopy reports whether the device's data moves between the kernel's
// pages and the backend with no copy (UBLK_F_AUTO_BUF_REG).
func (d *Device) ZeroCopy() bool { return d.info.Flags&uapi.FAutoBufReg != 0 }

// ID is the device number: the disk is /dev/ublkb<ID>.
func (d *Device) ID() uint32 { return d.info.DevID }

// Info is the device's info as the kernel returned it at creation.
func (d *Device) Info() uapi.DevInfo { return d.info }

// BlockPath is the disk's device node.
func (d *Device) BlockPath() string { return fmt.Sprintf("/dev/ublkb%d", d.info.DevID) }

func (d *Device) charPath() string { return fmt.Sprintf("/dev/ublkc%d", d.info.DevID) }

// Start opens the device's queues, runs one thread per queue and makes the
// disk visible (START_DEV). It returns once the disk's node exists.
func (d *Device) Start() error {
	if err := d.startQueues(); err != nil {
		d.teardown()
		return err
	}
	start := d.ctrl.StartDevice
	if d.recovering {
		start = d.ctrl.EndRecovery
	}
	if err := start(d.info.DevID, os.Getpid()); err != nil {
		d.teardown()
		return err
	}
	if err := waitForNode(d.BlockPath()); err != nil {
		d.Stop()
		return err
	}
	d.log.Info().Str("disk", d.BlockPath()).Int("queues", d.opts.Queues).Int("depth", d.opts.Depth).
		Int64("size", d.be.Size()).Msg("device live")
	return nil
}

func (d *Device) startQueues() error {
	if err := waitForNode(d.charPath()); err != nil {
		return err
	}
	var err error
	if d.cdev, err = os.OpenFile(d.charPath(), os.O_RDWR, 0); err != nil {
		return fmt.Errorf("open %s: %w", d.charPath(), err)
	}
	cpus, err := d.queueCPUs()
	if err != nil {
		return err
	}
	ready := make(chan error, d.opts.Queues)
	for i := 0; i < d.opts.Queues; i++ {
		q, err := newQueue(queueOptions{
			id: uint16(i), depth: d.opts.Depth, maxIO: int(d.info.MaxIOBufBytes), devSize: d.be.Size(),
			cdev: int(d.cdev.Fd()), cpu: cpus[i], be: d.be, zeroCopy: d.ZeroCopy(),
			log: d.log.With().Int("q_id", i).Logger(),
		})
		if err != nil {
			return err
		}
		d.queues = append(d.queues, q)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			q.run(ready) // logs its own failure
		}()
	}
	go func() { d.wg.Wait(); close(d.done) }()
	for range d.queues {
		if err := <-ready; err != nil {
			return err
		}
	}
	return nil
}

// queueCPUs picks one CPU per queue: from the kernel's affinity for the
// queue, intersected with the CPUs this process may run on (its cpuset).
// The kernel would silently cut a mask down to the cpuset, so intersect
// first; when the intersection is empty, use an allowed CPU instead.
func (d *Device) queueCPUs() ([]int, error) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return nil, fmt.Errorf("read allowed CPUs: %w", err)
	}
	var allowedList []int
	for c := 0; c < len(allowed)*64; c++ {
		if allowed.IsSet(c) {
			allowedList = append(allowedList, c)
		}
	}
	out := make([]int, d.opts.Queues)
	for q := range out {
		kernel, err := d.ctrl.QueueAffinity(d.info.DevID, uint16(q))
		if err != nil {
			return nil, err
		}
		var both []int
		for _, c := range kernel {
			if allowed.IsSet(c) {
				both = append(both, c)
			}
		}
		switch {
		case len(both) > 0:
			out[q] = both[q%len(both)]
		case len(allowedList) > 0:
			out[q] = allowedList[q%len(allowedList)]
			d.log.Warn().Int("q_id", q).Ints("kernel_cpus", kernel).Int("cpu", out[q]).
				Msg("the queue's CPUs are all outside this process's cpuset; pinned to an allowed CPU")
		default:
			out[q] = -1
		}
	}
	return out, nil
}

// QueueThreadIDs are the OS thread ids of the queue threads.
func (d *Device) QueueThreadIDs() []int {
	ids := make([]int, len(d.queues))
	for i, q := range d.queues {
		ids[i] = int(q.tid.Load())
	}
	return ids
}

// Done is closed when every queue thread has returned: after Stop, or
// when the device was stopped from outside.
func (d *Device) Done() <-chan struct{} { return d.done }

// Detach stops serving but keeps the device for a later Recover: the
// queue threads finish the requests the backend holds and exit; the kernel
// then holds new I/O until a daemon takes the device over. Only for
// devices created with Options.Recovery.
func (d *Device) Detach() {
	d.stopQueues()
}

// Stop removes the disk and the device: STOP_DEV (which lets requests in
// flight finish), the queue threads wind down, then DEL_DEV.
func (d *Device) Stop() error {
	err := d.ctrl.StopDevice(d.info.DevID)
	if errors.Is(err, unix.ENODEV) {
		err = nil // already gone
	}
	d.teardown()
	return err
}

// teardown stops the queue threads, releases their resources and the
// character device, and deletes the device. The driver's DEL_DEV waits for
// the character device to be released, so it comes last.
func (d *Device) teardown() {
	d.stopQueues()
	if !d.recovering {
		d.remove() // a device being taken over stays for another try
	}
}

// stopQueues ends the queue threads and releases what they hold, the
// character device last.
func (d *Device) stopQueues() {
	for _, q := range d.queues {
		q.stop()
	}
	d.wg.Wait()
	for _, q := range d.queues {
		q.close()
	}
	d.queues = nil
	if d.cdev != nil {
		d.cdev.Close()
		d.cdev = nil
	}
}

func (d *Device) remove() {
	if err := d.ctrl.DeleteDevice(d.info.DevID); err != nil && !errors.Is(err, unix.ENODEV) {
		d.log.Warn().Err(err).Msg("delete device")
	}
}

func waitForNode(path string) error {
	deadline := time.Now().Add(nodeWaitTimeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %v (is devtmpfs or udev running?)", path, nodeWaitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

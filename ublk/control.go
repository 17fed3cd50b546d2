package ublk

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"github.com/sheepblk/sheepblk/ublk/uapi"
	"github.com/sheepblk/sheepblk/uring"
)

// ControlPath is the ublk control device.
const ControlPath = "/dev/ublk-control"

// ErrNoUblk means the kernel has no ublk driver loaded.
var ErrNoUblk = errors.New("ublk is not available: " + ControlPath + " does not exist (load the driver: modprobe ublk_drv; needs Linux 6.0+)")

// Controller sends control commands to /dev/ublk-control. Commands are
// URING_CMDs on a private ring and run one at a time.
type Controller struct {
	mu       sync.Mutex
	file     *os.File
	ring     *uring.Ring
	features uint64 // from GET_FEATURES; 0 on kernels without it
	ioctl    bool   // the driver takes ioctl-encoded opcodes
	// scratch is the buffer a command's addr points at. It lives on the
	// heap, which Go never moves, unlike a goroutine stack, which may be
	// copied elsewhere between taking an address and the kernel using it.
	scratch []byte
}

const scratchSize = 1024 // the largest payload: the affinity mask

// OpenController opens the control device and probes the driver's features.
func OpenController() (*Controller, error) {
	f, err := os.OpenFile(ControlPath, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrNoUblk
		}
		return nil, fmt.Errorf("open %s: %w", ControlPath, err)
	}
	ring, err := uring.New(uring.Options{Entries: 4, Flags: uring.SetupSQE128})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("control ring: %w", err)
	}
	c := &Controller{file: f, ring: ring, ioctl: true, scratch: make([]byte, scratchSize)}
	// GET_FEATURES exists since 6.5 and only in ioctl form; a driver that
	// rejects it predates ioctl encoding too, so fall back to legacy opcodes.
	var feat uint64
	if err := c.run(uapi.UCmdGetFeatures, 0, uapi.CtrlCmd{DevID: ^uint32(0), QueueID: uapi.NoQueue}, bytesOf(&feat)); err != nil {
		c.ioctl = false
	} else {
		c.features = feat
	}
	return c, nil
}

// Close releases the control device.
func (c *Controller) Close() error {
	c.ring.Close()
	return c.file.Close()
}

// Features are the driver's UBLK_F_* bits (0 where GET_FEATURES is missing).
func (c *Controller) Features() uint64 { return c.features }

// bytesOf views a struct as its bytes, to copy it to and from scratch.
func bytesOf[T any](p *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p))
}

// run issues one control command and waits for its result. A non-nil
// payload is copied to the command's buffer (addr, len) and back after.
func (c *Controller) run(ioctlOp uint32, legacyOp uint32, cmd uapi.CtrlCmd, payload []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	op := ioctlOp
	if !c.ioctl {
		if legacyOp == 0 {
			return errors.New("command not supported by this kernel's ublk driver")
		}
		op = legacyOp
	}
	if payload != nil {
		n := copy(c.scratch, payload)
		cmd.Addr = uint64(uintptr(unsafe.Pointer(&c.scratch[0])))
		cmd.Len = uint16(n)
		defer copy(payload, c.scratch[:n])
	}
	res, err := c.submit(op, cmd)
	if err != nil {
		return err
	}
	if res < 0 {
		return syscall.Errno(-res)
	}
	return nil
}

func (c *Controller) submit(op uint32, cmd uapi.CtrlCmd) (int32, error) {
	sqe, err := c.ring.NextSQE()
	if err != nil {
		return 0, err
	}
	sqe.PrepURingCmd(int(c.file.Fd()), op)
	cmd.Encode(c.ring.Cmd(sqe))
	if _, err := c.ring.SubmitAndWait(1); err != nil {
		return 0, err
	}
	var res int32
	for n := 0; n == 0; {
		n = c.ring.Reap(func(cqe *uring.CQE) { res = cqe.Res })
		if n == 0 {
			if _, err := c.ring.SubmitAndWait(1); err != nil {
				return 0, err
			}
		}
	}
	return res, nil
}

// AddDevice creates a device (ADD_DEV). info.DevID may be ^0 for "any
// free id"; on return info holds what the kernel made.
func (c *Controller) AddDevice(info *uapi.DevInfo) error {
	err := c.run(uapi.UCmdAddDev, uapi.CmdAddDev, uapi.CtrlCmd{
		DevID: info.DevID, QueueID: uapi.NoQueue}, bytesOf(info))
	if err != nil {
		if errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("add device %d: a ublk device with that id already exists", info.DevID)
		}
		return fmt.Errorf("add device: %w", err)
	}
	return nil
}

// DeviceInfo reads a device's info (GET_DEV_INFO).
func (c *Controller) DeviceInfo(id uint32) (uapi.DevInfo, error) {
	var info uapi.DevInfo
	err := c.run(uapi.UCmdGetDevInfo, uapi.CmdGetDevInfo, uapi.CtrlCmd{
		DevID: id, QueueID: uapi.NoQueue}, bytesOf(&info))
	if err != nil {
		return info, fmt.Errorf("get info of device %d: %w", id, err)
	}
	return info, nil
}

// SetParams sets a device's parameters (SET_PARAMS), before START_DEV.
func (c *Controller) SetParams(id uint32, p *uapi.Params) error {
	p.Len = uint32(uapi.SizeofParams)
	err := c.run(uapi.UCmdSetParams, uapi.CmdSetParams, uapi.CtrlCmd{
		DevID: id, QueueID: uapi.NoQueue}, bytesOf(p))
	if err != nil {
		return fmt.Errorf("set params of device %d: %w", id, err)
	}
	return nil
}

// Params reads a device's parameters (GET_PARAMS).
func (c *Controller) Params(id uint32) (uapi.Params, error) {
	p := uapi.Params{Len: uint32(uapi.SizeofParams)}
	err := c.run(uapi.UCmdGetParams, uapi.CmdGetParams, uapi.CtrlCmd{
		DevID: id, QueueID: uapi.NoQueue}, bytesOf(&p))
	if err != nil {
		return p, fmt.Errorf("get params of device %d: %w", id, err)
	}
	return p, nil
}

// QueueAffinity returns the CPUs the kernel maps queue q to
// (GET_QUEUE_AFFINITY), as CPU numbers.
func (c *Controller) QueueAffinity(id uint32, q uint16) ([]int, error) {
	var mask [scratchSize / 8]uint64 // 8192 CPUs: more than any nr_cpu_ids we meet
	err := c.run(uapi.UCmdGetQueueAffinity, uapi.CmdGetQueueAffinity, uapi.CtrlCmd{
		DevID: id, QueueID: uapi.NoQueue, Data: uint64(q),
	}, bytesOf(&mask))
	if err != nil {
		return nil, fmt.Errorf("get affinity of queue %d of device %d: %w", q, id, err)
	}
	var cpus []int
	for w, bits := range mask {
		for b := 0; b < 64; b++ {
			if bits&(1<<b) != 0 {
				cpus = append(cpus, w*64+b)
			}
		}
	}
	return cpus, nil
}

// StartDevice makes the disk visible (START_DEV). The driver waits until
// every tag of every queue has a FETCH_REQ outstanding, then adds the disk
// and scans its partitions, which is I/O the queues must serve: call it only
// once every queue thread is about to wait in io_uring_enter.
func (c *Controller) StartDevice(id uint32, daemonPid int) error {
	if err := c.run(uapi.UCmdStartDev, uapi.CmdStartDev, uapi.CtrlCmd{DevID: id, QueueID: uapi.NoQueue, Data: uint64(daemonPid)}, nil); err != nil {
		return fmt.Errorf("start device %d: %w", id, err)
	}
	return nil
}

// StopDevice removes the disk (STOP_DEV); outstanding fetches complete with
// UBLK_IO_RES_ABORT and the queues wind down.
func (c *Controller) StopDevice(id uint32) error {
	if err := c.run(uapi.UCmdStopDev, uapi.CmdStopDev, uapi.CtrlCmd{DevID: id, QueueID: uapi.NoQueue}, nil); err != nil {
		return fmt.Errorf("stop device %d: %w", id, err)
	}
	return nil
}

// DeleteDevice removes the device's ids (DEL_DEV). It waits until the
// character device is closed, i.e. until the serving daemon is gone.
func (c *Controller) DeleteDevice(id uint32) error {
	if err := c.run(uapi.UCmdDelDev, uapi.CmdDelDev, uapi.CtrlCmd{DevID: id, QueueID: uapi.NoQueue}, nil); err != nil {
		return fmt.Errorf("delete device %d: %w", id, err)
	}
	return nil
}

// StartRecovery begins taking over a device whose daemon died
// (START_USER_RECOVERY; needs UBLK_F_USER_RECOVERY on the device).
func (c *Controller) StartRecovery(id uint32) error {
	if err := c.run(uapi.UCmdStartUserRecovery, uapi.CmdStartUserRecovery, uapi.CtrlCmd{DevID: id, QueueID: uapi.NoQueue}, nil); err != nil {
		return fmt.Errorf("start recovery of device %d: %w", id, err)
	}
	return nil
}

// EndRecovery completes a takeover once the new daemon's queues have
// fetched (END_USER_RECOVERY).
func (c *Controller) EndRecovery(id uint32, daemonPid int) error {
	if err := c.run(uapi.UCmdEndUserRecovery, uapi.CmdEndUserRecovery, uapi.CtrlCmd{DevID: id, QueueID: uapi.NoQueue, Data: uint64(daemonPid)}, nil); err != nil {
		return fmt.Errorf("end recovery of device %d: %w", id, err)
	}
	return nil
}

package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sheepblk/sheepblk/ublk"
	"github.com/sheepblk/sheepblk/ublk/uapi"
)

// DeviceStatus is one row of `ublkctl list`: the kernel's view of a device
// merged with what its daemon recorded.
type DeviceStatus struct {
	ID        uint32   `json:"id"`
	State     string   `json:"state"`
	Queues    int      `json:"queues"`
	Depth     int      `json:"depth"`
	Size      int64    `json:"size"`
	BlockSize int      `json:"block_size"`
	Target    string   `json:"target"`
	Backing   string   `json:"backing"`
	Pid       int      `json:"pid"`
	MaxIO     int      `json:"max_io"`
	QueueTIDs []int    `json:"queue_tids"`
	Recovery  bool     `json:"recovery"`
	Flags     []string `json:"flags"`
	LogFile   string   `json:"log_file,omitempty"`
}

// DeviceIDs lists the ublk devices that exist, from sysfs (or /dev).
func DeviceIDs() ([]uint32, error) {
	names, _ := filepath.Glob("/sys/class/ublk-char/ublkc*")
	if len(names) == 0 {
		names, _ = filepath.Glob("/dev/ublkc*")
	}
	var ids []uint32
	for _, n := range names {
		id, err := strconv.ParseUint(strings.TrimPrefix(filepath.Base(n), "ublkc"), 10, 32)
		if err == nil {
			ids = append(ids, uint32(id))
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

// Status reads one device's status.
func Status(ctrl *ublk.Controller, id uint32) (DeviceStatus, error) {
	info, err := ctrl.DeviceInfo(id)
	if err != nil {
		return DeviceStatus{}, err
	}
	s := DeviceStatus{
		ID: id, State: uapi.StateName(info.State), Queues: int(info.NrHwQueues), Depth: int(info.QueueDepth),
		Pid: int(info.UblksrvPid), MaxIO: int(info.MaxIOBufBytes), Target: "?", Backing: "?",
		Flags: uapi.FeatureList(info.Flags), QueueTIDs: []int{},
	}
	if p, err := ctrl.Params(id); err == nil {
		s.Size = int64(p.Basic.DevSectors) << 9
		s.BlockSize = 1 << p.Basic.LogicalBSShift
	}
	if st, ok, _ := ReadState(id); ok {
		s.Target, s.Backing, s.QueueTIDs, s.Recovery, s.LogFile = st.Target, st.Backing, st.QueueTIDs, st.Recovery, st.LogFile
		if s.Pid <= 0 {
			s.Pid = st.Pid
		}
	}
	return s, nil
}

// List reads every device's status.
func List(ctrl *ublk.Controller) ([]DeviceStatus, error) {
	ids, err := DeviceIDs()
	if err != nil {
		return nil, err
	}
	out := []DeviceStatus{}
	for _, id := range ids {
		s, err := Status(ctrl, id)
		if errors.Is(err, syscall.ENODEV) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Delete removes device id: its daemon is asked to stop (SIGTERM), which
// stops and deletes the device itself; a daemon that is gone or does not
// finish within timeout is dealt with here (SIGKILL, STOP_DEV, DEL_DEV).
// A device with a mounted file system is refused unless force: removing
// it under the file system fails every write still in the page cache.
func Delete(ctrl *ublk.Controller, id uint32, timeout time.Duration, force bool) error {
	if !force {
		if mnt := mountPoint(fmt.Sprintf("/dev/ublkb%d", id)); mnt != "" {
			return fmt.Errorf("/dev/ublkb%d is mounted on %s: umount it first (or del --force)", id, mnt)
		}
	}
	info, err := ctrl.DeviceInfo(id)
	if err != nil {
		if errors.Is(err, syscall.ENODEV) {
			RemoveState(id)
			return fmt.Errorf("no ublk device %d", id)
		}
		return err
	}
	pid := int(info.UblksrvPid)
	if st, ok, _ := ReadState(id); ok && pid <= 0 {
		pid = st.Pid
	}
	if pid > 0 && pid != os.Getpid() && Alive(pid) {
		syscall.Kill(pid, syscall.SIGTERM)
		if !waitExit(pid, timeout) {
			syscall.Kill(pid, syscall.SIGKILL)
			waitExit(pid, 5*time.Second)
		}
		if _, err := ctrl.DeviceInfo(id); errors.Is(err, syscall.ENODEV) {
			RemoveState(id) // the daemon deleted it
			return nil
		}
	}
	// No daemon (crashed, killed, or detached for recovery): do its part.
	if err := ctrl.StopDevice(id); err != nil && !errors.Is(err, syscall.ENODEV) {
		return err
	}
	if err := ctrl.DeleteDevice(id); err != nil && !errors.Is(err, syscall.ENODEV) {
		return err
	}
	RemoveState(id)
	return nil
}

// waitExit waits until process pid is gone.
func waitExit(pid int, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !Alive(pid) {
			return true
		}
	}
	return !Alive(pid)
}

// mountPoint is where the block device at path is mounted, or "".
func mountPoint(path string) string {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return ""
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	return mountPointIn(string(b), unix.Major(st.Rdev), unix.Minor(st.Rdev))
}

// mountPointIn finds the first mount of device major:minor in a
// mountinfo text (field 3 is major:minor, field 5 the mount point).
func mountPointIn(mountinfo string, major, minor uint32) string {
	want := fmt.Sprintf("%d:%d", major, minor)
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[2] == want {
			return f[4]
		}
	}
	return ""
}

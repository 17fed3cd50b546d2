package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/sheepblk/sheepblk/backend"
	"github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/internal/rpcflags"
	"github.com/sheepblk/sheepblk/internal/units"
	"github.com/sheepblk/sheepblk/rpc"
)

// Target names a backend and how to open it.
type Target struct {
	Type      string `json:"type"`                 // null, mem, file
	File      string `json:"file,omitempty"`       // file: path of the backing file or block device
	Size      int64  `json:"size,omitempty"`       // bytes; 0 for a file means "the file's size"
	Buffered  bool   `json:"buffered,omitempty"`   // file: no O_DIRECT
	FailRange string `json:"fail_range,omitempty"` // testing: "OFF:LEN", reads and writes there fail with EIO
	VDI       string `json:"vdi,omitempty"`        // sheep: the VDI to serve
	Etcd      string `json:"etcd,omitempty"`       // sheep: etcd endpoints, comma-separated
	// IOTimeout bounds each read, write and discard of the sheep target,
	// retries included: within it a read fails over between replicas and a
	// write is resent to a replica that does not answer (and re-planned
	// when the membership changes); past it the request fails with EIO.
	// 0 means DefaultIOTimeout.
	IOTimeout time.Duration `json:"io_timeout,omitempty"`
	// Security is the sheep target's cluster secret file (mode 0600) and
	// TLS files, as the nodes' --secret-file and --tls-* flags.
	Security rpcflags.Security `json:"security"`
}

// TargetTypes are the types Open knows.
var TargetTypes = []string{"null", "mem", "file", "sheep"}

// DefaultIOTimeout is the sheep target's per-request deadline: the SCSI
// layer's default command timeout. Far longer than a healthy node needs,
// it leaves room for a node slowed down by memory pressure (its own
// writeback) before a write is failed.
const DefaultIOTimeout = 30 * time.Second

// maxCallTimeout bounds one call to a node: a node that does not answer
// within it gets the request again (or a read goes to another replica).
const maxCallTimeout = 5 * time.Second

// callTimeoutFor leaves room for at least three tries within the
// request's deadline.
func callTimeoutFor(ioTimeout time.Duration) time.Duration {
	return min(maxCallTimeout, ioTimeout/3)
}

// EnvEtcd names the environment variable with the default etcd endpoints
// of the sheep target (and of dog).
const EnvEtcd = "SHEEPBLK_ETCD"

// Check validates a target without opening anything.
func (t *Target) Check() error {
	switch t.Type {
	case "null", "mem":
		if t.Size <= 0 {
			return fmt.Errorf("target %s needs --size greater than 0", t.Type)
		}
		if t.File != "" {
			return fmt.Errorf("--file is only for the file target")
		}
	case "file":
		if t.File == "" {
			return errors.New("target file needs --file PATH")
		}
	case "sheep":
		if t.VDI == "" {
			return errors.New("target sheep needs --vdi NAME")
		}
		if t.Size != 0 || t.File != "" {
			return errors.New("target sheep takes its size from the VDI: no --size or --file")
		}
	case "":
		return fmt.Errorf("missing -t TYPE (one of %s)", strings.Join(TargetTypes, ", "))
	default:
		return fmt.Errorf("unknown target type %q (one of %s)", t.Type, strings.Join(TargetTypes, ", "))
	}
	if t.Security != (rpcflags.Security{}) && t.Type != "sheep" {
		return errors.New("--secret-file and --tls-* are only for the sheep target")
	}
	if t.Size < 0 {
		return errors.New("--size must not be negative")
	}
	if t.FailRange != "" {
		if _, _, err := parseRange(t.FailRange); err != nil {
			return err
		}
	}
	return nil
}

// OpenOptions are what a backend needs to know of the device it serves.
type OpenOptions struct {
	InFlight int // queues × depth: requests the backend may hold at once
	MaxIO    int // largest request
	Logger   zerolog.Logger
}

// Open builds the backend.
func (t *Target) Open(o OpenOptions) (backend.Backend, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	var be backend.Backend
	switch t.Type {
	case "null":
		be = backend.NewNull(t.Size)
	case "mem":
		be = backend.NewMem(t.Size)
	case "file":
		f, err := backend.OpenFile(backend.FileOptions{Path: t.File, Size: t.Size, Buffered: t.Buffered})
		if err != nil {
			return nil, err
		}
		be = f
	case "sheep":
		s, err := openSheep(t, o)
		if err != nil {
			return nil, err
		}
		be = s
	}
	if t.FailRange != "" {
		off, n, _ := parseRange(t.FailRange)
		be = &backend.FailRange{Backend: be, Off: off, Len: n}
	}
	return be, nil
}

func parseRange(s string) (off, n int64, err error) {
	a, b, ok := strings.Cut(s, ":")
	if ok {
		if off, err = units.ParseSize(a); err == nil {
			n, err = units.ParseSize(b)
		}
	}
	if !ok || err != nil || n <= 0 {
		return 0, 0, fmt.Errorf("--fail-range %q: want OFFSET:LENGTH, e.g. 1M:64K", s)
	}
	return off, n, nil
}

// Backing describes where the data lives, for `list`.
func (t *Target) Backing() string {
	switch t.Type {
	case "file":
		return t.File
	case "mem":
		return "ram"
	case "sheep":
		return "vdi " + t.VDI
	}
	return "-"
}

// sheepTarget is the sheep backend with the etcd connection it owns.
type sheepTarget struct {
	*sheep.Backend
	cluster *cluster.Client
}

func (s *sheepTarget) Close() error {
	err := s.Backend.Close()
	return errors.Join(err, s.cluster.Close())
}

func openSheep(t *Target, o OpenOptions) (*sheepTarget, error) {
	eps := t.Etcd
	if eps == "" {
		eps = os.Getenv(EnvEtcd)
	}
	var endpoints []string
	if eps != "" {
		endpoints = strings.Split(eps, ",")
	}
	var rpcOpts rpc.ClientOptions
	if err := t.Security.ApplyClient(&rpcOpts); err != nil {
		return nil, err
	}
	cli, err := cluster.Connect(cluster.Options{Endpoints: endpoints})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd: %w", err)
	}
	ioTimeout := cmp.Or(t.IOTimeout, DefaultIOTimeout)
	be, err := sheep.Open(context.Background(), sheep.Options{
		Cluster: cli, VDI: t.VDI, MaxInFlight: o.InFlight, MaxIOSize: o.MaxIO, Logger: o.Logger, RPC: rpcOpts,
		IOTimeout: ioTimeout, CallTimeout: callTimeoutFor(ioTimeout),
	})
	if err != nil {
		cli.Close()
		return nil, err
	}
	return &sheepTarget{Backend: be, cluster: cli}, nil
}

// sizeString is for log lines.
func sizeString(n int64) string {
	return units.FormatSize(n) + " (" + strconv.FormatInt(n, 10) + " bytes)"
}

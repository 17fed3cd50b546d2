package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"
	"unicode"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// MaxVDIID is the largest VDI id: object ids carry the VDI id in 24 bits.
const MaxVDIID = 1<<24 - 1

// MaxObjectsPerVDI bounds a VDI's size: object ids carry the object index
// in 32 bits.
const MaxObjectsPerVDI = 1 << 32

// DefaultBlockSize is the logical block size of a VDI's device.
const DefaultBlockSize = 4096

// VDI is a virtual disk image.
type VDI struct {
	Name string `json:"name"`
	// ID is unique for the life of the cluster: never reused after a
	// delete, so objects left behind by a deleted VDI never alias a new one.
	ID         uint32    `json:"id"`
	Size       int64     `json:"size"`
	Copies     int       `json:"copies"`
	BlockSize  int       `json:"block_size"`
	ObjectSize int64     `json:"object_size"`
	Created    time.Time `json:"created"`
}

// Objects is the number of objects the VDI spans.
func (v VDI) Objects() int64 {
	return (v.Size + v.ObjectSize - 1) / v.ObjectSize
}

// ObjectID is the id of the VDI's object number idx: VDI id in the top 24
// bits of the upper half, object index in the lower 32 bits.
func (v VDI) ObjectID(idx uint32) uint64 {
	return uint64(v.ID)<<32 | uint64(idx)
}

// CreateVDIOptions are the arguments of CreateVDI.
type CreateVDIOptions struct {
	Name string
	Size int64
	// Copies is the replica count; the cluster's default if 0.
	Copies int
	// BlockSize is 512 or 4096 (default).
	BlockSize int
}

func validVDIName(name string) error {
	if name == "" || len(name) > 256 {
		return fmt.Errorf("vdi name %q must be 1..256 bytes: %w", name, ErrInvalid)
	}
	for _, r := range name {
		if r == '/' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("vdi name %q may not contain '/', spaces or control characters: %w", name, ErrInvalid)
		}
	}
	return nil
}

func validVDISize(size, blockSize, objectSize int64) error {
	if size <= 0 || size%blockSize != 0 {
		return fmt.Errorf("size %d must be a positive multiple of the block size %d: %w", size, blockSize, ErrInvalid)
	}
	if (size+objectSize-1)/objectSize > MaxObjectsPerVDI {
		return fmt.Errorf("size %d exceeds %d objects of %d bytes: %w", size, int64(MaxObjectsPerVDI), objectSize, ErrInvalid)
	}
	return nil
}

// CreateVDI adds a VDI with a fresh id. Exactly one of several concurrent
// creates of one name succeeds; the others get ErrVDIExists.
func (c *Client) CreateVDI(ctx context.Context, opts CreateVDIOptions) (VDI, error) {
	if err := validVDIName(opts.Name); err != nil {
		return VDI{}, fmt.Errorf("create vdi: %w", err)
	}
	if opts.BlockSize == 0 {
		opts.BlockSize = DefaultBlockSize
	}
	if opts.BlockSize != 512 && opts.BlockSize != 4096 {
		return VDI{}, fmt.Errorf("create vdi %s: block size %d is not 512 or 4096: %w", opts.Name, opts.BlockSize, ErrInvalid)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	vkey := c.vdiKey(opts.Name)
	for {
		// Read the id counter and the name together, then commit only if
		// neither changed: a lost race on the counter retries, a lost race
		// on the name is ErrVDIExists.
		resp, err := c.etcd.Txn(ctx).Then(
			clientv3.OpGet(c.nextVDIIDKey()),
			clientv3.OpGet(vkey),
			clientv3.OpGet(c.settingsKey()),
		).Commit()
		if err != nil {
			return VDI{}, fmt.Errorf("create vdi %s: %w", opts.Name, c.etcdErr(err))
		}
		counter := resp.Responses[0].GetResponseRange()
		if len(resp.Responses[1].GetResponseRange().Kvs) > 0 {
			return VDI{}, fmt.Errorf("create vdi %s: %w", opts.Name, ErrVDIExists)
		}
		settingsKV := resp.Responses[2].GetResponseRange().Kvs
		if len(settingsKV) == 0 {
			return VDI{}, fmt.Errorf("create vdi %s: %w", opts.Name, ErrNotFormatted)
		}
		settings, err := decodeSettings(settingsKV[0].Value)
		if err != nil {
			return VDI{}, fmt.Errorf("create vdi %s: decode cluster settings: %w", opts.Name, err)
		}
		copies := opts.Copies
		if copies == 0 {
			copies = settings.Copies
		}
		if copies < 1 || copies > MaxCopies {
			return VDI{}, fmt.Errorf("create vdi %s: copies %d out of range 1..%d: %w", opts.Name, copies, MaxCopies, ErrInvalid)
		}
		if err := validVDISize(opts.Size, int64(opts.BlockSize), settings.ObjectSize); err != nil {
			return VDI{}, fmt.Errorf("create vdi %s: %w", opts.Name, err)
		}
		id := uint64(1)
		var counterRev int64
		if len(counter.Kvs) > 0 {
			counterRev = counter.Kvs[0].ModRevision
			if id, err = strconv.ParseUint(string(counter.Kvs[0].Value), 10, 32); err != nil {
				return VDI{}, fmt.Errorf("create vdi %s: corrupt id counter %q: %w", opts.Name, counter.Kvs[0].Value, err)
			}
		}
		if id > MaxVDIID {
			return VDI{}, fmt.Errorf("create vdi %s: %w", opts.Name, ErrVDIIDsExhausted)
		}
		v := VDI{
			Name: opts.Name, ID: uint32(id), Size: opts.Size, Copies: copies,
			BlockSize: opts.BlockSize, ObjectSize: settings.ObjectSize,
			Created: time.Now().UTC().Truncate(time.Second),
		}
		val, err := json.Marshal(v)
		if err != nil {
			return VDI{}, fmt.Errorf("create vdi %s: %w", opts.Name, err)
		}
		commit, err := c.etcd.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(c.nextVDIIDKey()), "=", counterRev),
			clientv3.Compare(clientv3.CreateRevision(vkey), "=", 0),
			// A concurrent re-format must not slip between read and write.
			clientv3.Compare(clientv3.ModRevision(c.settingsKey()), "=", settingsKV[0].ModRevision),
		).Then(
			clientv3.OpPut(c.nextVDIIDKey(), strconv.FormatUint(id+1, 10)),
			clientv3.OpPut(vkey, string(val)),
			clientv3.OpPut(c.vdiIDKey(v.ID), v.Name),
		).Commit()
		if err != nil {
			return VDI{}, fmt.Errorf("create vdi %s: %w", opts.Name, c.etcdErr(err))
		}
		if commit.Succeeded {
			return v, nil
		}
		if err := ctx.Err(); err != nil {
			return VDI{}, fmt.Errorf("create vdi %s: %w", opts.Name, c.etcdErr(err))
		}
	}
}

// VDI looks a VDI up by name.
func (c *Client) VDI(ctx context.Context, name string) (VDI, error) {
	v, _, err := c.vdiAt(ctx, name)
	return v, err
}

func (c *Client) vdiAt(ctx context.Context, name string) (VDI, int64, error) {
	if err := validVDIName(name); err != nil {
		return VDI{}, 0, err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.etcd.Get(ctx, c.vdiKey(name))
	if err != nil {
		return VDI{}, 0, fmt.Errorf("read vdi %s: %w", name, c.etcdErr(err))
	}
	if len(resp.Kvs) == 0 {
		return VDI{}, 0, fmt.Errorf("vdi %s: %w", name, ErrVDINotFound)
	}
	v, err := decodeVDI(resp.Kvs[0].Value)
	if err != nil {
		return VDI{}, 0, fmt.Errorf("decode vdi %s: %w", name, err)
	}
	return v, resp.Kvs[0].ModRevision, nil
}

// VDIs lists every VDI, sorted by name.
func (c *Client) VDIs(ctx context.Context) ([]VDI, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.etcd.Get(ctx, c.vdisPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list vdis: %w", c.etcdErr(err))
	}
	vdis := make([]VDI, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		v, err := decodeVDI(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("decode vdi at %s: %w", kv.Key, err)
		}
		vdis = append(vdis, v)
	}
	sort.Slice(vdis, func(i, j int) bool { return vdis[i].Name < vdis[j].Name })
	return vdis, nil
}

// DeleteVDI removes a VDI from the table. Its id is never handed out again.
// The objects it leaves on the nodes are garbage for the nodes to collect.
// It fails with ErrRecovering while the current epoch is not
// recovery-complete: recovery could resurrect stale copies of the VDI's
// objects after the delete.
func (c *Client) DeleteVDI(ctx context.Context, name string) (VDI, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	for {
		v, rev, err := c.vdiAt(ctx, name)
		if err != nil {
			return VDI{}, fmt.Errorf("delete vdi: %w", err)
		}
		guard, err := c.recoveredGuard(ctx)
		if err != nil {
			return VDI{}, fmt.Errorf("delete vdi %s: %w", name, err)
		}
		resp, err := c.etcd.Txn(ctx).
			If(append(guard, clientv3.Compare(clientv3.ModRevision(c.vdiKey(name)), "=", rev))...).
			Then(clientv3.OpDelete(c.vdiKey(name)), clientv3.OpDelete(c.vdiIDKey(v.ID))).
			Commit()
		if err != nil {
			return VDI{}, fmt.Errorf("delete vdi %s: %w", name, c.etcdErr(err))
		}
		if resp.Succeeded {
			return v, nil
		}
		// Changed (resized, deleted and re-created, a new epoch) since
		// read: look again.
	}
}

// recoveredGuard checks that the current epoch is recovery-complete
// (ErrRecovering if not) and returns the transaction comparisons that keep
// it so until the caller's commit.
func (c *Client) recoveredGuard(ctx context.Context) ([]clientv3.Cmp, error) {
	resp, err := c.etcd.Txn(ctx).Then(
		clientv3.OpGet(c.epochKey()),
		clientv3.OpGet(c.recoveryCompleteKey()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("read epoch: %w", c.etcdErr(err))
	}
	var e Epoch
	var epochRev int64
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		if e, err = decodeEpoch(kvs[0].Value); err != nil {
			return nil, fmt.Errorf("decode epoch at %s: %w", c.epochKey(), err)
		}
		epochRev = kvs[0].ModRevision
	}
	lcKVs := resp.Responses[1].GetResponseRange().Kvs
	last, err := c.decodeLastComplete(lcKVs)
	if err != nil {
		return nil, err
	}
	if e.Number > last {
		return nil, fmt.Errorf("%w (epoch %d): retry when 'dog cluster info' shows it complete", ErrRecovering, e.Number)
	}
	var lcRev int64
	if len(lcKVs) > 0 {
		lcRev = lcKVs[0].ModRevision
	}
	return []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(c.epochKey()), "=", epochRev),
		clientv3.Compare(clientv3.ModRevision(c.recoveryCompleteKey()), "=", lcRev),
	}, nil
}

// ResizeVDIOptions are the arguments of ResizeVDI.
type ResizeVDIOptions struct {
	Name string
	Size int64
	// Force allows shrinking, which drops the data past the new end.
	Force bool
}

// ResizeVDI changes a VDI's size: growing always, shrinking only with
// opts.Force, and (like a delete) not while recovery is in progress
// (ErrRecovering).
func (c *Client) ResizeVDI(ctx context.Context, opts ResizeVDIOptions) (VDI, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	for {
		v, rev, err := c.vdiAt(ctx, opts.Name)
		if err != nil {
			return VDI{}, fmt.Errorf("resize vdi: %w", err)
		}
		if err := validVDISize(opts.Size, int64(v.BlockSize), v.ObjectSize); err != nil {
			return VDI{}, fmt.Errorf("resize vdi %s: %w", opts.Name, err)
		}
		if opts.Size < v.Size && !opts.Force {
			return VDI{}, fmt.Errorf("resize vdi %s from %d to %d bytes: %w (use --force to drop the data past the new end)", opts.Name, v.Size, opts.Size, ErrShrink)
		}
		var guard []clientv3.Cmp
		if opts.Size < v.Size {
			if guard, err = c.recoveredGuard(ctx); err != nil {
				return VDI{}, fmt.Errorf("shrink vdi %s: %w", opts.Name, err)
			}
		}
		v.Size = opts.Size
		val, err := json.Marshal(v)
		if err != nil {
			return VDI{}, fmt.Errorf("resize vdi %s: %w", opts.Name, err)
		}
		resp, err := c.etcd.Txn(ctx).
			If(append(guard, clientv3.Compare(clientv3.ModRevision(c.vdiKey(opts.Name)), "=", rev))...).
			Then(clientv3.OpPut(c.vdiKey(opts.Name), string(val))).
			Commit()
		if err != nil {
			return VDI{}, fmt.Errorf("resize vdi %s: %w", opts.Name, c.etcdErr(err))
		}
		if resp.Succeeded {
			return v, nil
		}
	}
}

// WatchVDI sends the VDI's record now and after every change until ctx is
// done, then closes the channel; nil once it is deleted. A client serving
// a VDI watches it so a deleted VDI stops taking writes (which would
// recreate objects of a dead id). A slow reader only misses intermediate
// records.
func (c *Client) WatchVDI(ctx context.Context, name string) <-chan *VDI {
	out := make(chan *VDI, 1)
	go func() {
		defer close(out)
		c.watchLatest(ctx, c.vdiKey(name), false, func(ctx context.Context) (int64, error) {
			resp, err := c.etcd.Get(ctx, c.vdiKey(name))
			if err != nil {
				return 0, c.etcdErr(err)
			}
			if len(resp.Kvs) == 0 {
				sendLatest[*VDI](out, nil)
				return resp.Header.Revision, nil
			}
			v, err := decodeVDI(resp.Kvs[0].Value)
			if err != nil {
				return 0, fmt.Errorf("vdi %s: %w", name, err)
			}
			sendLatest(out, &v)
			return resp.Header.Revision, nil
		})
	}()
	return out
}

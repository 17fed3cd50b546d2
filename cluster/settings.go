package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultObjectSize is the size of the objects a VDI is cut into.
const DefaultObjectSize = 4 << 20

// MaxCopies bounds the replica count: more copies than this is a typo.
const MaxCopies = 31

// Settings are the cluster-wide parameters written by Format.
type Settings struct {
	// Copies is the default number of replicas of each object.
	Copies int `json:"copies"`
	// ObjectSize is the default object size in bytes (a power of two).
	ObjectSize int64 `json:"object_size"`
	// FormattedAt is when the cluster was (last) formatted.
	FormattedAt time.Time `json:"formatted_at"`
	// MinCopies is the fewest replicas a write may land on when members
	// are gone (0: the default, a majority of the VDI's copies; see
	// MinCopiesFor). Below it a write fails rather than silently having
	// too few copies.
	MinCopies int `json:"min_copies,omitempty"`
	// MemberGrace is how long a member may be unregistered (dead,
	// partitioned, restarting) before the membership controller removes it
	// and its objects are re-replicated (0: DefaultMemberGrace).
	MemberGrace time.Duration `json:"member_grace_ns,omitempty"`
}

// DefaultMemberGrace is the member grace of a cluster that sets none.
const DefaultMemberGrace = 10 * time.Second

// MinCopiesFor is the fewest replicas a write to an object of a VDI with
// copies replicas may land on: MinCopies, or a majority (copies -
// copies/2: 2 of 3) if unset, never more than copies.
func (s Settings) MinCopiesFor(copies int) int {
	m := s.MinCopies
	if m <= 0 {
		m = copies - copies/2
	}
	return max(1, min(m, copies))
}

// Grace is the member grace in effect: MemberGrace or DefaultMemberGrace.
func (s Settings) Grace() time.Duration {
	if s.MemberGrace <= 0 {
		return DefaultMemberGrace
	}
	return s.MemberGrace
}

// FormatOptions are the arguments of Format.
type FormatOptions struct {
	Copies     int
	ObjectSize int64 // DefaultObjectSize if 0
	// MinCopies: see Settings.MinCopies (0: a majority of copies).
	MinCopies int
	// MemberGrace: see Settings.MemberGrace (0: DefaultMemberGrace).
	MemberGrace time.Duration
	// Force re-formats a formatted cluster. That forgets every VDI (their
	// ids stay used, so stale objects on nodes never alias a new VDI).
	Force bool
}

func validObjectSize(n int64) bool {
	return n >= 4096 && n <= 1<<30 && n&(n-1) == 0
}

// Format writes the cluster settings. It refuses to touch a formatted cluster
// unless opts.Force is set.
func (c *Client) Format(ctx context.Context, opts FormatOptions) (Settings, error) {
	if opts.ObjectSize == 0 {
		opts.ObjectSize = DefaultObjectSize
	}
	if opts.Copies < 1 || opts.Copies > MaxCopies {
		return Settings{}, fmt.Errorf("format cluster: copies %d out of range 1..%d: %w", opts.Copies, MaxCopies, ErrInvalid)
	}
	if !validObjectSize(opts.ObjectSize) {
		return Settings{}, fmt.Errorf("format cluster: object size %d is not a power of two between 4 KiB and 1 GiB: %w", opts.ObjectSize, ErrInvalid)
	}
	if opts.MinCopies < 0 || opts.MinCopies > opts.Copies {
		return Settings{}, fmt.Errorf("format cluster: min-copies %d out of range 1..%d (copies): %w", opts.MinCopies, opts.Copies, ErrInvalid)
	}
	if opts.MemberGrace < 0 {
		return Settings{}, fmt.Errorf("format cluster: negative member grace %v: %w", opts.MemberGrace, ErrInvalid)
	}
	s := Settings{
		Copies: opts.Copies, ObjectSize: opts.ObjectSize, FormattedAt: time.Now().UTC().Truncate(time.Second),
		MinCopies: opts.MinCopies, MemberGrace: opts.MemberGrace,
	}
	val, err := json.Marshal(s)
	if err != nil {
		return Settings{}, fmt.Errorf("format cluster: %w", err)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	put := clientv3.OpPut(c.settingsKey(), string(val))
	if opts.Force {
		_, err = c.etcd.Txn(ctx).Then(
			put,
			clientv3.OpDelete(c.vdisPrefix(), clientv3.WithPrefix()),
			clientv3.OpDelete(c.prefix+"vdi-ids/", clientv3.WithPrefix()),
		).Commit()
		if err != nil {
			return Settings{}, fmt.Errorf("format cluster: %w", c.etcdErr(err))
		}
		return s, nil
	}
	resp, err := c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(c.settingsKey()), "=", 0)).
		Then(put).Commit()
	if err != nil {
		return Settings{}, fmt.Errorf("format cluster: %w", c.etcdErr(err))
	}
	if !resp.Succeeded {
		return Settings{}, fmt.Errorf("format cluster: %w (use --force to wipe it)", ErrAlreadyFormatted)
	}
	return s, nil
}

// Settings reads the cluster settings; ErrNotFormatted if there are none.
func (c *Client) Settings(ctx context.Context) (Settings, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.etcd.Get(ctx, c.settingsKey())
	if err != nil {
		return Settings{}, fmt.Errorf("read cluster settings: %w", c.etcdErr(err))
	}
	if len(resp.Kvs) == 0 {
		return Settings{}, ErrNotFormatted
	}
	s, err := decodeSettings(resp.Kvs[0].Value)
	if err != nil {
		return Settings{}, fmt.Errorf("decode cluster settings at %s: %w", c.settingsKey(), err)
	}
	return s, nil
}

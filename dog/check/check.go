package check

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/dog/nodeclient"
	"github.com/sheepblk/sheepblk/placement"
	"github.com/sheepblk/sheepblk/rpc"
	"github.com/sheepblk/sheepblk/sheep/proto"
)

// Options are the arguments of Run.
type Options struct {
	Cluster *cluster.Client
	// RPC configures the connections to the nodes (secret, TLS).
	RPC rpc.ClientOptions
	// Timeout bounds each call to a node (default 5s).
	Timeout time.Duration
	// VDI restricts the check to one VDI ("": all).
	VDI string
	// Repair rewrites replicas that differ from the majority.
	Repair bool
	// Parallel is how many objects are checked at once (default 4).
	Parallel int
	// Progress, if set, is called after each object with the objects
	// checked so far and the total (which grows as VDIs are listed); one
	// call at a time.
	Progress func(done, total int64)
}

// ErrEpochChanged: the membership changed while the check ran; its
// findings are void.
var ErrEpochChanged = errors.New("the epoch changed during the check")

// Replica is one target's copy of an object.
type Replica struct {
	Node string `json:"node"`
	// Listed: the node lists the object (else it reads as zeros there).
	Listed bool `json:"listed"`
	// Sum is the SHA-256 of the whole object as read ("" if unreadable).
	Sum   string `json:"sum,omitempty"`
	Error string `json:"error,omitempty"`
}

// Problem is an object whose replicas are not all there and identical,
// or a condition that affects many objects (Object 0).
type Problem struct {
	VDI    string `json:"vdi"`
	Object uint64 `json:"object,omitempty"`
	Index  uint32 `json:"index"`
	// Kind: "unreadable" (fewer replicas readable than copies),
	// "differ" (readable replicas differ), "node" (a target node cannot
	// be listed: objects only it holds are not checked), "members"
	// (fewer members than the VDI's copies).
	Kind     string    `json:"kind"`
	Message  string    `json:"message"`
	Replicas []Replica `json:"replicas,omitempty"`
	// Repaired: every differing replica now holds the majority's
	// content (read back and compared).
	Repaired    bool   `json:"repaired,omitempty"`
	RepairError string `json:"repair_error,omitempty"`
}

// String is the problem on one line.
func (p Problem) String() string {
	s := p.Message
	switch {
	case p.Repaired:
		s += " (repaired)"
	case p.RepairError != "":
		s += " (not repaired: " + p.RepairError + ")"
	}
	return s
}

// Result is what Run found.
type Result struct {
	Epoch uint64 `json:"epoch"`
	VDIs  int    `json:"vdis"`
	// Objects is how many objects some target lists (and were checked).
	Objects  int64     `json:"objects"`
	Problems []Problem `json:"problems"`
	Repaired int       `json:"repaired"`
}

// Unrepaired counts the problems left.
func (r Result) Unrepaired() int { return len(r.Problems) - r.Repaired }

// checker is one Run.
type checker struct {
	opts    Options
	epoch   cluster.Epoch
	ring    *placement.Ring
	nodes   map[string]*nodeclient.Client // reachable members
	down    map[string]string             // member -> why unreachable
	mu      sync.Mutex
	res     Result
	total   atomic.Int64
	changed atomic.Uint64 // a node's newer epoch, seen in a reply
}

// Run checks the VDIs (opts.VDI or all) of the cluster. It refuses (an
// error wrapping cluster.ErrRecovering) while the current epoch is not
// recovery-complete, and fails with ErrEpochChanged if the epoch moved on
// during the check.
func Run(ctx context.Context, opts Options) (Result, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	cl := opts.Cluster
	e, err := cl.Epoch(ctx)
	if err != nil {
		return Result{}, err
	}
	last, err := cl.LastComplete(ctx)
	if err != nil {
		return Result{}, err
	}
	if e.Number > last {
		return Result{}, fmt.Errorf("check: %w (epoch %d): replicas are expected to differ until it ends; run check when 'dog cluster info' shows it complete", cluster.ErrRecovering, e.Number)
	}
	var vdis []cluster.VDI
	if opts.VDI != "" {
		v, err := cl.VDI(ctx, opts.VDI)
		if err != nil {
			return Result{}, fmt.Errorf("check: %w", err)
		}
		vdis = []cluster.VDI{v}
	} else if vdis, err = cl.VDIs(ctx); err != nil {
		return Result{}, err
	}
	c := &checker{opts: opts, epoch: e, nodes: map[string]*nodeclient.Client{}, down: map[string]string{}}
	c.res.Epoch, c.res.VDIs = e.Number, len(vdis)
	c.res.Problems = []Problem{}
	if len(e.Members) == 0 {
		if len(vdis) > 0 {
			return c.res, fmt.Errorf("check: the cluster has no members: no replica of any object is reachable")
		}
		return c.res, nil
	}
	if c.ring, err = e.Ring(); err != nil {
		return Result{}, fmt.Errorf("check: epoch %d: %w", e.Number, err)
	}
	if err := c.connect(ctx); err != nil {
		return Result{}, err
	}
	defer func() {
		for _, n := range c.nodes {
			n.Close()
		}
	}()
	for _, v := range vdis {
		if err := c.checkVDI(ctx, v); err != nil {
			return c.res, err
		}
	}
	if now, err := cl.Epoch(ctx); err == nil && now.Number != e.Number {
		c.changed.Store(now.Number)
	}
	if n := c.changed.Load(); n != 0 {
		return c.res, fmt.Errorf("check of epoch %d: %w (now %d): run it again", e.Number, ErrEpochChanged, n)
	}
	return c.res, nil
}

// connect makes a client of every registered member and checks it
// answers as itself.
func (c *checker) connect(ctx context.Context) error {
	live, err := c.opts.Cluster.Nodes(ctx)
	if err != nil {
		return err
	}
	addr := map[string]string{}
	for _, n := range live {
		addr[n.ID] = n.Addr
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range c.epoch.Members {
		a, ok := addr[m.ID]
		if !ok {
			c.down[m.ID] = "not registered (down)"
			continue
		}
		wg.Go(func() {
			nc := nodeclient.Dial(m.ID, a, c.opts.RPC, c.opts.Timeout)
			_, err := nc.Info(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				nc.Close()
				c.down[m.ID] = err.Error()
				return
			}
			c.nodes[m.ID] = nc
		})
	}
	wg.Wait()
	return nil
}

func (c *checker) problem(p Problem) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.res.Problems = append(c.res.Problems, p)
	if p.Repaired {
		c.res.Repaired++
	}
}

// checkVDI lists the VDI's objects on every member and checks each listed
// object's replicas.
func (c *checker) checkVDI(ctx context.Context, v cluster.VDI) error {
	copies := min(v.Copies, len(c.epoch.Members))
	if copies < v.Copies {
		c.problem(Problem{VDI: v.Name, Kind: "members", Message: fmt.Sprintf(
			"vdi %s: %d copies wanted, but epoch %d has only %d members: every object has %d", v.Name, v.Copies, c.epoch.Number, len(c.epoch.Members), copies)})
	}
	first := proto.NewObjectID(v.ID, 0)
	end := first + proto.ObjectID(v.Objects())
	listed := map[proto.ObjectID]map[string]bool{}
	for _, m := range c.epoch.Members {
		nc := c.nodes[m.ID]
		why := c.down[m.ID]
		if nc != nil {
			ids, err := nc.List(ctx, first, end)
			if err == nil {
				for _, id := range ids {
					if listed[id] == nil {
						listed[id] = map[string]bool{}
					}
					listed[id][m.ID] = true
				}
				continue
			}
			why = err.Error()
		}
		c.problem(Problem{VDI: v.Name, Kind: "node", Message: fmt.Sprintf(
			"vdi %s: node %s cannot be listed (%s): objects only it holds are not checked", v.Name, m.ID, why)})
	}
	oids := make([]proto.ObjectID, 0, len(listed))
	for id := range listed {
		oids = append(oids, id)
	}
	sort.Slice(oids, func(i, j int) bool { return oids[i] < oids[j] })
	c.total.Add(int64(len(oids)))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Parallel)
	for _, oid := range oids {
		g.Go(func() error {
			p, bad := c.checkObject(gctx, v, oid, copies, listed[oid])
			if bad {
				c.problem(p)
			}
			c.mu.Lock()
			c.res.Objects++
			if c.opts.Progress != nil {
				c.opts.Progress(c.res.Objects, c.total.Load())
			}
			c.mu.Unlock()
			return gctx.Err()
		})
	}
	return g.Wait()
}

// chunkSize is the unit objects are read and written in.
const chunkSize = 1 << 20

// checkObject reads oid from each of its targets and compares them;
// bad: p describes what is wrong (and, with Repair, what was done).
func (c *checker) checkObject(ctx context.Context, v cluster.VDI, oid proto.ObjectID, copies int, listed map[string]bool) (p Problem, bad bool) {
	targets := c.ring.Replicas(uint64(oid), copies, nil)
	p = Problem{VDI: v.Name, Object: uint64(oid), Index: oid.Index()}
	p.Replicas = make([]Replica, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		p.Replicas[i] = Replica{Node: string(t), Listed: listed[string(t)]}
		wg.Go(func() {
			sum, err := c.sum(ctx, string(t), oid, v.ObjectSize)
			if err != nil {
				p.Replicas[i].Error = err.Error()
				return
			}
			p.Replicas[i].Sum = sum
		})
	}
	wg.Wait()
	groups := map[string][]int{} // sum -> replica indexes
	var unreadable []string
	for i, r := range p.Replicas {
		if r.Sum == "" {
			unreadable = append(unreadable, fmt.Sprintf("%s: %s", r.Node, r.Error))
			continue
		}
		groups[r.Sum] = append(groups[r.Sum], i)
	}
	what := fmt.Sprintf("object %v (vdi %s index %d)", oid, v.Name, oid.Index())
	var msgs []string
	if len(unreadable) > 0 {
		p.Kind = "unreadable"
		msgs = append(msgs, fmt.Sprintf("%d of %d replicas readable; %s", len(targets)-len(unreadable), len(targets), strings.Join(unreadable, "; ")))
	}
	if len(groups) > 1 {
		p.Kind = "differ"
		msgs = append(msgs, "replicas differ: "+describeGroups(p.Replicas, groups))
	}
	if len(msgs) == 0 {
		return p, false
	}
	p.Message = what + ": " + strings.Join(msgs, "; ")
	if c.opts.Repair {
		if err := c.repair(ctx, v, oid, &p, groups); err != nil {
			p.RepairError = err.Error()
		} else {
			p.Repaired = true
		}
	}
	return p, true
}

// describeGroups names who holds which content: "a,b: 1f2e3d4c; c: 00aa11bb (not listed)".
func describeGroups(reps []Replica, groups map[string][]int) string {
	sums := make([]string, 0, len(groups))
	for s := range groups {
		sums = append(sums, s)
	}
	sort.Slice(sums, func(i, j int) bool {
		return len(groups[sums[i]]) > len(groups[sums[j]]) || (len(groups[sums[i]]) == len(groups[sums[j]]) && sums[i] < sums[j])
	})
	parts := make([]string, len(sums))
	for i, s := range sums {
		var names []string
		for _, ri := range groups[s] {
			n := reps[ri].Node
			if !reps[ri].Listed {
				n += " (not listed)"
			}
			names = append(names, n)
		}
		parts[i] = strings.Join(names, ",") + ": " + s[:16]
	}
	return strings.Join(parts, "; ")
}

// sum reads the whole object from node in the check's epoch and returns
// its SHA-256.
func (c *checker) sum(ctx context.Context, node string, oid proto.ObjectID, size int64) (string, error) {
	nc := c.nodes[node]
	if nc == nil {
		return "", fmt.Errorf("unreachable (%s)", c.down[node])
	}
	h := sha256.New()
	buf := make([]byte, min(size, chunkSize))
	for off := int64(0); off < size; off += int64(len(buf)) {
		if err := c.read(ctx, nc, oid, off, buf); err != nil {
			return "", err
		}
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (c *checker) read(ctx context.Context, nc *nodeclient.Client, oid proto.ObjectID, off int64, buf []byte) error {
	err := nc.Read(ctx, c.epoch.Number, oid, uint64(off), buf)
	c.noteEpoch(err)
	return err
}

// noteEpoch records that a node answered from another epoch.
func (c *checker) noteEpoch(err error) {
	if errors.Is(err, proto.StatusWrongEpoch) {
		c.changed.CompareAndSwap(0, c.epoch.Number+1)
	}
}

// repair copies the majority's content to every readable replica that
// differs from it, then reads each back to confirm. A tie for the
// majority is refused: there is no telling which content is right.
func (c *checker) repair(ctx context.Context, v cluster.VDI, oid proto.ObjectID, p *Problem, groups map[string][]int) error {
	if len(groups) == 0 {
		return errors.New("no replica readable")
	}
	var best string
	tie := false
	for s, idx := range groups {
		switch {
		case best == "" || len(idx) > len(groups[best]):
			best, tie = s, false
		case len(idx) == len(groups[best]):
			tie = true
		}
	}
	if tie {
		return fmt.Errorf("no majority: %d replicas each hold different content", len(groups[best]))
	}
	if len(groups) == 1 {
		return errors.New("the unreadable replicas cannot be written")
	}
	src := c.nodes[p.Replicas[groups[best][0]].Node]
	var fix []*nodeclient.Client
	for s, idx := range groups {
		if s == best {
			continue
		}
		for _, i := range idx {
			fix = append(fix, c.nodes[p.Replicas[i].Node])
		}
	}
	buf := make([]byte, min(v.ObjectSize, chunkSize))
	for off := int64(0); off < v.ObjectSize; off += int64(len(buf)) {
		if err := c.read(ctx, src, oid, off, buf); err != nil {
			return fmt.Errorf("read the majority's copy: %w", err)
		}
		for _, dst := range fix {
			err := dst.Write(ctx, c.epoch.Number, oid, uint64(off), buf)
			c.noteEpoch(err)
			if err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
	}
	for _, dst := range fix {
		sum, err := c.sum(ctx, dst.ID(), oid, v.ObjectSize)
		if err != nil {
			return fmt.Errorf("read back: %w", err)
		}
		if sum != best {
			return fmt.Errorf("node %s still differs after the rewrite", dst.ID())
		}
	}
	if len(groups[best])+len(fix) < len(p.Replicas) {
		return errors.New("differing replicas rewritten, but unreadable ones remain")
	}
	return nil
}

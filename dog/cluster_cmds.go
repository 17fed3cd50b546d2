package dog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/internal/units"
)

func clusterFormatCmd(g *globals) *cobra.Command {
	var (
		copies, minCopies int
		objectSize        string
		grace             time.Duration
		force             bool
	)
	c := &cobra.Command{
		Use:   "format",
		Short: "Write the cluster settings (refuses a formatted cluster unless --force)",
		Args:  cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			osize, err := units.ParseSize(objectSize)
			if err != nil {
				return usagef("--object-size: %v", err)
			}
			if minCopies < 0 || minCopies > copies {
				return usagef("--min-copies %d: want 0 (a majority of the copies) or 1..%d (--copies)", minCopies, copies)
			}
			if grace < 0 {
				return usagef("--member-grace %v: want 0 (the default, %v) or more", grace, cluster.DefaultMemberGrace)
			}
			cl, err := g.connect()
			if err != nil {
				return err
			}
			defer cl.Close()
			s, err := cl.Format(cmd.Context(), cluster.FormatOptions{
				Copies: copies, ObjectSize: osize, MinCopies: minCopies, MemberGrace: grace, Force: force,
			})
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.io.Stdout, s)
			}
			_, err = fmt.Fprintf(g.io.Stdout, "formatted: %d copies (writes need %d), %s objects, member grace %v\n",
				s.Copies, s.MinCopiesFor(s.Copies), units.FormatSize(s.ObjectSize), s.Grace())
			return err
		}),
	}
	c.Flags().IntVar(&copies, "copies", 3, "replicas of each object")
	c.Flags().IntVar(&minCopies, "min-copies", 0, "fewest replicas a write may land on while members are gone (0: a majority of the copies)")
	c.Flags().DurationVar(&grace, "member-grace", 0, "how long a member may be gone before it is removed and its objects re-replicated (0: 10s)")
	c.Flags().StringVar(&objectSize, "object-size", "4M", "object size, a power of two (e.g. 4M)")
	c.Flags().BoolVar(&force, "force", false, "re-format a formatted cluster, forgetting every VDI")
	return c
}

// ClusterInfo is `dog cluster info --json`.
type ClusterInfo struct {
	Formatted bool              `json:"formatted"`
	Settings  *cluster.Settings `json:"settings,omitempty"`
	// MinCopies and Grace are the settings in effect (defaults applied),
	// MinCopies for VDIs of the cluster's default copies.
	MinCopies int           `json:"min_copies,omitempty"`
	Grace     time.Duration `json:"member_grace_ns,omitempty"`
	Nodes     int           `json:"nodes"` // registered
	Epoch     cluster.Epoch `json:"epoch"`
	// History is the latest epochs, oldest first (--history of them).
	History []cluster.Epoch `json:"history"`
	// Recovery is each member's last recovery report (absent: none yet).
	Recovery map[string]cluster.RecoveryStatus `json:"recovery"`
	// RecoveryComplete is the greatest epoch the whole cluster finished
	// recovering; Recovered says whether that is the current one.
	RecoveryComplete uint64 `json:"recovery_complete"`
	Recovered        bool   `json:"recovered"`
	VDIs             int    `json:"vdis"`
	Etcd             string `json:"etcd"`
}

// recoveryProgress sums the members' progress in the current epoch.
func (ci *ClusterInfo) recoveryProgress() (done, total, bytes int64) {
	for _, m := range ci.Epoch.Members {
		if s, ok := ci.Recovery[m.ID]; ok && s.Epoch == ci.Epoch.Number {
			done, total, bytes = done+s.Done, total+s.Total, bytes+s.Bytes
		}
	}
	return done, total, bytes
}

func clusterInfoCmd(g *globals) *cobra.Command {
	var (
		history int
		watch   bool
	)
	c := &cobra.Command{
		Use:   "info",
		Short: "Show the cluster settings, the epoch history and recovery progress",
		Long: "Shows the settings, the current epoch and the latest ones (number, time, reason, members), each\n" +
			"member's recovery progress in the current epoch and the epoch the cluster last finished recovering.\n" +
			"--watch waits until the current epoch is recovered (a progress bar on a terminal), then shows it.",
		Args: cobra.NoArgs,
		RunE: g.withClient(func(cmd *cobra.Command, _ []string, cl *cluster.Client) error {
			if history < 0 {
				return usagef("--history %d: want 0 (all) or more", history)
			}
			if watch {
				if err := watchRecovery(cmd, g, cl); err != nil {
					return err
				}
			}
			info, err := readClusterInfo(cmd, cl, history)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(g.io.Stdout, info)
			}
			return printClusterInfo(g.io.Stdout, info)
		}),
	}
	c.Flags().IntVar(&history, "history", 10, "how many of the latest epochs to show (0: all)")
	c.Flags().BoolVar(&watch, "watch", false, "wait until the current epoch is recovered, with a progress bar on a terminal")
	return c
}

func readClusterInfo(cmd *cobra.Command, cl *cluster.Client, history int) (*ClusterInfo, error) {
	ctx := cmd.Context()
	info := &ClusterInfo{Etcd: cl.Endpoints()}
	s, err := cl.Settings(ctx)
	switch {
	case err == nil:
		info.Formatted, info.Settings = true, &s
		info.MinCopies, info.Grace = s.MinCopiesFor(s.Copies), s.Grace()
	case !errors.Is(err, cluster.ErrNotFormatted):
		return nil, err
	}
	nodes, err := cl.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	vdis, err := cl.VDIs(ctx)
	if err != nil {
		return nil, err
	}
	if info.Epoch, err = cl.Epoch(ctx); err != nil {
		return nil, err
	}
	from := uint64(1)
	if history > 0 && info.Epoch.Number > uint64(history) {
		from = info.Epoch.Number - uint64(history) + 1
	}
	if info.History, err = cl.Epochs(ctx, from, info.Epoch.Number); err != nil {
		return nil, err
	}
	if info.Recovery, err = cl.RecoveryStatuses(ctx); err != nil {
		return nil, err
	}
	if info.RecoveryComplete, err = cl.LastComplete(ctx); err != nil {
		return nil, err
	}
	info.Recovered = info.RecoveryComplete >= info.Epoch.Number
	info.Nodes, info.VDIs = len(nodes), len(vdis)
	return info, nil
}

func printClusterInfo(w io.Writer, info *ClusterInfo) error {
	if !info.Formatted {
		fmt.Fprintf(w, "Cluster status: not formatted (run 'dog cluster format')\n")
	} else {
		s := info.Settings
		fmt.Fprintf(w, "Cluster status: running\n")
		fmt.Fprintf(w, "Formatted:      %s\n", formatTime(s.FormattedAt))
		fmt.Fprintf(w, "Copies:         %d (writes need at least %d)\n", s.Copies, info.MinCopies)
		fmt.Fprintf(w, "Member grace:   %v\n", info.Grace)
		fmt.Fprintf(w, "Object size:    %s\n", units.FormatSize(s.ObjectSize))
	}
	fmt.Fprintf(w, "Nodes:          %d registered, %d members\n", info.Nodes, len(info.Epoch.Members))
	fmt.Fprintf(w, "VDIs:           %d\n", info.VDIs)
	fmt.Fprintf(w, "etcd:           %s\n", info.Etcd)
	fmt.Fprintf(w, "Epoch:          %d\n", info.Epoch.Number)
	switch {
	case info.Epoch.Number == 0:
		fmt.Fprintf(w, "Recovery:       nothing to recover (no members yet)\n")
	case info.Recovered:
		fmt.Fprintf(w, "Recovery:       complete (epoch %d)\n", info.RecoveryComplete)
	default:
		done, total, bytes := info.recoveryProgress()
		fmt.Fprintf(w, "Recovery:       in progress in epoch %d: %d of %d objects, %s copied (complete through epoch %d)\n",
			info.Epoch.Number, done, total, units.FormatSize(bytes), info.RecoveryComplete)
	}
	if info.Epoch.Number > 0 {
		fmt.Fprintln(w)
		t := newTable(w, "NODE", "EPOCH", "OBJECTS", "COPIED", "RECOVERY", "UPDATED")
		for _, m := range info.Epoch.Members {
			s, ok := info.Recovery[m.ID]
			if !ok {
				t.row(m.ID, "-", "-", "-", "no report yet", "-")
				continue
			}
			t.row(m.ID, fmt.Sprint(s.Epoch), fmt.Sprintf("%d/%d", s.Done, s.Total), units.FormatSize(s.Bytes),
				recoveryState(s, info.Epoch.Number), formatTime(s.Updated))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(info.History) > 0 {
		fmt.Fprintln(w)
		t := newTable(w, "EPOCH", "CHANGED", "MEMBERS", "REASON")
		for i := len(info.History) - 1; i >= 0; i-- {
			e := info.History[i]
			ids := make([]string, len(e.Members))
			for j, m := range e.Members {
				ids[j] = m.ID
			}
			t.row(fmt.Sprint(e.Number), formatTime(e.Changed), dash(strings.Join(ids, ",")), dash(e.Reason))
		}
		return t.flush()
	}
	return nil
}

func recoveryState(s cluster.RecoveryStatus, epoch uint64) string {
	switch {
	case s.Epoch != epoch:
		return fmt.Sprintf("not started (reported epoch %d)", s.Epoch)
	case s.Complete:
		return "complete"
	case s.Waiting != "":
		return "waiting: " + s.Waiting
	}
	return "recovering"
}

// watchRecovery waits until the current epoch (whichever it is by then) is
// recovery-complete, drawing a progress bar on a terminal.
func watchRecovery(cmd *cobra.Command, g *globals, cl *cluster.Client) error {
	ctx := cmd.Context()
	epochs := cl.WatchEpoch(ctx)
	statuses := cl.WatchRecovery(ctx)
	complete := cl.WatchLastComplete(ctx)
	var (
		e    cluster.Epoch
		st   map[string]cluster.RecoveryStatus
		last uint64
		seen int
	)
	bar := newRecoveryBar(g)
	defer bar.finish()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("watch recovery: %w", ctx.Err())
		case e = <-epochs:
			seen |= 1
		case st = <-statuses:
			seen |= 2
		case last = <-complete:
			seen |= 4
		}
		if seen != 7 {
			continue
		}
		if e.Number == 0 || last >= e.Number {
			return nil
		}
		info := ClusterInfo{Epoch: e, Recovery: st}
		done, total, _ := info.recoveryProgress()
		bar.set(e.Number, done, total)
	}
}

// recoveryBar is a progress bar of the recovery on a terminal (stderr),
// else nothing.
type recoveryBar struct {
	out   *os.File
	epoch uint64
	bar   interface {
		ChangeMax64(int64)
		Set64(int64) error
		Describe(string)
		Finish() error
	}
}

func newRecoveryBar(g *globals) *recoveryBar {
	f, ok := terminal(g.io.Stderr)
	if !ok {
		return &recoveryBar{}
	}
	return &recoveryBar{out: f}
}

func (r *recoveryBar) set(epoch uint64, done, total int64) {
	if r.out == nil {
		return
	}
	if r.bar == nil {
		r.bar = newObjectBar(r.out, max(total, 1))
	}
	if epoch != r.epoch {
		r.epoch = epoch
		r.bar.Describe(fmt.Sprintf("recovering epoch %d", epoch))
	}
	r.bar.ChangeMax64(max(total, 1))
	_ = r.bar.Set64(done)
}

func (r *recoveryBar) finish() {
	if r.bar != nil {
		_ = r.bar.Finish()
		fmt.Fprintln(r.out)
	}
}

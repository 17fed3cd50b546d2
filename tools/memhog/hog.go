package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// Options steer a Hog. Zero values take the defaults noted.
type Options struct {
	// AvailPercent is the share of MemTotal the hog leaves available
	// (MemAvailable less dirty and writeback pages: MemInfo.Free); default 5.
	AvailPercent float64
	// Step is how much memory one step maps (default 16 MiB).
	Step int64
	// Max caps what the hog holds (0: no cap but the target).
	Max int64
	// Duration bounds the whole run; required.
	Duration time.Duration
	// Interval is the pause between two steps (default 100ms).
	Interval time.Duration
	// Retouch is how often every held page is written again (default 1s),
	// so the hog's pages stay the most recently used on the machine.
	Retouch time.Duration
	// Log receives progress lines.
	Log zerolog.Logger

	// Tests replace the machine: meminfo, and how memory is mapped.
	memInfo func() (MemInfo, error)
	mapMem  func(size int64) ([]byte, error)
	unmap   func([]byte) error
}

// Stats summarise a run.
type Stats struct {
	PeakHeld     int64         // most memory held at once, bytes
	MinAvailable int64         // lowest MemInfo.Free seen, bytes
	Total        int64         // MemTotal, bytes
	Target       int64         // the MemAvailable aimed at, bytes
	TimeAtTarget time.Duration // time spent with MemInfo.Free at or below target+step
	Steps        int           // chunks mapped
	Releases     int           // chunks given back because the machine fell far below target
	Retouches    int           // passes over every held page
}

// Hog holds memory mapped in steps.
type Hog struct {
	opts   Options
	chunks [][]byte
	held   int64
	page   int
	gen    byte
}

// New checks opts and fills in defaults.
func New(opts Options) (*Hog, error) {
	if opts.Duration <= 0 {
		return nil, errors.New("duration must be positive: memhog always ends on its own")
	}
	if opts.AvailPercent == 0 {
		opts.AvailPercent = 5
	}
	if opts.AvailPercent < 0.5 || opts.AvailPercent > 90 {
		return nil, fmt.Errorf("available share %.1f%% is out of range: want 0.5..90", opts.AvailPercent)
	}
	if opts.Step == 0 {
		opts.Step = 16 << 20
	}
	if opts.Step < 1<<20 || opts.Step > 1<<30 {
		return nil, fmt.Errorf("step %d bytes is out of range: want 1 MiB..1 GiB", opts.Step)
	}
	if opts.Max < 0 {
		return nil, errors.New("max must not be negative")
	}
	if opts.Interval <= 0 {
		opts.Interval = 100 * time.Millisecond
	}
	if opts.Retouch <= 0 {
		opts.Retouch = time.Second
	}
	if opts.memInfo == nil {
		opts.memInfo = readMemInfo
	}
	if opts.mapMem == nil {
		opts.mapMem = mapAnonymous
		opts.unmap = unix.Munmap
	}
	return &Hog{opts: opts, page: os.Getpagesize()}, nil
}

// mapAnonymous maps private anonymous memory: outside the Go heap, so it
// is given back to the kernel the moment it is unmapped.
func mapAnonymous(size int64) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("map %d bytes: %w", size, err)
	}
	return b, nil
}

// Held is how much memory the hog holds now.
func (h *Hog) Held() int64 { return h.held }

// Run steps memory up to the target and holds it until the duration is
// over or ctx is done, then gives everything back.
func (h *Hog) Run(ctx context.Context) (Stats, error) {
	ctx, cancel := context.WithTimeout(ctx, h.opts.Duration)
	defer cancel()
	defer h.releaseAll()
	var st Stats
	tick := time.NewTicker(h.opts.Interval)
	defer tick.Stop()
	lastTouch, lastLog, lastStep := time.Now(), time.Now(), time.Now()
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return st, nil
			case <-tick.C:
			}
		}
		now := time.Now()
		mi, err := h.opts.memInfo()
		if err != nil {
			return st, err
		}
		target := int64(float64(mi.Total) * h.opts.AvailPercent / 100)
		st.Total, st.Target = mi.Total, target
		free := mi.Free()
		if first || free < st.MinAvailable {
			st.MinAvailable = free
		}
		if !first && free <= target+h.opts.Step {
			st.TimeAtTarget += now.Sub(lastStep)
		}
		lastStep = now
		switch {
		case free < target/2 && len(h.chunks) > 0:
			// Far below the target: the OOM killer is near. Give a step back.
			h.releaseLast()
			st.Releases++
		case free > target && (h.opts.Max == 0 || h.held < h.opts.Max):
			size := min(h.opts.Step, free-target)
			if h.opts.Max > 0 {
				size = min(size, h.opts.Max-h.held)
			}
			size = (size + int64(h.page) - 1) / int64(h.page) * int64(h.page)
			if err := h.grow(size); err != nil {
				// The kernel refused the mapping (overcommit limit): hold what we have.
				h.opts.Log.Warn().Err(err).Msg("cannot map another step; holding")
				break
			}
			st.Steps++
		}
		st.PeakHeld = max(st.PeakHeld, h.held)
		if now.Sub(lastTouch) >= h.opts.Retouch {
			h.touchAll()
			st.Retouches++
			lastTouch = now
		}
		if now.Sub(lastLog) >= 2*time.Second {
			h.opts.Log.Info().Int64("held_mib", h.held>>20).Int64("available_mib", mi.Available>>20).
				Int64("dirty_mib", (mi.Dirty+mi.Writeback)>>20).Int64("target_mib", target>>20).Msg("holding")
			lastLog = now
		}
	}
}

// grow maps one chunk and writes every page of it, which is what makes
// the kernel find real memory for it (reclaiming page cache to do so).
func (h *Hog) grow(size int64) error {
	b, err := h.opts.mapMem(size)
	if err != nil {
		return err
	}
	h.chunks = append(h.chunks, b)
	h.held += size
	h.touch(b)
	return nil
}

func (h *Hog) touchAll() {
	h.gen++
	for _, b := range h.chunks {
		h.touch(b)
	}
}

func (h *Hog) touch(b []byte) {
	g := h.gen | 1 // never zero: a touched page is visibly written
	for i := 0; i < len(b); i += h.page {
		b[i] = g
	}
}

func (h *Hog) releaseLast() {
	b := h.chunks[len(h.chunks)-1]
	h.chunks = h.chunks[:len(h.chunks)-1]
	h.held -= int64(len(b))
	if h.opts.unmap != nil {
		_ = h.opts.unmap(b) // a failed munmap only leaves memory mapped until exit
	}
}

func (h *Hog) releaseAll() {
	for len(h.chunks) > 0 {
		h.releaseLast()
	}
}

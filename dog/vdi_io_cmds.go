package dog

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sheepblk/sheepblk/backend/sheep"
	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/internal/rpcflags"
	"github.com/sheepblk/sheepblk/rpc"
)

// nodeFlags adds --secret-file and the TLS flags to c, a command that
// talks to the nodes, and returns it.
func nodeFlags(g *globals, c *cobra.Command) *cobra.Command {
	g.security.Register(c.Flags(), rpcflags.Client)
	return c
}

// ioChunk is the unit of `vdi read`/`vdi write`: the client's default
// largest request, so no request allocates.
const ioChunk = 1 << 20

// ioDepth requests are kept in flight.
const ioDepth = 16

// terminal is w as a file if it is a terminal.
func terminal(w io.Writer) (*os.File, bool) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, false
	}
	return f, true
}

// newObjectBar is a progress bar counting objects.
func newObjectBar(f *os.File, total int64) *progressbar.ProgressBar {
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(f),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(100_000_000),
	)
}

// progress is a progress bar on stderr when it is a terminal, else a no-op.
func progress(g *globals, total int64, what string) io.Writer {
	f, ok := terminal(g.io.Stderr)
	if !ok {
		return io.Discard
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
	)
}

// openVDI connects and opens the client for a VDI.
func openVDI(cmd *cobra.Command, g *globals, name string) (*cluster.Client, *sheep.Backend, error) {
	var rpcOpts rpc.ClientOptions
	if err := g.security.ApplyClient(&rpcOpts); err != nil {
		return nil, nil, err
	}
	cl, err := g.connect()
	if err != nil {
		return nil, nil, err
	}
	b, err := sheep.Open(cmd.Context(), sheep.Options{
		Cluster: cl, VDI: name, CallTimeout: g.timeout, IOTimeout: g.ioTimeout, MaxInFlight: ioDepth, RPC: rpcOpts,
	})
	if err != nil {
		cl.Close()
		return nil, nil, err
	}
	return cl, b, nil
}

// chunk is one request of a pipelined copy.
type chunk struct {
	off  int64
	buf  []byte
	done chan error
}

// ioFlags adds --io-timeout to c, a command doing I/O on a VDI.
func ioFlags(g *globals, c *cobra.Command) *cobra.Command {
	c.Flags().DurationVar(&g.ioTimeout, "io-timeout", sheep.DefaultIOTimeout,
		"how long one read or write may keep retrying (a node restarting, a membership change) before it fails")
	return c
}

func vdiWriteCmd(g *globals) *cobra.Command {
	return ioFlags(g, nodeFlags(g, &cobra.Command{
		Use:   "write NAME < IMAGE",
		Short: "Write an image from stdin to the start of a VDI (then flush)",
		Args:  args(1, "a NAME (the image comes on stdin)"),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			cl, b, err := openVDI(cmd, g, args[0])
			if err != nil {
				return err
			}
			defer cl.Close()
			defer b.Close()
			// Refuse an oversized image before writing any of it, when its
			// size is known (a file, not a pipe).
			if size, ok := inputSize(g.io.Stdin); ok && size > b.Size() {
				return fmt.Errorf("write vdi %s: the image (%d bytes) is larger than the vdi (%d bytes)", args[0], size, b.Size())
			}
			bar := progress(g, b.Size(), "write "+args[0])
			n, err := pipelineWrite(b, g.io.Stdin, bar)
			if err != nil {
				return fmt.Errorf("write vdi %s after %d bytes: %w", args[0], n, err)
			}
			if err := b.Flush(); err != nil {
				return fmt.Errorf("write vdi %s: %w", args[0], err)
			}
			if g.json {
				return printJSON(g.io.Stdout, map[string]any{"vdi": args[0], "bytes": n})
			}
			_, err = fmt.Fprintf(g.io.Stderr, "wrote %d bytes to vdi %s\n", n, args[0])
			return err
		}),
	}))
}

// inputSize is the size of r if it is a regular file or knows its size.
func inputSize(r io.Reader) (int64, bool) {
	switch v := r.(type) {
	case *os.File:
		st, err := v.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return 0, false
		}
		pos, err := v.Seek(0, io.SeekCurrent)
		if err != nil {
			return 0, false
		}
		return st.Size() - pos, true
	case interface{ Size() int64 }:
		return v.Size(), true
	}
	return 0, false
}

// pipelineWrite copies r to the VDI from offset 0 with ioDepth writes in
// flight; it returns the bytes written.
func pipelineWrite(b *sheep.Backend, r io.Reader, bar io.Writer) (int64, error) {
	free := make(chan []byte, ioDepth)
	for range ioDepth {
		free <- make([]byte, ioChunk)
	}
	inflight := make(chan *chunk, ioDepth)
	var written int64
	errc := make(chan error, 1)
	go func() { // retires writes in order, counting what is durable-bound
		var first error
		for c := range inflight {
			if err := <-c.done; err != nil && first == nil {
				first = err
			}
			if first == nil {
				written += int64(len(c.buf))
				bar.Write(c.buf)
			}
			free <- c.buf[:cap(c.buf)]
		}
		errc <- first
	}()
	var off int64
	var readErr error
	for {
		buf := <-free
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if off+int64(n) > b.Size() {
				readErr = fmt.Errorf("the image is larger than the vdi (%d bytes)", b.Size())
				break
			}
			c := &chunk{off: off, buf: buf[:n], done: make(chan error, 1)}
			go func() { _, err := b.WriteAt(c.buf, c.off); c.done <- err }()
			inflight <- c
			off += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("read the image: %w", err)
			break
		}
	}
	close(inflight)
	werr := <-errc
	if werr != nil {
		return written, werr
	}
	return written, readErr
}

func vdiReadCmd(g *globals) *cobra.Command {
	return ioFlags(g, nodeFlags(g, &cobra.Command{
		Use:   "read NAME > IMAGE",
		Short: "Write a VDI's whole content to stdout",
		Args:  args(1, "a NAME (the image goes to stdout)"),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if f, ok := g.io.Stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				return usagef("stdout is a terminal: redirect it to a file (dog vdi read %s > image)", args[0])
			}
			cl, b, err := openVDI(cmd, g, args[0])
			if err != nil {
				return err
			}
			defer cl.Close()
			defer b.Close()
			bar := progress(g, b.Size(), "read "+args[0])
			if err := pipelineRead(b, io.MultiWriter(g.io.Stdout, bar)); err != nil {
				return fmt.Errorf("read vdi %s: %w", args[0], err)
			}
			return nil
		}),
	}))
}

// pipelineRead copies the whole VDI to w, in order, with ioDepth reads in
// flight.
func pipelineRead(b *sheep.Backend, w io.Writer) error {
	free := make(chan []byte, ioDepth)
	for range ioDepth {
		free <- make([]byte, ioChunk)
	}
	inflight := make(chan *chunk, ioDepth)
	stop := make(chan struct{})
	go func() {
		defer close(inflight)
		for off := int64(0); off < b.Size(); off += ioChunk {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			c := &chunk{off: off, buf: buf[:min(ioChunk, b.Size()-off)], done: make(chan error, 1)}
			go func() { _, err := b.ReadAt(c.buf, c.off); c.done <- err }()
			inflight <- c
		}
	}()
	var first error
	for c := range inflight {
		err := <-c.done
		if first == nil && err != nil {
			first = err
			close(stop)
		}
		if first == nil {
			if _, err := w.Write(c.buf); err != nil {
				first = fmt.Errorf("write the image: %w", err)
				close(stop)
			}
		}
		free <- c.buf[:cap(c.buf)]
	}
	return first
}

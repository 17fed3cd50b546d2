package initramfs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Stage is a directory tree being built into an archive.
type Stage struct {
	root string
}

// NewStage starts an empty tree in a new directory under parent.
func NewStage(parent string) (*Stage, error) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("create staging parent: %w", err)
	}
	dir, err := os.MkdirTemp(parent, "stage-")
	if err != nil {
		return nil, fmt.Errorf("create staging dir: %w", err)
	}
	return &Stage{root: dir}, nil
}

// Remove deletes the staging tree.
func (s *Stage) Remove() error { return os.RemoveAll(s.root) }

func (s *Stage) hostPath(guestPath string) (string, error) {
	clean := path.Clean("/" + guestPath)
	if clean == "/" {
		return "", fmt.Errorf("guest path %q names the root", guestPath)
	}
	return filepath.Join(s.root, filepath.FromSlash(clean)), nil
}

// Mkdir creates a directory (and its parents) in the guest tree.
func (s *Stage) Mkdir(guestPath string) error {
	p, err := s.hostPath(guestPath)
	if err != nil {
		return err
	}
	return os.MkdirAll(p, 0o755)
}

// AddBytes writes data to guestPath with the given mode.
func (s *Stage) AddBytes(guestPath string, data []byte, mode fs.FileMode) error {
	p, err := s.hostPath(guestPath)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("stage %s: %w", guestPath, err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		return fmt.Errorf("stage %s: %w", guestPath, err)
	}
	return os.Chmod(p, mode) // WriteFile keeps an existing file's mode
}

// AddFile copies a host file (following symlinks) to guestPath, keeping
// its permission bits.
func (s *Stage) AddFile(hostPath, guestPath string) error {
	fi, err := os.Stat(hostPath)
	if err != nil {
		return fmt.Errorf("stage %s: %w", hostPath, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("stage %s: is a directory (use AddTree)", hostPath)
	}
	data, err := os.ReadFile(hostPath)
	if err != nil {
		return fmt.Errorf("stage %s: %w", hostPath, err)
	}
	return s.AddBytes(guestPath, data, fi.Mode().Perm())
}

// AddTree copies a host directory tree to guestPath.
func (s *Stage) AddTree(hostDir, guestPath string) error {
	return filepath.WalkDir(hostDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(hostDir, p)
		if err != nil {
			return err
		}
		dst := path.Join(guestPath, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			return s.Mkdir(dst)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return s.AddSymlink(target, dst)
		default:
			return s.AddFile(p, dst)
		}
	})
}

// AddSymlink makes guestPath a symlink to target (replacing what was there).
func (s *Stage) AddSymlink(target, guestPath string) error {
	p, err := s.hostPath(guestPath)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("stage link %s: %w", guestPath, err)
	}
	_ = os.Remove(p)
	if err := os.Symlink(target, p); err != nil {
		return fmt.Errorf("stage link %s: %w", guestPath, err)
	}
	return nil
}

// AddExecutable copies a host executable to guestPath and, if it is
// dynamically linked, every library ldd lists (and the loader) to the same
// paths they have on the host, directories' symlinks resolved (so a
// merged-/usr host's /lib/x86_64-linux-gnu lands in /usr/lib/...; the base
// image links /lib to usr/lib like the host does).
func (s *Stage) AddExecutable(hostPath, guestPath string) error {
	if err := s.AddFile(hostPath, guestPath); err != nil {
		return err
	}
	libs, err := sharedLibraries(hostPath)
	if err != nil {
		return err
	}
	for _, lib := range libs {
		real, err := filepath.EvalSymlinks(filepath.Dir(lib))
		if err != nil {
			return fmt.Errorf("resolve library dir of %s: %w", lib, err)
		}
		if err := s.AddFile(lib, path.Join(filepath.ToSlash(real), filepath.Base(lib))); err != nil {
			return err
		}
	}
	return nil
}

// sharedLibraries runs ldd on an executable and returns the absolute paths
// it prints; a static executable has none.
func sharedLibraries(exe string) ([]string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("ldd", exe)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if bytes.Contains(out, []byte("not a dynamic executable")) || bytes.Contains(stderr.Bytes(), []byte("not a dynamic executable")) {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %w: %s", exe, err, strings.TrimSpace(stderr.String()))
	}
	return parseLdd(out)
}

// parseLdd reads lines "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)"
// and "/lib64/ld-linux-x86-64.so.2 (0x...)"; vdso lines have no path.
func parseLdd(out []byte) ([]string, error) {
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("ldd: missing library: %s", line)
		}
		if _, after, ok := strings.Cut(line, "=> "); ok {
			line = after
		}
		if p, _, _ := strings.Cut(line, " "); strings.HasPrefix(p, "/") {
			libs = append(libs, p)
		}
	}
	return libs, sc.Err()
}

// WriteArchive packs the tree as a gzip newc cpio archive (owner root) into
// w, using the system's cpio.
func (s *Stage) WriteArchive(w io.Writer) error {
	var names []string
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == s.root {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		names = append(names, rel)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list staging tree: %w", err)
	}
	sort.Strings(names) // parents before children
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd := exec.Command("cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0")
	cmd.Dir = s.root
	cmd.Stdin = strings.NewReader(strings.Join(names, "\n") + "\n")
	cmd.Stdout = zw
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cpio: %w: %s (is cpio installed?)", err, strings.TrimSpace(stderr.String()))
	}
	return zw.Close()
}

// WriteArchiveFile packs the tree into file, atomically.
func (s *Stage) WriteArchiveFile(file string) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".initramfs-")
	if err != nil {
		return fmt.Errorf("create archive: %w", err)
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := s.WriteArchive(bw); err != nil {
		tmp.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("write archive: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	return os.Rename(tmp.Name(), file)
}

// Concat writes the archives one after the other into file (the kernel
// unpacks each in turn).
func Concat(file string, archives ...string) error {
	out, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("create initrd: %w", err)
	}
	for _, a := range archives {
		in, err := os.Open(a)
		if err != nil {
			out.Close()
			return fmt.Errorf("initrd part: %w", err)
		}
		_, err = io.Copy(out, in)
		in.Close()
		if err != nil {
			out.Close()
			return fmt.Errorf("initrd part %s: %w", a, err)
		}
	}
	return out.Close()
}

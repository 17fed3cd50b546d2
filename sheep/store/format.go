package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sheepblk/sheepblk/sheep/proto"
)

const (
	formatFile    = "format.json"
	formatName    = "sheepblk-object-store"
	formatVersion = 1
	objectsDir    = "objects"
	tmpDir        = "tmp"
	staleDir      = "stale"
)

// format is the content of format.json.
type format struct {
	Format     string `json:"format"`
	Version    int    `json:"version"`
	ObjectSize uint32 `json:"object_size"`
}

// ErrFormat is wrapped by every error about a directory that is not a
// store this version can serve.
var ErrFormat = errors.New("not a usable sheep object store")

// loadOrCreateFormat reads dir's format file, or writes one for objectSize
// when dir is empty (apart from names in allowed). It returns the dir's
// object size; wantSize 0 accepts any.
func loadOrCreateFormat(dir string, wantSize uint32, allowed map[string]bool) (uint32, error) {
	path := filepath.Join(dir, formatFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createFormat(dir, wantSize, allowed)
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	var f format
	if err := json.Unmarshal(b, &f); err != nil {
		return 0, fmt.Errorf("%s: %w: %v", path, ErrFormat, err)
	}
	if f.Format != formatName {
		return 0, fmt.Errorf("%s: %w: format %q, want %q", path, ErrFormat, f.Format, formatName)
	}
	if f.Version != formatVersion {
		return 0, fmt.Errorf("%s: %w: format version %d, this sheep reads version %d", path, ErrFormat, f.Version, formatVersion)
	}
	if err := proto.CheckObjectSize(f.ObjectSize); err != nil {
		return 0, fmt.Errorf("%s: %w: %v", path, ErrFormat, err)
	}
	if wantSize != 0 && f.ObjectSize != wantSize {
		return 0, fmt.Errorf("%s: %w: it holds objects of %d bytes, the cluster uses %d (use another dir for this cluster)",
			dir, ErrFormat, f.ObjectSize, wantSize)
	}
	return f.ObjectSize, nil
}

func createFormat(dir string, size uint32, allowed map[string]bool) (uint32, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range ents {
		if !allowed[e.Name()] {
			return 0, fmt.Errorf("%s: %w: it is not empty (holds %q) and has no %s; give an empty or new dir",
				dir, ErrFormat, e.Name(), formatFile)
		}
	}
	b, err := json.Marshal(format{Format: formatName, Version: formatVersion, ObjectSize: size})
	if err != nil {
		return 0, err
	}
	if err := WriteFileAtomic(filepath.Join(dir, formatFile), append(b, '\n')); err != nil {
		return 0, err
	}
	return size, nil
}

// WriteFileAtomic replaces path with data durably: written to a temporary
// file beside it, fsync'ed, renamed over path, and the directory fsync'ed,
// so a crash leaves either the old content or the new one.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

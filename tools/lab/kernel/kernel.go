package kernel

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/rs/zerolog"
)

// Suites maps a kernel label to the Debian suite whose
// linux-image-cloud-amd64 it is.
var Suites = map[string]string{
	"6.12": "trixie",
	"7.3":  "trixie-backports",
}

// Labels returns the known labels, sorted.
func Labels() []string {
	labels := make([]string, 0, len(Suites))
	for l := range Suites {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	return labels
}

// WantedModules are the modules the lab loads, in no particular order;
// their dependencies are added automatically. Only ublk_drv is required:
// the others may be built in or absent from a kernel.
var WantedModules = []string{"ublk_drv", "virtio_pci", "virtio_blk", "null_blk", "loop", "nbd", "brd"}

const metaPackage = "linux-image-cloud-amd64"

// Kernel is an unpacked, cached guest kernel.
type Kernel struct {
	Label   string // "6.12"
	Version string // "6.12.107+deb13-cloud-amd64"
	Dir     string // cache directory of this version
}

// Vmlinuz is the kernel image to pass to QEMU's -kernel.
func (k *Kernel) Vmlinuz() string { return filepath.Join(k.Dir, "vmlinuz") }

// ModulesDir holds the decompressed modules and load.order.
func (k *Kernel) ModulesDir() string { return filepath.Join(k.Dir, "modules") }

// LoadOrder lists the module file names (within ModulesDir) in an order
// insmod accepts: every module after its dependencies.
func (k *Kernel) LoadOrder() ([]string, error) {
	b, err := os.ReadFile(filepath.Join(k.ModulesDir(), "load.order"))
	if err != nil {
		return nil, fmt.Errorf("read module load order of %s: %w", k.Version, err)
	}
	return strings.Fields(string(b)), nil
}

// Options control Fetch.
type Options struct {
	CacheDir string // defaults to DefaultCacheDir()
	Mirror   string // defaults to http://deb.debian.org/debian
	// Refresh re-resolves the label against the archive even when a cached
	// kernel exists (and downloads it if the archive has a newer one).
	Refresh bool
	Log     zerolog.Logger
}

// DefaultCacheDir is ${XDG_CACHE_HOME:-$HOME/.cache}/sheepblk-lab.
func DefaultCacheDir() string {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "sheepblk-lab")
}

const completeStamp = "complete"

// Fetch returns the kernel for label, from the cache when it is there and
// otherwise downloaded, unpacked and cached.
func Fetch(ctx context.Context, label string, opts Options) (*Kernel, error) {
	suite, ok := Suites[label]
	if !ok {
		return nil, fmt.Errorf("unknown kernel %q (want one of %s)", label, strings.Join(Labels(), ", "))
	}
	if opts.CacheDir == "" {
		opts.CacheDir = DefaultCacheDir()
	}
	if opts.Mirror == "" {
		opts.Mirror = "http://deb.debian.org/debian"
	}
	if !opts.Refresh {
		if k, err := cached(opts.CacheDir, label); err == nil {
			return k, nil
		}
	}
	repo, err := newAptRepo(opts.CacheDir, suite, opts.Mirror)
	if err != nil {
		return nil, err
	}
	opts.Log.Info().Str("kernel", label).Str("suite", suite).Msg("updating private apt lists")
	if err := repo.update(ctx); err != nil {
		return nil, fmt.Errorf("kernel %s: %w", label, err)
	}
	deps, err := repo.depends(ctx, metaPackage)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", label, err)
	}
	imagePkg := ""
	for _, d := range deps {
		if strings.HasPrefix(d, "linux-image-") {
			imagePkg = d
			break
		}
	}
	if imagePkg == "" {
		return nil, fmt.Errorf("kernel %s: %s in %s depends on no linux-image-* package (got %v)", label, metaPackage, suite, deps)
	}
	k := &Kernel{Label: label, Version: strings.TrimPrefix(imagePkg, "linux-image-")}
	k.Dir = filepath.Join(opts.CacheDir, k.Version)
	if _, err := os.Stat(filepath.Join(k.Dir, completeStamp)); err != nil {
		if err := unpack(ctx, repo, k, imagePkg, opts.Log); err != nil {
			return nil, fmt.Errorf("kernel %s (%s): %w", label, k.Version, err)
		}
	}
	if err := os.WriteFile(versionFile(opts.CacheDir, label), []byte(k.Version+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("record kernel version: %w", err)
	}
	return k, nil
}

func versionFile(cacheDir, label string) string {
	return filepath.Join(cacheDir, label+".version")
}

// cached returns the kernel label last resolved to, if it is complete.
func cached(cacheDir, label string) (*Kernel, error) {
	b, err := os.ReadFile(versionFile(cacheDir, label))
	if err != nil {
		return nil, err
	}
	k := &Kernel{Label: label, Version: strings.TrimSpace(string(b))}
	k.Dir = filepath.Join(cacheDir, k.Version)
	if _, err := os.Stat(filepath.Join(k.Dir, completeStamp)); err != nil {
		return nil, err
	}
	return k, nil
}

// unpack downloads the image package and, for split kernels, the
// linux-binary-*/linux-modules-* packages it depends on, then keeps only
// the kernel image and the wanted modules.
func unpack(ctx context.Context, repo *aptRepo, k *Kernel, imagePkg string, log zerolog.Logger) error {
	work, err := os.MkdirTemp(filepath.Dir(k.Dir), "unpack-")
	if err != nil {
		return fmt.Errorf("create unpack dir: %w", err)
	}
	defer os.RemoveAll(work)
	pkgs := []string{imagePkg}
	deps, err := repo.depends(ctx, imagePkg)
	if err != nil {
		return err
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "linux-binary-") || strings.HasPrefix(d, "linux-modules-") {
			pkgs = append(pkgs, d)
		}
	}
	for _, p := range pkgs {
		log.Info().Str("package", p).Msg("downloading")
		if err := repo.downloadAndUnpack(ctx, p, work); err != nil {
			return err
		}
	}
	vmlinuz, modRoot, err := locate(work, k.Version)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(k.Dir); err != nil {
		return fmt.Errorf("clear %s: %w", k.Dir, err)
	}
	if err := os.MkdirAll(k.ModulesDir(), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", k.ModulesDir(), err)
	}
	if err := copyFile(vmlinuz, k.Vmlinuz()); err != nil {
		return err
	}
	order, err := collectModules(modRoot, k.ModulesDir(), WantedModules, log)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(k.ModulesDir(), "load.order"), []byte(strings.Join(order, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("write load order: %w", err)
	}
	log.Info().Str("version", k.Version).Strs("modules", order).Msg("kernel cached")
	return os.WriteFile(filepath.Join(k.Dir, completeStamp), nil, 0o644)
}

// locate finds the kernel image (boot/vmlinuz-V in classic packages,
// usr/lib/modules/V/vmlinuz in split ones) and the module tree.
func locate(root, version string) (vmlinuz, modRoot string, err error) {
	for _, p := range []string{
		filepath.Join(root, "boot", "vmlinuz-"+version),
		filepath.Join(root, "usr/lib/modules", version, "vmlinuz"),
		filepath.Join(root, "lib/modules", version, "vmlinuz"),
	} {
		if _, err := os.Stat(p); err == nil {
			vmlinuz = p
			break
		}
	}
	for _, p := range []string{
		filepath.Join(root, "usr/lib/modules", version),
		filepath.Join(root, "lib/modules", version),
	} {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			modRoot = p
			break
		}
	}
	if vmlinuz == "" {
		return "", "", fmt.Errorf("%w for %s in the unpacked packages", errNoKernel, version)
	}
	if modRoot == "" {
		return "", "", fmt.Errorf("no module tree for %s in the unpacked packages", version)
	}
	return vmlinuz, modRoot, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		return fmt.Errorf("copy to %s: %w", dst, err)
	}
	return nil
}

// findModules indexes every module file under root by module name
// (file name without .ko[.xz|.gz|.zst], '-' folded to '_').
func findModules(root string) (map[string]string, error) {
	idx := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if name, ok := moduleName(d.Name()); ok {
			idx[name] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index modules under %s: %w", root, err)
	}
	return idx, nil
}

func moduleName(file string) (string, bool) {
	for _, ext := range []string{".ko", ".ko.xz", ".ko.gz", ".ko.zst"} {
		if base, ok := strings.CutSuffix(file, ext); ok {
			return strings.ReplaceAll(base, "-", "_"), true
		}
	}
	return "", false
}

var errModuleMissing = errors.New("module not found")

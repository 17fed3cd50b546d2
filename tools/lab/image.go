package main

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rs/zerolog"

	"github.com/sheepblk/sheepblk/tools/lab/initramfs"
	"github.com/sheepblk/sheepblk/tools/lab/kernel"
)

//go:embed init.sh
var initScript []byte

// coreTools are the real (non-busybox) tools the guest scripts call by
// full path, in every image; optionalTools (needs.go) go in when the
// selected scripts need them.
var (
	coreTools = []string{
		"/usr/sbin/mke2fs", "/usr/sbin/mkfs.ext4", "/usr/sbin/e2fsck",
		"/usr/sbin/blkdiscard", "/usr/sbin/losetup", "/usr/sbin/blockdev",
		"/usr/bin/jq",
	}
	hostFiles = []string{"/etc/mke2fs.conf"}
)

var guestEtc = map[string][]byte{
	"/etc/hosts":  []byte("127.0.0.1\tlocalhost lab\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
	"/etc/passwd": []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
	"/etc/group":  []byte("root:x:0:\nnogroup:x:65534:\n"),
}

// imageOptions say what goes into one boot's initramfs.
type imageOptions struct {
	cacheDir string
	outDir   string
	binDir   string   // the project's static binaries (make build)
	testsDir string   // tests/lab
	goTests  []string // packages whose test binaries go in
	plan     []byte   // /lab/plan
	needs    imageNeeds
	// vmlinuz, when set, puts a nested QEMU and this kernel image into the
	// guest (run --with-qemu).
	vmlinuz string
	log     zerolog.Logger
}

// buildInitrd returns the path of the initrd for k: the cached base
// archive followed by this run's overlay.
func buildInitrd(k *kernel.Kernel, o imageOptions) (string, error) {
	tools := append([]string{}, coreTools...)
	for _, t := range coreTools {
		if _, err := os.Stat(t); err != nil {
			return "", fmt.Errorf("lab tool %s missing on the host: install e2fsprogs, util-linux and jq", t)
		}
	}
	for _, t := range optionalTools {
		if !o.needs.has(filepath.Base(t.path)) {
			continue
		}
		if _, err := os.Stat(t.path); err == nil {
			tools = append(tools, t.path)
		} else if t.required {
			return "", fmt.Errorf("lab tool %s missing on the host: install it (a selected test needs %s)", t.path, filepath.Base(t.path))
		}
	}
	order, err := k.LoadOrder()
	if err != nil {
		return "", err
	}
	var modules []string
	for _, m := range order {
		modules = append(modules, filepath.Join(k.ModulesDir(), m))
	}
	base, err := initramfs.Base(initramfs.BaseOptions{
		CacheDir: o.cacheDir,
		Key:      k.Version,
		Busybox:  "/bin/busybox",
		Tools:    tools,
		Files:    hostFiles,
		Modules:  modules,
		Extra:    guestEtc,
	})
	if err != nil {
		return "", fmt.Errorf("base initramfs: %w", err)
	}
	overlay := filepath.Join(o.outDir, "overlay-"+k.Label+".cpio.gz")
	if err := buildOverlay(overlay, o); err != nil {
		return "", fmt.Errorf("overlay initramfs: %w", err)
	}
	initrd := filepath.Join(o.outDir, "initrd-"+k.Label+".img")
	if err := initramfs.Concat(initrd, base, overlay); err != nil {
		return "", err
	}
	return initrd, nil
}

func buildOverlay(file string, o imageOptions) error {
	st, err := initramfs.NewStage(o.outDir)
	if err != nil {
		return err
	}
	defer st.Remove()
	if err := st.AddBytes("/init", initScript, 0o755); err != nil {
		return err
	}
	if err := st.AddBytes("/lab/plan", o.plan, 0o644); err != nil {
		return err
	}
	if err := st.AddTree(o.testsDir, "/lab/tests"); err != nil {
		return fmt.Errorf("add guest tests from %s: %w", o.testsDir, err)
	}
	if err := st.Mkdir("/lab/gotest"); err != nil {
		return err
	}
	all, err := projectBinaries(o.binDir)
	if err != nil {
		return err
	}
	var bins []string
	for _, p := range all {
		if o.needs.has(filepath.Base(p)) {
			bins = append(bins, p)
		}
	}
	for _, p := range bins {
		if err := st.AddFile(p, "/usr/local/bin/"+filepath.Base(p)); err != nil {
			return err
		}
	}
	for _, name := range expectedBinaries {
		if o.needs.has(name) && !slices.Contains(bins, filepath.Join(o.binDir, name)) {
			o.log.Warn().Str("binary", filepath.Join(o.binDir, name)).Msg("not built; the guest runs without it (make build)")
		}
	}
	if o.vmlinuz != "" {
		if err := addNestedQemu(st, o.vmlinuz); err != nil {
			return err
		}
	}
	testBins, err := buildGoTests(o)
	if err != nil {
		return err
	}
	for _, tb := range testBins {
		if err := st.AddFile(tb, "/lab/gotest/"+filepath.Base(tb)); err != nil {
			return err
		}
	}
	return st.WriteArchiveFile(file)
}

// expectedBinaries are the binaries the lab tests call; a missing one is
// worth a warning (the scripts that need it skip or fail).
var expectedBinaries = []string{"ublkctl", "sheep", "dog", "memhog"}

// projectBinaries lists every executable file in binDir: make build puts
// the project's static binaries there, helpers included, and all of them
// go into the guest.
func projectBinaries(binDir string) ([]string, error) {
	entries, err := os.ReadDir(binDir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list project binaries: %w", err)
	}
	var bins []string
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			continue
		}
		bins = append(bins, filepath.Join(binDir, e.Name()))
	}
	return bins, nil
}

// buildGoTests compiles each package's tests into a static binary
// (CGO_ENABLED=0: AllThreadsSyscall needs it, and the guest has no libc
// for Go). A package that does not compile yet, or has no tests, is
// skipped with a warning: others may still be writing it.
func buildGoTests(o imageOptions) ([]string, error) {
	dir := filepath.Join(o.outDir, "gotest")
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clear %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	var bins []string
	for _, pkg := range o.goTests {
		name := filepath.Base(strings.TrimSuffix(pkg, "/...")) + ".test"
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "test", "-c", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.Stdout = &stderr
		if err := cmd.Run(); err != nil {
			o.log.Warn().Str("package", pkg).Str("error", compilerSummary(stderr.String())).Msg("test binary does not build; left out")
			continue
		}
		if _, err := os.Stat(out); err != nil {
			o.log.Info().Str("package", pkg).Msg("no tests; left out")
			continue
		}
		bins = append(bins, out)
	}
	return bins, nil
}

// compilerSummary squeezes compiler output into one log field: its first
// three lines.
func compilerSummary(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 3 {
		lines = lines[:3]
	}
	return strings.Join(lines, "; ")
}

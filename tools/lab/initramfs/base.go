package initramfs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// baseFormat changes whenever Base lays out the tree differently, so that
// cached archives from an older runner are not reused.
const baseFormat = "base-v1"

// BaseOptions say what goes into the cached base image.
type BaseOptions struct {
	CacheDir string // where base archives are kept
	// Key distinguishes otherwise identical inputs, e.g. the kernel version.
	Key string
	// Busybox is a static busybox; it provides /bin/sh and the applets.
	Busybox string
	// Tools are host executables copied to the same path with their
	// libraries. Busybox applets of the same name are left out, so that a
	// script calling "losetup" cannot get busybox's by accident.
	Tools []string
	// Files are host files copied to the same path (e.g. /etc/mke2fs.conf);
	// missing ones are skipped.
	Files []string
	// Modules are kernel modules (host paths) copied to /lib/modules in
	// the given order; /lib/modules/load.order lists them for /init.
	Modules []string
	// Extra are guest files written verbatim (e.g. /etc/hosts).
	Extra map[string][]byte
}

// mergedUsrLinks are the top-level links of a merged-/usr system; the
// guest mirrors whichever of them the host has, so library paths from ldd
// work unchanged.
var mergedUsrLinks = []string{"/bin", "/sbin", "/lib", "/lib64"}

// Base returns the path of a base archive built from opts, building it
// only if no archive with the same inputs is cached.
func Base(opts BaseOptions) (string, error) {
	key, err := baseKey(opts)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(opts.CacheDir, "initramfs")
	file := filepath.Join(dir, "base-"+key[:20]+".cpio.gz")
	if _, err := os.Stat(file); err == nil {
		return file, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create initramfs cache: %w", err)
	}
	st, err := NewStage(dir)
	if err != nil {
		return "", err
	}
	defer st.Remove()
	if err := fillBase(st, opts); err != nil {
		return "", err
	}
	if err := st.WriteArchiveFile(file); err != nil {
		return "", err
	}
	pruneBases(dir, keepBases)
	return file, nil
}

// keepBases is how many base archives stay cached: one per kernel, and
// room for a host tool upgrade not to evict the other kernel's.
const keepBases = 4

// pruneBases deletes all but the keep most recently built base archives
// (each is about 50 MB).
func pruneBases(dir string, keep int) {
	files, _ := filepath.Glob(filepath.Join(dir, "base-*.cpio.gz"))
	type aged struct {
		path string
		mod  int64
	}
	var all []aged
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			all = append(all, aged{f, fi.ModTime().UnixNano()})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod > all[j].mod })
	for i := keep; i < len(all); i++ {
		_ = os.Remove(all[i].path)
	}
}

// baseKey hashes every input's identity (path, size, mtime), so a tool
// upgraded on the host rebuilds the base.
func baseKey(opts BaseOptions) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", baseFormat, opts.Key)
	inputs := append([]string{opts.Busybox}, opts.Tools...)
	inputs = append(inputs, opts.Files...)
	inputs = append(inputs, opts.Modules...)
	for _, p := range inputs {
		fi, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(h, "%s missing\n", p)
			continue
		}
		fmt.Fprintf(h, "%s %d %d\n", p, fi.Size(), fi.ModTime().UnixNano())
	}
	for _, name := range sortedKeys(opts.Extra) {
		fmt.Fprintf(h, "%s %x\n", name, sha256.Sum256(opts.Extra[name]))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fillBase(st *Stage, opts BaseOptions) error {
	for _, link := range mergedUsrLinks {
		target, err := os.Readlink(link)
		if err != nil {
			continue // not a link on this host: a plain directory
		}
		if err := st.Mkdir(path.Join("/", target)); err != nil {
			return err
		}
		if err := st.AddSymlink(target, link); err != nil {
			return err
		}
	}
	for _, d := range []string{"/dev", "/proc", "/sys", "/tmp", "/run", "/root", "/mnt", "/scratch", "/etc", "/usr/local/bin", "/lib/modules"} {
		if err := st.Mkdir(d); err != nil {
			return err
		}
	}
	if err := addBusybox(st, opts.Busybox, opts.Tools); err != nil {
		return err
	}
	for _, tool := range opts.Tools {
		if err := st.AddExecutable(tool, tool); err != nil {
			return fmt.Errorf("add tool %s: %w", tool, err)
		}
	}
	for _, f := range opts.Files {
		if _, err := os.Stat(f); err != nil {
			continue
		}
		if err := st.AddFile(f, f); err != nil {
			return err
		}
	}
	var order []string
	for _, m := range opts.Modules {
		name := filepath.Base(m)
		if err := st.AddFile(m, "/lib/modules/"+name); err != nil {
			return err
		}
		order = append(order, name)
	}
	if err := st.AddBytes("/lib/modules/load.order", []byte(strings.Join(order, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	for _, name := range sortedKeys(opts.Extra) {
		if err := st.AddBytes(name, opts.Extra[name], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// addBusybox installs busybox as /bin/busybox with a link per applet,
// except applets that a real tool in tools replaces.
func addBusybox(st *Stage, busybox string, tools []string) error {
	if err := st.AddFile(busybox, "/bin/busybox"); err != nil {
		return fmt.Errorf("add busybox: %w (install busybox-static)", err)
	}
	if libs, err := sharedLibraries(busybox); err != nil || len(libs) > 0 {
		return fmt.Errorf("busybox %s is not static (install busybox-static)", busybox)
	}
	out, err := exec.Command(busybox, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("busybox --list-full: %w", err)
	}
	replaced := map[string]bool{}
	for _, t := range tools {
		replaced[filepath.Base(t)] = true
	}
	for _, applet := range strings.Fields(string(out)) {
		if replaced[path.Base(applet)] || applet == "bin/busybox" {
			continue
		}
		if err := st.AddSymlink("/bin/busybox", "/"+applet); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

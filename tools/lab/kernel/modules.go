package kernel

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"
)

// collectModules decompresses the wanted modules and everything they
// depend on into dst and returns their file names in load order. A wanted
// module that is built in (listed in modules.builtin) or absent is skipped
// with a note, except ublk_drv, which the lab cannot do without.
func collectModules(modRoot, dst string, wanted []string, log zerolog.Logger) ([]string, error) {
	idx, err := findModules(modRoot)
	if err != nil {
		return nil, err
	}
	builtin := readBuiltin(filepath.Join(modRoot, "modules.builtin"))
	var order []string
	state := map[string]int{} // 0 unseen, 1 visiting, 2 done
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle: %s", strings.Join(append(chain, name), " -> "))
		case 2:
			return nil
		}
		src, ok := idx[name]
		if !ok {
			if builtin[name] {
				log.Debug().Str("module", name).Msg("built in")
				state[name] = 2
				return nil
			}
			return fmt.Errorf("%w: %s (needed by %v)", errModuleMissing, name, chain)
		}
		state[name] = 1
		ko, err := decompress(src)
		if err != nil {
			return err
		}
		deps, err := moduleDepends(ko)
		if err != nil {
			return fmt.Errorf("read dependencies of %s: %w", src, err)
		}
		for _, d := range deps {
			if err := visit(d, append(chain, name)); err != nil {
				return err
			}
		}
		file := name + ".ko"
		if err := os.WriteFile(filepath.Join(dst, file), ko, 0o644); err != nil {
			return fmt.Errorf("write module %s: %w", file, err)
		}
		order = append(order, file)
		state[name] = 2
		return nil
	}
	for _, name := range wanted {
		_, present := idx[name]
		if !present && name != "ublk_drv" {
			log.Info().Str("module", name).Bool("builtin", builtin[name]).Msg("not a loadable module in this kernel; skipped")
			continue
		}
		if err := visit(name, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// readBuiltin parses modules.builtin ("kernel/drivers/block/loop.ko" lines).
func readBuiltin(path string) map[string]bool {
	m := map[string]bool{}
	b, err := os.ReadFile(path)
	if err != nil {
		return m
	}
	for _, line := range strings.Fields(string(b)) {
		if name, ok := moduleName(filepath.Base(line)); ok {
			m[name] = true
		}
	}
	return m
}

// decompress returns a module's plain ELF bytes. insmod in the guest
// (busybox) loads only uncompressed modules.
func decompress(path string) ([]byte, error) {
	switch {
	case strings.HasSuffix(path, ".ko"):
		return os.ReadFile(path)
	case strings.HasSuffix(path, ".xz"):
		var stderr bytes.Buffer
		cmd := exec.Command("xz", "-dc", path)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("xz -dc %s: %w: %s (is xz-utils installed?)", path, err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	case strings.HasSuffix(path, ".gz"):
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("gunzip %s: %w", path, err)
		}
		return io.ReadAll(zr)
	}
	return nil, fmt.Errorf("decompress %s: unsupported module compression", path)
}

// moduleDepends reads the "depends=" entry of a module's .modinfo section
// (NUL-separated key=value strings), as modinfo does.
func moduleDepends(ko []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, err
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return nil, err
	}
	return parseModinfoDepends(data), nil
}

func parseModinfoDepends(modinfo []byte) []string {
	var deps []string
	for _, kv := range bytes.Split(modinfo, []byte{0}) {
		v, ok := bytes.CutPrefix(kv, []byte("depends="))
		if !ok {
			continue
		}
		for _, d := range strings.Split(string(v), ",") {
			if d = strings.TrimSpace(d); d != "" {
				deps = append(deps, strings.ReplaceAll(d, "-", "_"))
			}
		}
	}
	return deps
}

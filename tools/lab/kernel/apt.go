package kernel

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ArchiveKeyring is the keyring the private sources list trusts; the
// debian-archive-keyring package installs it.
const ArchiveKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// aptRepo is a private apt configuration holding one suite's package lists.
type aptRepo struct {
	dir    string // root of the private state
	suite  string
	mirror string
}

func newAptRepo(cacheDir, suite, mirror string) (*aptRepo, error) {
	if _, err := os.Stat(ArchiveKeyring); err != nil {
		return nil, fmt.Errorf("debian archive keyring missing (%w): install it with `apt-get install debian-archive-keyring`", err)
	}
	r := &aptRepo{dir: filepath.Join(cacheDir, "apt", suite), suite: suite, mirror: mirror}
	for _, d := range []string{"lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(r.dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("create apt state dir: %w", err)
		}
	}
	line := fmt.Sprintf("deb [signed-by=%s] %s %s main\n", ArchiveKeyring, mirror, suite)
	if err := os.WriteFile(r.sourcesList(), []byte(line), 0o644); err != nil {
		return nil, fmt.Errorf("write private sources list: %w", err)
	}
	return r, nil
}

func (r *aptRepo) sourcesList() string { return filepath.Join(r.dir, "sources.list") }

// options point apt at the private state only; APT::Sandbox::User=root
// lets `apt-get download` write into our directory when run as root.
func (r *aptRepo) options() []string {
	return []string{
		"-o", "Dir::Etc::SourceList=" + r.sourcesList(),
		"-o", "Dir::Etc::SourceParts=/dev/null",
		"-o", "Dir::State::Lists=" + filepath.Join(r.dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(r.dir, "cache"),
		"-o", "APT::Sandbox::User=root",
	}
}

func (r *aptRepo) run(ctx context.Context, dir, tool string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, tool, append(r.options(), args...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func (r *aptRepo) update(ctx context.Context) error {
	_, err := r.run(ctx, r.dir, "apt-get", "-q", "update")
	return err
}

// depends lists the packages pkg depends on directly.
func (r *aptRepo) depends(ctx context.Context, pkg string) ([]string, error) {
	out, err := r.run(ctx, r.dir, "apt-cache", "depends", pkg)
	if err != nil {
		return nil, err
	}
	return parseDepends(out), nil
}

// parseDepends reads `apt-cache depends` output: "  Depends: name" lines,
// alternatives marked with a leading '|', virtual packages in <angles>.
func parseDepends(out []byte) []string {
	var deps []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimLeft(strings.TrimSpace(sc.Text()), "|")
		name, ok := strings.CutPrefix(line, "Depends: ")
		if !ok {
			continue
		}
		deps = append(deps, strings.Trim(strings.TrimSpace(name), "<>"))
	}
	return deps
}

// downloadAndUnpack fetches pkg's .deb into the apt cache dir and extracts
// it under root.
func (r *aptRepo) downloadAndUnpack(ctx context.Context, pkg, root string) error {
	debDir := filepath.Join(r.dir, "debs")
	if err := os.MkdirAll(debDir, 0o755); err != nil {
		return fmt.Errorf("create deb dir: %w", err)
	}
	if _, err := r.run(ctx, debDir, "apt-get", "-q", "download", pkg); err != nil {
		return err
	}
	debs, err := filepath.Glob(filepath.Join(debDir, pkg+"_*.deb"))
	if err != nil || len(debs) == 0 {
		return fmt.Errorf("download %s: no .deb appeared in %s", pkg, debDir)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[len(debs)-1], root)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("unpack %s: %w: %s", debs[len(debs)-1], err, strings.TrimSpace(stderr.String()))
	}
	// The unpacked kernel is what is cached; the .deb is not needed again.
	for _, d := range debs {
		_ = os.Remove(d)
	}
	return nil
}

var errNoKernel = errors.New("no kernel image")

package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// needsPrefix starts the header line by which a guest test script says
// which of the lab's optional contents it uses, e.g.
//
//	# lab-needs: ublkctl dog memhog
//
// When every selected script has such a line, the image holds only the
// union of what they name (besides the core tools every script may use);
// one script without it brings in everything, as before. Leaving fio
// (~50 MB with its ceph/ICU libraries) and etcd (~21 MB) out matters for
// tests that run in a small guest: the initramfs lives in its RAM.
const needsPrefix = "# lab-needs:"

// optionalTools are host tools a script can name in lab-needs, by base
// name; required ones must exist on the host when needed.
var optionalTools = []struct {
	path     string
	required bool
}{
	{"/usr/bin/fio", true},
	{"/usr/bin/etcd", false},
	{"/usr/sbin/nbd-client", false},
	{"/usr/bin/nbd-server", false},
}

// imageNeeds is what the selected scripts use; all means everything.
type imageNeeds struct {
	all   bool
	names map[string]bool
}

// needsAll is the image as it was before lab-needs: everything in it.
var needsAll = imageNeeds{all: true}

// has reports whether name (a tool's or a project binary's base name)
// goes into the image.
func (n imageNeeds) has(name string) bool { return n.all || n.names[name] }

// String lists what the image holds, for the runner's report.
func (n imageNeeds) String() string {
	if n.all {
		return "everything"
	}
	names := make([]string, 0, len(n.names))
	for k := range n.names {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

// knownNeed reports whether name is something lab-needs can select: an
// optional tool or one of the project's binaries.
func knownNeed(name string) bool {
	if slices.Contains(expectedBinaries, name) {
		return true
	}
	for _, t := range optionalTools {
		if filepath.Base(t.path) == name {
			return true
		}
	}
	return false
}

// readNeeds reads the lab-needs lines of the given scripts in dir. A
// name lab-needs cannot select is a usage error (a typo would otherwise
// leave a tool out and fail the test far from its cause).
func readNeeds(dir string, scripts []string) (imageNeeds, error) {
	n := imageNeeds{names: map[string]bool{}}
	for _, s := range scripts {
		names, found, err := scriptNeeds(filepath.Join(dir, s))
		if err != nil {
			return needsAll, err
		}
		if !found {
			return needsAll, nil
		}
		for _, name := range names {
			if !knownNeed(name) {
				return needsAll, usageError{fmt.Errorf("%s: lab-needs names %q, which the lab cannot provide: want optional tools (fio etcd nbd-client nbd-server) or project binaries (%s)",
					s, name, strings.Join(expectedBinaries, " "))}
			}
			n.names[name] = true
		}
	}
	return n, nil
}

// scriptNeeds returns the names on file's lab-needs line, and whether it
// has one. Only the leading comment block is read: the header is where a
// reader looks for it.
func scriptNeeds(file string) ([]string, bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, false, fmt.Errorf("read lab-needs of %s: %w", file, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			break
		}
		if rest, ok := strings.CutPrefix(line, needsPrefix); ok {
			return strings.Fields(rest), true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, false, fmt.Errorf("read lab-needs of %s: %w", file, err)
	}
	return nil, false, nil
}

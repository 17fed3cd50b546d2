package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/sheep/proto"
)

const crashChildEnv = "SHEEP_STORE_CRASH_CHILD_DIR"

var crashObjects = func() []proto.ObjectID {
	var oids []proto.ObjectID
	for i := range 12 {
		oids = append(oids, proto.NewObjectID(20+uint32(i%2), uint32(i)))
	}
	return oids
}()

// TestCrashChild is the process TestKilledMidRecoveryOps kills: it
// installs every object, supersedes them all, prunes old epochs, forever.
// Every object is therefore always somewhere (current or stale) once the
// first round is done, and every copy is some whole pattern(oid, epoch).
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("only run as the child of TestKilledMidRecoveryOps")
	}
	s := openTest(t, dir)
	epoch := uint64(1)
	if e := s.StaleEpochs(); len(e) > 0 {
		epoch = e[len(e)-1] + 1
	}
	for round := 0; ; round++ {
		for _, oid := range crashObjects {
			if err := s.Install(oid, pattern(oid, int(epoch))); err != nil && !errors.Is(err, ErrExists) {
				t.Fatal(err)
			}
		}
		if round == 0 {
			fmt.Println("ready")
		}
		if _, err := s.PruneStale(epoch - 1); err != nil {
			t.Fatal(err)
		}
		if epoch%2 == 0 {
			for _, oid := range crashObjects {
				if err := s.Supersede(oid, epoch); err != nil {
					t.Fatal(err)
				}
			}
		} else if err := s.SupersedeAll(epoch); err != nil {
			t.Fatal(err)
		}
		epoch++
	}
}

// TestKilledMidRecoveryOps kills a process in the middle of Install,
// Supersede and PruneStale at random moments and checks, after each kill,
// that the reopened store holds every object somewhere, whole, with its
// indexes matching its files and no temporary file left.
func TestKilledMidRecoveryOps(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 8))
	for kill := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if sc.Text() == "ready" {
					ready <- true
					break
				}
			}
			ready <- false
		}()
		select {
		case ok := <-ready:
			if !ok {
				cmd.Wait()
				t.Fatalf("child ended before it was ready: %s", stderr.String())
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("child not ready in 30 s")
		}
		time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		if strings.Contains(stderr.String(), "FAIL") {
			t.Fatalf("child failed: %s", stderr.String())
		}
		checkAfterCrash(t, dir, kill)
	}
}

func checkAfterCrash(t *testing.T, dir string, kill int) {
	t.Helper()
	s := openTest(t, dir)
	defer s.Close()
	if ents, _ := os.ReadDir(filepath.Join(dir, tmpDir)); len(ents) != 0 {
		t.Fatalf("kill %d: tmp/ holds %d files after open", kill, len(ents))
	}
	buf := make([]byte, testObjectSize)
	copies := 0
	for _, oid := range crashObjects {
		somewhere := false
		if s.Exists(oid) {
			somewhere = true
			copies++
			checkWholePattern(t, kill, oid, "current", readAll(t, s, oid))
		}
		for _, e := range s.StaleEpochs() {
			if err := s.ReadStale(oid, e, buf); err != nil {
				continue
			}
			somewhere = true
			copies++
			checkWholePattern(t, kill, oid, "stale@"+strconv.FormatUint(e, 10), buf)
		}
		if !somewhere {
			t.Fatalf("kill %d: object %v is in neither objects/ nor stale/", kill, oid)
		}
	}
	t.Logf("kill %d: %d current, %d stale copies, stale epochs %v", kill, s.Stats().Objects, s.Stats().StaleObjects, s.StaleEpochs())
	// The indexes match the files.
	if st := s.Stats(); st.Objects+st.StaleObjects != copies {
		t.Fatalf("kill %d: stats %+v, but %d copies found", kill, st, copies)
	}
	if ids, _, _ := s.ListAll(nil, 0, 0, 100); !slices.Equal(ids, slices.Sorted(slices.Values(crashObjects))) {
		t.Fatalf("kill %d: ListAll = %v", kill, ids)
	}
}

// checkWholePattern fails unless b is pattern(oid, v) for the version v
// its tail names: a copy is never a mix or a torn install.
func checkWholePattern(t *testing.T, kill int, oid proto.ObjectID, where string, b []byte) {
	t.Helper()
	v, err := strconv.Atoi(strings.TrimSpace(string(b[testObjectSize-8:])))
	if err != nil || !bytes.Equal(b, pattern(oid, v)) {
		t.Fatalf("kill %d: %s copy of %v is not a whole version (tail %q)", kill, where, oid, b[testObjectSize-8:])
	}
}

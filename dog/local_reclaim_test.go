package dog_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sheepblk/sheepblk/dog"
	"github.com/sheepblk/sheepblk/internal/testutil"
	"github.com/sheepblk/sheepblk/reclaim"
)

// TestStartLocalAppliesReclaimProtections: the nodes of a local cluster
// serve the writes memory reclaim waits for, so start-local applies every
// protection (or, with the hidden --unprotected, only oom_score_adj), and a
// protection the kernel refuses is a warning, not a failure.
func TestStartLocalAppliesReclaimProtections(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []string
		want  reclaim.Options
	}{
		{name: "default", want: reclaim.Default},
		{name: "unprotected", extra: []string{"--unprotected"}, want: reclaim.Options{OOMNever: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []reclaim.Options
			apply := func(o reclaim.Options) reclaim.Report {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, o)
				return reclaim.Report{IOFlusher: errors.New("PR_SET_IO_FLUSHER: permission denied (test)")}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out, errb testutil.LogBuffer
			exit := make(chan int, 1)
			args := append([]string{"cluster", "start-local", "--json", "--dir", t.TempDir(),
				"--etcd-port", "0", "--base-port", "0", "--log-level", "warn"}, tc.extra...)
			go func() {
				exit <- dog.Execute(ctx, args, dog.IO{Stdout: &out, Stderr: &errb,
					Getenv: func(string) string { return "" }, Reclaim: apply})
			}()
			deadline := time.Now().Add(30 * time.Second)
			for {
				var info dog.LocalCluster
				if json.Unmarshal([]byte(out.String()), &info) == nil && len(info.Nodes) == 3 {
					break
				}
				select {
				case code := <-exit:
					t.Fatalf("start-local exited %d: %s", code, errb.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("start-local did not come up in 30s; stderr: %s", errb.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			cancel()
			if code := <-exit; code != 0 {
				t.Fatalf("start-local exited %d on cancel: %s", code, errb.String())
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 1 || got[0] != tc.want {
				t.Fatalf("reclaim applied with %+v, want once with %+v", got, tc.want)
			}
			if !strings.Contains(errb.String(), "io_flusher") {
				t.Errorf("the refused protection was not logged: %s", errb.String())
			}
		})
	}
}

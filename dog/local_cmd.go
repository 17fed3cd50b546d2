package dog

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/sheepblk/sheepblk/cluster"
	"github.com/sheepblk/sheepblk/cluster/local"
	"github.com/sheepblk/sheepblk/internal/logging"
	"github.com/sheepblk/sheepblk/reclaim"
	"github.com/sheepblk/sheepblk/rpc"
)

// LocalCluster is what `dog cluster start-local --json` prints once the
// cluster runs.
type LocalCluster struct {
	Etcd string `json:"etcd"`
	Dir  string `json:"dir"`
	// SecretFile holds the cluster secret the nodes require; clients pass
	// it as --secret-file. Empty with --insecure.
	SecretFile string      `json:"secret_file,omitempty"`
	Nodes      []LocalNode `json:"nodes"`
}

// LocalNode is one node of a local cluster.
type LocalNode struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
	Dir  string `json:"dir"`
}

func clusterStartLocalCmd(g *globals) *cobra.Command {
	var (
		dir                string
		nodes, copies      int
		minCopies          int
		grace              time.Duration
		etcdPort, basePort int
		logLevel           string
		unprotected        bool
		secretFile         string
		insecure           bool
	)
	c := &cobra.Command{
		Use:   "start-local",
		Short: "Run a whole cluster on this machine (etcd + N nodes on 127.0.0.1) until interrupted",
		Long: "Runs an embedded etcd and N sheep nodes on 127.0.0.1 with their data under --dir, formats the\n" +
			"cluster if it is new, prints the etcd URL and serves until SIGINT or SIGTERM. Port 0 picks free ports.\n" +
			"--nodes 0 runs etcd alone: start the nodes as processes of their own (sheep --etcd URL), as a\n" +
			"deployment runs them.",
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usagef("--dir is required: where the cluster keeps its data")
			}
			if nodes < 0 || nodes > 64 {
				return usagef("--nodes %d: want 0 (etcd alone) or 1..64", nodes)
			}
			maxCopies, why := cluster.MaxCopies, ""
			if nodes > 0 && nodes < maxCopies {
				maxCopies, why = nodes, " (at most one copy per node)"
			}
			if copies < 1 || copies > maxCopies {
				return usagef("--copies %d: want 1..%d%s", copies, maxCopies, why)
			}
			if minCopies < 0 || minCopies > copies {
				return usagef("--min-copies %d: want 0 (a majority) or 1..%d (--copies)", minCopies, copies)
			}
			if grace < 0 {
				return usagef("--member-grace %v: want 0 (10s) or more", grace)
			}
			for _, p := range []struct {
				name string
				v    int
			}{{"--etcd-port", etcdPort}, {"--base-port", basePort}} {
				if p.v < 0 || p.v > 65535-nodes {
					return usagef("%s %d is not a port", p.name, p.v)
				}
			}
			log, err := logging.New(g.io.Stderr, logging.FormatAuto, logLevel)
			if err != nil {
				return usagef("--log-level: %v", err)
			}
			if insecure && secretFile != "" {
				return usagef("--insecure runs without a secret: drop --secret-file")
			}
			applyReclaim(g.io.Reclaim, unprotected, log)
			secret, secretFile, err := localSecret(dir, secretFile, insecure, log)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			lc, err := local.Start(ctx, local.Options{
				Dir: dir, Nodes: nodes, Copies: copies, MinCopies: minCopies, MemberGrace: grace,
				EtcdPort: etcdPort, BasePort: basePort, Logger: log, Secret: secret,
			})
			if err != nil {
				return err
			}
			// An empty list, not null, when etcd runs alone.
			info := LocalCluster{Etcd: lc.EtcdURL(), Dir: dir, SecretFile: secretFile, Nodes: []LocalNode{}}
			for i := range lc.Nodes() {
				info.Nodes = append(info.Nodes, LocalNode{ID: lc.Node(i).ID(), Addr: lc.NodeAddr(i), Dir: lc.NodeDir(i)})
			}
			if g.json {
				if err := printJSON(g.io.Stdout, info); err != nil {
					lc.Close()
					return err
				}
			} else {
				w := g.io.Stdout
				fmt.Fprintf(w, "etcd: %s\n", info.Etcd)
				for _, n := range info.Nodes {
					fmt.Fprintf(w, "node %s: %s (data in %s)\n", n.ID, n.Addr, n.Dir)
				}
				if nodes == 0 {
					secretArg := ""
					if info.SecretFile != "" {
						secretArg = " --secret-file " + info.SecretFile
					}
					fmt.Fprintf(w, "no nodes: start each with sheep --dir DIR --listen ADDR --etcd %s%s\n", info.Etcd, secretArg)
				}
				fmt.Fprintf(w, "export %s=%s   # then: dog vdi create NAME SIZE\n", EnvEtcd, info.Etcd)
				if info.SecretFile != "" {
					fmt.Fprintf(w, "secret file: %s   # dog vdi write/read/delete and ublkctl add -t sheep: --secret-file %s\n", info.SecretFile, info.SecretFile)
				}
			}
			log.Info().Str("etcd", info.Etcd).Int("nodes", nodes).Msg("local cluster running; Ctrl-C stops it")
			<-ctx.Done()
			log.Info().Msg("stopping the local cluster")
			if err := lc.Close(); err != nil {
				return fmt.Errorf("stop local cluster: %w", err)
			}
			return nil
		}),
	}
	f := c.Flags()
	f.StringVar(&dir, "dir", "", "directory for etcd's and the nodes' data (required)")
	f.IntVar(&nodes, "nodes", 3, "number of sheep nodes in this process (0: etcd alone, for nodes started with sheep --etcd)")
	f.IntVar(&copies, "copies", 3, "replicas of each object, if the cluster is formatted now")
	f.IntVar(&minCopies, "min-copies", 0, "fewest replicas a write may land on, if the cluster is formatted now (0: a majority)")
	f.DurationVar(&grace, "member-grace", 0, "how long a member may be gone before it is removed, if the cluster is formatted now (0: 10s)")
	f.IntVar(&etcdPort, "etcd-port", 2379, "etcd client port on 127.0.0.1 (peer port: the next one; 0: free ports)")
	f.IntVar(&basePort, "base-port", 7000, "node i listens on 127.0.0.1:base-port+i (0: free ports)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&secretFile, "secret-file", "", "cluster secret file the nodes require of clients (default DIR/secret; created with a random secret if missing)")
	f.BoolVar(&insecure, "insecure", false, "run the nodes without a cluster secret: anyone who reaches their ports may read and write")
	f.BoolVar(&unprotected, "unprotected", false, "experiment: skip PR_SET_IO_FLUSHER and mlockall")
	_ = f.MarkHidden("unprotected")
	return c
}

// localSecret is the secret of a local cluster: the one in secretFile
// (default DIR/secret), made first if the file does not exist, or none
// with insecure. It returns the file's absolute path.
func localSecret(dir, secretFile string, insecure bool, log zerolog.Logger) ([]byte, string, error) {
	if insecure {
		log.Warn().Msg("--insecure: the nodes accept any client that reaches their ports")
		return nil, "", nil
	}
	if secretFile == "" {
		secretFile = filepath.Join(dir, "secret")
	}
	abs, err := filepath.Abs(secretFile)
	if err != nil {
		return nil, "", fmt.Errorf("--secret-file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, "", fmt.Errorf("--secret-file: %w", err)
	}
	secret, created, err := rpc.LoadOrCreateSecretFile(abs)
	if err != nil {
		return nil, "", fmt.Errorf("--secret-file: %w", err)
	}
	if created {
		log.Info().Str("secret_file", abs).Msg("created the cluster secret")
	}
	return secret, abs, nil
}

// applyReclaim keeps the nodes out of memory reclaim (package reclaim):
// they serve the writes reclaim waits for when a ublk device on this
// machine uses the cluster. --unprotected keeps only oom_score_adj, for
// the experiment that shows what the protections prevent. A protection
// that fails is a warning, not a reason to stop.
func applyReclaim(apply func(reclaim.Options) reclaim.Report, unprotected bool, log zerolog.Logger) {
	if apply == nil {
		return
	}
	prot := reclaim.Default
	if unprotected {
		prot = reclaim.Options{OOMNever: true}
		log.Warn().Msg("running WITHOUT PR_SET_IO_FLUSHER and mlockall (--unprotected): reclaim may deadlock on a device this cluster serves")
	}
	r := apply(prot)
	for _, p := range []struct {
		name string
		err  error
	}{{"io_flusher", r.IOFlusher}, {"mlockall", r.LockMemory}, {"oom_score_adj", r.OOMNever}} {
		if p.err != nil {
			log.Warn().Err(p.err).Str("protection", p.name).Msg("reclaim protection not applied; the nodes run without it")
		}
	}
}

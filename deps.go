//go:build tools

// This file pins the modules the project depends on before every one of them
// is imported by real code, so `go mod tidy` keeps them. It is never built.
package deps

import (
	_ "github.com/rs/zerolog"
	_ "github.com/spf13/cobra"
	_ "go.etcd.io/etcd/client/v3"
	_ "go.etcd.io/etcd/server/v3/embed"
	_ "golang.org/x/sys/unix"
	_ "gonum.org/v1/plot"
	_ "google.golang.org/grpc"
)

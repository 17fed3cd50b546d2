// Command dog administers a sheepblk cluster; see package dog.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sheepblk/sheepblk/dog"
	"github.com/sheepblk/sheepblk/reclaim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dog.Execute(ctx, os.Args[1:], dog.IO{Reclaim: reclaim.Apply})
	stop()
	os.Exit(code)
}

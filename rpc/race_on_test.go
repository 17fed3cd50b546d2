//go:build race

package rpc

// raceEnabled: the race detector is on (it allocates on its own).
const raceEnabled = true

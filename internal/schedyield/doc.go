// Package schedyield paces the yields of a goroutine that waits for its
// work in system calls rather than in the Go scheduler: the ublk queue
// thread in io_uring_enter, a detached rpc reader in poll(2).
//
// The runtime counts a goroutine that was not rescheduled for 10 ms as
// running too long (forcePreemptNS). When it is in a system call, sysmon
// then takes its P away on every tick (every 20 µs) and hands it to
// another thread to poll the network. Measured on the ublk queue thread:
// 2-2.7 extra context switches per request at queue depth 1, on threads
// that had nothing to do. A runtime.Gosched every Every keeps the
// goroutine fresh for a few switches (more when its thread is locked).
package schedyield

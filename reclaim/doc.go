// Package reclaim keeps a storage daemon out of the kernel's memory reclaim
// path, so that reclaim writing back pages through a device the daemon serves
// can never wait on the daemon itself (the Sheepdog deadlock in design.md).
//
// Three measures, all process-wide:
//   - PR_SET_IO_FLUSHER on every thread (PF_MEMALLOC_NOIO|PF_LOCAL_THROTTLE):
//     allocations made by the daemon never recurse into I/O. It is set with
//     syscall.AllThreadsSyscall, which reaches threads that already exist;
//     threads cloned afterwards inherit the flag. AllThreadsSyscall refuses
//     to run in a cgo binary, hence CGO_ENABLED=0 for the whole build.
//   - mlockall(MCL_CURRENT|MCL_FUTURE): the daemon's memory, I/O buffers
//     included, is never paged out, so serving a request never faults.
//   - oom_score_adj -1000: the OOM killer never picks the process that is
//     the only way memory can be cleaned.
package reclaim

// Command lab builds and boots the lab: a QEMU (TCG) guest running a Debian
// cloud kernel that has ublk_drv, where the project's binaries and the
// guest-side test scripts of tests/lab run as root against real ublk.
//
//	lab kernel [--kernel 6.12|7.3|all]   download and cache the guest kernels
//	lab run --kernel 6.12 [TEST...]      boot, run tests/lab scripts, report
//	lab shell --kernel 6.12              boot to an interactive guest shell
//
// Each boot gets its own directory out/lab/run-<kernel>-<time>-<n>/ (so
// concurrent runs never share an initrd or a disk); after the boot only
// its console.log stays, out/lab/console-<kernel>.log points at the
// latest, and the five newest runs per kernel are kept.
//
// A script may say in its header which optional contents it uses
// ("# lab-needs: ublkctl dog memhog"); when every selected script does, the
// image holds only those (fio with its libraries and etcd are ~70 MB of RAM
// in the guest, which a 512 MiB memory-pressure test cannot spare).
//
// The host side does everything with logic (caching, timeouts, console
// parsing); the guest side is a small /init shell script that prints marker
// lines on the serial console. Results are per-test PASS/FAIL/SKIP lines and
// a final "lab: N passed, N failed, N skipped"; the exit status is non-zero
// when any test failed, the guest crashed (BUG/Oops/panic/hung task) or the
// wall-clock timeout fired.
package main

// Package plan says what `make bench` measures: the fio jobs, the devices
// (each ublk target next to the kernel driver a user would pick instead),
// the pairs compared as ratios within one boot, the targets issue 5 sets
// for those ratios, and how all that is handed to the guest (bench.conf
// and one fio job file per job, staged next to the tests/bench scripts).
package plan

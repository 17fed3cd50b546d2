#!/bin/sh
# qemu-vm.sh with the outer guest under reclaim (issue 7, second part):
# memhog holds this (small) guest at AVAIL_PERCENT (3%) available memory
# while the nested QEMU runs the dd workload (over a 64 MiB disk here, so
# the nodes' writes keep reclaim busy longer) and the discard on the
# sheep-backed ublk device. Passes only if everything qemu-vm.sh checks
# holds, reclaim ran, the OOM killer took nothing but memhog, and no task
# hung (the runner fails the run on a hung-task report).
#   lab run --with-qemu --mem 1024 --hung-task-secs 30 --go-test= qemu-vm-lowmem.sh
MEMORY_PRESSURE=1 DISK_MIB=${DISK_MIB:-64} AVAIL_PERCENT=${AVAIL_PERCENT:-3} exec sh ./qemu-vm.sh

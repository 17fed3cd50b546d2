#!/bin/sh
# qemu-vm.sh with the outer guest under reclaim (issue 7, second part):
# memhog holds this (small) guest at 5% available memory while the nested
# QEMU runs the dd workload and the discard on the sheep-backed ublk
# device. Passes only if everything qemu-vm.sh checks holds, reclaim ran,
# the OOM killer took nothing but memhog, and no task hung.
#   lab run --with-qemu --mem 1024 --hung-task-secs 30 --go-test= qemu-vm-lowmem.sh
MEMORY_PRESSURE=1 exec sh ./qemu-vm.sh

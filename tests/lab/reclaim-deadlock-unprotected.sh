#!/bin/sh
# The experiment (issue 4, part 1), never in CI: reclaim-deadlock.sh with
# the protections switched off (ublkctl add --unprotected, dog cluster
# start-local --unprotected: no PR_SET_IO_FLUSHER, no mlockall). It shows
# whether the original Sheepdog deadlock happens without them; a hang
# fails it and prints the stuck tasks and their kernel stacks.
#   lab run --mem 640 --scratch 12G --hung-task-secs 120 --go-test= reclaim-deadlock-unprotected
UNPROTECTED=1 exec sh ./reclaim-deadlock.sh

#!/bin/sh
# The experiment (issue 4, part 1), never in CI: reclaim-deadlock.sh with
# the protections switched off (ublkctl add --unprotected, dog cluster
# start-local --unprotected: no PR_SET_IO_FLUSHER, no mlockall). It shows
# whether the original Sheepdog deadlock happens without them; a hang
# fails it and prints the stuck tasks and their kernel stacks.
#   make test-deadlock-unprotected (512 MiB, hung_task_timeout_secs 120)
# lab-needs: ublkctl dog memhog
# One round by default: the experiment's question (does it hang, after how
# long) is answered in the first, and a livelocked round takes up to
# STEP_LIMIT_SECS.
UNPROTECTED=1 ITERATIONS=${ITERATIONS:-1} exec sh ./reclaim-deadlock.sh

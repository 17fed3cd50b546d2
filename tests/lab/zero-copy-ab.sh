#!/bin/sh
# Measurement, not a test (never in the default suite): the file target with
# zero copy (AUTO_BUF_REG), with the copy (--zero-copy=false) and the kernel
# loop device (direct I/O) on the same file, in one boot, each job 3 times in
# turn. Needs a kernel whose ublk has AUTO_BUF_REG:
#   out/lab/lab run --kernel 7.3 --go-test= zero-copy-ab.sh
# Prints one "AB" line per job and repetition (IOPS).
. ./lib.sh
need_ublkctl
"$UBLKCTL" features --json | $JQ -e '.features | index("AUTO_BUF_REG")' >/dev/null || skip "this kernel's ublk has no AUTO_BUF_REG"
f=$SCRATCH/ab.img
rm -f $f
dd if=/dev/urandom of=$f bs=1M count=256 oflag=direct 2>/dev/null
loopdev=$($LOSETUP --direct-io=on -f --show $f)
job() { # dev rw bs qd
	$FIO --name=j --filename=$1 --rw=$2 --bs=$3 --iodepth=$4 --numjobs=1 --direct=1 --ioengine=io_uring \
		--runtime=5 --ramp_time=2 --time_based --size=256M --output-format=json 2>/dev/null |
		$JQ -r '.jobs[0] | (.read.iops + .write.iops) | floor'
}
for rep in 1 2 3; do
	for spec in "read 128k 8" "write 128k 8" "randread 4k 1"; do
		set -- $spec
		zc=$("$UBLKCTL" add -t file --file $f -q 1 -d 128); a=$(job $zc $1 $2 $3); "$UBLKCTL" del -a
		nz=$("$UBLKCTL" add -t file --file $f -q 1 -d 128 --zero-copy=false); b=$(job $nz $1 $2 $3); "$UBLKCTL" del -a
		c=$(job $loopdev $1 $2 $3)
		echo "AB rep=$rep job=$1/$2/qd$3 zerocopy=$a copy=$b loop=$c"
	done
done
$LOSETUP -d $loopdev
exit 0

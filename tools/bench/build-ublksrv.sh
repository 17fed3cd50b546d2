#!/bin/sh
# build-ublksrv.sh SRC OUT: static builds of ublksrv (github.com/ublk-org/
# ublksrv, the C reference ublk daemon) from the checkout SRC into OUT:
# ublk, ublk.null and ublk.loop, what `make bench UBLKSRV=OUT` stages into
# the lab guest to measure this daemon against the reference in one boot.
# The project carries no ublksrv code; SRC is the user's own checkout.
#
# Needs gcc, g++, make, autoconf, automake, libtool and pkg-config, and
# liburing >= 2.4 (ublksrv uses io_uring_setup_buf_ring). Debian 12 has
# 2.3: then Debian 13's liburing-dev is unpacked into a scratch directory
# (not installed), with a stand-in for the UAPI header <linux/blkdev.h>
# that its headers include and Debian 12's kernel headers lack.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 UBLKSRV-SOURCE OUT-DIR" >&2; exit 2; }
src=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
[ -f "$src/configure.ac" ] && [ -d "$src/targets" ] || { echo "$src is not a ublksrv checkout" >&2; exit 1; }
for tool in gcc g++ make autoreconf libtoolize pkg-config curl; do
	command -v $tool >/dev/null || { echo "missing $tool (apt-get install gcc g++ make autoconf automake libtool pkg-config)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

uring_cflags= uring_libs=
if pkg-config --atleast-version=2.4 liburing 2>/dev/null && [ -f "$(pkg-config --variable=libdir liburing)/liburing.a" ]; then
	uring_cflags=$(pkg-config --cflags liburing)
	uring_libs="$(pkg-config --variable=libdir liburing)/liburing.a"
else
	deb=${LIBURING_DEB:-http://deb.debian.org/debian/pool/main/libu/liburing/liburing-dev_2.9-1_amd64.deb}
	echo "build-ublksrv: system liburing is older than 2.4; unpacking $deb"
	curl -fsS -o "$work/liburing-dev.deb" "$deb"
	dpkg-deb -x "$work/liburing-dev.deb" "$work/uring"
	uring_cflags="-I$work/uring/usr/include"
	uring_libs=$(find "$work/uring" -name liburing.a | head -n 1)
	if ! printf '#include <linux/blkdev.h>\n' | gcc -E -x c - >/dev/null 2>&1; then
		mkdir -p "$work/uring/usr/include/linux"
		cat >"$work/uring/usr/include/linux/blkdev.h" <<-'H'
			/* Stand-in for the 6.11 UAPI header older kernel headers lack. */
			#ifndef _UAPI_LINUX_BLKDEV_H
			#define _UAPI_LINUX_BLKDEV_H
			#include <linux/ioctl.h>
			#define BLOCK_URING_CMD_DISCARD _IO(0x12, 0)
			#endif
		H
	fi
fi

# Build out of the source tree, from a copy: the checkout stays clean.
cp -a "$src" "$work/src"
cd "$work/src"
log=$work/build.log
echo "build-ublksrv: building in $work/src (log: $out/build.log)"
{
	autoreconf -i &&
		./configure --disable-shared --enable-static CPPFLAGS="$uring_cflags" \
			LIBURING_CFLAGS="$uring_cflags" LIBURING_LIBS="$uring_libs" &&
		make -C lib -j"$(nproc)" &&
		make -j"$(nproc)" ublk ublk.null ublk.loop LDFLAGS=-all-static
} >"$log" 2>&1 || {
	cp "$log" "$out/build.log"
	echo "build-ublksrv: build failed; the end of $out/build.log:" >&2
	tail -n 5 "$log" >&2
	exit 1
}
cp "$log" "$out/build.log"
for b in ublk ublk.null ublk.loop; do
	strip -o "$out/$b" "$b"
	file "$out/$b" | grep -q "statically linked" || { echo "$out/$b is not static" >&2; exit 1; }
done
echo "build-ublksrv: $out: ublk ublk.null ublk.loop ($(git -C "$src" describe --always 2>/dev/null || echo unknown revision))"

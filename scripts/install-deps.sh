#!/usr/bin/env bash
# Installs the Debian packages Vigil's demo and tests use, when missing.
# make vmtest: qemu-system-x86 (and its qboot firmware), busybox-static for
# the VMs' initramfs, cpio to check it; the kernel itself is fetched with
# apt-get download into vmtests/.cache. The mirror disk's VM suites put
# e2fsprogs (mkfs, fsck) and drbd-utils (the DRBD baseline) in the VMs and
# fio drives the block benchmarks; prometheus gives promtool and the server
# the observability tests scrape the daemons with.
set -euo pipefail
pkgs=(iproute2 jq iputils-ping procps curl clang llvm libbpf-dev keepalived qemu-system-x86 busybox-static cpio e2fsprogs drbd-utils prometheus fio)
missing=()
for p in "${pkgs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing ${missing[*]}; run as root to install them" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

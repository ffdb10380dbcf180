#!/usr/bin/env bash
# Build the worker VM's boot set from the worker rootfs (build-worker-rootfs.sh): Debian's cloud kernel
# (linux-image-cloud-amd64), a small initramfs (busybox-static and the few modules that reach the VM's
# disks), and a read-only base disk: the worker tree, the kernel's modules and
# depmod's index, as ext4 on a sparse raw image. Each VM boot runs on a throwaway qcow2 overlay of it.
# Bit-for-bit reproducible for a given mirror state and worker tarball (SOURCE_DATE_EPOCH is fixed).
#
# Usage: build-vm-image.sh [--output DIR] [--rootfs TARBALL] [--force]
#
#   --output DIR      write vmlinuz, initrd.img and base.img to DIR
#                     (default: ${XDG_CACHE_HOME:-$HOME/.cache}/ephemerd/images/vm-bookworm-amd64)
#   --rootfs TARBALL  the worker rootfs to start from (default: what build-worker-rootfs.sh prints)
#   --force           rebuild even if DIR was built by these exact scripts from this very tarball
#
# Environment:
#   SOURCE_DATE_EPOCH  every timestamp in the boot set (default 1704067200, 2024-01-01)
#   EPHEMERD_VM_DISK   the base disk's size as the guest sees it (default 16G; the file stays sparse)
#
# Needs root (the tree keeps its owners), apt-get (to download the kernel and busybox packages), dpkg-deb,
# depmod (kmod), cpio and mkfs.ext4 (e2fsprogs 1.47). Progress goes to stderr; stdout gets only DIR.

set -euo pipefail

readonly SUITE=bookworm
# The modules the initramfs loads: the PCI virtio transport and its disks (ext4 is built in).
readonly INITRAMFS_MODULES="virtio_pci virtio_blk"
# Fixed, so the image is the same at every build; the guest never sees another disk with them.
readonly FS_UUID=6f1d4a52-5e21-4d0e-9a4c-3b0f8f0b7e11
readonly FS_HASH_SEED=0b3c5d1e-7a2f-4c61-8e9d-2f4a6b8c0d13

log() { printf '[build-vm-image] %s\n' "$*" >&2; }
die() { printf '[build-vm-image] error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2; }

here=$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")
outdir=""
rootfs=""
force=0
while [ $# -gt 0 ]; do
    case "$1" in
        --output)   [ $# -ge 2 ] || die "--output needs a DIR argument"; outdir=$2; shift 2 ;;
        --output=*) outdir=${1#--output=}; shift ;;
        --rootfs)   [ $# -ge 2 ] || die "--rootfs needs a TARBALL argument"; rootfs=$2; shift 2 ;;
        --rootfs=*) rootfs=${1#--rootfs=}; shift ;;
        --force)    force=1; shift ;;
        -h|--help)  usage; exit 0 ;;
        *)          usage; die "unknown argument: $1" ;;
    esac
done
[ -n "$outdir" ] || outdir="${XDG_CACHE_HOME:-$HOME/.cache}/ephemerd/images/vm-bookworm-amd64"
[ -n "$rootfs" ] || rootfs=$("$here/build-worker-rootfs.sh")
[ -f "$rootfs" ] || die "--rootfs $rootfs is not a file"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1704067200}
disk=${EPHEMERD_VM_DISK:-16G}

mkdir -p -- "$outdir"
outdir=$(cd -- "$outdir" && pwd -P)
output="$outdir/base.img"
stamp="$outdir/stamp"

# shellcheck source=rootfs/lib.sh
. "$here/lib.sh"
# The stamp also covers the initramfs's init, the worker tarball, the epoch and the disk size.
self_sha=$(printf '%s %s %s %s %s\n' "$self_sha" "$(sha256sum -- "$here/vm-init.sh" | cut -d' ' -f1)" \
    "$(sha256sum -- "$rootfs" | cut -d' ' -f1)" "$SOURCE_DATE_EPOCH" "$disk" \
    | sha256sum | cut -d' ' -f1)
if [ "$force" -eq 0 ] && cache_hit && [ -f "$outdir/vmlinuz" ] && [ -f "$outdir/initrd.img" ]; then
    log "up to date (built by these scripts, sha256 ${self_sha:0:12}): $outdir"
    printf '%s\n' "$outdir"
    exit 0
fi
exec 9>"$outdir/.lock"
command -v flock >/dev/null 2>&1 && flock 9

[ "$(id -u)" -eq 0 ] || die "must run as root (the tree keeps its owners)"
for tool in apt-get apt-cache dpkg-deb depmod modprobe cpio mkfs.ext4 gzip sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "missing required tool: $tool (scripts/deps.sh installs it)"
done

work=$(mktemp -d -- "$outdir/.build.XXXXXX")
cleanup() {
    local rc=$?
    [ -n "${work:-}" ] && [ -d "$work" ] && rm -rf --one-file-system -- "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
t0=$(date +%s)

# Clamps every timestamp under $1 to the epoch.
clamp() { find "$1" -newermt "@$SOURCE_DATE_EPOCH" -print0 | xargs -0r touch -h -d "@$SOURCE_DATE_EPOCH"; }

log "the packages: linux-image-cloud-amd64 and busybox-static"
kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$kpkg" ] || die "apt knows no linux-image-cloud-amd64 (is bookworm main in the apt sources? run apt-get update)"
(cd "$work" && apt-get download -q "$kpkg" busybox-static >&2) || die "apt-get download $kpkg busybox-static failed"
dpkg-deb -x "$work"/linux-image-*.deb "$work/kernel"
dpkg-deb -x "$work"/busybox-static_*.deb "$work/busybox"
kver=$(ls "$work/kernel/lib/modules")
[ -f "$work/kernel/boot/vmlinuz-$kver" ] || die "$kpkg has no /boot/vmlinuz-$kver"

log "the tree: $rootfs, with the modules of $kver"
mkdir "$work/tree"
tar -xzf "$rootfs" -C "$work/tree" --numeric-owner --same-permissions
[ -f "$work/tree/etc/ephemerd-rootfs" ] || die "$rootfs is not a worker rootfs (no /etc/ephemerd-rootfs)"
[ -x "$work/tree/usr/sbin/modprobe" ] || [ -x "$work/tree/sbin/modprobe" ] \
    || die "$rootfs has no modprobe (kmod): rebuild it with build-worker-rootfs.sh --force"
mkdir -p "$work/tree/lib/modules"
cp -a "$work/kernel/lib/modules/$kver" "$work/tree/lib/modules/"
depmod -b "$work/tree" "$kver"
# Where the initramfs mounts the host disk (the daemon's binary, the runner tree, the image archives).
mkdir -p "$work/tree/usr/lib/ephemerd/host"
printf 'ephemerd worker vm %s kernel %s\n' "$self_sha" "$kver" > "$work/tree/etc/ephemerd-vm"
clamp "$work/tree"

log "the initramfs"
ird="$work/initramfs"
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,lib/modules}
cp "$work/busybox/bin/busybox" "$ird/bin/busybox"
: > "$ird/modules"
for m in $INITRAMFS_MODULES; do
    modprobe -d "$work/tree" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
done | awk '!seen[$0]++' | while read -r ko; do
    rel=${ko#"$work/tree"}
    cp "$ko" "$ird/lib/modules/$(basename -- "$rel")"
    printf '/lib/modules/%s\n' "$(basename -- "$rel")" >> "$ird/modules"
done
[ -s "$ird/modules" ] || die "modprobe found none of: $INITRAMFS_MODULES"
install -m 0755 "$here/vm-init.sh" "$ird/init"
clamp "$ird"
(cd "$ird" && find . -print0 | LC_ALL=C sort -z | cpio --null --create --format=newc --reproducible --owner=0:0 --quiet) \
    | gzip -n -9 > "$work/initrd.img"

log "the base disk ($disk, sparse)"
truncate -s "$disk" "$work/base.img"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mkfs.ext4 -q -F -L ephemerd-worker -U "$FS_UUID" \
    -E "hash_seed=$FS_HASH_SEED,lazy_itable_init=1,nodiscard" -O ^has_journal -m 0 \
    -d "$work/tree" "$work/base.img" || die "mkfs.ext4 -d failed"

cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"
chmod 0644 "$work/vmlinuz" "$work/initrd.img" "$work/base.img"
rm -f -- "$stamp"
for f in vmlinuz initrd.img base.img; do mv -f -- "$work/$f" "$outdir/$f"; done
printf '%s\n' "$self_sha" > "$work/stamp"
mv -f -- "$work/stamp" "$stamp"

log "wrote $outdir in $(( $(date +%s) - t0 ))s:"
for f in vmlinuz initrd.img base.img; do
    log "  $f: $(du -h --apparent-size "$outdir/$f" | cut -f1) ($(du -h "$outdir/$f" | cut -f1) on disk)"
done
printf '%s\n' "$outdir"

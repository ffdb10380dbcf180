#!/usr/bin/env bash
# Build the Linux worker's root filesystem: Debian bookworm minbase with containerd, runc, the CNI
# plugins, iptables and iproute2, packed as a gzip'd tar. It is what a WSL2 distro is imported from
# (`wsl --import`), and what `[worker] mode = "namespace"` runs its worker in on Linux. Made with
# mmdebstrap; bit-for-bit reproducible for a given mirror state (SOURCE_DATE_EPOCH is fixed).
#
# Usage: build-worker-rootfs.sh [--output FILE] [--ephemerd BIN] [--force]
#
#   --output FILE   write the tarball to FILE
#                   (default: ${XDG_CACHE_HOME:-$HOME/.cache}/ephemerd/images/worker-bookworm.tar.gz)
#   --ephemerd BIN  put BIN in the tree as /usr/bin/ephemerd (a WSL distro needs it; the namespace
#                   worker binds the daemon's own binary over it, so tests leave it out)
#   --force         rebuild even if a cached tarball built by these exact scripts exists
#
# Environment:
#   EPHEMERD_DEBIAN_MIRROR, EPHEMERD_DEBIAN_SECURITY_MIRROR  as for build-job-image.sh
#   SOURCE_DATE_EPOCH  clamps every timestamp in the tree (default 1704067200, 2024-01-01)
#
# Progress goes to stderr; the only thing printed on stdout is the tarball path.
# Must run as root (mmdebstrap --mode=root).

set -euo pipefail

readonly SUITE=bookworm
# libdbus-1-3: the ephemerd binary links it (the keyring's Secret Service client), in the worker too.
# kmod: the VM kernel loads its modules through modprobe (rootfs/build-vm-image.sh adds them).
# golang-github-containers-common: the seccomp profile jobs run under (/usr/share/containers/seccomp.json).
readonly PACKAGES=containerd,runc,containernetworking-plugins,iptables,iproute2,ca-certificates,libdbus-1-3,golang-github-containers-common,kmod

log() { printf '[build-worker-rootfs] %s\n' "$*" >&2; }
die() { printf '[build-worker-rootfs] error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2; }

output=""
ephemerd_bin=""
force=0
while [ $# -gt 0 ]; do
    case "$1" in
        --output)     [ $# -ge 2 ] || die "--output needs a FILE argument"; output=$2; shift 2 ;;
        --output=*)   output=${1#--output=}; shift ;;
        --ephemerd)   [ $# -ge 2 ] || die "--ephemerd needs a BIN argument"; ephemerd_bin=$2; shift 2 ;;
        --ephemerd=*) ephemerd_bin=${1#--ephemerd=}; shift ;;
        --force)      force=1; shift ;;
        -h|--help)    usage; exit 0 ;;
        *)            usage; die "unknown argument: $1" ;;
    esac
done
[ -n "$output" ] || output="${XDG_CACHE_HOME:-$HOME/.cache}/ephemerd/images/worker-bookworm.tar.gz"
if [ -n "$ephemerd_bin" ]; then
    [ -x "$ephemerd_bin" ] || die "--ephemerd $ephemerd_bin is not an executable file"
    ephemerd_bin=$(readlink -f -- "$ephemerd_bin")
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1704067200}

outdir=$(dirname -- "$output")
mkdir -p -- "$outdir"
outdir=$(cd -- "$outdir" && pwd -P)
output="$outdir/$(basename -- "$output")"
stamp="$output.stamp"

# shellcheck source=rootfs/lib.sh
. "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/lib.sh"
# The stamp also covers the binary put in and the epoch.
self_sha=$( { printf '%s %s\n' "$self_sha" "$SOURCE_DATE_EPOCH"; [ -z "$ephemerd_bin" ] || cat -- "$ephemerd_bin"; } \
    | sha256sum | cut -d' ' -f1)
cached_or_lock

[ "$(id -u)" -eq 0 ] || die "must run as root (mmdebstrap --mode=root)"
for tool in mmdebstrap gzip sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die "missing required tool: $tool"
done

debian_sources

work=$(mktemp -d -- "$outdir/.build-worker-rootfs.XXXXXX")
cleanup() {
    local rc=$?
    [ -n "${work:-}" ] && [ -d "$work" ] && rm -rf --one-file-system -- "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

mmdeb_args=(--mode=root --variant=minbase --format=tar --include="$PACKAGES")
slim_mmdeb_args
mmdeb_args+=(
    # The worker's DNS and hostname are its host's to give (WSL writes them; the namespace worker binds them).
    --customize-hook='rm -f "$1/etc/resolv.conf" "$1/etc/hostname"'
    # Jobs get their own cgroups and namespaces from the worker's containerd; nothing else starts here.
    --customize-hook='rm -f "$1/etc/containerd/config.toml"'
    --customize-hook='mkdir -p "$1/var/lib/ephemerd"'
    # What ephemerd reads to tell which tree it runs in (a WSL distro is re-imported when it changes).
    --customize-hook="printf 'ephemerd worker rootfs %s\n' '$self_sha' > \"\$1/etc/ephemerd-rootfs\""
)
if [ -n "$ephemerd_bin" ]; then
    mmdeb_args+=(--customize-hook="copy-in $ephemerd_bin /usr/bin")
fi

log "mmdebstrap $SUITE (minbase + $PACKAGES) from:"
for s in "${sources[@]}"; do log "  $s"; done
t0=$(date +%s)
mmdebstrap "${mmdeb_args[@]}" "$SUITE" "$work/rootfs.tar" "${sources[@]}" </dev/null >&2 \
    || die "mmdebstrap failed (mirror: $mirror)"
unpacked=$(stat -c %s -- "$work/rootfs.tar")
gzip -n -c -- "$work/rootfs.tar" > "$work/rootfs.tar.gz"
chmod 0644 "$work/rootfs.tar.gz"

rm -f -- "$stamp"
mv -f -- "$work/rootfs.tar.gz" "$output"
printf '%s\n' "$self_sha" > "$work/stamp"
mv -f -- "$work/stamp" "$stamp"

log "wrote $output ($(du -h "$output" | cut -f1) gzip'd, $((unpacked / 1048576)) MiB as tar, $(( $(date +%s) - t0 ))s)"
log "sha256 $(sha256sum -- "$output" | cut -d' ' -f1)"
printf '%s\n' "$output"

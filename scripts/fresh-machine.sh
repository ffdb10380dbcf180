#!/usr/bin/env bash
# The fresh-machine check (scripts/test.sh runs it): the README's commands on a clean Debian 12.
#
# A minbase Debian 12 root made by mmdebstrap (cached as a tarball under ~/.cache/ephemerd/fresh; only the
# untouched base is cached, never what the check installs or builds), this machine's Rust toolchain mounted
# read-only (the README asks for one), and an empty clone of this repository's HEAD. Then, as the root of
# its own mount and PID namespaces (pivot_root; everything it starts dies with it):
#   1. with the network: what both README commands install (scripts/deps.sh, scripts/deps-desktop.sh,
#      tauri-driver included), the crates the build needs (`cargo fetch`), and the job image
#      (rootfs/build-job-image.sh, which needs a Debian mirror);
#   2. in a network namespace of its own with no way out: ./scripts/demo.sh as the README gives it. It
#      builds ephemerd offline from the fetched crates, finds the job image built in step 1, starts its own
#      containerd and runs examples/hello.yml in a real container (runc, CNI bridge, iptables), all in the
#      root's own network namespace, so nothing of it touches this machine's network.
# The test suite itself (the README's second command) runs on this machine, after this check.
#
# Usage: scripts/fresh-machine.sh [--rebuild-base]
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/ephemerd/fresh"
base="$cache/bookworm-minbase.tar"
log() { printf '[fresh-machine] %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { echo "run as root (mmdebstrap, mounts, namespaces)" >&2; exit 1; }
for tool in mmdebstrap unshare pivot_root git; do
    command -v "$tool" >/dev/null || { echo "$tool is needed (scripts/deps.sh installs mmdebstrap)" >&2; exit 1; }
done
rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
[ -x "$cargo_bin/cargo" ] && [ -d "$rustup_home/toolchains" ] ||
    { echo "a rustup toolchain is needed ($cargo_bin/cargo, $rustup_home)" >&2; exit 1; }
toolchain=$(cd "$repo" && cargo --version 2>/dev/null | awk '{print $2}')

if [ "${1:-}" = --rebuild-base ] || [ ! -s "$base" ]; then
    log "making the base root: mmdebstrap --variant=minbase bookworm (once; cached at $base)"
    mkdir -p "$cache"
    # The same mirrors as this machine's apt (a fresh Debian 12 gets its sources from its installer).
    mmdebstrap --quiet --variant=minbase --format=tar bookworm "$base.tmp" - </etc/apt/sources.list.d/debian.sources 2>/dev/null ||
        mmdebstrap --quiet --variant=minbase --format=tar bookworm "$base.tmp"
    mv "$base.tmp" "$base"
fi

root=$(mktemp -d /var/tmp/ephemerd-fresh.XXXXXX)
cleanup() {
    local rc=$?
    # The mounts lived in the check's own mount namespace and are gone; --one-file-system all the same.
    rm -rf --one-file-system -- "$root"
    exit "$rc"
}
trap cleanup EXIT
tar -C "$root" -xf "$base"
# An empty clone: only what is committed.
git clone --quiet "$repo" "$root/root/ephemerd"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# This network's own certificate authorities (a TLS-inspecting egress proxy, say) are the machine's, not
# ours: a fresh machine on this network has them too. ca-certificates, which deps.sh installs, adds them.
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
mkdir -p "$root/root/.rustup" "$root/root/.cargo/bin"
log "base $(du -sh "$base" | cut -f1), clone of $(git -C "$repo" rev-parse --short HEAD), Rust $toolchain from this machine (read-only)"

# Runs in the new mount and PID namespaces: mounts for the new root, pivot into it, then the two phases.
inner=$(cat <<'EOF'
set -euo pipefail
root=$1 rustup_home=$2 cargo_bin=$3
mount --make-rprivate /
# The root must be a mount point of its own (for pivot_root, and runc makes mounts private from it).
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=755 tmpfs "$root/run"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
for m in "$rustup_home:/root/.rustup" "$cargo_bin:/root/.cargo/bin"; do
    mount --bind "${m%%:*}" "$root${m#*:}"
    mount -o remount,bind,ro "$root${m#*:}"
done
# pivot_root, not chroot: the kernel refuses user namespaces (jobs run in one) to a chrooted process.
cd "$root"
mkdir -p .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
rmdir /.oldroot
in_root() {
    /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 RUSTUP_HOME=/root/.rustup \
        CARGO_HOME=/root/.cargo PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        "$@"
}
echo "[fresh-machine] 1/2: install (both README commands), fetch crates, build the job image" >&2
in_root bash -c 'cd /root/ephemerd && source scripts/deps.sh && source scripts/deps-desktop.sh &&
                 cargo fetch --locked --quiet && rootfs/build-job-image.sh >/dev/null'
echo "[fresh-machine] 2/2: ./scripts/demo.sh, offline, in a network namespace of its own" >&2
# Its own data dir, so its instance (cgroup parent, chains) is apart from any ephemerd on this machine.
in_root unshare --net bash -c 'ip link set lo up && cd /root/ephemerd &&
    EPHEMERD_DATA_DIR=/var/lib/ephemerd-fresh-check CARGO_NET_OFFLINE=true ./scripts/demo.sh'
EOF
)
started=$(date +%s)
unshare --mount --pid --fork bash -c "$inner" inner "$root" "$rustup_home" "$cargo_bin"
log "passed in $(( $(date +%s) - started ))s: the README's demo runs on a fresh Debian 12"

#!/usr/bin/env bash
# Installs what ephemerd needs on Debian 12 (apt packages), and checks the Rust toolchain.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run again (installs only what is missing).
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "ephemerd runs containers: run this as root (sudo $0)" >&2
  exit 1
fi

# containerd, runc and the CNI plugins run the jobs; iptables and iproute2 shape their network;
# golang-github-containers-common ships the default seccomp profile; docker-registry and skopeo are the
# tests' local OCI registry (apache2-utils: htpasswd for its auth); mmdebstrap builds the job image; git copies
# repositories into jobs; libdbus-1-dev links the keyring client (Secret Service); gnome-keyring and dbus-daemon
# give the tests a real Secret Service; systemd's systemctl and systemd-analyze install and verify the service unit (no running systemd is needed).
# qemu-system-x86 and qemu-utils run the worker VM; cpio, kmod and e2fsprogs build its boot set (rootfs/build-vm-image.sh).
packages=(containerd runc containernetworking-plugins iptables iproute2 golang-github-containers-common
          docker-registry skopeo apache2-utils mmdebstrap git ca-certificates gcc pkg-config libdbus-1-dev gnome-keyring
          dbus-daemon dbus-bin systemd qemu-system-x86 qemu-utils cpio kmod e2fsprogs)
# Installs those of the given apt packages that are missing (also used by deps-desktop.sh).
apt_install_missing() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}
apt_install_missing "${packages[@]}"
# qemu-system-x86 from bookworm replaces a newer qemu-utils (a backport) that a machine may have had.
if ! command -v qemu-img >/dev/null 2>&1; then
  echo "==> installing: qemu-utils" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-utils >/dev/null
fi

# Node.js runs the JSON Schema check of the fake forges against the forges' OpenAPI descriptions.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "==> installing: nodejs npm" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: ephemerd needs Rust 1.89 or newer (https://rustup.rs), Debian 12's rustc is too old" >&2
  exit 1
fi

# Builds go outside the clone, so a fresh clone reuses them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ephemerd/target}"

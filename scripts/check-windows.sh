#!/usr/bin/env bash
# `cargo check` of the daemon and its protocol crate for Windows (x86_64-pc-windows-gnu), on this Linux
# machine: Debian's rustc-web with its std source (-Zbuild-std), mingw-w64 for the C parts. Its own target
# dir, so the host build cache stays as it is. Sourced by scripts/test.sh, or run alone.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
apt_install_missing rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64
echo "==> cargo check for Windows (ephemerd, ephemerd-proto)" >&2
PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo check --locked \
    -Zbuild-std=std,panic_abort --target x86_64-pc-windows-gnu -p ephemerd-proto -p ephemerd \
    --target-dir "$HOME/.cache/ephemerd/win-target" --message-format short

#!/usr/bin/env bash
# What the tray app needs to build and to be tested in a real window, on Debian 12: WebKitGTK and the
# AppIndicator library (Tauri), WebKitWebDriver, Xvfb, and tauri-driver (built once into
# ~/.cache/ephemerd/tools). Sourced by scripts/test.sh after scripts/deps.sh (its apt_install_missing);
# installs only what is missing.
set -euo pipefail

desktop=(libwebkit2gtk-4.1-dev libxdo-dev libssl-dev libayatana-appindicator3-dev librsvg2-dev
         webkit2gtk-driver xvfb xauth)
apt_install_missing "${desktop[@]}"

tools="$HOME/.cache/ephemerd/tools"
if [ ! -x "$tools/bin/tauri-driver" ]; then
  echo "==> building tauri-driver 2.1.0 (once)" >&2
  CARGO_TARGET_DIR="$tools/target" cargo install tauri-driver --locked --version 2.1.0 --root "$tools" --quiet
  rm -rf "$tools/target"
fi
export TAURI_DRIVER="$tools/bin/tauri-driver"

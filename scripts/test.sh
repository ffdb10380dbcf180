#!/usr/bin/env bash
# All the tests: install what is needed, build the job image, then lint, unit tests and end-to-end tests
# against real containerd, runc, CNI plugins and a local docker-registry; the tray app's UI tests, and
# the app in a real window (Xvfb + WebDriver); last, the README's demo on a fresh Debian 12 root (scripts/fresh-machine.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
source scripts/deps-desktop.sh

echo "==> job image" >&2
EPHEMERD_TEST_IMAGE=$(rootfs/build-job-image.sh)
export EPHEMERD_TEST_IMAGE
echo "==> worker rootfs" >&2
EPHEMERD_TEST_WORKER_ROOTFS=$(rootfs/build-worker-rootfs.sh)
export EPHEMERD_TEST_WORKER_ROOTFS
echo "==> worker VM boot set" >&2
EPHEMERD_TEST_VM_IMAGE=$(rootfs/build-vm-image.sh --rootfs "$EPHEMERD_TEST_WORKER_ROOTFS")
export EPHEMERD_TEST_VM_IMAGE

echo "==> GitHub's OpenAPI description, to keep the fake GitHub honest" >&2
(cd tests/schema && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

echo "==> ui: npm ci, typecheck, component tests (Vitest), build (the tray app embeds ui/dist)" >&2
npm ci --no-audit --no-fund --loglevel=error >/dev/null
npm run --silent ui:typecheck
npm run --silent ui:test
npm run --silent ui:build >/dev/null

echo "==> cargo fmt --check" >&2
cargo fmt --all -- --check
echo "==> cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
scripts/check-windows.sh
echo "==> cargo test" >&2
# The end-to-end tests run both binaries.
cargo build -p ephemerd -p ephemerd-tray --locked
cargo test --workspace --locked

echo "==> the fresh-machine check: the README's demo on a clean Debian 12 root" >&2
scripts/fresh-machine.sh

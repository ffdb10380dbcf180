#!/usr/bin/env bash
# All the tests: install what is needed, build the job image, then lint, unit tests and end-to-end tests
# against real containerd, runc, CNI plugins and a local docker-registry.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

echo "==> job image" >&2
EPHEMERD_TEST_IMAGE=$(rootfs/build-job-image.sh)
export EPHEMERD_TEST_IMAGE

echo "==> GitHub's OpenAPI description, to keep the fake GitHub honest" >&2
(cd tests/schema && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

echo "==> cargo fmt --check" >&2
cargo fmt --all -- --check
echo "==> cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test" >&2
# Builds the ephemerd binary too: the end-to-end tests run it.
cargo test --workspace --locked

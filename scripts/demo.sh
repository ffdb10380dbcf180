#!/usr/bin/env bash
# The main job: install what is needed, build ephemerd, build the default job image, import it, and run
# examples/hello.yml in a fresh container. The job fails on purpose at step 4 (to show `if: failure()`),
# so ephemerd exits with that step's code, 3.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

echo "==> building ephemerd (release)" >&2
cargo build --release -p ephemerd
bin="$CARGO_TARGET_DIR/release/ephemerd"

echo "==> building the job image (cached under ~/.cache/ephemerd)" >&2
image_archive=$(rootfs/build-job-image.sh)
data_dir="${EPHEMERD_DATA_DIR:-/var/lib/ephemerd}"
"$bin" --data-dir "$data_dir" image import "$image_archive"

echo "==> ephemerd run examples/hello.yml" >&2
set +e
"$bin" --data-dir "$data_dir" run examples/hello.yml --image localhost/ephemerd/job:bookworm
code=$?
set -e
echo "==> ephemerd exited with $code (3 expected: step 4 fails on purpose)" >&2
[ "$code" = 3 ]

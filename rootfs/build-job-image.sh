#!/usr/bin/env bash
# Build ephemerd's default job image (Debian bookworm, minbase + bash, git,
# curl, ca-certificates, tar, gzip) as an OCI image archive -- a tar of an OCI
# image layout (oci-layout, index.json, blobs/sha256/...) -- using mmdebstrap.
# No docker, no registry: only a Debian package mirror is contacted.
#
# Usage: build-job-image.sh [--output FILE] [--force]
#
#   --output FILE  write the archive to FILE
#                  (default: ${XDG_CACHE_HOME:-$HOME/.cache}/ephemerd/images/job-bookworm.oci.tar)
#   --force        rebuild even if a cached archive built by this exact script exists
#
# Environment:
#   EPHEMERD_DEBIAN_MIRROR           Debian mirror (default: taken from this host's apt sources,
#                                    falling back to http://deb.debian.org/debian)
#   EPHEMERD_DEBIAN_SECURITY_MIRROR  Debian security mirror; set to "" to leave out
#                                    bookworm-security (default: from this host's apt sources)
#   SOURCE_DATE_EPOCH                used for the image's "created" timestamp if set
#
# Progress goes to stderr; the only thing printed on stdout is the archive path.
# Must run as root (mmdebstrap --mode=root).

set -euo pipefail

readonly SUITE=bookworm
readonly PACKAGES=bash,git,curl,ca-certificates,tar,gzip,iputils-ping
readonly IMAGE_NAME=localhost/ephemerd/job:bookworm
readonly IMAGE_REF=bookworm

log() { printf '[build-job-image] %s\n' "$*" >&2; }
die() { printf '[build-job-image] error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
}

# --------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------
output=""
force=0
while [ $# -gt 0 ]; do
    case "$1" in
        --output)   [ $# -ge 2 ] || die "--output needs a FILE argument"; output=$2; shift 2 ;;
        --output=*) output=${1#--output=}; shift ;;
        --force)    force=1; shift ;;
        -h|--help)  usage; exit 0 ;;
        *)          usage; die "unknown argument: $1" ;;
    esac
done
[ -n "$output" ] || output="${XDG_CACHE_HOME:-$HOME/.cache}/ephemerd/images/job-bookworm.oci.tar"
[ -n "$output" ] || die "empty --output"

outdir=$(dirname -- "$output")
mkdir -p -- "$outdir"
outdir=$(cd -- "$outdir" && pwd -P)
output="$outdir/$(basename -- "$output")"
stamp="$output.stamp"

# shellcheck source=rootfs/lib.sh
. "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/lib.sh"
cached_or_lock

# --------------------------------------------------------------------------
# Preconditions
# --------------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "must run as root (mmdebstrap --mode=root)"
for tool in mmdebstrap mmtarfilter dpkg sha256sum gzip tar stat; do
    command -v "$tool" >/dev/null 2>&1 || die "missing required tool: $tool"
done
if command -v python3 >/dev/null 2>&1; then
    json_tool=python3
elif command -v jq >/dev/null 2>&1; then
    json_tool=jq
else
    die "need python3 or jq to write the image JSON"
fi

# --------------------------------------------------------------------------
# Architecture: dpkg name -> OCI (GOARCH) name [+ variant]
# --------------------------------------------------------------------------
deb_arch=$(dpkg --print-architecture)
oci_variant=""
case "$deb_arch" in
    amd64)    oci_arch=amd64 ;;
    arm64)    oci_arch=arm64; oci_variant=v8 ;;
    armhf)    oci_arch=arm; oci_variant=v7 ;;
    armel)    oci_arch=arm; oci_variant=v5 ;;
    i386)     oci_arch=386 ;;
    ppc64el)  oci_arch=ppc64le ;;
    s390x)    oci_arch=s390x ;;
    mips64el) oci_arch=mips64le ;;
    riscv64)  oci_arch=riscv64 ;;
    *)        die "don't know the OCI architecture name for dpkg architecture '$deb_arch'" ;;
esac

debian_sources

# --------------------------------------------------------------------------
# Work dir (next to the output so the final mv is an atomic rename)
# --------------------------------------------------------------------------
work=$(mktemp -d -- "$outdir/.build-job-image.XXXXXX")
cleanup() {
    local rc=$?
    # --one-file-system: never descend into anything that might still be mounted.
    [ -n "${work:-}" ] && [ -d "$work" ] && rm -rf --one-file-system -- "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

layout="$work/layout"
mkdir -p "$layout/blobs/sha256"

# --------------------------------------------------------------------------
# 1. Root filesystem tarball via mmdebstrap
# --------------------------------------------------------------------------
mmdeb_args=(--mode=root --variant=minbase --format=tar --include="$PACKAGES")
slim_mmdeb_args
mmdeb_args+=(
    # ping ships with file capability cap_net_raw, which jobs never get: exec of such a file fails (EPERM).
    # Without it ping uses an ICMP datagram socket, which ephemerd's net.ipv4.ping_group_range allows.
    --customize-hook='cp "$1/usr/bin/ping" "$1/usr/bin/ping.plain" && mv "$1/usr/bin/ping.plain" "$1/usr/bin/ping"'
    # Do not leak the build host's DNS/hostname; the container runtime provides them.
    --customize-hook='rm -f "$1/etc/resolv.conf" "$1/etc/hostname"'
)

log "mmdebstrap $SUITE (minbase + $PACKAGES) for $deb_arch from:"
for s in "${sources[@]}"; do log "  $s"; done
t0=$(date +%s)
# /dev/* is dropped: the container runtime populates /dev itself, and device
# nodes in a layer break unprivileged unpacking.
mmdebstrap "${mmdeb_args[@]}" "$SUITE" "$work/rootfs.tar" "${sources[@]}" </dev/null >&2 \
    || die "mmdebstrap failed (mirror: $mirror)"
mmtarfilter --path-exclude='/dev/*' < "$work/rootfs.tar" > "$work/layer.tar"
rm -f -- "$work/rootfs.tar"
log "rootfs done in $(( $(date +%s) - t0 ))s ($(du -h "$work/layer.tar" | cut -f1) uncompressed)"

# --------------------------------------------------------------------------
# 2. Layer blob
# --------------------------------------------------------------------------
blob_put() { # FILE -> moves it to blobs/sha256/<digest>, prints "sha256:<hex> <size>"
    local hex size
    hex=$(sha256sum -- "$1" | cut -d' ' -f1)
    size=$(stat -c %s -- "$1")
    mv -- "$1" "$layout/blobs/sha256/$hex"
    printf 'sha256:%s %s\n' "$hex" "$size"
}

log "compressing layer"
diff_id="sha256:$(sha256sum -- "$work/layer.tar" | cut -d' ' -f1)"
gzip -n -c -- "$work/layer.tar" > "$work/layer.tar.gz"
rm -f -- "$work/layer.tar"
read -r layer_digest layer_size < <(blob_put "$work/layer.tar.gz")
log "layer $layer_digest ($layer_size bytes), diff_id $diff_id"

# --------------------------------------------------------------------------
# 3. Config, manifest, index
# --------------------------------------------------------------------------
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
    created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
else
    created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
fi
history_cmd="mmdebstrap --variant=minbase --include=$PACKAGES $SUITE (ephemerd rootfs/build-job-image.sh)"
readonly PATH_ENV='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

# write_json KIND OUTFILE: KIND is config|manifest|index; inputs via exported vars.
export oci_arch oci_variant created diff_id history_cmd PATH_ENV \
    layer_digest layer_size IMAGE_NAME IMAGE_REF
write_json() {
    local kind=$1 out=$2
    if [ "$json_tool" = python3 ]; then
        python3 - "$kind" "$out" <<'PY'
import json, os, sys
kind, out = sys.argv[1], sys.argv[2]
e = os.environ
platform = {"architecture": e["oci_arch"], "os": "linux"}
if e.get("oci_variant"):
    platform["variant"] = e["oci_variant"]
if kind == "config":
    doc = dict(platform)
    doc.update({
        "created": e["created"],
        "config": {"Env": [e["PATH_ENV"]], "Cmd": ["bash"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [e["diff_id"]]},
        "history": [{"created": e["created"], "created_by": e["history_cmd"]}],
    })
elif kind == "manifest":
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": e["config_digest"], "size": int(e["config_size"])},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": e["layer_digest"], "size": int(e["layer_size"])}],
    }
else:
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": e["manifest_digest"], "size": int(e["manifest_size"]),
            "platform": platform,
            "annotations": {"io.containerd.image.name": e["IMAGE_NAME"],
                            "org.opencontainers.image.ref.name": e["IMAGE_REF"]},
        }],
    }
with open(out, "w") as f:
    json.dump(doc, f, separators=(",", ":"), sort_keys=True)
PY
    else
        local platform='{architecture: env.oci_arch, os: "linux"} + (if (env.oci_variant // "") != "" then {variant: env.oci_variant} else {} end)'
        case "$kind" in
            config) jq -cnS "$platform"' + {
                created: env.created,
                config: {Env: [env.PATH_ENV], Cmd: ["bash"], WorkingDir: "/"},
                rootfs: {type: "layers", diff_ids: [env.diff_id]},
                history: [{created: env.created, created_by: env.history_cmd}]}' ;;
            manifest) jq -cnS '{
                schemaVersion: 2,
                mediaType: "application/vnd.oci.image.manifest.v1+json",
                config: {mediaType: "application/vnd.oci.image.config.v1+json",
                         digest: env.config_digest, size: (env.config_size | tonumber)},
                layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
                          digest: env.layer_digest, size: (env.layer_size | tonumber)}]}' ;;
            index) jq -cnS '{
                schemaVersion: 2,
                mediaType: "application/vnd.oci.image.index.v1+json",
                manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json",
                             digest: env.manifest_digest, size: (env.manifest_size | tonumber),
                             platform: ('"$platform"'),
                             annotations: {"io.containerd.image.name": env.IMAGE_NAME,
                                           "org.opencontainers.image.ref.name": env.IMAGE_REF}}]}' ;;
        esac | tr -d '\n' > "$out"
    fi
}

write_json config "$work/config.json"
read -r config_digest config_size < <(blob_put "$work/config.json")
export config_digest config_size
log "config $config_digest ($config_size bytes)"

write_json manifest "$work/manifest.json"
read -r manifest_digest manifest_size < <(blob_put "$work/manifest.json")
export manifest_digest manifest_size
log "manifest $manifest_digest ($manifest_size bytes)"

write_json index "$layout/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"

# --------------------------------------------------------------------------
# 4. Archive and install atomically
# --------------------------------------------------------------------------
chmod 0644 "$layout/oci-layout" "$layout/index.json" "$layout"/blobs/sha256/*
tar -C "$layout" --numeric-owner --owner=0 --group=0 --mtime="$created" \
    -cf "$work/image.oci.tar" oci-layout index.json blobs
chmod 0644 "$work/image.oci.tar"

rm -f -- "$stamp"
mv -f -- "$work/image.oci.tar" "$output"
printf '%s\n' "$self_sha" > "$work/stamp"
mv -f -- "$work/stamp" "$stamp"

log "wrote $output ($(du -h "$output" | cut -f1), $(( $(date +%s) - t0 ))s)"
printf '%s\n' "$output"

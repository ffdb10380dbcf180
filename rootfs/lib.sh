# Shared by the rootfs/ build scripts (sourced, never run): the Debian mirrors this host's apt uses, the
# "slim" mmdebstrap options, and the build cache (an output is reused while the stamp next to it names
# the sha256 of the scripts that built it). The caller sets SUITE and defines log before sourcing it.

# ---------------------------------------------------------------------------
# Mirrors: reuse this host's apt configuration
# ---------------------------------------------------------------------------
# Prints "URI<TAB>SUITE" for every enabled deb entry in the host's apt sources
# (one-line *.list format and deb822 *.sources format).
host_apt_entries() {
    local f files=()
    [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || return 0
    for f in "${files[@]}"; do
        case "$f" in
            *.list)
                # deb [opt=val ...] URI SUITE COMPONENT...
                awk '
                    { sub(/#.*/, "") }
                    $1 != "deb" { next }
                    {
                        i = 2
                        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                        if (i + 1 <= NF) print $i "\t" $(i + 1)
                    }' "$f"
                ;;
            *.sources)
                awk '
                    function flush(   n, m, us, ss, a, b) {
                        if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled !~ /^[ \t]*no/) {
                            n = split(uris, us, /[ \t]+/); m = split(suites, ss, /[ \t]+/)
                            for (a = 1; a <= n; a++) for (b = 1; b <= m; b++)
                                if (us[a] != "" && ss[b] != "") print us[a] "\t" ss[b]
                        }
                        types = uris = suites = enabled = ""
                    }
                    /^[ \t]*#/ { next }
                    /^[ \t]*$/ { flush(); next }
                    /^[A-Za-z-]+:/ {
                        key = tolower($0); sub(/:.*/, "", key)
                        val = $0; sub(/^[^:]*:[ \t]*/, "", val)
                        if (key == "types") types = val
                        else if (key == "uris") uris = val
                        else if (key == "suites") suites = val
                        else if (key == "enabled") enabled = tolower(val)
                    }
                    END { flush() }' "$f"
                ;;
        esac
    done
}

# Sets `mirror` and the array `sources` (main, updates, security) for $SUITE.
debian_sources() {
    local host_entries host_mirror host_security security_mirror
    host_entries=$(host_apt_entries || true)
    # Main archive: first entry that is not a security suite.
    host_mirror=$(printf '%s\n' "$host_entries" | awk -F'\t' '$2 != "" && $2 !~ /\/updates$|-security$/ && $1 !~ /security/ { print $1; exit }')
    host_security=$(printf '%s\n' "$host_entries" | awk -F'\t' '$2 ~ /\/updates$|-security$/ { print $1; exit }')

    mirror=${EPHEMERD_DEBIAN_MIRROR:-${host_mirror:-http://deb.debian.org/debian}}
    if [ "${EPHEMERD_DEBIAN_SECURITY_MIRROR+set}" = set ]; then
        security_mirror=$EPHEMERD_DEBIAN_SECURITY_MIRROR
    else
        security_mirror=$host_security
    fi
    mirror=${mirror%/}
    security_mirror=${security_mirror%/}

    sources=("deb $mirror $SUITE main" "deb $mirror $SUITE-updates main")
    [ -n "$security_mirror" ] && sources+=("deb $security_mirror $SUITE-security main")
}

# ---------------------------------------------------------------------------
# Slim trees: appends to the array `mmdeb_args`
# ---------------------------------------------------------------------------
slim_mmdeb_args() {
    # Keep the image small (same list as Debian's official "slim" images). These
    # dpkg options stay in the image (/etc/dpkg/dpkg.cfg.d/99mmdebstrap), so
    # packages a job installs later are slimmed the same way.
    dpkg_excludes=(
        'path-exclude=/usr/share/doc/*'
        'path-include=/usr/share/doc/*/copyright'
        'path-exclude=/usr/share/man/*'
        'path-exclude=/usr/share/groff/*'
        'path-exclude=/usr/share/info/*'
        'path-exclude=/usr/share/lintian/*'
        'path-exclude=/usr/share/linda/*'
        'path-exclude=/usr/share/locale/*'
    )
    # Set up merged-/usr the debootstrap way (installs usr-is-merged) instead of
    # letting apt pull in the usrmerge package and its perl dependencies.
    merged_usr_hooks=/usr/share/mmdebstrap/hooks/merged-usr
    if [ -d "$merged_usr_hooks" ]; then
        mmdeb_args+=(--hook-dir="$merged_usr_hooks")
    else
        log "note: $merged_usr_hooks not found; usrmerge will be installed instead"
    fi
    for o in "${dpkg_excludes[@]}"; do mmdeb_args+=(--dpkgopt="$o"); done
    mmdeb_args+=(
        # Essential packages are unpacked before the dpkg options apply; sweep up.
        --customize-hook='find "$1/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete 2>/dev/null || true'
        --customize-hook='find "$1/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true'
        --customize-hook='rm -rf "$1"/usr/share/man/* "$1"/usr/share/groff/* "$1"/usr/share/info/* "$1"/usr/share/lintian/* "$1"/usr/share/linda/* "$1"/usr/share/locale/*'
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old "$1"/var/log/apt/* "$1"/var/log/*.log'
    )
}

# ---------------------------------------------------------------------------
# Cache: `cached_or_lock` exits 0 (printing $output) when $output is current, else takes the
# build lock (fd 9) and returns. Needs output, stamp and force set.
# ---------------------------------------------------------------------------
self_sha=$(cat -- "$(readlink -f -- "$0")" "$(readlink -f -- "${BASH_SOURCE[0]}")" | sha256sum | cut -d' ' -f1)

cache_hit() {
    [ -f "$output" ] && [ -f "$stamp" ] && [ "$(cat -- "$stamp" 2>/dev/null)" = "$self_sha" ]
}

cached_or_lock() {
    if [ "$force" -eq 0 ] && cache_hit; then
        log "up to date (built by these scripts, sha256 ${self_sha:0:12}): $output"
        printf '%s\n' "$output"
        exit 0
    fi
    # Serialise concurrent builds of the same output; re-check the cache afterwards.
    exec 9>"$output.lock"
    if command -v flock >/dev/null 2>&1; then
        flock 9
        if [ "$force" -eq 0 ] && cache_hit; then
            log "built by a concurrent run: $output"
            printf '%s\n' "$output"
            exit 0
        fi
    fi
}

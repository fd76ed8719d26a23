#!/usr/bin/env bash
# Idempotent host + venv setup for fcap (Debian 12 / this VM kind, as root).
#
# 1. Debian packages: python3-bpfcc (bcc), kernel headers, runc, busybox-static.
#    Exact linux-headers-$(uname -r) when Debian has them; otherwise the distro's
#    generic headers (linux-headers-amd64), linked at /lib/modules/$(uname -r)/
#    build and source. See docs/recording.md for the trade-off.
# 2. tracefs mounted at /sys/kernel/tracing.
# 3. .venv (the default python3) with fcap installed editable, and bcc (which
#    lives in Debian's dist-packages) made importable by a symlink.
#
# FCAP_SETUP_NO_HOST=1 skips steps 1-2 (for machines where you cannot be root).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${FCAP_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
log() { printf 'setup: %s\n' "$*" >&2; }

host_setup() {
    if [ "$(id -u)" != 0 ]; then
        log "not root: skipping host packages, headers and tracefs (recording needs them)"
        return 0
    fi
    local kver pkgs=()
    kver=$(uname -r)
    dpkg -s python3-bpfcc >/dev/null 2>&1 || pkgs+=(python3-bpfcc)
    command -v runc >/dev/null 2>&1 || pkgs+=(runc)
    [ -x /bin/busybox ] || pkgs+=(busybox-static)
    local exact="linux-headers-$kver"
    if [ ! -e "/lib/modules/$kver/build/include/generated/autoconf.h" ] && ! dpkg -s "$exact" >/dev/null 2>&1; then
        pkgs+=(__headers__)
    fi
    if [ ${#pkgs[@]} -gt 0 ]; then
        log "installing Debian packages: ${pkgs[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        local real=()
        for p in "${pkgs[@]}"; do [ "$p" != __headers__ ] && real+=("$p"); done
        if printf '%s\n' "${pkgs[@]}" | grep -qx __headers__; then
            if apt-cache show "$exact" >/dev/null 2>&1; then real+=("$exact"); else real+=(linux-headers-amd64); fi
        fi
        apt-get install -y -qq --no-install-recommends "${real[@]}" >/dev/null
    fi
    # Headers: link the distro's generic headers when the running kernel has none.
    if [ ! -e "/lib/modules/$kver/build/include/generated/autoconf.h" ]; then
        local arch common
        arch=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
        common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n 1)
        if [ -z "$arch" ] || [ -z "$common" ]; then
            log "no kernel headers found under /usr/src; install linux-headers-amd64"; exit 1
        fi
        mkdir -p "/lib/modules/$kver"
        ln -sfn "$arch" "/lib/modules/$kver/build"
        ln -sfn "$common" "/lib/modules/$kver/source"
        log "linked generic headers $(basename "$arch") for kernel $kver"
    fi
    if ! mountpoint -q /sys/kernel/tracing 2>/dev/null; then
        mount -t tracefs nodev /sys/kernel/tracing
        log "mounted tracefs at /sys/kernel/tracing"
    fi
}

venv_setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        "$PY" -m venv "$VENV"
    fi
    local stamp="$VENV/.fcap-installed" want
    want=$(cat pyproject.toml setup.py | sha256sum | cut -c1-16)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        log "installing fcap (editable) and test tools into $VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
        "$VENV/bin/python" -m pip install -q -e ".[test]"
        echo "$want" > "$stamp"
    fi
    # bcc is a pure-Python ctypes binding shipped in Debian's dist-packages; link
    # only that package into the venv so Debian's other modules stay out.
    local site
    site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    if [ -d /usr/lib/python3/dist-packages/bcc ]; then
        ln -sfn /usr/lib/python3/dist-packages/bcc "$site/bcc"
    fi
}

[ "${FCAP_SETUP_NO_HOST:-0}" = 1 ] || host_setup
venv_setup
log "ready: $VENV/bin/fcap"

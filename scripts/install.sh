#!/usr/bin/env bash
# Installs everything LMP needs on a Debian host, idempotently: a second run with everything in place
# does no network work and finishes in a fraction of a second.
#   scripts/install.sh           what `make run` needs
#   scripts/install.sh --test    that plus the test dependencies (`make test`)
#   scripts/install.sh --docs    that plus what builds the docs site (`make docs`)
#   scripts/install.sh --image   the packages and the project only, for building a container image
#                                (no kernel there to check: the container runs the next one at start)
#   scripts/install.sh --kernel  the kernel side only: headers linked, pseudo file systems, BPF usable
set -euo pipefail

die() { echo "lmp install: $*" >&2; exit 1; }
log() { echo "lmp install: $*"; }

top=$(cd "$(dirname "$0")/.." && pwd)
with_test=0 with_docs=0 image=0 kernel_only=0
for arg in "$@"; do
  case $arg in
    --test) with_test=1 ;;
    --docs) with_docs=1 ;;
    --image) image=1 ;;
    --kernel) kernel_only=1 ;;
    *) die "unknown option $arg (options: --test, --docs, --image, --kernel)" ;;
  esac
done

[ "$(uname -s)" = Linux ] || die "LMP needs Linux (this is $(uname -s))."
[ "$(id -u)" -eq 0 ] || die "run as root (sudo make run): loading eBPF programs needs CAP_SYS_ADMIN."
command -v apt-get >/dev/null || die "this script installs from Debian packages; apt-get was not found."
arch=$(dpkg --print-architecture)

# --- Debian packages ---------------------------------------------------------------------------------
# python3-bpfcc: BCC, which compiles the collectors' .bpf.c at load time (only for Debian's python3).
# linux-headers-*: BCC needs kernel headers even for tracepoint-only programs.
# prometheus: the local server `make run` starts. bpftool: BTF offsets and `lmp` diagnostics.
# curl: the commands of the README and the learning path (docs/learn).
packages() {
  local pkgs=(python3-bpfcc python3-venv bpftool prometheus "linux-headers-$arch" iproute2 procps curl)
  [ $with_test -eq 1 ] && pkgs+=(bpfcc-tools util-linux gcc libc6-dev)  # syscount (the bench peer), setpriv, taskset, cc
  [ $with_test -eq 1 ] && pkgs+=(chromium)  # the web page's tests, driven by Playwright (no browser download)
  [ $with_test -eq 1 ] && pkgs+=(strace linux-perf)  # lmp bench: the tools lmp scenario is measured beside
  command -v npm >/dev/null || pkgs+=(nodejs npm)  # the admin's front-end libraries (admin/package.json)
  local missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # --no-install-recommends keeps clang's and prometheus' long tails out; -o Dpkg::Use-Pty=0 keeps logs short.
    apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null
  fi
}

# --- kernel headers: link the newest Debian headers when the running kernel has none -----------------
# Looked for in /usr/src, then in /opt/lmp/headers (where the container image keeps its own, since a
# container mounts the host's /usr/src over its own). In a container, the host's own headers for this
# kernel, when it has them, come first: the host's /lib/modules is mounted at /host/lib/modules.
newest() { ls -d "$@" 2>/dev/null | sort -V | tail -n 1; }
headers() {
  local kdir=/lib/modules/$(uname -r) host=/host/lib/modules/$(uname -r) hdr common dir
  [ -e "$kdir/build/include" ] && return 0
  mkdir -p "$kdir"
  if [ -e "$host/build/include" ]; then
    ln -sfn "$host/build" "$kdir/build"
    ln -sfn "$host/source" "$kdir/source"
    log "linked $kdir/build to the host's headers for this kernel"
    return 0
  fi
  for dir in /usr/src /opt/lmp/headers; do
    hdr=$(newest "$dir"/linux-headers-*-"$arch")
    [ -n "$hdr" ] && break
  done
  [ -n "$hdr" ] || die "no linux-headers-*-$arch under /usr/src or /opt/lmp/headers (apt-get install linux-headers-$arch)."
  common=$(newest "$(dirname "$hdr")"/linux-headers-*-common)
  ln -sfn "$hdr" "$kdir/build"
  ln -sfn "${common:-$hdr}" "$kdir/source"
  log "kernel $(uname -r) has no headers: linked $kdir/build -> $hdr (tracepoint arguments only, see README)"
}

kernel() {
  headers
  # --- pseudo filesystems ----------------------------------------------------------------------------
  mounted() { findmnt -rn -t "$2" "$1" >/dev/null 2>&1; }
  mounted /sys/kernel/tracing tracefs || mount -t tracefs tracefs /sys/kernel/tracing || die "cannot mount tracefs"
  mounted /sys/kernel/debug debugfs   || mount -t debugfs debugfs /sys/kernel/debug   || die "cannot mount debugfs"
  mounted /sys/fs/bpf bpf             || mount -t bpf bpf /sys/fs/bpf                 || die "cannot mount bpffs"
  # --- BPF usable? (one clear line rather than a BCC traceback later) -------------------------------
  [ -e /sys/kernel/tracing/events/raw_syscalls/sys_exit ] \
    || die "this kernel has no raw_syscalls tracepoints (CONFIG_FTRACE_SYSCALLS): BPF collectors cannot run."
  bpftool prog list >/dev/null 2>&1 || die "the kernel refuses bpf() (CONFIG_BPF_SYSCALL off, or no CAP_SYS_ADMIN)."
}

# --- the virtual environment and the project ---------------------------------------------------------
project() {
  local venv=$top/.venv stamp extra="" hash
  if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    /usr/bin/python3 -m venv --system-site-packages "$venv"
  fi
  "$venv/bin/python" -c 'import bcc' 2>/dev/null || die "BCC's python module does not import in $venv."
  stamp=$venv/.lmp-installed
  [ $with_docs -eq 1 ] && extra="[docs]"
  [ $with_test -eq 1 ] && extra="[test]"  # which includes [docs]
  hash=$(sha256sum "$top/pyproject.toml" | cut -d' ' -f1)
  # A test install also satisfies a run or docs install, a docs install a run install; anything else
  # reinstalls when pyproject.toml changes.
  local have=""
  have=$(cat "$stamp" 2>/dev/null || true)
  if [ "$have" != "$hash$extra" ] && [ "$have" != "$hash[test]" ] && { [ -n "$extra" ] || [ "$have" != "$hash[docs]" ]; }; then
    log "installing the lmp package into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -e "$top$extra"
    echo "$hash$extra" > "$stamp"
  fi
  ln -sfn "$venv/bin/lmp" /usr/local/bin/lmp
}

# --- the admin service's front-end libraries, pinned in admin/package-lock.json, served by the admin ------
# --ignore-scripts: no package needs a build step, and one (swagger-ui's @scarf/scarf) would phone home.
assets() {
  local dir=$top/admin/node_modules hash
  hash=$(sha256sum "$top/admin/package-lock.json" | cut -d' ' -f1)
  if ! grep -qxF -- "$hash" "$dir/.lmp-installed" 2>/dev/null; then
    log "installing the admin's front-end libraries (npm ci)"
    npm ci --prefix "$top/admin" --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
    echo "$hash" > "$dir/.lmp-installed"
  fi
}

if [ $kernel_only -eq 1 ]; then
  kernel
  exit 0
fi
packages
[ $image -eq 1 ] || kernel
project
assets
exit 0

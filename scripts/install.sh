#!/usr/bin/env bash
# Installs everything LMP needs on a Debian host, idempotently: a second run with everything in place
# does no network work and finishes in a fraction of a second.
#   scripts/install.sh           what `make run` needs
#   scripts/install.sh --test    that plus the test dependencies (`make test`)
#   scripts/install.sh --docs    that plus what builds the docs site (`make docs`)
#   scripts/install.sh --image   the runtime packages and the project, in a container image's last stage
#                                (no kernel there to check: the container runs the next one at start)
#   scripts/install.sh --kernel  the kernel side only: pseudo file systems mounted, BPF usable
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
# libbpf1: loads the collectors' precompiled CO-RE objects. clang, llvm (llvm-strip) and libbpf-dev (its
# headers): build those objects (`lmp build`); a host that runs a prebuilt image needs none of the three.
# bpftool: `lmp doctor` and the tests' view of loaded programs. prometheus: the local server `make run`
# starts. curl: the commands of the README and the learning path (docs/learn).
# python3-bpfcc and linux-headers-*: `lmp scenario`, whose recorder still compiles its programs with BCC
# at each run (around its target and the event families asked for); BCC needs kernel headers for that.
packages() {
  local pkgs=(libbpf1 python3-venv bpftool prometheus iproute2 procps curl)
  [ $image -eq 1 ] || pkgs+=(clang llvm libbpf-dev python3-bpfcc "linux-headers-$arch")
  [ $with_test -eq 1 ] && pkgs+=(util-linux gcc libc6-dev)  # setpriv, taskset, the bench loops' cc
  [ $with_test -eq 1 ] && pkgs+=(chromium)  # the web page's tests, driven by Playwright (no browser download)
  # the l7 collector's ground truth: real servers and clients, started by its tests on loopback
  [ $with_test -eq 1 ] && pkgs+=(nginx redis-server redis-tools dnsmasq-base bind9-dnsutils apache2-utils postgresql)
  [ $with_test -eq 1 ] && pkgs+=(strace linux-perf bpfcc-tools)  # lmp bench's scenario peers; the learning path's kprobe demo
  # podman (run by runc: crun refuses hybrid cgroups) and a static busybox for its image: the real containers
  # the identity tests name (tests/exporters/test_identity.py)
  [ $with_test -eq 1 ] && pkgs+=(podman runc busybox-static)
  # npm: the admin's front-end libraries (admin/package.json), unless they are in place (an image's build stage)
  command -v npm >/dev/null || assets_current || pkgs+=(nodejs npm)
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

kernel() {
  # --- pseudo filesystems ----------------------------------------------------------------------------
  mounted() { findmnt -rn -t "$2" "$1" >/dev/null 2>&1; }
  mounted /sys/kernel/tracing tracefs || mount -t tracefs tracefs /sys/kernel/tracing || die "cannot mount tracefs"
  mounted /sys/kernel/debug debugfs   || mount -t debugfs debugfs /sys/kernel/debug   || die "cannot mount debugfs"
  mounted /sys/fs/bpf bpf             || mount -t bpf bpf /sys/fs/bpf                 || die "cannot mount bpffs"
  # --- BPF usable? (one clear line rather than a loader's error later) -------------------------------
  [ -e /sys/kernel/tracing/events/raw_syscalls/sys_exit ] \
    || die "this kernel has no raw_syscalls tracepoints (CONFIG_FTRACE_SYSCALLS): BPF collectors cannot run."
  bpftool prog list >/dev/null 2>&1 || die "the kernel refuses bpf() (CONFIG_BPF_SYSCALL off, or no CAP_SYS_ADMIN)."
  [ -e /sys/kernel/btf/vmlinux ] || log "this kernel has no BTF (/sys/kernel/btf/vmlinux): give one with btf_path in the config (lmp doctor says more)"
}

# --- the virtual environment and the project ---------------------------------------------------------
project() {
  local venv=$top/.venv stamp extra="" hash
  if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    /usr/bin/python3 -m venv --system-site-packages "$venv"
  fi
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
assets_current() {
  grep -qxF -- "$(sha256sum "$top/admin/package-lock.json" | cut -d' ' -f1)" "$top/admin/node_modules/.lmp-installed" 2>/dev/null
}
assets() {
  local dir=$top/admin/node_modules hash
  hash=$(sha256sum "$top/admin/package-lock.json" | cut -d' ' -f1)
  if ! assets_current; then
    log "installing the admin's front-end libraries (npm ci)"
    npm ci --prefix "$top/admin" --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
    echo "$hash" > "$dir/.lmp-installed"
  fi
}

# --- the collectors' kernel code: compiled once, here; only what changed since the last build -----------
objects() {
  "$top/.venv/bin/lmp" build || die "a collector could not be built (clang's message above)"
}

if [ $kernel_only -eq 1 ]; then
  kernel
  exit 0
fi
packages
[ $image -eq 1 ] || kernel
project
[ $image -eq 1 ] || objects  # an image's objects come from its build stage (Dockerfile)
assets
exit 0

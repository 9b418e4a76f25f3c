#!/usr/bin/env bash
# The LMP container's entry point: the kernel side of the install (headers for the host's kernel,
# tracefs, debugfs, bpffs, BPF usable), then the command (by default `lmp run --no-prometheus`).
set -euo pipefail
bash /opt/lmp/scripts/install.sh --kernel
exec "$@"

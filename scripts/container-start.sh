#!/usr/bin/env bash
# The LMP container's entry point: the kernel side of the install (tracefs, debugfs, bpffs mounted, BPF
# usable, BTF there or said missing), then the command (by default `lmp run --no-prometheus`).
set -euo pipefail
bash /opt/lmp/scripts/install.sh --kernel
exec "$@"

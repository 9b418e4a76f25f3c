"""Where LMP's files are, named once. Every part finds the repository's folders through here: the core's
own (the collectors, lmp.h), and those the other parts read or write (the config, the generated
dashboards and alert rules, the docs, the bench). A name here is only a path: importing this module
imports nothing of the parts it names."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

EXPORTERS_DIR = ROOT / "exporters"  # one folder per collector; `_`-prefixed folders are not collectors
LIB_DIR = EXPORTERS_DIR / "_lib"  # the core: lmp.h, vmlinux.h, the loader
SCAFFOLD_DIR = EXPORTERS_DIR / "_scaffold"  # what `lmp collector new` copies from

CONFIG_DIR = ROOT / "config"
DEFAULT_CONFIG = CONFIG_DIR / "lmp.yaml"
CONFIG_SCHEMA = CONFIG_DIR / "lmp.schema.json"
ALERTS_CONFIG = CONFIG_DIR / "alerts.yaml"
ALERTS_SCHEMA = CONFIG_DIR / "alerts.schema.json"

DASHBOARDS_DIR = ROOT / "dashboards"
GRAFANA_DIR = DASHBOARDS_DIR / "grafana"  # generated: one dashboard per collector, and the overview
ALERT_RULES = DASHBOARDS_DIR / "prometheus" / "lmp.rules.yml"  # generated from the specs' alerts
ALERT_TESTS = DASHBOARDS_DIR / "prometheus" / "lmp.rules.test.yml"  # generated too: promtool's unit tests

DOCS_DIR = ROOT / "docs"
METRICS_DOC = DOCS_DIR / "metrics.md"
RUNBOOK = DOCS_DIR / "runbook.md"
PERFORMANCE_DOC = DOCS_DIR / "performance.md"
BENCH_RESULTS = DOCS_DIR / "performance.json"  # what `lmp bench` measured; the docs and catalog show it

README = ROOT / "README.md"
KUBERNETES = ROOT / "deploy" / "kubernetes" / "lmp.yaml"
BENCH_DIR = ROOT / "bench"
PEERS_DIR = ROOT.parent / "shared" / "peers"  # ebpf_exporter and libbpf-tools, built beside the repository

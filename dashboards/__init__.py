"""What LMP generates from the collectors' specs: Grafana dashboards, Prometheus alert rules, the metric
reference, the README's tables of collectors, the Kubernetes DaemonSet's ports, the runbook and the alerts'
unit tests; and from `lmp bench`'s results (docs/performance.json), what each collector costs, in its
README and docs/performance.md. `lmp dashboards build`
writes them; `--check` (and a test) fails when a committed file differs."""
from __future__ import annotations

from pathlib import Path

from exporters._lib import catalog, paths, results
from exporters._lib.spec import load_self

from . import alerts, build, listings, metricsdoc


def generate(alert_config: Path = paths.ALERTS_CONFIG) -> dict[Path, str]:
    """Every generated file and its content."""
    specs = [catalog.load(name) for name in catalog.names()]
    self_spec = load_self()
    out = {paths.GRAFANA_DIR / name: text for name, text in build.dashboards(specs, self_spec).items()}
    out[paths.ALERT_RULES] = alerts.rule_file(specs, self_spec, alerts.load_config(alert_config))
    out[paths.ALERT_TESTS] = alerts.unit_tests(specs, self_spec)
    out[paths.RUNBOOK] = alerts.runbook(paths.RUNBOOK.read_text(), specs, self_spec)
    out[paths.METRICS_DOC] = metricsdoc.reference(specs, self_spec, results.load())
    measured = results.load()
    out[paths.README] = listings.readme(paths.README.read_text(), specs, measured, paths.README)
    out[paths.PERFORMANCE_DOC] = listings.between(paths.PERFORMANCE_DOC.read_text(), "kernel-time", listings.HTML,
                                                  results.events_table(measured), paths.PERFORMANCE_DOC)
    for spec in specs:
        out[spec.readme] = listings.between(spec.readme.read_text(), "overhead", listings.HTML,
                                            results.measured_paragraph(spec.name, measured), spec.readme)
    out[paths.KUBERNETES] = listings.kubernetes(paths.KUBERNETES.read_text(), specs, paths.KUBERNETES)
    return out


def stale(files: dict[Path, str]) -> list[Path]:
    """Generated files whose committed copy differs, and committed dashboards nothing generates any more."""
    differ = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
    extra = [path for path in paths.GRAFANA_DIR.glob("*.json") if path not in files]
    return differ + extra


def write(files: dict[Path, str]) -> list[Path]:
    changed = stale(files)
    for path in changed:
        if path in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(files[path])
        else:
            path.unlink()
    return changed

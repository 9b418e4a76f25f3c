"""Every collector serves what its spec says, and nothing else: each one started with every option on,
after a workload that touches most of the kernel, has each spec metric with the spec's TYPE and HELP,
each sample with exactly the spec's label names, and passes `promtool check metrics`. The dashboards,
alerts, docs and the admin's catalog are generated from the specs, so this is what keeps them true."""
from __future__ import annotations

import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporters._lib import catalog
from exporters._lib.spec import load_self
from exporters._scaffold import GENERIC_WORKLOAD

COLLECTORS = [name for name in catalog.names() if catalog.load(name).kind == "collector"]


@pytest.mark.parametrize("name", COLLECTORS)
def test_what_a_collector_serves_is_what_its_spec_says(name, exporter, tmp_path):
    spec = catalog.load(name)
    values = {o.name: (True if o.type == "bool" else o.default) for o in spec.options.values()}
    e = exporter(name, *[arg for o in spec.options.values() if o.type == "bool" for arg in ("-o", f"{o.name}=true")])
    subprocess.run([sys.executable, "-c", GENERIC_WORKLOAD], cwd=tmp_path, check=True, timeout=60)
    text = e.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    metrics, _ = spec.active(values)
    own = {m.name.removesuffix("_total"): m for m in metrics}
    selves = {m.name.removesuffix("_total") for m in load_self().metrics}
    standard = {f for f in families if f.startswith("process_")}  # client_python's process collector
    assert set(families) - selves - standard == set(own), "families served and not in the spec, or in it and not served"
    for family_name, metric in own.items():
        family = families[family_name]
        assert (family.type, family.documentation) == (metric.type, metric.help), metric.name
        wanted = {label.name for label in metric.labels}
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == wanted, (metric.name, sample)
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout + lint.stderr

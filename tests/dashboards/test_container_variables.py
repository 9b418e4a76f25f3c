"""The Container and Pod variables narrow every cgroup panel, on a real Prometheus scraping real exporters: the
signal dashboard's queries, its variables filled in as Grafana fills them, against the same rates summed over
the cgroups themselves.

Two signal exporters play two hosts: host-a with the cgroup option (and min_cgroup_age, so that cgroups
younger than it count into cgroup="other"), host-b without it (series with no cgroup label). The workloads
send SIGWINCH in a loop: a real podman container, a cgroup named as kubelet names a pod's container, and
short-lived cgroups made one after another, which stay in `other`."""
from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from exporters._lib import paths
from tests.conftest import free_port, made_cgroup, wait_for
from tests.dashboards.test_fleet_join import LOOP
from tests.exporters.test_identity import IMAGE, image, podman  # noqa: F401 (image: a fixture)

UID = str(uuid.uuid4())
CID = uuid.uuid4().hex + uuid.uuid4().hex
YOUNG = 3  # min_cgroup_age on host-a: seconds a cgroup counts into `other`
ALL = {"$job": "lmp", "$instance": ".*", "$container": ".*", "$pod": ".*", "$cgroup": ".*", "$__rate_interval": "1m"}
PANEL = re.compile(r"sum by \(([^)]*)\) \(rate\((lmp_\w+)\{")  # a counter panel's split and metric


def fill(expr: str, **chosen: str) -> str:
    """`expr` with the variables as Grafana fills them: All is the allValue, `.*`; one value is itself (the
    names here have no regex metacharacters); several would be (a|b)."""
    for name, value in {**ALL, **{f"${k}": v for k, v in chosen.items()}}.items():
        expr = expr.replace(name, value)
    return expr


def series(port: int, promql: str, at: float) -> list[dict]:
    """An instant query's result at `at`."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql, "time": at})
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)["data"]["result"]


def query(port: int, promql: str, at: float) -> dict[tuple[str, ...], float]:
    """Each series' value at `at`, by its label values (in the order of the labels' names)."""
    return {tuple(v for _, v in sorted(r["metric"].items())): float(r["value"][1]) for r in series(port, promql, at)}


@contextmanager
def prometheus(tmp_path: Path, hosts: dict[str, str]) -> Iterator[int]:
    """A Prometheus scraping each exporter (instance -> host:port) every second, as job lmp; its port."""
    port = free_port()
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [
        {"job_name": "lmp", "static_configs": [{"targets": [target], "labels": {"collector": "signal",
                                                                                "instance": instance}}
                                               for instance, target in hosts.items()]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def looping_in(group: Path) -> Iterator[None]:
    """LOOP running inside `group` (it moves itself there before its first signal)."""
    proc = subprocess.Popen(["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec /bin/sh -c "$1"', str(group), LOOP])
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def removed(group: Path) -> None:
    """rmdir once the processes that were in `group` have left it (a killed one leaves a moment later)."""
    wait_for(lambda: group.rmdir() or True, f"{group} removed", timeout=10, every=0.05)


@contextmanager
def churning(top: Path) -> Iterator[None]:
    """Cgroups under `top` made, signalled from and removed one after another, each younger than YOUNG."""
    stop = threading.Event()

    def churn() -> None:
        for i in range(10**6):
            if stop.wait(0.3):
                return
            group = top / f"young-{i}"
            group.mkdir()
            subprocess.run(["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && kill -s WINCH $$ $$ $$', str(group)],
                           check=True, timeout=10)
            removed(group)
    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def panels() -> list[tuple[str, str, str]]:
    """(expression, its split, its metric) of each of the signal dashboard's cgroup panels."""
    board = json.loads((paths.GRAFANA_DIR / "lmp-signal.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", []) if "$cgroup" in t["expr"]]
    assert len(exprs) == 2, exprs
    return [(expr, *PANEL.search(expr).groups()) for expr in exprs]


def truth(port: int, metric: str, by: str, matchers: str, at: float) -> dict[tuple[str, ...], float]:
    return query(port, f'sum by ({by}) (rate({metric}{{job="lmp"{matchers}}}[1m]))', at)


def assert_same(panel: dict[tuple[str, ...], float], expected: dict[tuple[str, ...], float], what: str) -> None:
    """The panel's series (a top 10) are those of `expected`, with the same values."""
    assert set(panel) <= set(expected), f"{what}: {panel} against {expected}"
    assert len(panel) == min(10, len(expected)), f"{what}: {panel} against {expected}"
    assert panel == pytest.approx({k: expected[k] for k in panel}, rel=1e-9), what


def test_container_and_pod_variables_narrow_every_cgroup_panel(exporter, image, tmp_path):  # noqa: F811
    host_a = exporter("signal", "-o", "cgroup=true", "-o", f"min_cgroup_age={YOUNG}")
    host_b = exporter("signal")
    name = f"lmp-vars-{uuid.uuid4().hex[:8]}"
    with prometheus(tmp_path, {"host-a": host_a.url.split("/")[2], "host-b": host_b.url.split("/")[2]}) as port, \
            made_cgroup() as (top, top_path):
        pod = top / "kubepods" / "burstable" / f"pod{UID}" / CID
        pod.mkdir(parents=True)
        try:
            cid = podman("run", "-d", "--network", "none", "--name", name, IMAGE, "sh", "-c", LOOP, conf=image)
            with looping_in(pod), churning(top):
                container_cgroup, pod_cgroup = f"/libpod_parent/libpod-{cid}", f"{top_path}/{pod.relative_to(top)}"
                sigwinch = 'sum by (instance, cgroup) (rate(lmp_signals_generated_total{signal="SIGWINCH"}[1m]))'
                want = {("host-a", container_cgroup), ("host-a", pod_cgroup), ("host-a", "other"), ("host-b", "")}
                named = f'lmp_cgroup_info{{container_name="{name}"}}'

                def moving() -> bool:  # every kind of series has a rate, and the container its name
                    seen = {(r["metric"]["instance"], r["metric"].get("cgroup", ""))
                            for r in series(port, sigwinch, time.time()) if float(r["value"][1]) > 0}
                    return want <= seen and len(series(port, named, time.time())) == 1
                wait_for(moving, "a rate for each workload", timeout=90, every=1)
                time.sleep(YOUNG + 2)  # the container and the pod past min_cgroup_age for a few scrapes
                at = time.time()
                assert [r["metric"]["cgroup"] for r in series(port, named, at)] == [container_cgroup]
                for expr, by, metric in panels():
                    assert_same(query(port, fill(expr), at), truth(port, metric, by, "", at), f"All: {expr}")
                    assert_same(query(port, fill(expr, container=name), at),
                                truth(port, metric, by, f', cgroup="{container_cgroup}"', at), f"container: {expr}")
                    assert_same(query(port, fill(expr, pod=UID), at),
                                truth(port, metric, by, f', cgroup="{pod_cgroup}"', at), f"pod: {expr}")
                    assert not query(port, fill(expr, container=name, pod=UID), at), expr  # not a container of it
                # All keeps, beside the named cgroups, `other` and host-b's series without a cgroup label
                for matcher in (', cgroup="other"', ', instance="host-b"'):
                    assert truth(port, "lmp_signals_generated_total", "", matcher + ', signal="SIGWINCH"', at)[()] > 0
                generated = next(expr for expr, _, metric in panels() if metric == "lmp_signals_generated_total")
                assert query(port, fill(generated, container=name), at)  # the container's own SIGWINCH
        finally:
            podman("rm", "-f", "-t", "0", name, conf=image)
            for level in (pod, pod.parent, pod.parent.parent, pod.parent.parent.parent):
                removed(level)

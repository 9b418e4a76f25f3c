"""The joins docs/fleet.md shows, on a real Prometheus scraping a real exporter: a podman container's
signals come back under its name, and a pod's (a cgroup named as kubelet names one) under the namespace and
pod name kube-state-metrics gives its UID. kube-state-metrics' kube_pod_info lines are served from a file
in its own exposition format (no Kubernetes here)."""
from __future__ import annotations

import http.server
import re
import subprocess
import threading
import time
import uuid

import yaml

from exporters._lib import paths
from tests.conftest import free_port, made_cgroup
from tests.exporters.test_identity import IMAGE, image, podman  # noqa: F401 (image: a fixture)
from tests.lmprun import query

UID = str(uuid.uuid4())
CID = uuid.uuid4().hex + uuid.uuid4().hex
LOOP = "while true; do kill -s WINCH $$; sleep 0.2; done"  # a rate Prometheus sees between two scrapes


def fleet_queries() -> list[str]:
    return re.findall(r"```promql\n(.*?)```", (paths.ROOT / "docs" / "fleet.md").read_text(), re.S)


class KubeStateMetrics(http.server.BaseHTTPRequestHandler):
    body = (f'# TYPE kube_pod_info gauge\nkube_pod_info{{namespace="shop",pod="cart-0",uid="{UID}",'
            f'node="n1",created_by_kind="StatefulSet"}} 1\n').encode()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_fleet_joins_name_containers_and_pods(exporter, image, tmp_path):  # noqa: F811 (the fixture)
    names_query, pods_query = fleet_queries()
    signals = exporter("signal", "-o", "cgroup=true")
    ksm = http.server.ThreadingHTTPServer(("127.0.0.1", 0), KubeStateMetrics)
    threading.Thread(target=ksm.serve_forever, daemon=True).start()
    port = free_port()
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [
        {"job_name": "lmp", "static_configs": [{"targets": [signals.url.split("/")[2]],
                                                "labels": {"collector": "signal", "instance": "host"}}]},
        {"job_name": "kube-state-metrics", "static_configs": [{"targets": [f"127.0.0.1:{ksm.server_port}"]}]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prometheus = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    name = f"lmp-join-{uuid.uuid4().hex[:8]}"
    try:
        with made_cgroup() as (top, _):
            pod = top / "kubepods" / "burstable" / f"pod{UID}" / CID
            pod.mkdir(parents=True)
            try:
                podman("run", "-d", "--network", "none", "--name", name, IMAGE, "sh", "-c", LOOP, conf=image)
                # the loop moves itself into the pod's cgroup before its first signal
                looping = subprocess.Popen(["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec /bin/sh -c "$1"',
                                            str(pod), LOOP])
                deadline, names, pods = time.monotonic() + 60, {}, {}
                while time.monotonic() < deadline and not (names.get(name) and pods.get(("shop", "cart-0"))):
                    time.sleep(1)
                    names = {r["metric"].get("container_name"): float(r["value"][1]) for r in query(port, names_query)}
                    pods = {(r["metric"].get("namespace"), r["metric"].get("pod")): float(r["value"][1])
                            for r in query(port, pods_query)}
                assert names.get(name, 0) > 0, names
                assert pods.get(("shop", "cart-0"), 0) > 0, pods
            finally:
                if "looping" in locals():
                    looping.kill()
                    looping.wait()
                podman("rm", "-f", "-t", "0", name, conf=image)
                for level in (pod, pod.parent, pod.parent.parent, pod.parent.parent.parent):
                    level.rmdir()
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
        ksm.shutdown()

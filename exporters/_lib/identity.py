"""Who a cgroup is: the container runtime, container id and name, the Kubernetes pod UID and QoS class, or
the systemd unit of a host service, read from the cgroup's path and the runtimes' local state. No BPF.

The layouts are the runtimes' own (the same under cgroup v1 controllers and the v2 hierarchy):
  docker      cgroupfs driver /docker/<id>; systemd driver /system.slice/docker-<id>.scope
              (moby daemon/oci_linux.go, cgroupsParent "docker" or "system.slice" + "docker:<id>")
  podman      cgroupfs manager /libpod_parent/libpod-<id>; systemd manager /machine.slice/libpod-<id>.scope,
              rootless under user@UID.service (libpod/runtime_ctr.go, pkg/cgroups); conmon is libpod-conmon-<id>
  CRI-O       crio-<id>.scope (systemd) or crio-<id> (cgroupfs); conmon is crio-conmon-<id>
              (cri-o internal/config/cgmgr)
  containerd  cri-containerd-<id>.scope (systemd) or the bare <id> (cgroupfs) inside a pod's cgroup; outside
              Kubernetes /<namespace>/<id> (nerdctl: nerdctl-<id>.scope)
  kubelet     kubepods[.slice]/[kubepods-]{burstable,besteffort}[.slice]/[kubepods-<qos>-]pod<uid>[.slice]; a
              guaranteed pod sits right under kubepods. The systemd driver writes the UID's dashes as
              underscores (kubelet pkg/kubelet/cm/cgroup_manager_linux.go, escapeSystemdCgroupName).
Names: docker's /var/lib/docker/containers/<id>/config.v2.json ("Name"); podman's and CRI-O's container
storage, /var/lib/containers/storage/overlay-containers/containers.json ("names"; CRI-O's name is
k8s_<container>_<pod>_<namespace>_<uid>_<attempt>). containerd keeps no readable state: in Kubernetes,
kube-state-metrics' kube_pod_container_info names its containers (docs/fleet.md)."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

HEX_ID = r"[0-9a-f]{64}"
DOCKER_STATE = Path("/var/lib/docker/containers")
STORAGE_STATE = Path("/var/lib/containers/storage/overlay-containers/containers.json")

# (runtime, pattern of one path component); the first that matches a component, deepest first, wins.
CONTAINER_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("docker", re.compile(rf"docker-({HEX_ID})\.scope")),
    ("podman", re.compile(rf"libpod-({HEX_ID})(?:\.scope)?")),
    ("cri-o", re.compile(rf"crio-({HEX_ID})(?:\.scope)?")),
    ("containerd", re.compile(rf"cri-containerd-({HEX_ID})\.scope")),
    ("containerd", re.compile(rf"nerdctl-({HEX_ID})\.scope")),
]
BARE_ID = re.compile(HEX_ID)
# kind's nested kubelet prefixes the slices: kubelet-kubepods-besteffort-pod<uid>.slice
POD = re.compile(r"^(?:(?:[a-z]+-)?kubepods-(?:(burstable|besteffort)-)?)?pod([0-9a-f_-]{36})(?:\.slice)?$")
QOS = re.compile(r"^(?:(?:[a-z]+-)?kubepods-)?(burstable|besteffort)(?:\.slice)?$")
UNIT = re.compile(r"^[^/]+\.(?:service|scope|slice)$")


@dataclass(frozen=True)
class Identity:
    runtime: str = ""  # docker, podman, cri-o, containerd; "" for a host cgroup
    container_id: str = ""
    container_name: str = ""
    pod_uid: str = ""
    qos_class: str = ""  # Kubernetes' names: Guaranteed, Burstable, BestEffort
    unit: str = ""  # the systemd unit of a host cgroup (nginx.service, session-1.scope, user.slice)

    def labels(self) -> dict[str, str]:
        return {"runtime": self.runtime, "container_id": self.container_id, "container_name": self.container_name,
                "pod_uid": self.pod_uid, "qos_class": self.qos_class, "unit": self.unit}


QOS_NAMES = {"burstable": "Burstable", "besteffort": "BestEffort", "": "Guaranteed"}


def _pod(parts: list[str]) -> tuple[str, str]:
    """The pod UID and QoS class, from the components under kubepods; ("", "") outside Kubernetes."""
    if not any(p in ("kubepods", "kubepods.slice") or p.endswith("-kubepods.slice") for p in parts):
        return "", ""
    qos = ""
    for part in parts:
        if m := QOS.match(part):
            qos = m.group(1)
        elif m := POD.match(part):
            return m.group(2).replace("_", "-"), QOS_NAMES[m.group(1) or qos]
    return "", ""


def _container(parts: list[str], pod_uid: str, names: ContainerNames) -> tuple[str, str]:
    """(runtime, container id) from the deepest component naming a container."""
    for i in range(len(parts) - 1, -1, -1):
        part = parts[i]
        for runtime, pattern in CONTAINER_PATTERNS:
            if m := pattern.fullmatch(part):
                return runtime, m.group(1)
        if BARE_ID.fullmatch(part):
            parent = parts[i - 1] if i else ""
            if parent == "docker" or (names.docker / part).is_dir():
                return "docker", part
            if pod_uid or parent:  # containerd: a pod's cgroupfs child, or /<namespace>/<id>
                return "containerd", part
    return "", ""


def resolve(path: str, names: ContainerNames | None = None) -> Identity:
    """The identity of a cgroup path (from the hierarchy's root: /system.slice/docker-<id>.scope)."""
    parts = [p for p in path.split("/") if p]
    pod_uid, qos = _pod(parts)
    names = names or container_names()
    runtime, cid = _container(parts, pod_uid, names)
    if runtime:
        return Identity(runtime, cid, names.name(runtime, cid), pod_uid, qos)
    unit = next((p for p in reversed(parts) if UNIT.match(p)), "")
    return Identity(pod_uid=pod_uid, qos_class=qos, unit="" if pod_uid else unit)


class ContainerNames:
    """Container id -> name from the runtimes' state files; podman's/CRI-O's file is reread when it changes."""

    def __init__(self, docker: Path = DOCKER_STATE, storage: Path = STORAGE_STATE) -> None:
        self.docker, self.storage = docker, storage
        self.stored: dict[str, str] = {}
        self.stored_stamp: tuple[int, int] | None = None

    def name(self, runtime: str, cid: str) -> str:
        if runtime == "docker":
            try:
                return json.loads((self.docker / cid / "config.v2.json").read_text()).get("Name", "").lstrip("/")
            except (OSError, ValueError):
                return ""
        if runtime in ("podman", "cri-o"):
            name = self._storage().get(cid, "")
            if runtime == "cri-o" and name.startswith("k8s_"):  # k8s_<container>_<pod>_<ns>_<uid>_<attempt>
                name = name.split("_")[1]
            return name
        return ""

    def _storage(self) -> dict[str, str]:
        try:
            st = os.stat(self.storage)
        except OSError:
            return {}
        if (st.st_mtime_ns, st.st_size) != self.stored_stamp:
            try:
                entries = json.loads(self.storage.read_text())
            except (OSError, ValueError):  # being rewritten: the next scrape reads it
                return self.stored
            self.stored = {e["id"]: (e.get("names") or [""])[0] for e in entries if isinstance(e, dict) and "id" in e}
            self.stored_stamp = (st.st_mtime_ns, st.st_size)
        return self.stored


_names: ContainerNames | None = None


def container_names() -> ContainerNames:
    global _names
    if _names is None:
        _names = ContainerNames()
    return _names

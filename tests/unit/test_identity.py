"""The identity resolver over the runtimes' own cgroup layouts (v1 controllers and the v2 hierarchy name them
alike), and the runtimes' state files for names."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from exporters._lib.identity import ContainerNames, Identity, resolve

ID = "ecc6d88f0b1e4c6a9d3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d"
UID = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
SD_UID = UID.replace("-", "_")  # kubelet's systemd driver escapes the UID's dashes

LAYOUTS = [
    # docker: cgroupfs and systemd drivers (moby), rootless under the user's manager
    (f"/docker/{ID}", Identity("docker", ID)),
    (f"/system.slice/docker-{ID}.scope", Identity("docker", ID)),
    (f"/user.slice/user-1000.slice/user@1000.service/docker-{ID}.scope", Identity("docker", ID)),
    # podman: cgroupfs manager (as on this host), systemd manager, and a cgroup namespace's inner child
    (f"/libpod_parent/libpod-{ID}", Identity("podman", ID)),
    (f"/machine.slice/libpod-{ID}.scope", Identity("podman", ID)),
    (f"/machine.slice/libpod-{ID}.scope/container", Identity("podman", ID)),
    (f"/machine.slice/libpod-conmon-{ID}.scope", Identity(unit=f"libpod-conmon-{ID}.scope")),
    # containerd outside Kubernetes: /<namespace>/<id>, nerdctl's systemd scope
    (f"/default/{ID}", Identity("containerd", ID)),
    (f"/system.slice/nerdctl-{ID}.scope", Identity("containerd", ID)),
    # kubelet, systemd driver: burstable, besteffort, guaranteed; containerd and CRI-O
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{SD_UID}.slice/cri-containerd-{ID}.scope",
     Identity("containerd", ID, pod_uid=UID, qos_class="Burstable")),
    (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{SD_UID}.slice/crio-{ID}.scope",
     Identity("cri-o", ID, pod_uid=UID, qos_class="BestEffort")),
    (f"/kubepods.slice/kubepods-pod{SD_UID}.slice/cri-containerd-{ID}.scope",
     Identity("containerd", ID, pod_uid=UID, qos_class="Guaranteed")),
    (f"/kubepods.slice/kubepods-pod{SD_UID}.slice/docker-{ID}.scope",
     Identity("docker", ID, pod_uid=UID, qos_class="Guaranteed")),
    # kind and nested kubelets: kubepods under kubelet.slice
    (f"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
     f"kubelet-kubepods-besteffort-pod{SD_UID}.slice/cri-containerd-{ID}.scope",
     Identity("containerd", ID, pod_uid=UID, qos_class="BestEffort")),
    # kubelet, cgroupfs driver
    (f"/kubepods/burstable/pod{UID}/{ID}", Identity("containerd", ID, pod_uid=UID, qos_class="Burstable")),
    (f"/kubepods/besteffort/pod{UID}/crio-{ID}", Identity("cri-o", ID, pod_uid=UID, qos_class="BestEffort")),
    (f"/kubepods/pod{UID}/{ID}", Identity("containerd", ID, pod_uid=UID, qos_class="Guaranteed")),
    # a pod's own cgroup (its pause-less parent): pod and QoS, no container
    (f"/kubepods/burstable/pod{UID}", Identity(pod_uid=UID, qos_class="Burstable")),
    # host services
    ("/system.slice/nginx.service", Identity(unit="nginx.service")),
    ("/system.slice/containerd.service/sub", Identity(unit="containerd.service")),
    ("/user.slice/user-1000.slice/session-3.scope", Identity(unit="session-3.scope")),
    ("/user.slice", Identity(unit="user.slice")),
    ("/", Identity()),
    ("/lmp-test/workers", Identity()),
]


@pytest.mark.parametrize("path,expected", LAYOUTS, ids=[p for p, _ in LAYOUTS])
def test_layouts(path: str, expected: Identity, tmp_path: Path) -> None:
    assert resolve(path, ContainerNames(tmp_path / "docker", tmp_path / "containers.json")) == expected


def test_names_from_the_runtimes_state(tmp_path: Path) -> None:
    docker = tmp_path / "docker"
    (docker / ID).mkdir(parents=True)
    (docker / ID / "config.v2.json").write_text(json.dumps({"ID": ID, "Name": "/web"}))
    storage = tmp_path / "containers.json"
    other = "f" * 64
    storage.write_text(json.dumps([{"id": ID, "names": ["db"]},
                                   {"id": other, "names": [f"k8s_app_mypod_default_{UID}_0"]}]))
    names = ContainerNames(docker, storage)
    assert resolve(f"/system.slice/docker-{ID}.scope", names).container_name == "web"
    assert resolve(f"/libpod_parent/libpod-{ID}", names).container_name == "db"
    assert resolve(f"/kubepods/burstable/pod{UID}/crio-{other}", names).container_name == "app"
    # a bare id under kubepods is docker's when docker's state has it
    assert resolve(f"/kubepods/pod{UID}/{ID}", names).runtime == "docker"
    storage.write_text(json.dumps([{"id": ID, "names": ["db2"]}]) + " ")  # rewritten: read again
    assert resolve(f"/libpod_parent/libpod-{ID}", names).container_name == "db2"

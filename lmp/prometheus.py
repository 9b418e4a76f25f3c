"""The local Prometheus of `lmp run`: its configuration, from LMP's, and its process."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from exporters._lib.serving import PASSWORD_FILE, SERVICE_USER, Reach, scrape_url

from .config import Config
from .spawner import die_with_parent

JOB = "lmp"  # Prometheus' job for every LMP exporter; the `collector` label tells them apart


def service_token_file(cfg: Config) -> Path:
    return Path(cfg.admin.data_dir) / "service.token"


def target_groups(cfg: Config) -> list[dict]:
    """The static equivalent of the admin's service discovery, for when the admin is off."""
    host = socket.gethostname()
    return [{"targets": [scrape_url(c.listen, "").removeprefix("http://")],
             "labels": {"collector": c.name, "instance": host}}
            for c in cfg.collectors.values() if c.enabled]


def rule_paths(cfg: Config) -> list[str]:
    """The alert rule files; relative ones are the config file's neighbours."""
    return [str((cfg.path.parent / f).resolve()) for f in cfg.prometheus.rule_files]


def tls_config(reach: Reach) -> dict:
    """Trust the web config's certificate itself (a self-signed one is its own CA; Go accepts a trusted
    leaf as the anchor), and check the name: it must list 127.0.0.1 (docs/fleet.md)."""
    return {"tls_config": {"ca_file": reach.ca_file}} if reach.ca_file else {}


def config(cfg: Config, reach: Reach = Reach()) -> dict:
    """Prometheus' configuration: one job, `lmp`, whose targets come from the admin's HTTP service
    discovery (refreshed every few seconds, so enabling a collector needs no restart), or are listed
    statically when the admin is off. honor_labels keeps the exporters' own `collector` label, which
    is the same as the target's, instead of renaming it exported_collector."""
    job: dict = {"job_name": JOB, "honor_labels": True, "scheme": "https" if reach.ca_file else "http",
                 **tls_config(reach)}
    if reach.password is not None:
        job["basic_auth"] = {"username": SERVICE_USER,
                             "password_file": str(Path(cfg.admin.run_dir) / PASSWORD_FILE)}
    if cfg.admin.enabled:
        # `type: Bearer` spelled out: Prometheus 2.42 leaves the default out of http_sd's requests.
        job["http_sd_configs"] = [{"url": reach.url(cfg.admin.listen, "/api/v1/sd"), "refresh_interval": "5s",
                                   "authorization": {"type": "Bearer",
                                                     "credentials_file": str(service_token_file(cfg))},
                                   **tls_config(reach)}]
    else:
        job["static_configs"] = target_groups(cfg)
    interval = cfg.prometheus.scrape_interval
    return {"global": {"scrape_interval": interval, "evaluation_interval": interval}, "rule_files": rule_paths(cfg),
            "scrape_configs": [job]}


def start(cfg: Config, tmp: Path, reach: Reach = Reach()) -> subprocess.Popen | None:
    binary = shutil.which("prometheus")
    if binary is None:
        print("lmp run: prometheus is not installed (scripts/install.sh installs it); exporters only",
              file=sys.stderr)
        return None
    config_file = tmp / "prometheus.yml"
    config_file.write_text(json.dumps(config(cfg, reach), indent=2))  # JSON is YAML
    data = Path(cfg.prometheus.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    with open(data / "prometheus.log", "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [binary, f"--config.file={config_file}", f"--storage.tsdb.path={data}",
             f"--storage.tsdb.retention.time={cfg.prometheus.retention}",
             f"--web.listen-address={cfg.prometheus.listen}"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)

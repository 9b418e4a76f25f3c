"""`lmp run`: LMP in the foreground: the exporters of the enabled collectors, the admin service and a
local Prometheus that finds the exporters through the admin's service discovery (or, with the admin off,
a static list of them).

The first thing it does is fork the spawner (lmp/spawner.py), before anything heavy is imported: every
exporter and the admin are forked from it and share what it loaded. This process then reads the config
and supervises them (lmp/supervisor.py). Ctrl-C (SIGINT) or SIGTERM stops everything it started and
removes its temporary files. Exporters that cannot run here say why; the others keep running."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .spawner import Spawner, name_process


def exporter_target(args: dict[str, Any]) -> int:
    """In a child of the spawner: one collector's exporter, with the options `lmp run` read from the config."""
    from exporters._lib import catalog
    from exporters._lib.exporter import serve

    from . import config as configs

    name_process(f"lmp-{args['name']}")
    spec = catalog.load(args["name"], check=False)
    policy = configs.policy_source(Path(args["config"]), spec.name) if spec.kind == "function" else None
    return serve(spec, args["listen"], args["options"], policy, Path(args["btf_path"]) if args["btf_path"] else None,
                 Path(args["web_config"]) if args.get("web_config") else None)


def admin_target(args: dict[str, Any]) -> int:
    """In a child of the spawner: the admin service (it imports Flask and the rest only now)."""
    name_process("lmp-admin")
    from admin.serve import serve
    return serve(args["listen"], args["data_dir"], args["run_dir"], Path(args["config"]), args.get("web_config"))


def preload() -> None:
    """In the spawner, once: what every exporter imports and reads, for the children to share."""
    import gc
    import socket
    import ssl

    import exporters._lib.access  # noqa: F401  (bcrypt, for exporters behind basic auth)
    import exporters._lib.exporter  # noqa: F401  (prometheus_client, libbpf, the collector, cheroot)
    from exporters._lib import catalog, collector, decoders, spec

    for name in catalog.names():
        catalog.load(name, check=False)  # parsed once; `lmp build` checked them
    decoders.syscall_names()
    import lmp.config  # noqa: F401  (function components read their policy with it; the launcher too)
    collector.build_info()
    spec.load_self(check=False)
    socket.getaddrinfo("127.0.0.1", 0)  # loads the resolver's libraries, which binding a listen address needs
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # OpenSSL's one-time set-up: 1.4 MB less in each exporter with TLS
    gc.freeze()  # what is loaded so far is never collected: the children's copies of it stay shared


def run(config_path: Path | None, no_prometheus: bool = False) -> int:
    spawner = Spawner({"exporter": exporter_target, "admin": admin_target}, preload)
    try:  # from here on, this is the launcher, a child of the spawner
        name_process("lmp-run")
        from .launcher import Launcher  # what only the launcher needs, after the fork
        return Launcher(spawner, config_path, no_prometheus).run()
    finally:
        spawner.stop()


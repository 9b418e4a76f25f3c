"""The `lmp` command: one entry point for everything a user runs."""
from __future__ import annotations

import argparse
import getpass
import json
import shutil
import subprocess
import sys
from pathlib import Path

from exporters._lib import bpf, catalog
from exporters._lib.exporter import EXIT_USAGE, serve
from exporters._lib.rules import RulesSource
from exporters._lib.spec import Spec, parse_option
from exporters._lib.yamlfile import YamlError

from . import config as configs


def can_run(spec: Spec) -> tuple[bool, str]:
    """Whether this kernel has every hook the collector requires, and if not, which are missing."""
    try:
        missing = bpf.missing_hooks(spec)
    except (bpf.LoadError, PermissionError) as err:
        return False, str(err)
    return (not missing, "missing " + ", ".join(missing) if missing else "")


def cmd_list(args: argparse.Namespace) -> int:
    cfg = configs.load(args.config)
    rows = []
    for name in catalog.names():
        spec = catalog.load(name)
        ok, why = can_run(spec)
        c = cfg.collectors.get(name)
        rows.append({"name": name, "kind": spec.kind, "can_run": ok, "why_not": why,
                     "enabled": bool(c and c.enabled), "listen": c.listen if c else "",
                     "summary": spec.summary})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'COLLECTOR':<12} {'KIND':<10} {'RUNS HERE':<10} {'ENABLED':<8} {'LISTEN':<16} SUMMARY")
    for r in rows:
        runs = "yes" if r["can_run"] else "no"
        print(f"{r['name']:<12} {r['kind']:<10} {runs:<10} {'yes' if r['enabled'] else 'no':<8} {r['listen']:<16} "
              f"{r['summary']}")
        if r["why_not"]:
            print(f"{'':<12} why not: {r['why_not']}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    """Check the specs and compile the kernel code of every collector (or those named) whose object is
    missing or out of date; exit 2 for a bad spec, 1 when clang fails."""
    from exporters._lib import build

    extra = [Path(d) for d in args.collector_dir]
    code = 0
    for name in args.names or catalog.names(extra):
        try:
            spec = catalog.load(name, extra)
        except KeyError:
            print(f"lmp build: no collector named {name!r}", file=sys.stderr)
            code = max(code, EXIT_USAGE)
            continue
        except YamlError as err:
            print(f"lmp build: {err}", file=sys.stderr)
            code = max(code, EXIT_USAGE)
            continue
        if not args.force and not build.stale(spec):
            continue
        try:
            warnings = build.build(spec)
        except build.BuildError as err:
            print(f"lmp build: {err}", file=sys.stderr)
            code = max(code, 1)
            continue
        print(f"lmp build: {spec.object}", file=sys.stderr)
        if warnings:
            print(warnings, file=sys.stderr)
    return code


def built(name: str, extra: list[Path]) -> int:
    """Build the collector's object first if it is missing or older than its sources (a learner edited the
    .bpf.c, say), in a `lmp build` of its own: this process never imports the compiler's side or the spec
    validator. Returns that build's exit code (0: the object is ready)."""
    from exporters._lib import build

    path = catalog.spec_path(name, extra)
    assert path is not None
    if not build.stale_folder(path.parent, name):
        return 0
    if shutil.which("clang") is None:
        if (path.parent / f"{name}.bpf.o").is_file():
            print(f"lmp exporter {name}: {name}.bpf.o is older than its sources and there is no clang here to "
                  f"build it again; running it as it is", file=sys.stderr)
            return 0
    dirs = [arg for d in extra for arg in ("--collector-dir", str(d))]
    return subprocess.run([sys.executable, "-m", "lmp", "build", name, *dirs]).returncode


def cmd_exporter(args: argparse.Namespace) -> int:
    extra = [Path(d) for d in args.collector_dir]
    if catalog.spec_path(args.name, extra) is None:
        print(f"lmp exporter: no collector named {args.name!r}; collectors: "
              f"{', '.join(catalog.names(extra))}", file=sys.stderr)
        return EXIT_USAGE
    if (code := built(args.name, extra)) != 0:
        return code
    spec = catalog.load(args.name, extra, check=False)
    cfg = configs.load(args.config)
    configured = cfg.collectors.get(spec.name)
    values = {k: o.default for k, o in spec.options.items()}
    if configured:
        values.update(configured.options)
    for assignment in args.option:
        name, value = parse_option(spec, assignment)
        values[name] = value
    listen = args.listen or (configured.listen if configured else None)
    if not listen:
        print(f"lmp exporter {spec.name}: no listen address in {cfg.path}; pass --listen HOST:PORT",
              file=sys.stderr)
        return EXIT_USAGE
    return serve(spec, listen, values, rules_source(cfg.path, spec.name) if spec.kind == "function" else None,
                 args.btf or (Path(cfg.btf_path) if cfg.btf_path else None))


def rules_source(path: Path, name: str) -> RulesSource:
    """A function component's rules: its entry's in the config, read again whenever the file changes."""
    def read() -> dict:
        configured = configs.load(path).collectors.get(name)
        return configured.rules if configured else {}
    return RulesSource(path, read)


def cmd_run(args: argparse.Namespace) -> int:
    from .run import run
    cfg = configs.load(args.config)
    if args.no_prometheus:  # a Prometheus of its own runs elsewhere (docker-compose.yml, a fleet)
        cfg.prometheus.enabled = False
    return run(cfg)


def _admin_app(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from admin import create_app
    cfg = configs.load(args.config)
    return create_app({"DATA_DIR": args.data_dir or cfg.admin.data_dir, "LMP_CONFIG": str(cfg.path)})


def _read_password(args: argparse.Namespace, prompt: str) -> str:
    """The password, checked by the admin's own rules (12 characters or more, not a common leaked one)."""
    from admin.passwords import problem

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass(prompt)
    why = problem(password, args.name)
    if why:
        raise ValueError(why)
    return password


def cmd_admin_create_user(args: argparse.Namespace) -> int:
    from admin.users import create, invalid

    why = invalid(args.name, None, args.role)  # before asking for a password: the API's rules for names
    if why:
        raise ValueError(why)
    password = _read_password(args, f"password for {args.name}: ")
    with _admin_app(args).app_context():
        create(args.name, password, args.role)
    print(f"lmp admin: created {args.role} {args.name}")
    return 0


def cmd_admin_set_password(args: argparse.Namespace) -> int:
    from admin.users import set_password

    password = _read_password(args, f"new password for {args.name}: ")
    with _admin_app(args).app_context():
        set_password(args.name, password)
    print(f"lmp admin: set the password of {args.name}; every token of {args.name} has ended")
    return 0


def cmd_admin_serve(args: argparse.Namespace) -> int:
    from admin.serve import serve
    cfg = configs.load(args.config)
    return serve(args.listen or cfg.admin.listen, args.data_dir or cfg.admin.data_dir, cfg.admin.run_dir, cfg.path,
                 args.supervise, args.stop_exporters_on_exit)


def cmd_dashboards_build(args: argparse.Namespace) -> int:
    import dashboards

    files = dashboards.generate()
    changed = dashboards.stale(files) if args.check else dashboards.write(files)
    for path in changed:
        print(f"lmp dashboards: {'out of date' if args.check else 'wrote'} {path.relative_to(dashboards.ROOT)}")
    if args.check and changed:
        print("lmp dashboards: run `lmp dashboards build` and commit the result", file=sys.stderr)
        return 1
    print(f"lmp dashboards: {len(files)} files from the specs, {len(changed)} changed; Grafana dashboards in "
          f"{dashboards.GRAFANA_DIR.relative_to(dashboards.ROOT)}/, alert rules in "
          f"{dashboards.RULES_FILE.relative_to(dashboards.ROOT)}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import main as doctor
    return doctor(args.json)


def cmd_bench(args: argparse.Namespace) -> int:
    from bench.__main__ import main as bench_main
    return bench_main(args.rest)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lmp", description="LMP, the Linux Microscope: eBPF metrics of the kernel.")
    p.add_argument("--config", type=Path, default=None,
                   help=f"configuration file (default: $LMP_CONFIG or {configs.DEFAULT_PATH})")
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="list the collectors, whether they can run here, and their ports")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=cmd_list)

    ex = sub.add_parser("exporter", help="run one collector as an exporter serving /metrics")
    ex.add_argument("name", help="collector name (see `lmp list`)")
    ex.add_argument("--listen", help="HOST:PORT to serve /metrics on (default: from the config)")
    ex.add_argument("--option", "-o", action="append", default=[], metavar="NAME=VALUE",
                    help="set a collector option, e.g. -o latency=true (repeatable)")
    ex.add_argument("--collector-dir", action="append", default=[], metavar="DIR",
                    help="also look for collectors in DIR (a folder of collector folders)")
    ex.add_argument("--btf", type=Path, metavar="PATH",
                    help="the kernel's BTF (its types) from this file, for a kernel without /sys/kernel/btf/vmlinux")
    ex.set_defaults(func=cmd_exporter)

    bd = sub.add_parser("build", help="check the specs and compile the collectors' kernel code (only what changed)")
    bd.add_argument("names", nargs="*", metavar="NAME", help="collectors to build (default: all)")
    bd.add_argument("--collector-dir", action="append", default=[], metavar="DIR",
                    help="also look for collectors in DIR (a folder of collector folders)")
    bd.add_argument("--force", action="store_true", help="build even what is up to date")
    bd.set_defaults(func=cmd_build)

    rn = sub.add_parser("run", help="run the admin service, every enabled collector and a local Prometheus, "
                                            "in the foreground")
    rn.add_argument("--no-prometheus", action="store_true",
                    help="start no local Prometheus (another one scrapes the exporters), whatever the config says")
    rn.set_defaults(func=cmd_run)

    ad = sub.add_parser("admin", help="manage the admin service")
    ad_sub = ad.add_subparsers(dest="admin_command", required=True)
    data_dir_help = "the admin's data directory (default: admin.data_dir in the config, /var/lib/lmp)"
    cu = ad_sub.add_parser("create-user", help="create a user of the admin service")
    cu.add_argument("name")
    cu.add_argument("--role", choices=("viewer", "operator", "admin"), default="admin")
    cu.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    cu.add_argument("--data-dir", help=data_dir_help)
    cu.set_defaults(func=cmd_admin_create_user)
    sp = ad_sub.add_parser("set-password", help="set a user's password (e.g. the first admin's, if lost)")
    sp.add_argument("name")
    sp.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    sp.add_argument("--data-dir", help=data_dir_help)
    sp.set_defaults(func=cmd_admin_set_password)
    sv = ad_sub.add_parser("serve", help="serve the admin API (gunicorn); creates the first admin on first start")
    sv.add_argument("--listen", help="HOST:PORT (default: admin.listen in the config, 127.0.0.1:9480)")
    sv.add_argument("--data-dir", help=data_dir_help)
    sv.add_argument("--supervise", action="store_true",
                    help="own the exporter processes: start the enabled collectors, restart crashed ones")
    sv.add_argument("--stop-exporters-on-exit", action="store_true",
                    help="with --supervise: stop the exporters when the service stops (as `lmp run` does); "
                         "by default they keep running, for the next start to adopt")
    sv.set_defaults(func=cmd_admin_serve)

    db = sub.add_parser("dashboards", help="Grafana dashboards, alert rules and docs/metrics.md from the specs")
    db_sub = db.add_subparsers(dest="dashboards_command", required=True)
    dbb = db_sub.add_parser("build", help="write them (dashboards/, docs/metrics.md)")
    dbb.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is out of date")
    dbb.set_defaults(func=cmd_dashboards_build)

    dr = sub.add_parser("doctor", help="what this host's kernel lets LMP do, and what to do about what it does not")
    dr.add_argument("--json", action="store_true", help="print JSON instead of a table")
    dr.set_defaults(func=cmd_doctor)

    from scenario.cli import add_parser as add_scenario
    add_scenario(sub)

    bn = sub.add_parser("bench", help="measure overhead, start-up, memory and scrape cost; print a table")
    bn.add_argument("rest", nargs=argparse.REMAINDER)
    bn.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args, unknown = p.parse_known_args(argv)
    if args.command == "bench":  # argparse's REMAINDER gives up when the first word is an option (--runs)
        args.rest = [*unknown, *args.rest]
    elif unknown:
        p.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.func(args)
    except YamlError as err:
        print(f"lmp: {err}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as err:
        print(f"lmp: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The `lmp` command: one entry point for everything a user runs."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from exporters._lib import paths
from exporters._lib.serving import EXIT_USAGE

# Each command imports what it needs when it runs: `lmp run` forks its spawner before anything heavy is
# imported, and `lmp build` with nothing to do stays quick.


def cmd_list(args: argparse.Namespace) -> int:
    import json

    from exporters._lib import catalog
    from exporters._lib.bpf import can_run

    from . import config as configs

    cfg = configs.load(args.config)
    rows = []
    for name in catalog.names():
        spec = catalog.load(name)
        ok, why = can_run(spec)
        c = cfg.collectors[name]
        rows.append({"name": name, "kind": spec.kind, "can_run": ok, "why_not": why,
                     "enabled": c.enabled, "listen": c.listen,
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


# Kernel code that is not a collector's, built with them: the doctor's probes, the benchmark's programs.
OTHER_OBJECTS = [paths.ROOT / "lmp" / "doctor" / "probes.bpf.c",
                 *(paths.BENCH_DIR / f for f in ("hooks.bpf.c", "series/series.bpf.c"))]


def cmd_collector_new(args: argparse.Namespace) -> int:
    from exporters._scaffold import ScaffoldError, scaffold
    try:
        folder = scaffold(args.event, args.name, args.dir)
    except ScaffoldError as err:
        print(f"lmp collector new: {err}", file=sys.stderr)
        return EXIT_USAGE
    where = "" if folder.parent == paths.EXPORTERS_DIR else f" --collector-dir {folder.parent}"
    print(f"lmp collector new: wrote {folder}/ ; try: lmp exporter {folder.name}{where} --listen 127.0.0.1:9999")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    """Check the specs and compile the kernel code of every collector (or those named) whose object is
    missing or out of date; exit 2 for a bad spec, 1 when clang fails."""
    from concurrent.futures import ThreadPoolExecutor

    from exporters._lib import build, catalog
    from exporters._lib.yamlfile import YamlError

    extra = [Path(d) for d in args.collector_dir]
    code, sources = 0, []
    for name in args.names or catalog.names(extra):
        path = catalog.spec_path(name, extra)
        if path is None:
            print(f"lmp build: no collector named {name!r}", file=sys.stderr)
            code = max(code, EXIT_USAGE)
            continue
        source = path.with_name(f"{name}.bpf.c")
        if not args.force and not build.stale(source):
            continue
        try:
            catalog.load(name, extra)  # the spec is checked here, once: the exporter trusts it
        except YamlError as err:
            print(f"lmp build: {err}", file=sys.stderr)
            code = max(code, EXIT_USAGE)
            continue
        sources.append(source)
    if not args.names:
        sources += [s for s in OTHER_OBJECTS if args.force or build.stale(s)]

    def compile_one(source: Path) -> tuple[Path, str | None, str]:
        try:
            return source, None, build.build(source)
        except build.BuildError as err:
            return source, str(err), ""

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # clang runs, one per CPU
        for source, error, warnings in pool.map(compile_one, sources):
            if error:
                print(f"lmp build: {error}", file=sys.stderr)
                code = max(code, 1)
                continue
            print(f"lmp build: {source.with_suffix('.o')}", file=sys.stderr)
            if warnings:
                print(warnings, file=sys.stderr)
    return code


def built(name: str, extra: list[Path]) -> int:
    """Build the collector's object first if it is missing or older than its sources (a learner edited the
    .bpf.c, say), in a `lmp build` of its own: this process never imports the spec validator. Returns that
    build's exit code (0: the object is ready)."""
    import shutil
    import subprocess

    from exporters._lib import build, catalog

    path = catalog.spec_path(name, extra)
    assert path is not None
    source = path.with_name(f"{name}.bpf.c")
    if not build.stale(source):
        return 0
    if shutil.which("clang") is None and source.with_suffix(".o").is_file():
        print(f"lmp exporter {name}: {name}.bpf.o is older than its sources and there is no clang here to "
              f"build it again; running it as it is", file=sys.stderr)
        return 0
    dirs = [arg for d in extra for arg in ("--collector-dir", str(d))]
    return subprocess.run([sys.executable, "-m", "lmp", "build", name, *dirs]).returncode


def cmd_exporter(args: argparse.Namespace) -> int:
    from exporters._lib import catalog
    from exporters._lib.exporter import serve
    from exporters._lib.spec import parse_option

    from . import config as configs

    extra = [Path(d) for d in args.collector_dir]
    if catalog.spec_path(args.name, extra) is None:
        print(f"lmp exporter: no collector named {args.name!r}; collectors: "
              f"{', '.join(catalog.names(extra))}", file=sys.stderr)
        return EXIT_USAGE
    if (code := built(args.name, extra)) != 0:
        return code
    spec = catalog.load(args.name, extra, check=False)
    path = args.config or configs.path_from_env()
    configured, btf_path, web_config = configs.entry(path, spec)
    values = dict(configured.options)
    for assignment in args.option:
        name, value = parse_option(spec, assignment)
        values[name] = value
    return serve(spec, args.listen or configured.listen, values,
                 configs.policy_source(path, spec.name) if spec.kind == "function" else None,
                 args.btf or (Path(btf_path) if btf_path else None), args.web_config or web_config)


def cmd_run(args: argparse.Namespace) -> int:
    from .run import run
    return run(args.config, args.no_prometheus)


def _admin_app(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from admin import create_app

    from . import config as configs

    cfg = configs.load(args.config)
    return create_app({"DATA_DIR": args.data_dir or cfg.admin.data_dir, "LMP_CONFIG": str(cfg.path)})


def _read_password(args: argparse.Namespace, prompt: str) -> str:
    """The password, checked by the admin's own rules (12 characters or more, not a common leaked one)."""
    import getpass

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

    from . import config as configs

    cfg = configs.load(args.config)
    return serve(args.listen or cfg.admin.listen, args.data_dir or cfg.admin.data_dir, cfg.admin.run_dir, cfg.path,
                 cfg.web_config)


def cmd_dashboards_build(args: argparse.Namespace) -> int:
    import dashboards

    files = dashboards.generate()
    changed = dashboards.stale(files) if args.check else dashboards.write(files)
    for path in changed:
        print(f"lmp dashboards: {'out of date' if args.check else 'wrote'} {path.relative_to(paths.ROOT)}")
    if args.check and changed:
        print("lmp dashboards: run `lmp dashboards build` and commit the result", file=sys.stderr)
        return 1
    print(f"lmp dashboards: {len(files)} files from the specs, {len(changed)} changed; Grafana dashboards in "
          f"{paths.GRAFANA_DIR.relative_to(paths.ROOT)}/, alert rules in "
          f"{paths.ALERT_RULES.relative_to(paths.ROOT)}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import main as doctor
    return doctor(args.json)


def cmd_top(args: argparse.Namespace) -> int:
    from exporters._lib.serving import Reach

    from . import top
    urls, reach = (dict(u.split("=", 1) for u in args.url), Reach()) if args.url else top.urls_from_config(args.config)
    if not urls:
        print("lmp top: no collector is enabled in the config, and no --url given", file=sys.stderr)
        return EXIT_USAGE
    try:
        return top.run(urls, args.interval, args.sort, args.once, reach)
    except KeyboardInterrupt:
        return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from bench.__main__ import main as bench_main
    return bench_main(args.rest)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lmp", description="LMP, the Linux Microscope: eBPF metrics of the kernel.")
    p.add_argument("--config", type=Path, default=None,
                   help=f"configuration file (default: $LMP_CONFIG or {paths.DEFAULT_CONFIG})")
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
    ex.add_argument("--web-config", type=Path, metavar="FILE",
                    help="TLS and basic auth, in Prometheus exporter-toolkit's web config format "
                         "(default: web_config in the config; none: plain HTTP)")
    ex.add_argument("--btf", type=Path, metavar="PATH",
                    help="the kernel's BTF (its types) from this file, for a kernel without /sys/kernel/btf/vmlinux")
    ex.set_defaults(func=cmd_exporter)

    co = sub.add_parser("collector", help="start a collector of your own")
    co_sub = co.add_subparsers(dest="collector_command", required=True)
    cn = co_sub.add_parser("new", help="write a new collector folder around one tracepoint, with its test")
    cn.add_argument("event", help="the tracepoint, CATEGORY:EVENT (see /sys/kernel/tracing/events)")
    cn.add_argument("--name", help="the collector's name (default: from the event)")
    cn.add_argument("--dir", type=Path, default=paths.EXPORTERS_DIR,
                    help=f"the folder to create it in (default: {paths.EXPORTERS_DIR}, beside the others)")
    cn.set_defaults(func=cmd_collector_new)

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
    sv = ad_sub.add_parser("serve", help="serve the admin API and web page; creates the first admin on first start")
    sv.add_argument("--listen", help="HOST:PORT (default: admin.listen in the config, 127.0.0.1:9480)")
    sv.add_argument("--data-dir", help=data_dir_help)
    sv.set_defaults(func=cmd_admin_serve)

    db = sub.add_parser("dashboards", help="Grafana dashboards, alert rules and docs/metrics.md from the specs")
    db_sub = db.add_subparsers(dest="dashboards_command", required=True)
    dbb = db_sub.add_parser("build", help="write them (dashboards/, docs/metrics.md)")
    dbb.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is out of date")
    dbb.set_defaults(func=cmd_dashboards_build)

    dr = sub.add_parser("doctor", help="what this host's kernel lets LMP do, and what to do about what it does not")
    dr.add_argument("--json", action="store_true", help="print JSON instead of a table")
    dr.set_defaults(func=cmd_doctor)

    tp = sub.add_parser("top", help="containers and services by what the collectors see, sorted and refreshed")
    tp.add_argument("--sort", help="the column to sort by (a metric's name, e.g. lmp_page_faults)")
    tp.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)")
    tp.add_argument("--once", action="store_true", help="print one table, after one interval, and exit")
    tp.add_argument("--url", action="append", default=[], metavar="COLLECTOR=URL",
                    help="read this exporter's /metrics instead of the config's enabled collectors (repeatable)")
    tp.set_defaults(func=cmd_top)

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
    except ValueError as err:  # a YamlError (file:line: reason) among them
        print(f"lmp: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

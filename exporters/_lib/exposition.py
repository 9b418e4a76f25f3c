"""Text exposition of the collectors' BPF metrics, in Prometheus text 0.0.4 or OpenMetrics 1.0.

Why not client_python's generate_latest for these: it formats and validates every label of every line
on every scrape, about 5 us a line here, so 10k series cost ~55 ms before a single map is read. Label
values of a BPF key never change, so they are escaped and joined once, cached by the key's raw bytes,
and a scrape only adds the numbers. Self and process metrics still go through client_python."""
from __future__ import annotations


def escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def escape_value(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def labels(names: list[str], values: tuple[str, ...]) -> str:
    """`a="x",b="y"`: the inside of a label set, escaped, without braces."""
    return ",".join(f'{n}="{escape_value(v)}"' for n, v in zip(names, values))


def braces(inner: str) -> str:
    return "{" + inner + "}" if inner else ""


def header(name: str, kind: str, help_text: str, openmetrics: bool) -> str:
    """HELP and TYPE lines. OpenMetrics names a counter's family without its `_total` suffix."""
    family = name.removesuffix("_total") if openmetrics and kind == "counter" else name
    return f"# HELP {family} {escape_help(help_text)}\n# TYPE {family} {kind}\n"

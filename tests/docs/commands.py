"""The commands a docs page shows: every ```console block's `$ ` lines, as one bash script.

A command continues on the next line after a trailing backslash, on lines that start with the shell's
second prompt (`> `), and through a here-document up to its terminator; the other lines of a block are
the output a reader should expect."""
from __future__ import annotations

import re
from pathlib import Path

BLOCK = re.compile(r"^```console\n(.*?)^```", re.M | re.S)
HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def parse(markdown: str) -> tuple[list[str], list[str]]:
    """The commands of a page's console blocks, and the output lines they show ("..." left out)."""
    found: list[str] = []
    shown: list[str] = []
    for block in BLOCK.findall(markdown):
        lines, i = block.splitlines(), 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                if lines[i].strip() not in ("", "..."):
                    shown.append(lines[i])
                i += 1
                continue
            command, i = [lines[i][2:]], i + 1
            while i < len(lines) and (command[-1].endswith("\\") or lines[i].startswith("> ")):
                command.append(lines[i][2:] if lines[i].startswith("> ") else lines[i])
                i += 1
            heredoc = HEREDOC.search(command[0])
            if heredoc:
                while i < len(lines) and lines[i] != heredoc.group(1):
                    command.append(lines[i])
                    i += 1
                command.append(heredoc.group(1))
                i += 1
            found.append("\n".join(command))
    return found, shown


def commands(markdown: str) -> list[str]:
    return parse(markdown)[0]


def unshown(markdown: str, output: str) -> list[str]:
    """The output lines a page shows that its commands did not print. Numbers may differ (counts and
    times vary from run to run) and so may spacing (`ls` prints columns only to a terminal)."""
    missing = []
    for line in parse(markdown)[1]:
        parts = NUMBER.split(line.strip())
        pattern = NUMBER.pattern.join(r"\s+".join(map(re.escape, re.split(r"\s+", p))) for p in parts)
        if not re.search(pattern, output):
            missing.append(line)
    return missing


def script(page: Path) -> str:
    """The page's commands as a reader would run them as root: `sudo` dropped, stop at the first that fails
    (without pipefail, as in an interactive shell: `... | head` must not fail the page), and jobs the
    page left in the background stopped."""
    body = [re.sub(r"^sudo (-E )?", "", c) for c in commands(page.read_text())]
    return "\n".join(["set -eu", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT", *body, ""])

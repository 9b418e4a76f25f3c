"""MkDocs hooks that make the docs site from the repository as it is (mkdocs.yml: `hooks:`).

The site is `docs/` plus pages made at build time: the top-level README as the home page, every
collector's and component's README, the scenario README, the API reference from the admin's OpenAPI
document, and a page for each repository file a page links to (a `.bpf.c`, a spec, a config file).
Links are written for GitHub, relative to the file they are in; each is rewritten to the page that
file became, so one Markdown source reads right in both places. A link to something that does not
exist is left alone, and MkDocs' strict build fails on it."""
from __future__ import annotations

import posixpath
import re
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

from exporters._lib import paths

ROOT = paths.ROOT
LINK = re.compile(r"(\]\()([^)\s]+)(\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.M | re.S)
LANGUAGE = {".c": "c", ".h": "c", ".yaml": "yaml", ".yml": "yaml", ".json": "json", ".py": "python",
            ".sh": "bash", ".toml": "toml", ".in": "text", "": "text"}

# site page -> the repository file it is made from; filled by on_config
ORIGIN: dict[str, str] = {}


def components() -> list[tuple[str, str]]:
    from exporters._lib import catalog
    return [(name, catalog.load(name).kind) for name in catalog.names()]


def site_path(repo_path: str) -> str | None:
    """The page a repository file becomes, or None if no page shows it."""
    for page, origin in ORIGIN.items():
        if origin == repo_path:
            return page
    return None


def targets(markdown: str, origin: str) -> list[tuple[str, str]]:
    """(link as written, repository path it names) for each relative link outside code blocks."""
    found, base = [], origin if (ROOT / origin).is_dir() else posixpath.dirname(origin)
    for match in LINK.finditer(FENCE.sub("", markdown)):
        link = match.group(2)
        path = link.split("#", 1)[0]
        if not path or "://" in link or link.startswith(("mailto:", "/")):
            continue
        found.append((link, posixpath.normpath(posixpath.join(base, path))))
    return found


def discover() -> dict[str, str]:
    """Every page of the site and its origin: the fixed ones, then each repository file a page links to
    (a linked folder gets an index of its files), followed from page to page."""
    pages = {"index.md": "README.md", "scenario.md": "scenario/README.md"}
    pages |= {str(p.relative_to(ROOT / "docs")): str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")}
    for name, _ in components():
        pages[f"collectors/{name}.md"] = f"exporters/{name}/README.md"
        for file in sorted((ROOT / "exporters" / name).glob(f"{name}.*")):
            if built(file):
                continue
            pages[f"source/exporters/{name}/{file.name}.md"] = f"exporters/{name}/{file.name}"
    known = set(pages.values())
    queue = [o for o in pages.values() if o.endswith(".md")]  # Markdown and folders link onwards
    while queue:
        origin = queue.pop()
        text = source_page(origin) if (ROOT / origin).is_dir() else (ROOT / origin).read_text()
        for _, target in targets(text, origin):
            if target in known or not (ROOT / target).exists() or target.startswith(".."):
                continue
            known.add(target)
            pages[f"source/{target}/index.md" if (ROOT / target).is_dir() else f"source/{target}.md"] = target
            if target.endswith(".md") or (ROOT / target).is_dir():
                queue.append(target)
    return pages


def built(path: Path) -> bool:
    """What `lmp build` made beside the sources (objects, clang's dependency lists): not pages."""
    return path.name.endswith((".bpf.o", ".bpf.d", ".o.tmp"))


def source_page(origin: str) -> str:
    """A repository file as a page: Markdown as itself, a folder as a list of its files, code in a block."""
    path = ROOT / origin
    if path.is_dir():
        items = [f"- [`{p.name}`]({p.name})" for p in sorted(path.iterdir()) if p.is_file() and not built(p)]
        return f"# `{origin}/`\n\n" + "\n".join(items) + "\n"
    if path.suffix == ".md":
        return path.read_text()
    text = path.read_text()
    fence = "`" * max(3, max((len(m) for m in re.findall(r"`{3,}", text)), default=0) + 1)
    return f"# `{origin}`\n\n{fence}{LANGUAGE.get(path.suffix, 'text')}\n{text.rstrip()}\n{fence}\n"


def collector_page(name: str) -> str:
    readme = (ROOT / "exporters" / name / "README.md").read_text()
    files = sorted(f for f in (ROOT / "exporters" / name).glob(f"{name}.*") if not built(f))
    listing = "\n".join(f"- [`{f.name}`]({f.name})" for f in files)
    return f"{readme.rstrip()}\n\n## Its files\n\nThe whole collector is its folder, `exporters/{name}/`:\n\n{listing}\n"


def openapi_document() -> dict[str, Any]:
    """The admin's OpenAPI document, from an app made in a throwaway data directory."""
    from admin import create_app
    with tempfile.TemporaryDirectory() as data:
        app = create_app({"TESTING": True, "DATA_DIR": data, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
        return app.test_client().get("/api/v1/openapi.json").get_json()


def api_page() -> str:
    from openapidocs.mk.v3 import OpenAPIV3DocumentationHandler  # neoteroi-mkdocs' renderer
    intro = ("# The admin API\n\nThe admin service's REST API, generated from the OpenAPI document the "
             "code describes itself with (`/api/v1/openapi.json` on a running admin, which also serves an "
             "interactive page at `/api/docs`). Every endpoint but login and health needs a bearer token "
             "from `POST /api/v1/auth/login`; errors are JSON `{\"code\", \"message\"}`.\n\n")
    return intro + OpenAPIV3DocumentationHandler(openapi_document(), style="MKDOCS").write()


def nav() -> list[dict[str, Any]]:
    def title(page: str) -> str:  # a page's first heading
        return re.sub(r"^#\s*", "", (ROOT / "docs" / page).read_text().splitlines()[0])

    learn = sorted(p.name for p in (ROOT / "docs" / "learn").glob("[0-9]*.md"))
    return [
        {"Home": "index.md"},
        {"Learn eBPF": ["learn/index.md", *({title(f"learn/{p}"): f"learn/{p}"} for p in learn)]},
        {"Collectors": [{n: f"collectors/{n}.md"} for n, kind in components() if kind == "collector"]},
        {"Functional components": [{n: f"collectors/{n}.md"} for n, kind in components() if kind == "function"]},
        {"Scenario analysis": "scenario.md"},
        {"Reference": [{"Metrics": "metrics.md"}, {"Admin API": "api.md"}, {"Alert runbook": "runbook.md"},
                       {"Performance": "performance.md"}, {"Across a fleet": "fleet.md"}]},
        {"Ideas": ["ideas/index.md", {"Template": "ideas/template.md"}]},
    ]


def on_config(config: Any) -> Any:
    ORIGIN.clear()
    ORIGIN.update(discover())
    config["nav"] = nav()
    return config


def on_files(files: Files, config: Any) -> Files:
    generated = {"index.md": (ROOT / "README.md").read_text(), "scenario.md": (ROOT / "scenario/README.md").read_text(),
                 "api.md": api_page()}
    for page, origin in ORIGIN.items():
        if page.startswith("collectors/"):
            generated[page] = collector_page(Path(page).stem)
        elif page.startswith("source/"):
            generated[page] = source_page(origin)
    for page, content in generated.items():
        files.append(File.generated(config, page, content=content))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    here = page.file.src_uri
    origin = ORIGIN.get(here)
    if origin is None:
        return markdown

    def rewrite(match: re.Match[str]) -> str:
        link = match.group(2)
        found = targets(f"]({link})", origin)
        if not found:
            return match.group(0)
        _, target = found[0]
        page_of = site_path(target)
        if page_of is None:
            return match.group(0)  # nothing shows it: strict mode reports the broken link
        fragment = link[len(link.split("#", 1)[0]):]
        relative = posixpath.relpath(page_of, posixpath.dirname(here) or ".")
        return f"{match.group(1)}{relative}{fragment}{match.group(3) or ''})"

    parts = re.split(r"(^(?:```|~~~).*?^(?:```|~~~)\s*$)", markdown, flags=re.M | re.S)
    return "".join(p if i % 2 else LINK.sub(rewrite, p) for i, p in enumerate(parts))

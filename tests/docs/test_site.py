"""The docs site builds in strict mode, has every page it promises, and a broken link fails it."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exporters._lib import catalog
from tests.conftest import ROOT

MKDOCS = [sys.executable, "-m", "mkdocs", "build", "--strict"]  # not --quiet: it hides the warnings strict counts


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([*MKDOCS, "--site-dir", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_every_readme_the_learning_path_and_the_references_are_pages(site: Path):
    for name in catalog.names():
        page = (site / "collectors" / name / "index.html").read_text()
        assert f'href="../../source/exporters/{name}/{name}.bpf.c/"' in page, name  # its kernel code, linked
        assert (site / "source" / "exporters" / name / f"{name}.bpf.c" / "index.html").exists()
    for page in ("learn", "ideas", "ideas/template", "scenario", "metrics", "runbook", "performance", "fleet"):
        assert (site / page / "index.html").exists(), page
    learn = sorted(p.stem for p in (ROOT / "docs" / "learn").glob("[0-9]*.md"))
    assert all((site / "learn" / stem / "index.html").exists() for stem in learn)
    metrics = (site / "metrics" / "index.html").read_text()
    assert all(m.name in metrics for name in catalog.names() for m in catalog.load(name).metrics)


def test_the_api_reference_has_every_path_of_the_openapi_document(site: Path):
    from lmp.docsite import openapi_document
    html = (site / "api" / "index.html").read_text()
    headings = {re.sub(r"<[^>]+>", "", h) for h in re.findall(r'<h3 id="[^"]+">(.*?)<a class="headerlink"', html)}
    paths = openapi_document()["paths"]
    assert len(paths) > 20
    for path, operations in paths.items():
        for method in operations:
            if method in ("get", "post", "put", "delete", "patch"):
                assert f"{method.upper()} {path}" in headings, (method, path)


def test_links_written_for_github_point_at_pages(site: Path):
    home = (site / "index.html").read_text()
    assert 'href="collectors/syscalls/"' in home and 'href="performance/"' in home
    assert "README.md" not in " ".join(re.findall(r'href="([^"]+)"', home))
    assert not re.search(r'href="https?://(fonts\.googleapis|cdn)', home), "the site must open with no network"


def test_a_broken_link_fails_the_strict_build(tmp_path: Path):
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    (docs / "ideas" / "index.md").write_text((docs / "ideas" / "index.md").read_text() + "\n[gone](no-such-page.md)\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text((ROOT / "mkdocs.yml").read_text().replace("lmp/docsite.py", str(ROOT / "lmp" / "docsite.py"))
                      .replace("docs_dir: docs", f"docs_dir: {docs}"))
    done = subprocess.run([*MKDOCS, "-f", str(config), "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "no-such-page.md" in done.stdout + done.stderr

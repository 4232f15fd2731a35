"""The rendered book, built once per test run for the modules that look at it (fixtures ``book_build`` and
``book_html``, made available to every test module by tests/conftest.py).

The book is built with ``COURSE_SCALE=test`` and warnings as errors into a temporary folder. Under pytest-xdist
the workers of one run share the build: the first one to ask builds it under a file lock, the others wait and
reuse it (pytest-xdist's documented pattern for once-per-run fixtures).

To stay fast, only the first chapter in ``_toc.yml`` is executed; the others are rendered without running
(their execution is tested by nbval). The build is made with ``COURSE_REPOSITORY_URL`` set to
``FORK_REPOSITORY_URL``, as the publishing workflow sets it to the repository it runs in, so tests can check
that every repository link follows it. The user's ``_build/`` is left alone except for the shared asset cache
that ``tools.book_assets`` keeps in ``_build/book_assets`` and ``_build/npm_cache``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from tools import book_assets

ROOT = Path(__file__).resolve().parent.parent
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"
FORK_REPOSITORY_URL = "https://github.com/a-fork/of-the-course"  # not the URL in _config.yml


def toc_chapters() -> list[str]:
    """The chapter files listed in _toc.yml, in order (e.g. ``solutions/01_attention``)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [chapter["file"] for part in toc.get("parts", []) for chapter in part.get("chapters") or []]


def _build_book(out: Path) -> dict:
    """Build the book into ``out``; return ``{"ok": bool, "html": str, "log": str, "assets_local": bool}``."""
    chapters = toc_chapters()
    assets_local = book_assets.ensure_assets()
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    # The config is read from `out`, so make its relative paths absolute; execute only the first chapter.
    config["sphinx"]["local_extensions"] = {name: str(ROOT / path)
                                            for name, path in config["sphinx"]["local_extensions"].items()}
    sphinx_config = config["sphinx"]["config"]
    sphinx_config["html_extra_path"] = [str(ROOT / path) for path in sphinx_config["html_extra_path"]]
    config["execute"]["exclude_patterns"] = [f"{chapter}.*" for chapter in chapters[1:]]
    (out / "_config.yml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    result = subprocess.run(
        [str(JUPYTER_BOOK), "build", str(ROOT), "--path-output", str(out), "--config", str(out / "_config.yml"),
         "--warningiserror", "--nitpick", "--keep-going"],
        capture_output=True, text=True, timeout=600,
        env=dict(os.environ, COURSE_SCALE="test", COURSE_REPOSITORY_URL=FORK_REPOSITORY_URL),
    )
    warnings = [line for line in result.stdout.splitlines() + result.stderr.splitlines()
                if "WARNING" in line or "ERROR" in line]
    log = "\n".join(warnings or [result.stdout[-3000:], result.stderr[-3000:]])
    return {"ok": result.returncode == 0, "html": str(out / "_build" / "html"), "log": log,
            "assets_local": assets_local}


@pytest.fixture(scope="session")
def book_build(tmp_path_factory) -> dict:
    """The book built once for the whole run (shared by xdist workers); see the module's docstring."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _build_book(tmp_path_factory.mktemp("book"))
    shared = tmp_path_factory.getbasetemp().parent  # the same folder for every worker of this run
    record = shared / "book-build.json"
    with FileLock(str(shared / "book-build.lock")):
        if not record.is_file():
            out = shared / "book"
            out.mkdir(exist_ok=True)
            record.write_text(json.dumps(_build_book(out)))
    return json.loads(record.read_text())


@pytest.fixture(scope="session")
def book_html(book_build) -> Path:
    """The built book's HTML folder (the build must have succeeded)."""
    assert book_build["ok"], "the book build failed:\n" + book_build["log"]
    return Path(book_build["html"])

"""The rendered book: builds it into a temporary folder (``COURSE_SCALE=test``, warnings as errors) and checks
what the online reader gets on the first chapter's page.

To stay fast, only the first chapter in ``_toc.yml`` is executed; the others are rendered without running
(their execution is tested by nbval). The user's ``_build/`` is left alone except for the shared asset cache
that ``tools.book_assets`` keeps in ``_build/book_assets`` and ``_build/npm_cache``.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tools import book_assets

ROOT = Path(__file__).resolve().parent.parent
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"


def toc_chapters() -> list[str]:
    """The chapter files listed in _toc.yml, in order (e.g. ``solutions/01_attention``)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [chapter["file"] for part in toc.get("parts", []) for chapter in part.get("chapters") or []]


CHAPTERS = toc_chapters()
pytestmark = pytest.mark.skipif(not CHAPTERS, reason="no chapter listed in _toc.yml yet")


@pytest.fixture(scope="module")
def assets_local() -> bool:
    """Fetch MathJax & co. (or write the CDN loaders when npm is unreachable); True when local."""
    return book_assets.ensure_assets()


@pytest.fixture(scope="module")
def html(tmp_path_factory, assets_local) -> Path:
    """Build the book once for this module; return its HTML folder."""
    tmp = tmp_path_factory.mktemp("book")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    # The config is read from tmp, so make its relative paths absolute; execute only the first chapter.
    config["sphinx"]["local_extensions"] = {name: str(ROOT / path)
                                            for name, path in config["sphinx"]["local_extensions"].items()}
    config["sphinx"]["config"]["html_extra_path"] = [str(ROOT / p) for p in config["sphinx"]["config"]["html_extra_path"]]
    config["execute"]["exclude_patterns"] = [f"{chapter}.*" for chapter in CHAPTERS[1:]]
    (tmp / "_config.yml").write_text(yaml.safe_dump(config, allow_unicode=True))
    result = subprocess.run(
        [str(JUPYTER_BOOK), "build", str(ROOT), "--path-output", str(tmp), "--config", str(tmp / "_config.yml"),
         "--warningiserror", "--nitpick", "--keep-going"],
        capture_output=True, text=True, env=dict(os.environ, COURSE_SCALE="test"), timeout=600,
    )
    warnings = [line for line in result.stdout.splitlines() + result.stderr.splitlines()
                if "WARNING" in line or "ERROR" in line]
    assert result.returncode == 0, "the book build failed:\n" + "\n".join(warnings or [result.stdout[-3000:], result.stderr[-3000:]])
    return tmp / "_build" / "html"


@pytest.fixture(scope="module")
def chapter(html) -> str:
    page = html / f"{CHAPTERS[0]}.html"
    assert page.is_file(), f"{page} was not built"
    return page.read_text()


def test_student_notebooks_are_not_pages(html):
    assert not list(html.glob("chapters/*.html")), "chapters/ (the student notebooks) must not be built as pages"


def test_math_is_ready_for_mathjax(chapter):
    assert re.search(r'class="math[^"]*"[^>]*>\s*\\[\[(]', chapter), "no math for MathJax to typeset"
    assert re.search(r'<script[^>]+src="[^"]*_static/mathjax/es5/tex-mml-chtml\.js', chapter), \
        "MathJax is not loaded from _static/mathjax/ (mathjax_path in _config.yml)"


def test_mathjax_is_the_local_copy(html, chapter, assets_local):
    if not assets_local:
        pytest.skip("npm registry unreachable: the book loads MathJax from the CDN (tools/book_assets.py)")
    mathjax = html / "_static" / "mathjax" / "es5"
    assert (mathjax / "tex-mml-chtml.js").stat().st_size > 100_000, "tex-mml-chtml.js is a loader, not MathJax"
    assert list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff")), "MathJax's fonts are missing"


def test_colab_link_opens_the_student_notebook(chapter):
    name = CHAPTERS[0].split("/")[-1]
    links = re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', chapter)
    assert links, "no Colab link on the chapter page"
    for link in links:  # the {student-notebook} box and the header's launch button
        assert re.fullmatch(rf"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/chapters/{name}\.ipynb", link), link


def test_student_notebook_is_downloadable(html, chapter):
    name = CHAPTERS[0].split("/")[-1]
    match = re.search(rf'href="\.\./(_downloads/[0-9a-f]+/{name}\.ipynb)"', chapter)
    assert match, "no download link to the student notebook"
    notebook = (html / match[1]).read_text()
    assert "NotImplementedError" in notebook and "BEGIN SOLUTION" not in notebook, "the download is not the student notebook"


def test_solutions_are_collapsed(chapter):
    cells = re.findall(r'<div class="cell ([^"]*tag_exercise-[^"]*)">\s*(<details[^>]*>)?', chapter)
    assert cells, "no exercise cell (tagged exercise-N.M) on the chapter page"
    for classes, details in cells:
        tag = re.search(r"tag_(exercise-[\d.]+)", classes)[1]
        assert "tag_hide-input" in classes and details and "hide" in details, f"the solution of {tag} is not collapsed"


def test_figures_are_embedded(html, chapter):
    images = re.findall(r'<img[^>]+src="\.\./(_images/[^"]+\.(?:png|svg|jpg))"', chapter)
    assert images, "no figure on the chapter page"
    assert all((html / image).is_file() for image in images)

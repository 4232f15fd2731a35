"""The rendered book: what the online reader gets on the first chapter's page.

The book is built once per test run by the ``book_html`` fixture of tests/book_build.py (``COURSE_SCALE=test``,
warnings as errors, only the first chapter executed), into a temporary folder.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from book_build import toc_chapters

CHAPTERS = toc_chapters()
pytestmark = pytest.mark.skipif(not CHAPTERS, reason="no chapter listed in _toc.yml yet")


@pytest.fixture(scope="module")
def assets_local(book_build) -> bool:
    """True when MathJax & co. are local copies (False: npm was unreachable and the CDN loaders are in place)."""
    return book_build["assets_local"]


@pytest.fixture(scope="module")
def html(book_html) -> Path:
    """The built book's HTML folder."""
    return book_html


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
        pattern = rf"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/chapters/{name}\.ipynb"
        assert re.fullmatch(pattern, link), link


def test_student_notebook_is_downloadable(html, chapter):
    name = CHAPTERS[0].split("/")[-1]
    match = re.search(rf'href="\.\./(_downloads/[0-9a-f]+/{name}\.ipynb)"', chapter)
    assert match, "no download link to the student notebook"
    notebook = (html / match[1]).read_text()
    assert "NotImplementedError" in notebook and "BEGIN SOLUTION" not in notebook, \
        "the download is not the student notebook"


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

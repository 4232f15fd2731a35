"""The course's small Sphinx extension (loaded by _config.yml's ``sphinx.local_extensions``).

1. The ``student-notebook`` directive, put at the top of each chapter::

       ```{student-notebook} 01_attention
       ```

   renders a tip box with an "Open in Colab" link to ``chapters/01_attention.ipynb`` on GitHub and a download
   link for that notebook (copied into ``_build/html/_downloads``). The Colab URL derives from the one
   repository URL and branch in ``_config.yml`` (``html_theme_options["repository_url"]`` /
   ``["repository_branch"]``, as Jupyter Book sets them). A name with no notebook in ``chapters/`` is a
   build error that says so.

2. The header's Colab launch button of a chapter page opens that same student notebook (sphinx-book-theme
   would point Colab at ``solutions/NN_slug.md``, which Colab cannot open).

3. ``COURSE_REPOSITORY_URL``, when set in the environment, replaces ``_config.yml``'s repository URL for the
   whole build: the header's repository, issues and launch buttons and the Colab links all follow it. The
   publishing workflow (.github/workflows/book.yml) sets it to the repository it runs in, so a fork's book
   links to the fork.

4. A display equation written with its own environment (``$$ \\begin{aligned} … \\end{aligned} \\tag{N.k} $$``, as
   long equations are split) reaches MathJax as written: Sphinx would wrap any display math holding ``\\\\`` in
   ``\\begin{split}``, where ``\\tag`` is an error.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

COLAB = "https://colab.research.google.com/github"
CHAPTER_DOC = re.compile(r"^solutions/(\d\d)_\w+$")  # a chapter page's docname
REPOSITORY_ENV = "COURSE_REPOSITORY_URL"  # overrides _config.yml's repository.url


def repository_from_environment(app: Sphinx, config) -> None:
    """Apply ``COURSE_REPOSITORY_URL`` (at config-inited, before the theme reads its options)."""
    url = os.environ.get(REPOSITORY_ENV, "").strip().rstrip("/")
    if url:
        config.html_theme_options = {**config.html_theme_options, "repository_url": url}
    # Read with every page's doctree (the Colab links are written into it): a new URL re-reads every page.
    config.course_repository_url = config.html_theme_options.get("repository_url", "")


def colab_url(config, notebook: str) -> str:
    """The Colab URL of ``notebook`` (a path relative to the book's root) in the configured repository."""
    options = config.html_theme_options
    repository = options.get("repository_url", "").rstrip("/")
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?", repository)
    if match is None:
        raise ValueError(f"repository url {repository!r} in _config.yml is not https://github.com/<owner>/<repo>")
    branch = options.get("repository_branch") or "main"
    book = options.get("path_to_docs", "").strip("/")
    path = f"{book}/{notebook}" if book else notebook
    return f"{COLAB}/{match[1]}/{match[2]}/blob/{branch}/{path}"


class StudentNotebook(SphinxDirective):
    """``{student-notebook} NN_slug``: links to open or download chapters/NN_slug.ipynb."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0].removesuffix(".ipynb").removeprefix("chapters/")
        notebook = f"chapters/{name}.ipynb"
        if not (Path(self.env.srcdir) / notebook).is_file():
            available = sorted(p.stem for p in (Path(self.env.srcdir) / "chapters").glob("*.ipynb"))
            raise self.error(
                f"student-notebook: {notebook} does not exist (student notebooks are written by "
                f"`make chapters`; the ones there now: {', '.join(available) or 'none'})"
            )
        try:
            colab = colab_url(self.config, notebook)
        except ValueError as error:
            raise self.error(f"student-notebook: {error}") from None

        download = addnodes.download_reference(
            "", "", reftarget=f"/{notebook}", refdoc=self.env.docname, refexplicit=True, refdomain="",
            reftype="download",
        )
        download += nodes.literal("", f"{name}.ipynb", classes=["xref", "download"])
        text = nodes.paragraph()
        text += nodes.Text("This page is the worked solution. The student notebook is the same chapter with a blank "
                           "for each exercise: ")
        text += nodes.reference("", "open it in Colab", refuri=colab, classes=["colab-link"])
        text += nodes.Text(", download ")
        text += download
        text += nodes.Text(", or run ")
        text += nodes.literal("", "make lab")
        text += nodes.Text(" in a clone of the repository and open ")
        text += nodes.literal("", notebook)
        text += nodes.Text(".")
        repository = self.config.html_theme_options.get("repository_url", "").rstrip("/")
        colab_setup = nodes.paragraph()
        colab_setup += nodes.Text("In Colab, first run ")
        colab_setup += nodes.literal("", f"!pip install git+{repository}")
        colab_setup += nodes.Text(" in a new cell: it installs the course's ")
        colab_setup += nodes.literal("", "utils")
        colab_setup += nodes.Text(" package, which the checks live in.")
        box = nodes.admonition("", nodes.title("", "Do the exercises yourself"), text, colab_setup,
                               classes=["tip", "student-notebook"])
        self.set_source_info(box)
        return [box]


def display_math_keeps_its_environment(app: Sphinx, doctree: nodes.document) -> None:
    """Mark display math that holds an environment (aligned, cases, …) ``nowrap``, delimited as Sphinx would."""
    for node in doctree.findall(nodes.math_block):
        text = node.astext()
        if node.get("nowrap") or node.get("label") or r"\begin{" not in text or "\n\n" in text.strip():
            continue  # Sphinx's own handling: numbered by Sphinx, plain, or several equations in one block
        display = getattr(app.config, "mathjax_display", None) or (r"\[", r"\]")
        node.children = [nodes.Text(f"{display[0]}{text}{display[1]}")]
        node["nowrap"] = True


def colab_button_opens_student_notebook(app: Sphinx, pagename: str, templatename, context: dict, doctree) -> None:
    """Point a chapter page's header Colab button at chapters/NN_slug.ipynb."""
    notebook = f"chapters/{pagename.removeprefix('solutions/')}.ipynb"
    if not CHAPTER_DOC.match(pagename) or not (Path(app.srcdir) / notebook).is_file():
        return
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []) if group.get("label") == "launch-buttons" else []:
            if button.get("text") == "Colab":
                button["url"] = colab_url(app.config, notebook)
                button["tooltip"] = "Open the student notebook in Colab"


def setup(app: Sphinx) -> dict:
    app.add_config_value("course_repository_url", "", "env")
    app.connect("config-inited", repository_from_environment)
    app.connect("doctree-read", display_math_keeps_its_environment)
    app.add_directive("student-notebook", StudentNotebook)
    app.connect("html-page-context", colab_button_opens_student_notebook, priority=600)  # after the theme's 501
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}

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
"""
from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

COLAB = "https://colab.research.google.com/github"
CHAPTER_DOC = re.compile(r"^solutions/(\d\d)_\w+$")  # a chapter page's docname


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
            "", "", reftarget=f"/{notebook}", refdoc=self.env.docname, refexplicit=True, refdomain="", reftype="download"
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
    app.add_directive("student-notebook", StudentNotebook)
    app.connect("html-page-context", colab_button_opens_student_notebook, priority=600)  # after the theme's 501
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}

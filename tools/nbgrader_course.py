"""Make (or update) an nbgrader course directory with some chapters as assignments.

    python -m tools.nbgrader_course COURSE_DIR [CHAPTER ...]      # CHAPTER: 01, 1 or 01_attention; default: all
    python -m tools.nbgrader_course COURSE_DIR 01 --end-at-last-check # the exercises only, quicker to autograde

For each chapter this writes ``COURSE_DIR/source/<slug>/<slug>.ipynb``: nbgrader's *source* notebook, the student
notebook of ``chapters/`` with the solutions kept between nbgrader's ``### BEGIN SOLUTION`` / ``### END SOLUTION``
markers and nbgrader's cell metadata (:func:`tools.make_chapters.nbgrader_source`). It also writes
``COURSE_DIR/nbgrader_config.py`` unless the folder has one. Then, in COURSE_DIR, nbgrader does the rest unchanged:

    nbgrader generate_assignment 01_attention   # release/01_attention/01_attention.ipynb, and the gradebook
    nbgrader release_assignment 01_attention    # on JupyterHub; or hand out release/... or chapters/01_attention.ipynb
    nbgrader collect 01_attention               # submitted/<student>/01_attention/01_attention.ipynb
    nbgrader autograde 01_attention             # runs each submission, scores every check cell
    nbgrader export                             # grades.csv; or see the scores in the formgrader

The released notebook and ``chapters/<slug>.ipynb`` have the same cells and nbgrader ids (only the stubs' wording
differs), so a submission made from either is autograded alike. Autograding restores every check cell and every
read-only cell from the gradebook, runs the notebook at ``COURSE_SCALE=test`` and gives each check cell's points
when it runs without an error. The kernel that runs the submissions needs the course installed
(``pip install git+<repository>`` or ``make install``), and nbgrader's own ``alembic`` must be on PATH (activate the
environment nbgrader is installed in).

nbgrader runs the whole notebook, the chapter's experiment included; ``--end-at-last-check`` ends the assignment
at its last check cell, as tools/grade.py grades it (the experiment is then not part of the assignment).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from tools.make_chapters import MarkerError, nbgrader_source
from utils import conventions

ROOT = conventions.ROOT
COURSE_ID = "dl-architectures-from-scratch"
CONFIG = '''\
# nbgrader's configuration for the course "Deep Learning Architectures from Scratch", written by
# `python -m tools.nbgrader_course`. Assignments are chapters: source/01_attention/01_attention.ipynb, ...
import os

c = get_config()  # noqa: F821 (nbgrader provides it)
c.CourseDirectory.course_id = "{course_id}"

# What replaces a solution region in the released notebook (nbgrader's stub is a bare NotImplementedError).
STUB = 'raise NotImplementedError("write your code here, then run the check cell below.")'
c.ClearSolutions.code_stub = {{"python": STUB}}

# Autograding runs each submission at the course's test scale (every check at full strength, experiments shrunk:
# at most a minute a chapter), offline, without a display; nbgrader's kernels inherit this environment.
for name, value in {{"COURSE_SCALE": "test", "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1",
                    "HF_DATASETS_OFFLINE": "1"}}.items():
    os.environ.setdefault(name, value)
c.Execute.timeout = 120  # seconds a cell may run before nbgrader stops it (an endless loop scores 0)
'''


def write_course(course_dir: Path, chapters: list[str], end_at_last_check: bool = False) -> list[Path]:
    """Write the source notebooks of ``chapters`` (slugs) and, if missing, the config; return what was written."""
    written = []
    config = course_dir / "nbgrader_config.py"
    if not config.exists():
        course_dir.mkdir(parents=True, exist_ok=True)
        config.write_text(CONFIG.format(course_id=COURSE_ID), encoding="utf-8")
        written.append(config)
    for slug in chapters:
        target = course_dir / "source" / slug / f"{slug}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        notebook = nbgrader_source(ROOT / "solutions" / f"{slug}.md")
        if end_at_last_check:
            last = max(i for i, cell in enumerate(notebook.cells) if conventions.cell_exercise(cell, conventions.CHECK))
            notebook.cells = notebook.cells[: last + 1]
        nbformat.write(notebook, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("course_dir", type=Path, help="the nbgrader course directory (made if missing)")
    parser.add_argument("chapters", nargs="*", help="chapters to add as assignments (default: all)")
    parser.add_argument("--end-at-last-check", action="store_true",
                        help="end each assignment at its last check cell (autograde skips the experiment)")
    args = parser.parse_args(argv)
    try:
        slugs = [conventions.chapter_of(c) for c in args.chapters] or conventions.chapters()
    except ValueError as error:
        parser.error(str(error))
    try:
        written = write_course(args.course_dir, slugs, args.end_at_last_check)
    except MarkerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    print(f"next, in {args.course_dir}: nbgrader generate_assignment {slugs[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

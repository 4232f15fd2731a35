"""Write the student notebooks in chapters/ from the single source in solutions/.

Each region between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's markers) is replaced by a
``raise NotImplementedError("Exercise 1.3: ...")`` stub at the marker's indentation. A region must sit inside
one code cell tagged ``exercise-N.M``; unmatched or misplaced markers are an error naming the file and line.

    python -m tools.make_chapters            # write chapters/NN_slug.md and chapters/NN_slug.ipynb
    python -m tools.make_chapters --check    # exit 1 and name the stale files, writing nothing

The ``.ipynb`` also carries nbgrader's cell metadata (:func:`add_nbgrader_metadata`), so a chapter is an nbgrader
assignment as it is: exercise cells are its "autograded answer" cells, check cells its "autograder tests" cells
(locked, worth the exercise's points), every other cell is read-only. :func:`nbgrader_source` is the same notebook
with the solutions kept between their markers: what ``nbgrader generate_assignment`` takes (tools/nbgrader_course.py).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import jupytext

from utils import conventions
from utils.conventions import BEGIN, END

ROOT = conventions.ROOT
CELL_START = re.compile(r"^```\{code-cell\}")
FENCE = re.compile(r"^```\s*$")
EXERCISE_TAG = re.compile(r"exercise-(\d+\.\d+)")  # in a cell header's raw text
DEFINITION = re.compile(r"^(\s*)(?:async\s+)?(?:def|class)\s+(\w+)")
BOOK_ONLY = re.compile(r"^```\{student-notebook\}[^\n]*\n```\n\n?", re.MULTILINE)  # links to itself: dropped
NBGRADER_SCHEMA = 3  # the version of nbgrader's cell-metadata schema that nbgrader 0.9 writes and reads


class MarkerError(ValueError):
    """A solution region that cannot be turned into a stub; the message names the file and line."""


def _stub(indent: str, exercise: str, name: str | None) -> str:
    return indent + conventions.stub(exercise, name)


def strip_solutions(text: str, source: str = "<text>") -> str:
    """Return ``text`` (a MyST notebook) with every solution region replaced by a stub."""
    out: list[str] = []
    in_cell = False  # inside a ```{code-cell} ... ``` block
    cell_header: list[str] = []  # the cell's first lines, where its tags live
    cell_lines: list[str] = []  # the cell's code so far, to find the enclosing def
    region_start = 0  # line number of the open BEGIN marker, 0 when none is open
    region_indent = ""
    header_state = "code"  # where we are in a cell: "start", "yaml" (inside its --- block) or "code"
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        where = f"{source}:{number}"
        if not in_cell and CELL_START.match(line):
            in_cell, cell_header, cell_lines, header_state = True, [line], [], "start"
            out.append(line)
            continue
        if in_cell and FENCE.match(line):
            if region_start:
                raise MarkerError(f"{source}:{region_start}: '{BEGIN}' has no '{END}' before its cell ends "
                                  f"at line {number}.")
            in_cell = False
            out.append(line)
            continue
        if stripped == BEGIN:
            if not in_cell:
                raise MarkerError(f"{where}: '{BEGIN}' outside a code cell.")
            if region_start:
                raise MarkerError(f"{where}: '{BEGIN}' inside the region opened at line {region_start}.")
            tags = EXERCISE_TAG.findall("\n".join(cell_header))
            if not tags:
                raise MarkerError(f"{where}: a solution region in a cell without an 'exercise-N.M' tag; "
                                  f"add ':tags: [exercise-N.M]' to the cell.")
            region_start, region_indent = number, line[: len(line) - len(line.lstrip())]
            out.append(_stub(region_indent, tags[0], _enclosing_name(cell_lines, len(region_indent))))
            continue
        if stripped == END:
            if not region_start:
                raise MarkerError(f"{where}: '{END}' without a '{BEGIN}' before it.")
            region_start = 0
            continue
        if region_start:
            continue  # a solution line: dropped
        if in_cell:
            header_state = _header_state(header_state, line)
            (cell_header if header_state != "code" else cell_lines).append(line)
        out.append(line)
    if region_start:
        raise MarkerError(f"{source}:{region_start}: '{BEGIN}' is never closed.")
    return "\n".join(out) + "\n"


def _enclosing_name(lines: list[str], indent: int) -> str | None:
    """The dotted name of the def (and class) around a line indented by ``indent``: "AttentionFunction.forward"."""
    names = []
    for match in map(DEFINITION.match, reversed(lines)):
        if match and len(match.group(1)) < indent:
            names.insert(0, match.group(2))
            indent = len(match.group(1))
    return ".".join(names) or None


def _header_state(state: str, line: str) -> str:
    """Advance through a code cell's option block: ``:key: value`` lines or one ``---`` YAML block."""
    if state == "start" and line.strip() == "---":
        return "yaml"
    if state == "yaml":
        return "start" if line.strip() == "---" else "yaml"  # after the closing ---, options may not follow
    if state == "start" and line.startswith(":"):
        return "start"
    return "code"


def add_nbgrader_metadata(notebook):
    """Give every cell nbgrader's metadata (schema 3), in place; return the notebook.

    ``exercise-N.M``: a solution cell (``solution: true``), the learner's to edit. ``check-N.M``: a graded, locked
    test cell worth the exercise's points (:func:`utils.conventions.points`); nbgrader gives them when the cell runs
    without an error. Any other cell: read-only (``locked: true``), so ``nbgrader autograde`` restores it. Ids are
    ``exercise-1_3``, ``check-1_3`` (:func:`utils.conventions.grade_id`) and the cell's own id for the others.
    """
    worth = conventions.exercise_points(notebook)
    seen: set[str] = set()
    for cell in notebook.cells:
        exercise, check = (conventions.cell_exercise(cell, kind) for kind in (conventions.EXERCISE, conventions.CHECK))
        meta = {"grade": bool(check), "locked": not exercise, "schema_version": NBGRADER_SCHEMA,
                "solution": bool(exercise)}
        if exercise:
            grade_id = conventions.grade_id(conventions.EXERCISE, exercise)
        elif check:
            grade_id = conventions.grade_id(conventions.CHECK, check)
            meta["points"] = worth.get(check, conventions.DEFAULT_POINTS)
        else:
            grade_id = cell.id
        unique, copy = grade_id, 2
        while unique in seen:  # a second cell of the same exercise
            unique, copy = f"{grade_id}-{copy}", copy + 1
        seen.add(unique)
        cell.metadata["nbgrader"] = {**meta, "grade_id": unique}
    return notebook


def _notebook(text: str, chapter: str):
    """A chapter's MyST text as the notebook we ship: course metadata, stable cell ids, nbgrader metadata."""
    notebook = jupytext.reads(text, fmt="md:myst")
    notebook.metadata["course"] = {"chapter": chapter}
    notebook.metadata.pop("jupytext", None)
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index}"  # stable ids, so regenerating an unchanged chapter changes nothing
    try:
        return add_nbgrader_metadata(notebook)
    except ValueError as error:  # a bad points option
        raise MarkerError(f"solutions/{chapter}.md: {error}") from None


def student_files(solution: Path) -> dict[Path, str]:
    """The student notebook for one solution file: ``{path: content}`` for its .md and its paired .ipynb."""
    text = strip_solutions(solution.read_text(encoding="utf-8"), source=str(solution.relative_to(ROOT)))
    text = BOOK_ONLY.sub("", text)
    notebook = _notebook(text, solution.stem)
    target = ROOT / "chapters" / solution.name
    return {target: text, target.with_suffix(".ipynb"): jupytext.writes(notebook, fmt="ipynb")}


def nbgrader_source(solution: Path):
    """The chapter as nbgrader's *source* notebook: the student notebook's cells, ids and metadata, with each solution
    region kept between its markers, for ``nbgrader generate_assignment`` to replace by its stub."""
    text = solution.read_text(encoding="utf-8")
    strip_solutions(text, source=str(solution.relative_to(ROOT)))  # the same marker errors as the student notebook
    return _notebook(BOOK_ONLY.sub("", text), solution.stem)


def all_student_files() -> dict[Path, str]:
    files: dict[Path, str] = {}
    for solution in conventions.solution_files(ROOT):
        files.update(student_files(solution))
    return files


def stale_files() -> list[Path]:
    """Student notebooks that are missing or differ from what the generator writes now."""
    return [path for path, content in all_student_files().items()
            if not path.exists() or path.read_text(encoding="utf-8") != content]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report stale student notebooks")
    args = parser.parse_args(argv)
    try:
        files = all_student_files()
    except MarkerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stale = [p for p, c in files.items() if not p.exists() or p.read_text(encoding="utf-8") != c]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run `make chapters`)")
        return 1 if stale else 0
    for path in stale:
        path.write_text(files[path], encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    print(f"{len(files) // 2} chapter(s) up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

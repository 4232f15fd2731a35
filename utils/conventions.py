"""The course's rules, in one place: what the generator writes, the grader reads and the tests assume.

- A chapter is ``solutions/NN_slug.md`` (a jupytext MyST notebook); its student notebook is
  ``chapters/NN_slug.md`` and ``chapters/NN_slug.ipynb``.
- An exercise's answer sits in a code cell tagged ``exercise-N.M``, between :data:`BEGIN` and :data:`END`
  (nbgrader's markers); the generator replaces that region by :func:`stub`.
- The check of exercise N.M sits in a cell tagged ``check-N.M`` and, on success, prints :func:`success_line`.
- Exercise N.M is worth :data:`DEFAULT_POINTS` point unless its exercise cell says otherwise with a ``points``
  option (``:points: 2`` in the cell's MyST header, ``metadata.points`` in an ``.ipynb``): see :func:`points`.

Nothing here imports torch, so the tools stay fast to start.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
EXERCISE, CHECK = "exercise", "check"
TAG = re.compile(r"^(exercise|check)-(\d+\.\d+)$")  # a cell's role: ("exercise" | "check", "N.M")
CHAPTER_FILE = re.compile(r"^(\d\d)_\w+\.md$")  # solutions/NN_slug.md
CHAPTER_GLOB = "[0-9][0-9]_*.md"
STUB_ERROR = "NotImplementedError"
STUB_EXERCISE = re.compile(r"Exercise (\d+\.\d+):")  # the exercise a stub's message names
POINTS, DEFAULT_POINTS = "points", 1  # an exercise cell's option, and what an exercise is worth without one


def tag(kind: str, exercise: str) -> str:
    """``tag("check", "1.3")`` → ``"check-1.3"``."""
    return f"{kind}-{exercise}"


def grade_id(kind: str, exercise: str) -> str:
    """nbgrader's id of an exercise's cell (letters, digits, ``_``, ``-``): ``("check", "1.3")`` → ``"check-1_3"``."""
    return tag(kind, exercise).replace(".", "_")


def cell_tags(cell) -> list[str]:
    """A cell's tags (a notebook cell or a dict); malformed metadata counts as no tags."""
    metadata = cell.get("metadata", {}) if isinstance(cell, dict) else getattr(cell, "metadata", {})
    found = metadata.get("tags", []) if isinstance(metadata, dict) else []
    return [t for t in found if isinstance(t, str)] if isinstance(found, list) else []


def cell_exercise(cell, kind: str) -> str | None:
    """The N.M of a cell's ``exercise-N.M`` (``kind="exercise"``) or ``check-N.M`` tag, else None."""
    for found in cell_tags(cell):
        match = TAG.match(found)
        if match and match.group(1) == kind:
            return match.group(2)
    return None


def points(cell) -> int | float:
    """What the exercise of an ``exercise-N.M`` cell is worth: its ``points`` option, else :data:`DEFAULT_POINTS`.

    ValueError for an option that is not a positive number, naming the exercise."""
    metadata = cell.get("metadata", {}) if isinstance(cell, dict) else getattr(cell, "metadata", {})
    value = metadata.get(POINTS, DEFAULT_POINTS) if isinstance(metadata, dict) else DEFAULT_POINTS
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"exercise {cell_exercise(cell, EXERCISE)}: '{POINTS}: {value!r}' is not a positive number")
    return value


def exercise_points(notebook) -> dict[str, int | float]:
    """``{"1.1": 1, "1.2": 2, ...}``: the points of every exercise of a notebook, from its exercise cells."""
    found: dict[str, int | float] = {}
    for cell in notebook["cells"]:
        exercise = cell_exercise(cell, EXERCISE)
        if exercise and exercise not in found:
            found[exercise] = points(cell)
    return found


def exercise_key(exercise: str) -> tuple[int, ...]:
    """Sort key: "1.10" after "1.9"."""
    return tuple(int(part) for part in exercise.split("."))


def stub(exercise: str, name: str | None) -> str:
    """The statement that replaces a solution region (without its indentation)."""
    what = f"write the body of `{name}`" if name else "write your code here"
    return f'raise {STUB_ERROR}("Exercise {exercise}: {what}, then run the check cell below.")'


def success_line(exercise: str, summary: str) -> str:
    """The one line a check prints when it passes; the grader looks for :func:`success_marker`."""
    return f"✓ Exercise {exercise} passed: {summary}"


def success_marker(exercise: str) -> str:
    return f"Exercise {exercise} passed"


def solution_files(root: Path = ROOT) -> list[Path]:
    """Every chapter's single source, in chapter order."""
    return sorted((root / "solutions").glob(CHAPTER_GLOB))


def chapters(root: Path = ROOT) -> list[str]:
    """Every chapter's slug, e.g. ``["01_attention", "02_normalization", ...]``."""
    return [path.stem for path in solution_files(root)]


def chapter_of(slug_or_number: str, root: Path = ROOT) -> str:
    """``"02"`` or ``"2"`` or ``"02_normalization"`` → ``"02_normalization"``; ValueError if there is none."""
    wanted = slug_or_number.strip()
    for slug in chapters(root):
        if wanted in (slug, slug[:2]) or (wanted.isdigit() and int(wanted) == int(slug[:2])):
            return slug
    raise ValueError(f"no chapter {slug_or_number!r}; the chapters are {', '.join(chapters(root))}")


def exercises(chapter: str, root: Path = ROOT) -> list[str]:
    """The exercise ids of one chapter, in order, read from its solution's ``exercise-N.M`` cell tags."""
    text = (root / "solutions" / f"{chapter}.md").read_text(encoding="utf-8")
    found = set(re.findall(r"^:tags:.*\bexercise-(\d+\.\d+)", text, re.MULTILINE))
    return sorted(found, key=exercise_key)


def marker(exercise_or_chapter: str) -> str:
    """The pytest marker of an exercise ("2.4" → "ex2_4") or a chapter ("02_normalization" → "chapter02")."""
    if re.fullmatch(r"\d+\.\d+", exercise_or_chapter):
        return "ex" + exercise_or_chapter.replace(".", "_")
    return f"chapter{exercise_or_chapter[:2]}"

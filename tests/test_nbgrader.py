"""nbgrader: the student notebooks carry nbgrader's cell metadata, and nbgrader itself (no server) generates chapter 01
as an assignment from the course directory that tools.nbgrader_course writes, then autogrades a correct submission
made from nbgrader's release and a wrong, tampered one made from chapters/, into scores that agree with the course's
own grader.

To keep it quick the assignment ends at its last check cell (``--end-at-last-check``), as tools/grade.py grades.
"""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tools import make_chapters, nbgrader_course
from utils import conventions

ROOT = conventions.ROOT
BIN = Path(sys.executable).parent
CHAPTER = "01_attention"
EXERCISES = [f"1.{n}" for n in range(1, 7)]


def nbgrader_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


@pytest.mark.parametrize("chapter", conventions.chapters())
def test_student_notebooks_carry_nbgrader_metadata(chapter):
    from nbgrader.nbgraderformat import MetadataValidator

    notebook = nbformat.read(ROOT / "chapters" / f"{chapter}.ipynb", as_version=4)
    MetadataValidator().validate_nb(notebook)  # nbgrader's own schema: raises on a bad cell or a duplicate id
    worth = conventions.exercise_points(notebook)
    for cell in notebook.cells:
        meta = nbgrader_meta(cell)
        exercise, check = conventions.cell_exercise(cell, "exercise"), conventions.cell_exercise(cell, "check")
        assert meta["schema_version"] == make_chapters.NBGRADER_SCHEMA
        if exercise:
            assert meta == dict(meta, solution=True, grade=False, locked=False,
                                grade_id=conventions.grade_id("exercise", exercise))
        elif check:
            assert meta == dict(meta, solution=False, grade=True, locked=True, points=worth[check],
                                grade_id=conventions.grade_id("check", check))
        else:  # read-only: autograde restores it from the gradebook
            assert meta == dict(meta, solution=False, grade=False, locked=True, grade_id=cell.id)
    checks = [c for c in notebook.cells if nbgrader_meta(c)["grade"]]
    assert [conventions.cell_exercise(c, "check") for c in checks] == list(worth)


def test_points_option_and_duplicate_cells():
    notebook = new_notebook(cells=[
        new_code_cell("def f(): ...", metadata={"tags": ["exercise-9.1"], "points": 2.5}),
        new_code_cell("more = 1", metadata={"tags": ["exercise-9.1"]}),  # a second cell of the same exercise
        new_code_cell("check(f)", metadata={"tags": ["check-9.1"]}),
    ])
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index}"
    make_chapters.add_nbgrader_metadata(notebook)
    assert [nbgrader_meta(c)["grade_id"] for c in notebook.cells] == ["exercise-9_1", "exercise-9_1-2", "check-9_1"]
    assert nbgrader_meta(notebook.cells[2])["points"] == 2.5
    notebook.cells[0].metadata["points"] = "two"
    with pytest.raises(ValueError, match="exercise 9.1: 'points: 'two'' is not a positive number"):
        make_chapters.add_nbgrader_metadata(notebook)


def test_source_notebook_is_the_student_notebook_with_its_solutions():
    source = make_chapters.nbgrader_source(ROOT / "solutions" / f"{CHAPTER}.md")
    student = nbformat.read(ROOT / "chapters" / f"{CHAPTER}.ipynb", as_version=4)
    assert [(c.id, c.cell_type, c.metadata) for c in source.cells] == [(c.id, c.cell_type, c.metadata)
                                                                       for c in student.cells]
    for mine, theirs in zip(source.cells, student.cells):
        if nbgrader_meta(mine)["solution"]:
            assert conventions.BEGIN in mine.source and conventions.END in mine.source
            assert conventions.STUB_ERROR in theirs.source and conventions.BEGIN not in theirs.source
        else:
            assert mine.source == theirs.source


# ------------------------------------------------------------------------------------------ nbgrader, for real
def nbgrader(course: Path, *arguments: str) -> str:
    """Run nbgrader in the course directory (its apps call `alembic`, so the environment's bin goes on PATH)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("COURSE_SCALE", None)  # nbgrader_config.py sets the test scale itself
    done = subprocess.run([str(BIN / "python"), "-m", "nbgrader", *arguments, "--force"], cwd=course, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stderr


def solved(notebook, answers: dict[str, str]):
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        for tag in conventions.cell_tags(cell):
            if tag in answers:
                cell.source = answers[tag]
    return notebook


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    course = tmp_path_factory.mktemp("nbgrader") / "course"
    assert nbgrader_course.main([str(course), "01", "--end-at-last-check"]) == 0
    nbgrader(course, "generate_assignment", CHAPTER)
    release = nbformat.read(course / "release" / CHAPTER / f"{CHAPTER}.ipynb", as_version=4)
    solution = jupytext.read(ROOT / "solutions" / f"{CHAPTER}.md")
    answers = {tag: cell.source for cell in solution.cells for tag in conventions.cell_tags(cell)
               if tag.startswith("exercise-")}
    # alice works on nbgrader's release and solves everything
    alice = course / "submitted" / "alice" / CHAPTER / f"{CHAPTER}.ipynb"
    alice.parent.mkdir(parents=True)
    nbformat.write(solved(release, answers), alice)
    # bob works on chapters/ (the same cells), forgets to scale in 1.1 and turns its check into a print
    student = nbformat.read(ROOT / "chapters" / f"{CHAPTER}.ipynb", as_version=4)
    student.cells = student.cells[: len(release.cells)]  # this assignment ends at the last check cell
    unscaled = answers["exercise-1.1"].replace(" / math.sqrt(d_k)", "")
    assert unscaled != answers["exercise-1.1"], "the solution of 1.1 changed: update this wrong answer"
    bob = solved(student, {**answers, "exercise-1.1": unscaled, "check-1.1": "print('Exercise 1.1 passed')"})
    (course / "submitted" / "bob" / CHAPTER).mkdir(parents=True)
    nbformat.write(bob, course / "submitted" / "bob" / CHAPTER / f"{CHAPTER}.ipynb")
    nbgrader(course, "autograde", CHAPTER)
    return course


def test_generate_assignment_releases_the_chapter(course):
    release = nbformat.read(course / "release" / CHAPTER / f"{CHAPTER}.ipynb", as_version=4)
    student = nbformat.read(ROOT / "chapters" / f"{CHAPTER}.ipynb", as_version=4)
    assert "BEGIN SOLUTION" not in nbformat.writes(release)
    assert [nbgrader_meta(c)["grade_id"] for c in release.cells] == [
        nbgrader_meta(c)["grade_id"] for c in student.cells[: len(release.cells)]]
    assert conventions.cell_exercise(release.cells[-1], "check") == EXERCISES[-1]  # ends at the last check
    for mine, theirs in zip(release.cells, student.cells):
        if nbgrader_meta(mine)["solution"]:  # nbgrader's stub, as nbgrader_config.py words it
            assert 'raise NotImplementedError("write your code here, then run the check cell below.")' in mine.source
        else:
            assert mine.source == theirs.source


def test_autograde_scores_each_check_cell(course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {}
        for student in ("alice", "bob"):
            submission = gradebook.find_submission(CHAPTER, student)
            grades = {g.name: (g.score, g.max_score) for g in submission.notebooks[0].grades}
            scores[student] = (submission.score, submission.max_score, grades)
    assert scores["alice"] == (6.0, 6.0, {conventions.grade_id("check", e): (1.0, 1.0) for e in EXERCISES})
    # the course's grader gives bob the same: 1.3 and 1.4 call his attention_weights; his edited check is restored
    passed = {"1.1": 0, "1.2": 1, "1.3": 0, "1.4": 0, "1.5": 1, "1.6": 1}
    assert scores["bob"] == (3.0, 6.0, {conventions.grade_id("check", e): (float(p), 1.0) for e, p in passed.items()})

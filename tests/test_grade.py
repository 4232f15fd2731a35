"""The instructor's grader: a folder of good, blank, wrong, cheating, looping and broken submissions.

Notebooks are generated in tmp_path (never under tests/, where nbval would collect them).
"""
from __future__ import annotations

import contextlib
import copy
import csv
import io
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tools import grade

ROOT = Path(__file__).resolve().parent.parent
CELL_TIMEOUT = 5  # seconds; the looping submission costs this much


def code(source: str, *tags: str):
    return new_code_cell(source, metadata={"tags": list(tags)} if tags else {})


def stub(exercise: str, name: str, args: str) -> str:
    return (f"def {name}({args}):\n    raise NotImplementedError(\"Exercise {exercise}: write the body of "
            f"`{name}`, then run the check cell below.\")")


DOUBLE = "def double(x):\n    return 2 * x"
NORM = "def norm(v):\n    return sum(a * a for a in v) ** 0.5"
WRONG_DOUBLE = "def double(x):\n    return x + 2"


def toy_release():
    """A two-exercise chapter 99_toy as make_chapters would release it, with a cell after the last check."""
    notebook = new_notebook(cells=[
        new_markdown_cell("# Chapter 99: a toy"),
        code("import math"),
        code(stub("99.1", "double", "x"), "exercise-99.1", "hide-input"),
        code("got = double(3)\nassert got == 6, f'Exercise 99.1: double(3) returned {got}, expected 6: '"
             "'did you add 2 instead of multiplying by 2?'\nprint('Exercise 99.1 passed: double works.')",
             "check-99.1"),
        new_markdown_cell("Now the Euclidean norm."),
        code(stub("99.2", "norm", "v"), "exercise-99.2", "hide-input"),
        code("assert math.isclose(norm([3.0, 4.0]), 5.0), 'Exercise 99.2: norm([3, 4]) should be 5.'\n"
             "print('Exercise 99.2 passed: norm works.')", "check-99.2"),
        code("raise RuntimeError('the experiment after the last check must not be graded')"),
    ])
    notebook.metadata["course"] = {"chapter": "99_toy"}
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def answered(release, answers: dict[str, str], drop_tags=(), edit: dict[str, str] | None = None):
    """A copy of the release with exercise cells answered, cells with ``drop_tags`` deleted, cells edited."""
    notebook = copy.deepcopy(release)
    notebook.cells = [c for c in notebook.cells if not set(c.metadata.get("tags", [])) & set(drop_tags)]
    for cell in notebook.cells:
        for tag in cell.metadata.get("tags", []):
            if tag in answers:
                cell.source = answers[tag]
            if edit and tag in edit:
                cell.source = edit[tag]
    return notebook


@pytest.fixture(scope="module")
def toy_grades(tmp_path_factory):
    """Grade the toy class once; the tests below read its CSV and summary."""
    tmp = tmp_path_factory.mktemp("toy")
    release_dir, submissions = tmp / "chapters", tmp / "submissions"
    release_dir.mkdir()
    (submissions / "alice").mkdir(parents=True)
    release = toy_release()
    nbformat.write(release, release_dir / "99_toy.ipynb")
    correct = {"exercise-99.1": DOUBLE, "exercise-99.2": NORM}
    nbformat.write(answered(release, correct), submissions / "alice" / "99_toy.ipynb")
    nbformat.write(release, submissions / "bob_99_toy.ipynb")  # blank: the stubs as released
    nbformat.write(answered(release, {"exercise-99.1": WRONG_DOUBLE, "exercise-99.2": NORM}),
                   submissions / "carol.ipynb")
    faked = answered(release, {"exercise-99.1": WRONG_DOUBLE}, drop_tags=["check-99.2"],
                     edit={"check-99.1": "print('Exercise 99.1 passed: double works.')"})
    nbformat.write(faked, submissions / "dave.ipynb")
    nbformat.write(answered(release, {"exercise-99.1": "while True:\n    pass", "exercise-99.2": NORM}),
                   submissions / "erin.ipynb")
    (submissions / "frank_99_toy.ipynb").write_text('{"cells": [ {"cell_type": "code", ')  # broken JSON
    (submissions / "grace.txt").write_text("I did it all on paper.")
    (submissions / "grace.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    # hank hands in the jupytext MyST form, without metadata; the chapter comes from the exercise tags
    hank = answered(release, correct)
    hank.metadata.pop("course")
    (submissions / "hank.md").write_text(jupytext.writes(hank, fmt="md:myst"))
    nbformat.write(new_notebook(cells=[code("print('hello')")]), submissions / "ivy.ipynb")
    (submissions / ".ipynb_checkpoints").mkdir()
    nbformat.write(release, submissions / ".ipynb_checkpoints" / "zed-checkpoint.ipynb")

    out = tmp / "grades.csv"
    return release_dir, submissions, out


@pytest.fixture(scope="module")
def toy_run(toy_grades):
    """Run the grader once on the toy class: its exit status, its CSV and what it printed."""
    release_dir, submissions, out = toy_grades
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = grade.main([str(submissions), "--out", str(out), "--release-dir", str(release_dir),
                             "--cell-timeout", str(CELL_TIMEOUT), "--timeout", "120", "--jobs", "2"])
    return status, out, printed.getvalue()


def read_rows(out: Path) -> list[tuple[str, ...]]:
    with out.open(newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        assert next(reader) == list(grade.COLUMNS)
        return [tuple(row) for row in reader]


TIMEOUT_99_1 = f"timed out after {CELL_TIMEOUT} s in the cell of exercise 99.1 (an endless loop?)"
EXPECTED = [
    ("alice", "99_toy", "99.1", "1", "Exercise 99.1 passed: double works."),
    ("alice", "99_toy", "99.2", "1", "Exercise 99.2 passed: norm works."),
    ("bob", "99_toy", "99.1", "0", "not attempted: still raises NotImplementedError"),
    ("bob", "99_toy", "99.2", "0", "not attempted: still raises NotImplementedError"),
    ("carol", "99_toy", "99.1", "0", "AssertionError: Exercise 99.1: double(3) returned 5, expected 6: "
                                     "did you add 2 instead of multiplying by 2?"),
    ("carol", "99_toy", "99.2", "1", "Exercise 99.2 passed: norm works."),
    ("dave", "99_toy", "99.1", "0", "AssertionError: Exercise 99.1: double(3) returned 5, expected 6: "
                                    "did you add 2 instead of multiplying by 2?"),
    ("dave", "99_toy", "99.2", "0", "not attempted: still raises NotImplementedError"),
    ("erin", "99_toy", "99.1", "0", TIMEOUT_99_1),
    ("erin", "99_toy", "99.2", "1", "Exercise 99.2 passed: norm works."),
    ("frank", "99_toy", "-", "0", None),  # malformed: the JSON error's wording belongs to Python
    ("grace", "-", "-", "0", "not a notebook (.pdf)"),
    ("grace", "-", "-", "0", "not a notebook (.txt)"),
    ("hank", "99_toy", "99.1", "1", "Exercise 99.1 passed: double works."),
    ("hank", "99_toy", "99.2", "1", "Exercise 99.2 passed: norm works."),
    ("ivy", "-", "-", "0", "unknown chapter"),
]


def test_grades_every_kind_of_submission(toy_run):
    status, out, _ = toy_run
    assert status == 0
    rows = read_rows(out)
    assert [row[:4] for row in rows] == [row[:4] for row in EXPECTED]
    for row, expected in zip(rows, EXPECTED):
        if expected[4] is not None:
            assert row[4] == expected[4], row
    frank = rows[[r[0] for r in rows].index("frank")]
    assert frank[4].startswith("malformed notebook: "), frank


def test_summary_is_a_grid_with_totals(toy_run):
    text = toy_run[2]
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("99_toy"))
    assert "99.1" in header and "99.2" in header and "total" in header
    alice = next(line for line in lines if line.startswith("alice"))
    assert re.fullmatch(r"alice\s+✓\s+✓\s+2/2", alice)
    assert re.fullmatch(r"bob\s+✗\s+✗\s+0/2", next(line for line in lines if line.startswith("bob")))
    assert re.fullmatch(r"passed\s+2\s+4\s+of 7 student\(s\)", next(l for l in lines if l.startswith("passed")))
    assert any(line.startswith("frank") and "malformed notebook" in line for line in lines)
    assert lines[lines.index("not graded") + 1:][:3] == [
        "  grace: not a notebook (.pdf)", "  grace: not a notebook (.txt)", "  ivy: unknown chapter"]
    assert "wrote " in text


def test_restore_keeps_the_release_and_takes_only_exercise_cells():
    release = toy_release()
    cheat = answered(release, {"exercise-99.1": DOUBLE}, edit={"check-99.1": "pass"})
    cheat.cells.insert(0, code("import utils.checks  # a cell of their own"))
    graded = grade.restore(release, cheat)
    assert len(graded.cells) == len(release.cells) - 1  # the experiment after the last check is dropped
    assert graded.cells[2].source == DOUBLE
    assert [c.source for i, c in enumerate(graded.cells) if i != 2] == [c.source for c in release.cells[:-1]
                                                                       if c is not release.cells[2]]


def test_student_names_and_chapter_from_file_name():
    assert grade.student_from_name("bob_01_attention", ["01_attention"]) == "bob"
    assert grade.student_from_name("01_attention-bob smith", ["01_attention"]) == "bob_smith"
    assert grade.student_from_name("bob", ["01_attention"]) == "bob"
    assert grade.student_from_name("01_attention", ["01_attention"]) == "01_attention"


def test_wrong_arguments_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        grade.main([str(tmp_path / "missing")])
    assert exit_.value.code == 2
    assert "is not a folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------- the real chapter 1, end to end
def submission_of_chapter_1(answers: dict[str, str]):
    """The released chapter 1 notebook with some exercise cells answered (matched by their tag)."""
    notebook = nbformat.read(ROOT / "chapters" / "01_attention.ipynb", as_version=4)
    for cell in notebook.cells:
        for tag in cell.metadata.get("tags", []):
            if tag in answers:
                cell.source = answers[tag]
    return notebook


def test_grades_three_chapter_01_submissions(tmp_path):
    solution = jupytext.read(ROOT / "solutions" / "01_attention.md")
    answers = {tag: cell.source for cell in solution.cells for tag in cell.metadata.get("tags", [])
               if tag.startswith("exercise-")}
    unscaled = answers["exercise-1.1"].replace(" / math.sqrt(d_k)", "")  # the classic: forgot to scale
    assert unscaled != answers["exercise-1.1"], "the solution of 1.1 changed: update this wrong answer"
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    nbformat.write(submission_of_chapter_1(answers), submissions / "complete.ipynb")
    nbformat.write(submission_of_chapter_1({}), submissions / "blank.ipynb")
    nbformat.write(submission_of_chapter_1({**answers, "exercise-1.1": unscaled}), submissions / "unscaled.ipynb")
    silenced = answers["exercise-1.1"] + "\n\nchecks.check_attention_weights = lambda function: None  # cheating"
    nbformat.write(submission_of_chapter_1({"exercise-1.1": silenced}), submissions / "silenced.ipynb")
    out = tmp_path / "grades.csv"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert grade.main([str(submissions), "--out", str(out), "--jobs", "2"]) == 0

    rows = read_rows(out)
    exercises = [f"1.{n}" for n in range(1, 7)]
    assert [(r[0], r[1], r[2]) for r in rows] == [(student, "01_attention", e) for student in
                                                  ("blank", "complete", "silenced", "unscaled")
                                                  for e in exercises]
    by_student = {student: {r[2]: (r[3], r[4]) for r in rows if r[0] == student} for student in
                  ("blank", "complete", "silenced", "unscaled")}
    assert by_student["silenced"]["1.1"] == ("0", "the check ran without its 'Exercise 1.1 passed' line: was it "
                                                  "replaced or silenced from an exercise cell? Look at this notebook.")
    assert by_student["blank"] == {e: ("0", "not attempted: still raises NotImplementedError") for e in exercises}
    for exercise, (passed, message) in by_student["complete"].items():
        assert passed == "1" and f"Exercise {exercise} passed" in message, (exercise, message)
    unscaled_rows = by_student["unscaled"]
    assert unscaled_rows["1.1"][0] == "0"
    assert unscaled_rows["1.1"][1].startswith("CheckFailure: Exercise 1.1")
    assert "did you forget to divide the scores by √d_k" in unscaled_rows["1.1"][1]
    # 1.3 and 1.4 build on the learner's attention_weights, so they fail with it; the others are independent
    assert {e: passed for e, (passed, _) in unscaled_rows.items()} == {
        "1.1": "0", "1.2": "1", "1.3": "0", "1.4": "0", "1.5": "1", "1.6": "1"}
    assert re.search(r"complete\s+(✓\s+){6}6/6", printed.getvalue())

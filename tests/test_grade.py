"""The instructor's grader: a folder of good, blank, wrong, cheating, looping and broken submissions, their points,
and the class summary (CSV and HTML) of what the class got wrong.

Notebooks are generated in tmp_path (never under tests/, where nbval would collect them).
"""
from __future__ import annotations

import contextlib
import copy
import csv
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tools import class_report, grade

ROOT = Path(__file__).resolve().parent.parent
CELL_TIMEOUT = 5  # seconds; the looping submission costs this much


def code(source: str, *tags: str, **metadata):
    return new_code_cell(source, metadata={**({"tags": list(tags)} if tags else {}), **metadata})


def stub(exercise: str, name: str, args: str) -> str:
    return (f"def {name}({args}):\n    raise NotImplementedError(\"Exercise {exercise}: write the body of "
            f"`{name}`, then run the check cell below.\")")


DOUBLE = "def double(x):\n    return 2 * x"
NORM = "def norm(v):\n    return sum(a * a for a in v) ** 0.5"
WRONG_DOUBLE = "def double(x):\n    return x + 2"
TRIPLE = "def double(x):\n    return 3 * x"  # the same mistake's message, with other numbers


def toy_release():
    """A two-exercise chapter 99_toy as make_chapters would release it, with a cell after the last check.
    Exercise 99.2 is worth 2 points (its cell's ``points`` option), 99.1 the default 1."""
    notebook = new_notebook(cells=[
        new_markdown_cell("# Chapter 99: a toy"),
        code("import math"),
        code(stub("99.1", "double", "x"), "exercise-99.1", "hide-input"),
        code("got = double(3)\nassert got == 6, f'Exercise 99.1: double(3) returned {got}, expected 6: '"
             "'did you add 2 instead of multiplying by 2?'\nprint('Exercise 99.1 passed: double works.')",
             "check-99.1"),
        new_markdown_cell("Now the Euclidean norm."),
        code(stub("99.2", "norm", "v"), "exercise-99.2", "hide-input", points=2),
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
    # kim claims 99.1 is worth 10 points: the release's points count, not the submission's
    kim = answered(release, {"exercise-99.1": TRIPLE})
    kim.cells[2].metadata["points"] = 10
    nbformat.write(kim, submissions / "kim.ipynb")
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
ADDED_2 = "AssertionError: Exercise 99.1: double(3) returned 5, expected 6: did you add 2 instead of multiplying by 2?"
NOT_ATTEMPTED = "not attempted: still raises NotImplementedError"
# student, chapter, exercise, passed, points, max_points, message
EXPECTED = [
    ("alice", "99_toy", "99.1", "1", "1", "1", "Exercise 99.1 passed: double works."),
    ("alice", "99_toy", "99.2", "1", "2", "2", "Exercise 99.2 passed: norm works."),
    ("bob", "99_toy", "99.1", "0", "0", "1", NOT_ATTEMPTED),
    ("bob", "99_toy", "99.2", "0", "0", "2", NOT_ATTEMPTED),
    ("carol", "99_toy", "99.1", "0", "0", "1", ADDED_2),
    ("carol", "99_toy", "99.2", "1", "2", "2", "Exercise 99.2 passed: norm works."),
    ("dave", "99_toy", "99.1", "0", "0", "1", ADDED_2),
    ("dave", "99_toy", "99.2", "0", "0", "2", NOT_ATTEMPTED),
    ("erin", "99_toy", "99.1", "0", "0", "1", TIMEOUT_99_1),
    ("erin", "99_toy", "99.2", "1", "2", "2", "Exercise 99.2 passed: norm works."),
    ("frank", "99_toy", "-", "0", "0", "3", None),  # malformed: the JSON error's wording belongs to Python
    ("grace", "-", "-", "0", "0", "0", "not a notebook (.pdf)"),
    ("grace", "-", "-", "0", "0", "0", "not a notebook (.txt)"),
    ("hank", "99_toy", "99.1", "1", "1", "1", "Exercise 99.1 passed: double works."),
    ("hank", "99_toy", "99.2", "1", "2", "2", "Exercise 99.2 passed: norm works."),
    ("ivy", "-", "-", "0", "0", "0", "unknown chapter"),
    ("kim", "99_toy", "99.1", "0", "0", "1", ADDED_2.replace("returned 5", "returned 9")),
    ("kim", "99_toy", "99.2", "0", "0", "2", NOT_ATTEMPTED),
]


def test_grades_every_kind_of_submission(toy_run):
    status, out, _ = toy_run
    assert status == 0
    rows = read_rows(out)
    assert [row[:6] for row in rows] == [row[:6] for row in EXPECTED]
    for row, expected in zip(rows, EXPECTED):
        if expected[6] is not None:
            assert row[6] == expected[6], row
    frank = rows[[r[0] for r in rows].index("frank")]
    assert frank[6].startswith("malformed notebook: "), frank


def test_summary_is_a_grid_with_totals(toy_run):
    text = toy_run[2]
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("99_toy"))
    assert "99.1" in header and "99.2" in header and "total" in header
    alice = next(line for line in lines if line.startswith("alice"))
    assert re.fullmatch(r"alice\s+✓\s+✓\s+3/3", alice)  # points: 1 + 2
    assert re.fullmatch(r"bob\s+✗\s+✗\s+0/3", next(line for line in lines if line.startswith("bob")))
    assert re.fullmatch(r"carol\s+✗\s+✓\s+2/3", next(line for line in lines if line.startswith("carol")))
    assert re.fullmatch(r"passed\s+2\s+4\s+of 8 student\(s\)", next(x for x in lines if x.startswith("passed")))
    assert any(line.startswith("frank") and "malformed notebook" in line for line in lines)
    assert lines[lines.index("not graded") + 1:][:3] == [
        "  grace: not a notebook (.pdf)", "  grace: not a notebook (.txt)", "  ivy: unknown chapter"]
    assert "wrote " in text


def read_summary(out: Path) -> dict[str, dict[str, str]]:
    with out.with_name("grades_summary.csv").open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        assert tuple(reader.fieldnames) == class_report.SUMMARY_COLUMNS
        return {row["exercise"]: row for row in reader}


def test_class_summary_has_pass_rates_and_the_most_common_mistake(toy_run):
    summary = read_summary(toy_run[1])
    assert list(summary) == ["99.1", "99.2"]
    first, second = summary["99.1"], summary["99.2"]
    # 8 students handed in the chapter (frank's file could not be read: it counts, as not passed)
    assert (first["points"], first["students"], first["passed"], first["pass_rate"], first["not_attempted"]) == \
        ("1", "8", "2", "0.25", "1")
    # carol, dave (x + 2: "returned 5") and kim (3 * x: "returned 9") made one mistake; erin's loop is another
    assert first["most_common_diagnosis"] == ("double(…) returned …, expected …: did you add … instead of "
                                              "multiplying by …?")
    assert first["students_with_it"] == "3"
    assert first["example"] == ADDED_2
    assert (second["points"], second["passed"], second["pass_rate"], second["not_attempted"]) == ("2", "4", "0.50", "3")
    assert (second["most_common_diagnosis"], second["students_with_it"]) == ("", "0")  # nobody got it wrong
    assert "what the class got wrong in 99_toy" in toy_run[2]
    assert "99.1  passed 2/8, 1 not attempted; most common: double(…) returned …" in toy_run[2]


def test_class_report_is_one_self_contained_page(toy_run):
    page = toy_run[1].with_name("grades_report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "<link" not in page and not re.search(r"(src|href)=", page)
    assert "99_toy" in page and "8 student(s)" in page
    assert "25%" in page and "(2/8)" in page and "50%" in page and "(4/8)" in page
    assert "double(…) returned …, expected …: did you add … instead of multiplying by …? " \
           '<span class="muted">(3)</span>' in page
    assert "timed out after … s in the cell of exercise 99.1 (an endless loop?)" in page
    assert "not a notebook (.pdf)" in page and "unknown chapter" in page
    assert "&lt;" not in page.split("<body>")[0]  # the head is ours; students' text is escaped in the body
    balanced = Balanced()
    balanced.feed(page)
    assert not balanced.open, f"unclosed tags: {balanced.open}"


class Balanced(HTMLParser):
    """Fails on a closing tag that does not close the innermost open one; ``open`` is what is left open."""

    VOID = {"meta", "br", "img", "hr", "input", "link"}

    def __init__(self):
        super().__init__()
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, (tag, self.open)
        self.open.pop()


@pytest.mark.parametrize("message, expected", [
    ("CheckFailure: Exercise 1.1 (B=2, H=3, T=5, d_k=8, no mask), your weights: your values are 2.828 (= √d_k) × "
     "the right ones everywhere. Compare with eq. (1.1).",
     "your weights: your values are … (= √d_k) × the right ones everywhere. Compare with eq. (1.1)."),
    ("CheckFailure: Exercise 1.1 (B=1, H=1, T=1, d_k=16), your weights: your values are 4 (= √d_k) × "
     "the right ones everywhere. Compare with eq. (1.1).",
     "your weights: your values are … (= √d_k) × the right ones everywhere. Compare with eq. (1.1)."),
    ("CheckFailure: Exercise 1.4 (shape (2, 5, 16)), your output: largest difference at index [0, 2, 1]: you have "
     "0.2131, expected -3e-05.", "your output: largest difference at index […]: you have …, expected …."),
    ("not attempted: needs exercise 1.1, which still raises NotImplementedError",
     "not attempted: needs exercise 1.1, which still raises NotImplementedError"),
    ("timed out after 60 s in the cell of exercise 1.3 (an endless loop?)",
     "timed out after … s in the cell of exercise 1.3 (an endless loop?)"),
    ("your exercise cell raised NameError: name 'x2' is not defined",
     "your exercise cell raised NameError: name 'x2' is not defined"),
])
def test_diagnosis_drops_the_case_and_its_numbers(message, expected):
    assert class_report.diagnosis(message) == expected


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


def test_finds_classroom_and_nbgrader_layouts(tmp_path):
    """A cloned GitHub Classroom repository per student, nbgrader's submitted/<student>/<assignment>/, loose files."""
    for name in ("alice/01_attention.ipynb", "alice/README.md", "alice/.github/workflows/classroom.yml",
                 "bob/01_attention/01_attention.ipynb", "bob/01_attention/timestamp.txt", "carol_01_attention.ipynb",
                 "dave.pdf", "README.md", ".ipynb_checkpoints/x.ipynb"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    found = grade.find_submissions(tmp_path, ["01_attention"])
    assert [(s.path.relative_to(tmp_path).as_posix(), s.student) for s in found] == [
        ("alice/01_attention.ipynb", "alice"), ("bob/01_attention/01_attention.ipynb", "bob"),
        ("carol_01_attention.ipynb", "carol"), ("dave.pdf", "dave")]


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
    by_student = {student: {r[2]: (r[3], r[6]) for r in rows if r[0] == student} for student in
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

"""GitHub Classroom: the template repository of a chapter, its workflow (valid for actionlint, one test per exercise
with its points, the reporter wired to every test), and the workflow's own grading commands run, as the workflow
runs them, on a correct, a wrong and a blank submission of a toy chapter and a wrong one of chapter 01.

The commands run in a copy of the student repository whose ``.course`` holds the course's tools/ and utils/ and a
chapters/ folder, as the workflow's checkout does, with only PATH and HOME in the environment, as
``autograding-command-grader`` runs them.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from tests.test_grade import DOUBLE, NORM, WRONG_DOUBLE, answered, submission_of_chapter_1, toy_release
from tools import classroom, grade

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ACTIONLINT = BIN / "actionlint"  # installed by requirements.txt
GRADER = "classroom-resources/autograding-command-grader@v1"
REPORTER = "classroom-resources/autograding-grading-reporter@v1"


def steps_of(repository: Path) -> list[dict]:
    workflow = yaml.safe_load((repository / classroom.WORKFLOW).read_text(encoding="utf-8"))
    return workflow["jobs"]["autograding"]["steps"]


def grading_steps(repository: Path) -> list[dict]:
    return [step for step in steps_of(repository) if step.get("uses") == GRADER]


@pytest.fixture(scope="module")
def chapter_01(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("assignment") / "01_attention"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(classroom.REPOSITORY_ENV, raising=False)  # the default: _config.yml's repository.url
        classroom.make_assignment("01_attention", out, ref="v1.0")
    return out


def test_template_repository_holds_notebook_workflow_readme(chapter_01):
    assert (chapter_01 / "01_attention.ipynb").read_bytes() == (ROOT / "chapters" / "01_attention.ipynb").read_bytes()
    readme = (chapter_01 / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# 01 · The Anatomy of Attention")
    assert "| 1.6 | 1 |" in readme and "$" not in readme.replace("${", "")  # every field filled in
    assert ".course/" in (chapter_01 / ".gitignore").read_text(encoding="utf-8")


def actionlint(workflow: Path) -> subprocess.CompletedProcess:
    """actionlint, with the environment's shellcheck (requirements.txt) on PATH for the `run:` scripts."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([str(ACTIONLINT), "-no-color", str(workflow)], capture_output=True, text=True, env=env,
                          timeout=120)


def test_workflow_passes_actionlint(chapter_01):
    assert ACTIONLINT.exists(), "actionlint is missing: `make install` (requirements.txt pins it)"
    result = actionlint(chapter_01 / classroom.WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_would_catch_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    text = classroom.workflow("01_attention", {"1.1": 1}, "owner/course", "main")
    broken.write_text(text.replace("steps.exercise_1_1.outputs", "steps.exercise_9_9.outputs"), encoding="utf-8")
    result = actionlint(broken)
    assert result.returncode == 1 and "exercise_9_9" in result.stdout


def test_one_test_per_exercise_with_its_points_and_the_reporter(chapter_01):
    steps = steps_of(chapter_01)
    tests = grading_steps(chapter_01)
    exercises = [f"1.{n}" for n in range(1, 7)]
    assert [t["with"]["test-name"] for t in tests] == [f"Exercise {e}" for e in exercises]
    assert [t["with"]["max-score"] for t in tests] == [1] * 6
    assert [t["id"] for t in tests] == [f"exercise_1_{n}" for n in range(1, 7)]
    for test, exercise in zip(tests, exercises):
        assert test["with"]["command"] == (f"cd .course && python -m tools.grade ../01_attention.ipynb --exercise "
                                           f"{exercise} --fail-unless-passed --cache ../.grade-cache")
    reporter = next(step for step in steps if step.get("uses") == REPORTER)
    assert reporter["with"]["runners"] == ",".join(t["id"] for t in tests)
    assert reporter["env"] == {f"{t['id'].upper()}_RESULTS": f"${{{{ steps.{t['id']}.outputs.result }}}}"
                               for t in tests}
    assert steps.index(reporter) == len(steps) - 1
    course = next(step for step in steps if step.get("with", {}).get("path") == ".course")
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert f"https://github.com/{course['with']['repository']}" == config["repository"]["url"]
    assert course["with"]["ref"] == "v1.0"
    install = next(step for step in steps if step.get("name") == "Install the course")["run"]
    assert "torch==" in install and "-r .course/requirements.txt" in install and "-e .course" in install


def test_points_option_sets_the_max_score(tmp_path, monkeypatch):
    monkeypatch.setenv(classroom.REPOSITORY_ENV, "https://github.com/someone/not-this-one")  # --repository wins
    release_dir = tmp_path / "chapters"
    release_dir.mkdir()
    nbformat.write(toy_release(), release_dir / "99_toy.ipynb")
    out = tmp_path / "assignment"
    classroom.make_assignment("99_toy", out, repository="https://github.com/someone/a-fork", ref="main",
                              release_dir=release_dir)
    assert [(t["with"]["test-name"], t["with"]["max-score"]) for t in grading_steps(out)] == [
        ("Exercise 99.1", 1), ("Exercise 99.2", 2)]
    checkout = next(step for step in steps_of(out) if step.get("with", {}).get("path") == ".course")
    assert checkout["with"]["repository"] == "someone/a-fork"


# --------------------------------------------------------------------------------- the workflow's commands, run
def student_repository(tmp: Path, chapter: str, release_dir: Path, submission) -> Path:
    """The assignment of ``chapter`` as a student pushed it, with ``.course`` checked out beside it."""
    repository = tmp / "repository"
    classroom.make_assignment(chapter, repository, ref="main", release_dir=release_dir)
    nbformat.write(submission, repository / f"{chapter}.ipynb")
    course = repository / classroom.COURSE_CHECKOUT
    for folder in ("tools", "utils"):
        shutil.copytree(ROOT / folder, course / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(release_dir, course / "chapters")
    return repository


def run_tests(repository: Path) -> list[tuple[str, int, str]]:
    """Each test step's command, in order, as the command grader runs it: (test name, exit status, output)."""
    env = {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": os.environ.get("HOME", str(repository))}
    results = []
    for test in grading_steps(repository):
        done = subprocess.run(test["with"]["command"], shell=True, cwd=repository, env=env, capture_output=True,
                              text=True, timeout=300)
        results.append((test["with"]["test-name"], done.returncode, done.stdout.strip()))
    return results


@pytest.fixture(scope="module")
def toy_chapter(tmp_path_factory) -> Path:
    release_dir = tmp_path_factory.mktemp("toy_release") / "chapters"
    release_dir.mkdir()
    nbformat.write(toy_release(), release_dir / "99_toy.ipynb")
    return release_dir


@pytest.mark.parametrize("kind, answers, expected", [
    ("correct", {"exercise-99.1": DOUBLE, "exercise-99.2": NORM},
     [(0, "Exercise 99.1 passed: double works. (1/1 points)"), (0, "Exercise 99.2 passed: norm works. (2/2 points)")]),
    ("wrong", {"exercise-99.1": WRONG_DOUBLE, "exercise-99.2": NORM},
     [(1, "✗ Exercise 99.1 not passed (0/1 points): AssertionError: Exercise 99.1: double(3) returned 5, expected 6: "
          "did you add 2 instead of multiplying by 2?"), (0, "Exercise 99.2 passed: norm works. (2/2 points)")]),
    ("blank", {},
     [(1, "✗ Exercise 99.1 not passed (0/1 points): not attempted: still raises NotImplementedError"),
      (1, "✗ Exercise 99.2 not passed (0/2 points): not attempted: still raises NotImplementedError")]),
], ids=["correct", "wrong", "blank"])
def test_workflow_commands_grade_a_toy_submission(kind, answers, expected, toy_chapter, tmp_path):
    repository = student_repository(tmp_path, "99_toy", toy_chapter, answered(toy_release(), answers))
    results = run_tests(repository)
    assert [(name, status, output) for name, status, output in results] == [
        (f"Exercise 99.{n}", status, output) for n, (status, output) in enumerate(expected, start=1)]
    assert len(list((repository / classroom.CACHE).glob("*.json"))) == 1  # graded once for both tests


def test_workflow_commands_grade_a_wrong_chapter_01_submission(tmp_path):
    cells = jupytext.read(ROOT / "solutions" / "01_attention.md").cells
    answers = {tag: cell.source for cell in cells for tag in cell.metadata.get("tags", [])
               if tag.startswith("exercise-")}
    answers["exercise-1.1"] = answers["exercise-1.1"].replace(" / math.sqrt(d_k)", "")  # forgot to scale
    repository = student_repository(tmp_path, "01_attention", ROOT / "chapters", submission_of_chapter_1(answers))
    results = run_tests(repository)
    assert [status for _, status, _ in results] == [1, 0, 1, 1, 0, 0]  # 1.3 and 1.4 call the learner's 1.1
    assert results[0][2].startswith("✗ Exercise 1.1 not passed (0/1 points): CheckFailure: Exercise 1.1")
    assert "did you forget to divide the scores by √d_k" in results[0][2]
    assert results[1][2].startswith("✓ Exercise 1.2 passed: ") and results[1][2].endswith("(1/1 points)")
    # the last step: every exercise's diagnosis as Markdown, for the run's summary page
    summary = next(s for s in steps_of(repository) if s.get("if") == "always()")["run"]
    assert summary.endswith('>> "$GITHUB_STEP_SUMMARY"')
    env = {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": os.environ.get("HOME", str(repository)),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
    subprocess.run(summary, shell=True, cwd=repository, env=env, check=True, timeout=120, capture_output=True)
    page = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert page.startswith("### 01_attention: 3/6 points\n")
    assert "| 1.1 | 0/1 | ✗ | CheckFailure: Exercise 1.1" in page and "| 1.2 | 1/1 | ✓ |" in page


# ----------------------------------------------------------------------------------- --exercise on its own terms
def test_exercise_without_cache_runs_only_up_to_its_check(toy_chapter, tmp_path, capsys):
    """Exercise 99.2 loops forever; grading 99.1 alone never reaches it."""
    notebook = tmp_path / "zoe.ipynb"
    nbformat.write(answered(toy_release(), {"exercise-99.1": DOUBLE, "exercise-99.2": "while True:\n    pass"}),
                   notebook)
    status = grade.main([str(notebook), "--exercise", "99.1", "--fail-unless-passed", "--release-dir",
                         str(toy_chapter), "--cell-timeout", "30"])
    assert (status, capsys.readouterr().out) == (0, "Exercise 99.1 passed: double works. (1/1 points)\n")


def test_exercise_of_a_broken_file_or_another_chapter(toy_chapter, tmp_path, capsys):
    broken = tmp_path / "99_toy.ipynb"
    broken.write_text('{"cells": [')
    arguments = ["--release-dir", str(toy_chapter), "--fail-unless-passed"]
    assert grade.main([str(broken), "--exercise", "99.2", *arguments]) == 1
    assert capsys.readouterr().out.startswith("✗ Exercise 99.2 not graded (0/2 points): malformed notebook: ")
    good = tmp_path / "good.ipynb"
    nbformat.write(toy_release(), good)
    assert grade.main([str(good), "--exercise", "1.1", *arguments]) == 2  # the workflow names a wrong exercise
    assert "99_toy has no exercise 1.1 (its exercises: 99.1, 99.2)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        grade.main([str(tmp_path), "--exercise", "99.1", *arguments])  # a folder: --exercise grades one file


def test_cache_is_keyed_by_content(tmp_path, monkeypatch):
    runs = []

    def fake_grade(submission, releases, cell_timeout, timeout, upto=None):  # what grading this file found
        runs.append(submission.path.read_text())
        submission.chapter, submission.rows = "99_toy", [dict(exercise="99.1", passed=len(runs) % 2, points=0,
                                                              max_points=1, message=f"run {len(runs)}")]
        return submission

    monkeypatch.setattr(grade, "grade", fake_grade)
    cache, notebook, releases = tmp_path / "cache", tmp_path / "yan.ipynb", {"99_toy": toy_release()}
    notebook.write_text("first")
    once = lambda: grade.graded_once(grade.Submission(notebook, "yan"), releases, 30, 120, cache).rows  # noqa: E731
    assert [r["message"] for r in once() + once()] == ["run 1", "run 1"] and len(runs) == 1  # read back
    assert [r["message"] for r in json.loads(next(cache.glob("*.json")).read_text())["rows"]] == ["run 1"]
    notebook.write_text("second")  # a new push
    assert [r["message"] for r in once()] == ["run 2"] and len(list(cache.glob("*.json"))) == 2
    assert [r["message"] for r in grade.graded_once(grade.Submission(notebook, "yan"), releases, 31, 120,
                                                    cache).rows] == ["run 3"]  # other limits: graded again

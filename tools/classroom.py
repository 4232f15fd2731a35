"""Make the template repository of a GitHub Classroom assignment for one chapter.

    python -m tools.classroom CHAPTER [--out DIR] [--repository URL] [--ref REF]    # CHAPTER: 01, 1 or 01_attention

writes DIR (default ``_build/classroom/<slug>``) with:

- ``<slug>.ipynb``: the student notebook, as in ``chapters/``;
- ``.github/workflows/classroom.yml``: on every push, checks out the course at REF (the grader and the released
  notebook), installs it, and runs one GitHub Classroom test per exercise with
  ``classroom-resources/autograding-command-grader``: the test's command is ``python -m tools.grade <notebook>
  --exercise N.M --fail-unless-passed`` and its ``max-score`` the exercise's points
  (:func:`utils.conventions.points`); ``classroom-resources/autograding-grading-reporter`` hands the scores to
  Classroom. The first test grades the whole notebook once (``--cache``); the others reuse that run. A last
  step writes every exercise's diagnosis into the run's summary page;
- ``README.md`` and ``.gitignore`` from ``classroom/template/``.

The course repository is ``--repository``, else ``$COURSE_REPOSITORY_URL`` (as for the book), else
``_config.yml``'s ``repository.url``. REF defaults to the commit checked out here, so a later change to the course
cannot change how a class that started on this assignment is graded: it must be pushed there. See
classroom/README.md for the clicks in Classroom.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import string
import subprocess
import sys
from pathlib import Path

import yaml

from utils import conventions

ROOT = conventions.ROOT
TEMPLATE = ROOT / "classroom" / "template"
WORKFLOW = Path(".github") / "workflows" / "classroom.yml"
COURSE_CHECKOUT = ".course"  # where the workflow checks out the course, inside the student repository
CACHE = ".grade-cache"
PYTHON = "3.11"
TEST_TIMEOUT_MIN = 10  # per exercise test; the first one grades the whole notebook (a chapter: ≤ 60 s at test scale)
REPOSITORY_ENV = "COURSE_REPOSITORY_URL"  # a fork's URL, as the book's build reads it (_ext/course_links.py)
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # the CPU build: a fraction of the CUDA download


def step_id(exercise: str) -> str:
    """A step id GitHub accepts (letters, digits, ``_``, ``-``) that the reporter upper-cases: ``exercise_1_3``."""
    return "exercise_" + exercise.replace(".", "_")


def grade_command(notebook: str, exercise: str | None = None) -> str:
    """The shell command a step runs, from the student repository's root."""
    command = f"cd {COURSE_CHECKOUT} && python -m tools.grade ../{notebook}"
    if exercise:
        return f"{command} --exercise {exercise} --fail-unless-passed --cache ../{CACHE}"
    return f"{command} --cache ../{CACHE} --out ../grades.csv --markdown"


def course_settings(repository: str | None, ref: str | None) -> tuple[str, str]:
    """The course's GitHub ``owner/name`` and the ref to check out."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    url = (repository or os.environ.get(REPOSITORY_ENV) or config["repository"]["url"]).rstrip("/")
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?", url)
    if not match:
        raise ValueError(f"the course repository {url!r} is not https://github.com/<owner>/<name>")
    if ref is None:
        try:
            ref = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            ref = config["repository"].get("branch", "main")
    return match.group(1), ref


def torch_pin() -> str:
    """``torch==2.13.0``: requirements.txt's pin, installed first from the CPU index."""
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        if re.match(r"torch==", line.strip()):
            return line.strip()
    raise ValueError("requirements.txt pins no torch==<version>")


def workflow(chapter: str, points: dict[str, int | float], course: str, ref: str) -> str:
    """The text of ``.github/workflows/classroom.yml`` (scalars are JSON strings, which YAML reads as they are)."""
    q = json.dumps
    notebook = f"{chapter}.ipynb"
    lines = [
        f"# GitHub Classroom autograding of {chapter}: one test per exercise, worth its points.",
        f"# Made by `python -m tools.classroom {chapter}` of the course {course} at {ref}: make it again rather",
        "# than edit it. Each test runs the course's grader on this repository's notebook; see the course's",
        "# classroom/README.md.",
        "name: Autograding",
        "on:",
        "  push:",
        "  workflow_dispatch:",
        "  repository_dispatch:",
        "permissions:",
        "  checks: write",
        "  actions: read",
        "  contents: read",
        "jobs:",
        "  autograding:",
        "    runs-on: ubuntu-latest",
        "    timeout-minutes: 45",
        "    if: github.actor != 'github-classroom[bot]'  # not the commit that made the repository",
        "    steps:",
        "      - name: Check out the submission",
        "        uses: actions/checkout@v5",
        "      - name: Check out the course (its grader and the released notebook)",
        "        uses: actions/checkout@v5",
        "        with:",
        f"          repository: {q(course)}",
        f"          ref: {q(ref)}",
        f"          path: {q(COURSE_CHECKOUT)}",
        "      - uses: actions/setup-python@v6",
        "        with:",
        f"          python-version: {q(PYTHON)}",
        "          cache: pip",
        f"          cache-dependency-path: {q(COURSE_CHECKOUT + '/requirements.txt')}",
        "      - name: Install the course",
        "        run: |",
        f"          python -m pip install --quiet {torch_pin()} --index-url {TORCH_CPU_INDEX}",
        f"          python -m pip install --quiet -r {COURSE_CHECKOUT}/requirements.txt",
        f"          python -m pip install --quiet --no-deps -e {COURSE_CHECKOUT}",
    ]
    for exercise, worth in points.items():
        lines += [
            f"      - name: {q('Exercise ' + exercise)}",
            f"        id: {step_id(exercise)}",
            "        uses: classroom-resources/autograding-command-grader@v1",
            "        with:",
            f"          test-name: {q('Exercise ' + exercise)}",
            f"          command: {q(grade_command(notebook, exercise))}",
            f"          timeout: {TEST_TIMEOUT_MIN}",
            f"          max-score: {worth:g}",
        ]
    lines += [
        "      - name: Every exercise's diagnosis, on the run's summary page",
        "        if: always()",
        f"        run: {grade_command(notebook)} >> \"$GITHUB_STEP_SUMMARY\"",
        "      - name: Autograding Reporter",
        "        uses: classroom-resources/autograding-grading-reporter@v1",
        "        env:",
    ]
    for exercise in points:  # the reporter reads <RUNNER ID>_RESULTS
        result = f"${{{{ steps.{step_id(exercise)}.outputs.result }}}}"
        lines.append(f"          {step_id(exercise).upper()}_RESULTS: {q(result)}")
    lines += [
        "        with:",
        f"          runners: {','.join(step_id(e) for e in points)}",
    ]
    return "\n".join(lines) + "\n"


def make_assignment(chapter: str, out: Path, repository: str | None = None, ref: str | None = None,
                    release_dir: Path | None = None) -> list[Path]:
    """Write the template repository of ``chapter`` (a slug) into ``out``; return the files written."""
    release = (release_dir or ROOT / "chapters") / f"{chapter}.ipynb"
    notebook = json.loads(release.read_text(encoding="utf-8"))
    points = conventions.exercise_points(notebook)
    if not points:
        raise ValueError(f"{release} has no exercise cells")
    course, ref = course_settings(repository, ref)
    title = next((cell_source(c).splitlines()[0].lstrip("# ").strip() for c in notebook["cells"]
                  if c["cell_type"] == "markdown" and cell_source(c).startswith("# ")), chapter)
    fields = dict(title=title, notebook=release.name, number=chapter[:2], repository=f"https://github.com/{course}",
                  exercise_table="\n".join(f"| {e} | {p:g} |" for e, p in points.items()))
    out.mkdir(parents=True, exist_ok=True)
    written = [out / release.name, out / WORKFLOW]
    shutil.copyfile(release, written[0])
    written[1].parent.mkdir(parents=True, exist_ok=True)
    written[1].write_text(workflow(chapter, points, course, ref), encoding="utf-8")
    for source in sorted(p for p in TEMPLATE.rglob("*") if p.is_file()):
        target = out / source.relative_to(TEMPLATE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(string.Template(source.read_text(encoding="utf-8")).substitute(fields), encoding="utf-8")
        written.append(target)
    return written


def cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapter", help="the chapter: 01, 1 or 01_attention")
    parser.add_argument("--out", type=Path, help="the folder to write (default: _build/classroom/<slug>)")
    parser.add_argument("--repository", help=f"the course on GitHub (default: ${REPOSITORY_ENV}, else _config.yml's "
                                              "repository.url)")
    parser.add_argument("--ref", help="the course's commit, tag or branch to grade with (default: this commit)")
    args = parser.parse_args(argv)
    try:
        chapter = conventions.chapter_of(args.chapter)
        out = args.out or ROOT / "_build" / "classroom" / chapter
        written = make_assignment(chapter, out, args.repository, args.ref)
    except ValueError as error:
        parser.error(str(error))
    for path in written:
        print(f"wrote {path}")
    course, ref = course_settings(args.repository, args.ref)
    print(f"it grades with the course {course} at {ref} (that commit must be on GitHub)")
    print(f"next: push {out} to a new GitHub repository, mark it a template, and make it the assignment's starter "
          f"code (classroom/README.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

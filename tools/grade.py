"""Grade a folder of submitted notebooks with nbval and write a per-student, per-exercise table and a class report.

    python -m tools.grade SUBMISSIONS [--out grades.csv] [--release-dir chapters]
                          [--cell-timeout 60] [--timeout 600] [--jobs 2]
    python -m tools.grade NOTEBOOK --exercise 1.3 --fail-unless-passed [--cache DIR]   # one exercise (Classroom)

Who is who: a file inside a subfolder belongs to the student named by the subfolder (``alice/01_attention.ipynb``
→ alice, and so does a notebook one folder deeper, as in nbgrader's ``submitted/alice/01_attention/``); a file
directly in SUBMISSIONS belongs to its name minus any chapter slug (``bob.ipynb`` and ``bob_01_attention.ipynb``
→ bob). Hidden files, ``.ipynb_checkpoints`` and READMEs (cloned GitHub Classroom repositories hold one) are
skipped. ``.ipynb`` and jupytext ``.md`` notebooks are graded; any other file gets a row that says so.

What is graded: the chapter is found from the notebook's ``course.chapter`` metadata, else a chapter slug in the
file name, else the exercise tags it holds. The graded notebook is the RELEASED student notebook
(``chapters/<slug>.ipynb``) with only the ``exercise-N.M`` cells' sources taken from the submission, cut after
the last ``check-N.M`` cell, run by ``pytest --nbval-lax`` at ``COURSE_SCALE=test``. Exercise N.M passes iff its
check cell runs without an error, so editing or deleting a check cell changes nothing.

Points: exercise N.M is worth what its exercise cell's ``points`` option says in the release, else 1
(:func:`utils.conventions.points`); a passed exercise earns them all, a failed one none.

Output: one CSV row per student, chapter and exercise (``passed`` is 1 or 0, ``points`` what it earned of
``max_points``, ``message`` the check's diagnosis); a file that cannot be graded gets one row with exercise ``-``
(worth the chapter's points, when the chapter is known). Beside the CSV: the class summary
(``grades_summary.csv``: per exercise, the pass rate and the most common diagnosis) and the same as a page
(``grades_report.html``), see tools/class_report.py. A summary grid goes to stdout.
Exit status 0 whatever the submissions hold; 2 when the arguments are wrong.

One exercise of one notebook (``--exercise N.M``, what a GitHub Classroom test runs): the notebook is graded up to
that exercise's check cell (with ``--cache DIR``: all of it, once, the other exercises' runs reuse the result);
the check's diagnosis and the points are printed; with ``--fail-unless-passed`` the exit status is 1 unless the
exercise passed. ``--markdown`` prints the rows as a Markdown table instead of the grid (for a job summary).
"""
from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from tools import class_report
from utils import conventions
from utils.conventions import cell_tags as tags

ROOT = conventions.ROOT
NOTEBOOK_SUFFIXES = (".ipynb", ".md")
TAG = conventions.TAG
DIAGNOSES = ("AssertionError", "CheckFailure", "LearnerError")  # a check's own verdict, see utils.checks.core
COLUMNS = ("student", "chapter", "exercise", "passed", "points", "max_points", "message")
# What nbval reports when a kernel dies as it starts (e.g. two kernels racing for the same ports on a busy machine)
KERNEL_START_FAILED = "Kernel died before replying to kernel_info"

# Loaded by the pytest that runs one graded notebook: one JSON line per executed cell (cell number, the error's
# "Name: value" or the nbval failure text, and the last line the cell printed).
RECORDER = '''
import json, pathlib
LOG = pathlib.Path(__file__).with_name("cells.jsonl")

def pytest_runtest_makereport(item, call):
    if call.when != "call" and call.excinfo is None:
        return
    outputs = getattr(item, "test_outputs", None) or []
    errors = [o for o in outputs if o.get("output_type") == "error"]
    printed = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream").strip()
    record = {"cell": getattr(item, "cell_num", -1), "error": None, "timeout": False, "ename": None,
              "printed": printed.splitlines()[-1] if printed else ""}
    if call.excinfo is not None:
        text = str(call.excinfo.value)
        record["timeout"] = text.startswith("Timeout of")
        if errors and not record["timeout"]:
            record["ename"] = errors[-1]["ename"]
            record["error"] = errors[-1]["ename"] + ": " + errors[-1]["evalue"]
        else:
            record["error"] = text
    with LOG.open("a") as log:
        log.write(json.dumps(record) + "\\n")
'''


@dataclass
class Submission:
    path: Path
    student: str
    chapter: str = "-"
    rows: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- finding files
def find_submissions(folder: Path, slugs: list[str]) -> list[Submission]:
    """Every file in ``folder`` and in per-student subfolders, with the student it belongs to.

    Inside a student's folder, a folder of its own (nbgrader's ``submitted/<student>/<assignment>/``) is searched
    for notebooks only (nbgrader keeps a ``timestamp.txt`` there). READMEs (a GitHub Classroom repository's) and
    hidden files (``.github/``, ``.ipynb_checkpoints``) are never submissions."""
    skip = lambda p: p.name.startswith(".") or p.name == "__pycache__" or p.stem.upper() == "README"  # noqa: E731
    found = []
    for path in sorted(p for p in folder.iterdir() if not skip(p)):
        if path.is_dir():
            for inner in sorted(p for p in path.iterdir() if not skip(p)):
                if inner.is_file():
                    found.append(Submission(inner, path.name))
                elif inner.is_dir():
                    found += [Submission(p, path.name) for p in sorted(inner.iterdir()) if not skip(p)
                              and p.is_file() and p.suffix.lower() in NOTEBOOK_SUFFIXES]
        elif path.is_file():
            found.append(Submission(path, student_from_name(path.stem, slugs)))
    return found


def student_from_name(stem: str, slugs: list[str]) -> str:
    """``bob_01_attention`` → ``bob``: the file name without the chapter slug and the separators around it."""
    name = stem
    for slug in slugs:
        name = name.replace(slug, " ")
    name = re.sub(r"[\s_.-]+", "_", name).strip("_")
    return name or stem


def read_notebook(path: Path) -> nbformat.NotebookNode:
    if path.suffix.lower() == ".md":
        import jupytext

        return jupytext.read(path, fmt="md:myst")
    notebook = nbformat.read(path, as_version=4)
    cells = notebook.get("cells")
    if not isinstance(cells, list) or not all(isinstance(c, dict) and isinstance(c.get("source", ""), str)
                                              and isinstance(c.get("metadata", {}), dict) for c in cells):
        raise ValueError("its 'cells' are not a list of notebook cells")
    return notebook


def exercise_tags(notebook) -> set[str]:
    return {t for cell in notebook.cells for t in tags(cell) if TAG.match(t)}


def identify_chapter(notebook, path: Path, releases: dict[str, nbformat.NotebookNode]) -> str | None:
    """The chapter slug: from the metadata, else the file name, else the most exercise tags in common."""
    course = notebook.get("metadata", {}).get("course", {})
    chapter = course.get("chapter") if isinstance(course, dict) else None
    if chapter in releases:
        return chapter
    named = [slug for slug in releases if slug in path.name]
    if named:
        return max(named, key=len)
    mine = exercise_tags(notebook)
    overlap = {slug: len(mine & exercise_tags(release)) for slug, release in releases.items()}
    best = max(overlap, key=overlap.get, default=None)
    return best if best and overlap[best] else None


# ------------------------------------------------------------------------------------------------ restoring
def restore(release, submission, upto: str | None = None):
    """The released notebook up to its last check cell (or the check cell of exercise ``upto``), with the
    submission's ``exercise-N.M`` cell sources."""
    answers: dict[str, list[str]] = {}
    for cell in submission.cells:
        for tag in tags(cell):
            if cell.get("cell_type") == "code" and tag.startswith(f"{conventions.EXERCISE}-"):
                answers.setdefault(tag, []).append(cell.get("source") or "")
    graded = copy.deepcopy(release)
    checks = [i for i, cell in enumerate(graded.cells)
              if (check := conventions.cell_exercise(cell, conventions.CHECK)) and upto in (None, check)]
    graded.cells = graded.cells[: checks[-1] + 1] if checks else []
    for cell in graded.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        for tag in tags(cell):
            if tag in answers:
                cell.source = "\n\n".join(answers[tag])
    return graded


# -------------------------------------------------------------------------------------------------- running
def run_notebook(notebook, cell_timeout: int, timeout: int) -> tuple[dict[int, dict], str | None]:
    """Run a notebook under nbval; return ``{code cell number: record}`` and a problem (None when it finished)."""
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        folder = Path(tmp)
        nbformat.write(notebook, folder / "graded.ipynb")
        (folder / "conftest.py").write_text(RECORDER)
        (folder / "pytest.ini").write_text("[pytest]\n")  # keeps pytest from finding any other configuration
        command = [sys.executable, "-m", "pytest", "graded.ipynb", "--nbval-lax", "--nbval-current-env",
                   f"--nbval-cell-timeout={cell_timeout}", "-p", "no:cacheprovider", "-q", "--no-header"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        env.update(COURSE_SCALE="test", MPLBACKEND="Agg", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        problem = None
        try:
            output, _ = process.communicate(timeout=timeout)
            if process.returncode not in (0, 1):  # 1: some cells failed; anything else: pytest itself failed
                lines = [line for line in output.splitlines() if line.strip()]
                problem = f"pytest exited with {process.returncode}: {lines[-1] if lines else 'no output'}"
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the kernel exits by itself once its parent is gone
            process.communicate()
            problem = f"the notebook timed out after {timeout} s (--timeout)"
        log = folder / "cells.jsonl"
        lines = log.read_text().splitlines() if log.exists() else []
    records = [json.loads(line) for line in lines if line.endswith("}")]  # a killed run may cut the last line
    return {record["cell"]: record for record in records}, problem


def grade(submission: Submission, releases, cell_timeout: int, timeout: int, upto: str | None = None) -> Submission:
    """Grade one file: its rows, one per exercise (up to exercise ``upto`` only, when given)."""
    path = submission.path
    if path.suffix.lower() not in NOTEBOOK_SUFFIXES:
        return _problem(submission, f"not a notebook ({path.suffix or 'no extension'})", releases)
    try:
        notebook = read_notebook(path)
    except Exception as error:  # any unreadable file is the student's problem, never the grader's crash
        named = [slug for slug in releases if slug in path.name]
        submission.chapter = named[0] if named else "-"
        return _problem(submission, f"malformed notebook: {one_line(error)}", releases)
    chapter = identify_chapter(notebook, path, releases)
    if chapter is None:
        return _problem(submission, "unknown chapter", releases)
    submission.chapter = chapter
    graded = restore(releases[chapter], notebook, upto)
    for attempt in range(3):  # a kernel that dies while starting is the machine's fault, not the student's
        results, problem = run_notebook(graded, cell_timeout, timeout)
        if not any(KERNEL_START_FAILED in (record["error"] or "") for record in results.values()):
            break
    submission.rows = score(graded, results, problem, cell_timeout)
    for row in submission.rows:
        row.update(student=submission.student, chapter=chapter)
    return submission


def _problem(submission: Submission, message: str, releases) -> Submission:
    """The one row of a file that could not be graded: worth the whole chapter when the chapter is known."""
    release = releases.get(submission.chapter)
    worth = sum(conventions.exercise_points(release).values()) if release else 0
    submission.rows = [dict(student=submission.student, chapter=submission.chapter, exercise="-", passed=0,
                            points=0, max_points=worth, message=message)]
    return submission


def graded_once(submission: Submission, releases, cell_timeout: int, timeout: int, cache: Path) -> Submission:
    """:func:`grade`, remembered in ``cache`` under a hash of the file, the releases, the limits and this grader."""
    key = hashlib.sha256()
    for part in (submission.path.read_bytes(), json.dumps(releases, sort_keys=True).encode(),
                 f"{cell_timeout}/{timeout}".encode(), Path(__file__).read_bytes()):
        key.update(hashlib.sha256(part).digest())
    stored = cache / f"{key.hexdigest()}.json"
    if stored.exists():
        remembered = json.loads(stored.read_text(encoding="utf-8"))
        submission.chapter = remembered["chapter"]
        submission.rows = [{**row, "student": submission.student} for row in remembered["rows"]]
        return submission
    graded = grade(submission, releases, cell_timeout, timeout)
    cache.mkdir(parents=True, exist_ok=True)
    partial = stored.with_suffix(f".{os.getpid()}.part")
    partial.write_text(json.dumps({"chapter": graded.chapter, "rows": graded.rows}), encoding="utf-8")
    partial.replace(stored)  # whole or not at all, should two steps grade at once
    return graded


# -------------------------------------------------------------------------------------------------- scoring
def score(graded, results: dict[int, dict], problem: str | None, cell_timeout: int) -> list[dict]:
    """One row per check cell, from the per-cell records of one run."""
    code_cells = [cell for cell in graded.cells if cell.cell_type == "code"]
    roles = [{t for t in tags(cell) if TAG.match(t)} for cell in code_cells]
    worth = conventions.exercise_points(graded)  # the release's exercise cells, whatever the submission said
    rows = []
    for number, role in enumerate(roles):
        for exercise in sorted(TAG.match(t).group(2) for t in role if t.startswith(f"{conventions.CHECK}-")):
            work = [i for i, r in enumerate(roles) if conventions.tag(conventions.EXERCISE, exercise) in r]
            setup = [i for i in range(number) if not roles[i]]  # release cells that are neither
            result = verdict(exercise, results.get(number), [results.get(i) for i in work],
                             [results.get(i) for i in setup], problem, cell_timeout)
            points = worth.get(exercise, conventions.DEFAULT_POINTS)
            rows.append(dict(exercise=exercise, passed=result["passed"], points=points * result["passed"],
                             max_points=points, message=result["message"]))
    return rows


def verdict(exercise, check, work, setup, problem, cell_timeout) -> dict:
    if check is None:
        return dict(passed=0, message=f"not run: {problem or 'grading stopped before this cell'}")
    if check["error"] is None:
        if conventions.success_marker(exercise) not in check["printed"]:  # every check prints it on success
            return dict(passed=0, message=f"the check ran without its 'Exercise {exercise} passed' line: was it "
                                          f"replaced or silenced from an exercise cell? Look at this notebook.")
        return dict(passed=1, message=check["printed"])
    failed = lambda message: dict(passed=0, message=message)  # noqa: E731
    work = [w for w in work if w and w["error"]]
    for record, where in [(w, "the cell") for w in work] + [(check, "the check cell")]:
        if record["timeout"]:
            why = ("the kernel stopped answering: an endless loop, or code that killed it?"
                   if "Failed to interrupt" in record["error"] else "an endless loop?")
            return failed(f"timed out after {cell_timeout} s in {where} of exercise {exercise} ({why})")
    if "Kernel dead" in check["error"]:
        return failed("not run: the kernel died in an earlier cell")
    for record in [check] + work:
        if record["ename"] == conventions.STUB_ERROR:
            other = conventions.STUB_EXERCISE.search(record["error"])
            if other and other.group(1) != exercise:
                return failed(f"not attempted: needs exercise {other.group(1)}, which still raises "
                              f"NotImplementedError")
            return failed("not attempted: still raises NotImplementedError")
    if check["ename"] in DIAGNOSES:
        return failed(one_line(check["error"]))
    if work:
        return failed(f"your exercise cell raised {one_line(work[0]['error'])}")
    broken = [s for s in setup if s and s["error"]]
    if broken:
        return failed(f"not run: an earlier cell failed (cell {broken[0]['cell']}: {one_line(broken[0]['error'])})")
    return failed(one_line(check["error"]))


def one_line(text, limit: int = 400) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -------------------------------------------------------------------------------------------------- reports
def exercise_key(exercise: str):
    return conventions.exercise_key(exercise) if exercise != "-" else (0,)


def number(value) -> str:
    """``2.0`` → ``"2"``, ``1.5`` → ``"1.5"``: points as an instructor writes them."""
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def write_csv(rows: list[dict], out: Path) -> None:
    with out.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({**row, "points": number(row["points"]), "max_points": number(row["max_points"])}
                         for row in rows)


def summary(rows: list[dict]) -> str:
    """A students × exercises grid of ✓/✗ per chapter with points, then the files that could not be graded."""
    lines = []
    for chapter in sorted({row["chapter"] for row in rows} - {"-"}):
        mine = [row for row in rows if row["chapter"] == chapter]
        exercises = sorted({r["exercise"] for r in mine if r["exercise"] != "-"}, key=exercise_key)
        students = list(dict.fromkeys(row["student"] for row in mine))
        width = max(len(s) for s in students + [chapter, "passed"]) + 2
        lines.append(f"{chapter:<{width}}" + "".join(f"{e:>6}" for e in exercises) + "   total")
        for student in students:
            theirs = [r for r in mine if r["student"] == student]
            problems = [r["message"] for r in theirs if r["exercise"] == "-"]
            marks = {r["exercise"]: "✓" if r["passed"] else "✗" for r in theirs}
            earned = f"{number(sum(r['points'] for r in theirs))}/{number(sum(r['max_points'] for r in theirs))}"
            lines.append(f"{student:<{width}}" + ("; ".join(problems) if problems else
                         "".join(f"{marks.get(e, '?'):>6}" for e in exercises) + f"   {earned}"))
        totals = [sum(r["passed"] for r in mine if r["exercise"] == e) for e in exercises]
        if exercises:
            lines.append(f"{'passed':<{width}}" + "".join(f"{t:>6}" for t in totals)
                         + f"   of {len(students)} student(s)")
        lines.append("")
    ungraded = [row for row in rows if row["chapter"] == "-"]
    if ungraded:
        lines.append("not graded")
        lines += [f"  {row['student']}: {row['message']}" for row in ungraded]
        lines.append("")
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    """The rows of one or more notebooks as Markdown tables, one per student and chapter (a CI job summary)."""
    lines = []
    for student, chapter in dict.fromkeys((row["student"], row["chapter"]) for row in rows):
        theirs = [r for r in rows if (r["student"], r["chapter"]) == (student, chapter)]
        earned = f"{number(sum(r['points'] for r in theirs))}/{number(sum(r['max_points'] for r in theirs))}"
        who = f" ({student})" if student != chapter else ""  # a file named after its chapter names nobody
        lines += [f"### {chapter}: {earned} points{who}", "", "| exercise | points | | diagnosis |",
                  "|---|---|---|---|"]
        for r in theirs:
            message = r["message"].replace("|", "\\|")  # a | would end the table's cell
            lines.append(f"| {r['exercise']} | {number(r['points'])}/{number(r['max_points'])} | "
                         f"{'✓' if r['passed'] else '✗'} | {message} |")
        lines.append("")
    return "\n".join(lines)


def exercise_line(row: dict, exercise: str) -> str:
    """What a Classroom test prints: the check's own line when it passed, else its diagnosis; and the points."""
    worth = f"({number(row['points'])}/{number(row['max_points'])} points)"
    if row["passed"]:
        return f"{row['message']} {worth}"
    if row["exercise"] == "-":
        return f"✗ Exercise {exercise} not graded {worth}: {row['message']}"
    return f"✗ Exercise {exercise} not passed {worth}: {row['message']}"


# ------------------------------------------------------------------------------------------------ commands
def grade_exercise(args, releases) -> int:
    """``--exercise N.M``: grade one notebook for one exercise, print the verdict, exit 1 if asked and it failed."""
    path = args.submissions
    try:  # a chapter without this exercise is a mistake in the command, not in the submission
        chapter = identify_chapter(read_notebook(path), path, releases)
    except Exception:  # the submission's problem: grade() reports it
        chapter = None
    if chapter and args.exercise not in conventions.exercise_points(releases[chapter]):
        known = ", ".join(conventions.exercise_points(releases[chapter]))
        print(f"error: {chapter} has no exercise {args.exercise} (its exercises: {known})", file=sys.stderr)
        return 2
    submission = Submission(path, student_from_name(path.stem, list(releases)))
    if args.cache:
        graded = graded_once(submission, releases, args.cell_timeout, args.timeout, args.cache)
    else:
        graded = grade(submission, releases, args.cell_timeout, args.timeout, upto=args.exercise)
    row = next((r for r in graded.rows if r["exercise"] == args.exercise), None)
    if row is None:  # a file that could not be graded: its one row, for this exercise's points
        release = releases.get(graded.chapter)
        worth = conventions.exercise_points(release).get(args.exercise) if release else None
        row = {**graded.rows[0], "max_points": worth or conventions.DEFAULT_POINTS}
    print(exercise_line(row, args.exercise), flush=True)
    return 1 if args.fail_unless_passed and not row["passed"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submissions", type=Path, help="folder of submitted notebooks (or one notebook)")
    parser.add_argument("--out", type=Path, default=Path("grades.csv"),
                        help="the CSV to write (grades.csv); the class summary and report go beside it")
    parser.add_argument("--summary", type=Path, help="the class summary CSV (default: <out>_summary.csv)")
    parser.add_argument("--report", type=Path, help="the class report page (default: <out>_report.html)")
    parser.add_argument("--release-dir", type=Path, default=ROOT / "chapters",
                        help="folder of released student notebooks NN_slug.ipynb (chapters/)")
    parser.add_argument("--cell-timeout", type=int, default=60, help="seconds per cell (60)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per notebook (600)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks graded at once (2)")
    parser.add_argument("--exercise", metavar="N.M", help="grade one notebook for this exercise only")
    parser.add_argument("--fail-unless-passed", action="store_true",
                        help="with --exercise: exit 1 unless the exercise passed")
    parser.add_argument("--cache", type=Path, metavar="DIR",
                        help="remember each notebook's grading here, keyed by its content (for --exercise)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables instead of the grid")
    args = parser.parse_args(argv)
    if args.exercise is not None:
        if not re.fullmatch(r"\d+\.\d+", args.exercise):
            parser.error(f"--exercise {args.exercise!r} is not an exercise number N.M")
        if not args.submissions.is_file():
            parser.error(f"--exercise grades one notebook: {args.submissions} is not a file")
    elif not args.submissions.exists():
        parser.error(f"{args.submissions} is not a folder of submissions")
    releases = {p.stem: read_notebook(p) for p in sorted(args.release_dir.glob("[0-9][0-9]_*.ipynb"))}
    if not releases:
        parser.error(f"no released notebooks NN_slug.ipynb in {args.release_dir} (run `make chapters`)")
    if args.exercise is not None:
        return grade_exercise(args, releases)
    if args.submissions.is_file():
        submissions = [Submission(args.submissions, student_from_name(args.submissions.stem, list(releases)))]
    else:
        submissions = find_submissions(args.submissions, list(releases))
    if not submissions:
        parser.error(f"{args.submissions} holds no files to grade")

    def one(submission):
        try:
            if args.cache:
                graded = graded_once(submission, releases, args.cell_timeout, args.timeout, args.cache)
            else:
                graded = grade(submission, releases, args.cell_timeout, args.timeout)
        except Exception as error:  # a bug here must cost one row, not the whole class's grades
            graded = _problem(submission, f"grader error: {one_line(repr(error))}", releases)
        done = sum(row["passed"] for row in graded.rows)
        where = submission.path.relative_to(args.submissions) if args.submissions.is_dir() else submission.path
        print(f"graded {where}: {submission.student}, {submission.chapter}, {done}/{len(graded.rows)}",
              file=sys.stderr, flush=True)
        return graded

    if args.jobs > 1:  # notebooks graded side by side share the cores: one PyTorch thread each (utils.set_threads)
        os.environ.setdefault("COURSE_THREADS", "1")
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        graded = list(pool.map(one, submissions))
    rows = sorted((row for s in graded for row in s.rows),
                  key=lambda r: (r["student"], r["chapter"], exercise_key(r["exercise"])))
    write_csv(rows, args.out)
    summary_path = args.summary or args.out.with_name(f"{args.out.stem}_summary.csv")
    report_path = args.report or args.out.with_name(f"{args.out.stem}_report.html")
    per_exercise = class_report.class_summary(rows)
    class_report.write_summary_csv(per_exercise, summary_path)
    report_path.write_text(class_report.html_report(rows, per_exercise), encoding="utf-8")
    if args.markdown:
        print(markdown(rows))
        return 0
    print(summary(rows))
    print(class_report.text(per_exercise))
    print(f"wrote {args.out} ({len(rows)} rows, {len(submissions)} file(s)), {summary_path} and {report_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

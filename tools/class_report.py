"""What a class got right and wrong: the per-exercise summary of a grading run, as CSV, text and one HTML page.

Read by tools/grade.py, which writes ``grades_summary.csv`` and ``grades_report.html`` beside ``grades.csv``.

- **Pass rate** of an exercise: the students who passed it over the students who handed in its chapter (a file of
  theirs that could not be graded counts as not passed).
- **Most common diagnosis**: the failures' messages grouped by what they say, not by the numbers of one case —
  :func:`diagnosis` drops the exception's name, the ``Exercise N.M (case …)`` prefix and every number, so
  "your values are 2.828 (= √d_k) × the right ones" and "… 4 (= √d_k) × …" of two students count as one. "Not
  attempted" is counted on its own: it is not a mistake.

The page is one self-contained file (inline CSS, no script, nothing fetched), to open from disk or mail.
"""
from __future__ import annotations

import csv
import html
import re
from collections import Counter
from pathlib import Path

from utils import conventions

SUMMARY_COLUMNS = ("chapter", "exercise", "points", "students", "passed", "pass_rate", "not_attempted",
                   "most_common_diagnosis", "students_with_it", "example")
NOT_ATTEMPTED = "not attempted"
KIND = re.compile(r"^(?:CheckFailure|AssertionError|LearnerError): ")
WHERE = re.compile(r"^Exercise \d+\.\d+(?: \((?:[^()]|\([^()]*\))*\))?(?:, |: )?")  # "Exercise 1.1 (case …), "
KEPT = re.compile(r"[Ee]xercises? \d+\.\d+|\beqs?\. ?\(?\d+\.\d+\)?|\(\d+\.\d+\)")  # references, not values
NUMBER = re.compile(r"(?<![\w.])[-+−]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w])")
ELLIPSIS = "…"
PLACEHOLDER = 0xE000  # Unicode's private use area: stands for a kept reference while numbers are replaced


def diagnosis(message: str) -> str:
    """The part of a failure's message that students who made the same mistake share."""
    text = WHERE.sub("", KIND.sub("", message.strip()))
    kept: list[str] = []

    def keep(match):
        kept.append(match.group(0))
        return chr(PLACEHOLDER + len(kept) - 1)  # one private-use character: no digit for NUMBER to find

    text = NUMBER.sub(ELLIPSIS, KEPT.sub(keep, text))
    text = re.sub(r"…(?:, …)+", ELLIPSIS, text)  # "[0, 2, 1]" and "(2, 3, 5)" → "[…]", "(…)"
    return re.sub("[\ue000-\uf8ff]", lambda m: kept[ord(m.group(0)) - PLACEHOLDER], text)


def _exercises(rows: list[dict], chapter: str) -> list[str]:
    found = {r["exercise"] for r in rows if r["chapter"] == chapter and r["exercise"] != "-"}
    return sorted(found, key=conventions.exercise_key)


def class_summary(rows: list[dict]) -> list[dict]:
    """One row per chapter and exercise: points, pass rate, not attempted, the most common diagnosis."""
    out = []
    for chapter in sorted({r["chapter"] for r in rows} - {"-"}):
        mine = [r for r in rows if r["chapter"] == chapter]
        students = len({r["student"] for r in mine})
        for exercise in _exercises(rows, chapter):
            theirs = [r for r in mine if r["exercise"] == exercise]
            failed = [r for r in theirs if not r["passed"]]
            mistakes = [r for r in failed if not r["message"].startswith(NOT_ATTEMPTED)]
            groups = Counter(diagnosis(r["message"]) for r in mistakes)
            top, count = groups.most_common(1)[0] if groups else ("", 0)
            example = next((r["message"] for r in mistakes if diagnosis(r["message"]) == top), "")
            passed = sum(1 for r in theirs if r["passed"])
            out.append(dict(chapter=chapter, exercise=exercise, points=theirs[0]["max_points"], students=students,
                            passed=passed, pass_rate=f"{passed / students:.2f}" if students else "",
                            not_attempted=len(failed) - len(mistakes), most_common_diagnosis=top,
                            students_with_it=count, example=example, groups=groups))
    return out


def write_summary_csv(summary: list[dict], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({**row, "points": f"{row['points']:g}"} for row in summary)


def text(summary: list[dict]) -> str:
    """The summary as lines for the terminal: what the class got wrong, exercise by exercise."""
    lines = []
    for chapter in dict.fromkeys(row["chapter"] for row in summary):
        lines.append(f"what the class got wrong in {chapter}")
        for row in (r for r in summary if r["chapter"] == chapter):
            line = f"  {row['exercise']:>5}  passed {row['passed']}/{row['students']}"
            if row["not_attempted"]:
                line += f", {row['not_attempted']} not attempted"
            if row["most_common_diagnosis"]:
                line += f"; most common: {row['most_common_diagnosis']} ({row['students_with_it']} student(s))"
            lines.append(line)
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ page
STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 75em;
       padding: 0 1em; color: #1d1d1f; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1em 0; } th, td { padding: .35em .6em; border-bottom: 1px solid #eee;
       vertical-align: top; text-align: left; } th { background: #f6f6f8; }
td.num { text-align: right; white-space: nowrap; } .bar { background: #e8e8ee; width: 8em; height: .8em;
       display: inline-block; margin-right: .5em; vertical-align: middle; } .bar span { background: #3a7d44;
       display: block; height: 100%; }
.ok { color: #3a7d44; } .no { color: #b3261e; } .muted { color: #6e6e73; font-size: .9em; }
ol { margin: 0; padding-left: 1.2em; } details summary { cursor: pointer; }
"""


def _bar(fraction: float) -> str:
    return f'<span class="bar"><span style="width: {100 * fraction:.0f}%"></span></span>{100 * fraction:.0f}%'


def _mark(row: dict) -> str:
    """A ✓ or ✗ cell; its tooltip is the check's message."""
    passed = bool(row["passed"])
    return (f'<td title="{html.escape(row["message"], quote=True)}" class="{"ok" if passed else "no"}">'
            f'{"✓" if passed else "✗"}</td>')


def html_report(rows: list[dict], summary: list[dict], top: int = 3) -> str:
    """The whole report as one HTML page."""
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>Class report</title>", f"<style>{STYLE}</style></head><body>", "<h1>Class report</h1>",
             '<p class="muted">Pass rate: the students who passed an exercise, of those who handed in its chapter. '
             "Diagnoses are the checks' messages grouped by what they say (numbers of one case left out).</p>"]
    for chapter in dict.fromkeys(row["chapter"] for row in summary):
        mine = [r for r in rows if r["chapter"] == chapter]
        exercises = _exercises(rows, chapter)
        students = list(dict.fromkeys(r["student"] for r in mine))
        earned = {s: sum(r["points"] for r in mine if r["student"] == s) for s in students}
        worth = sum(r["points"] for r in summary if r["chapter"] == chapter)
        mean = sum(earned.values()) / len(students)
        parts += [f"<h2>{e(chapter)}</h2>",
                  f"<p>{len(students)} student(s); mean {mean:.3g} of {worth:g} points.</p>",
                  "<table><tr><th>Exercise</th><th>Points</th><th>Passed</th><th>Not attempted</th>"
                  "<th>Most common diagnoses (students)</th></tr>"]
        for row in (r for r in summary if r["chapter"] == chapter):
            fraction = row["passed"] / row["students"] if row["students"] else 0.0
            diagnoses = "".join(
                f"<li>{e(text_)} <span class=\"muted\">({count})</span></li>"
                for text_, count in row["groups"].most_common(top))
            example = (f'<details><summary class="muted">the first, word for word</summary>{e(row["example"])}'
                       "</details>" if row["example"] else "")
            parts.append(f"<tr><td>{e(row['exercise'])}</td><td class=\"num\">{row['points']:g}</td>"
                         f"<td class=\"num\">{_bar(fraction)} ({row['passed']}/{row['students']})</td>"
                         f"<td class=\"num\">{row['not_attempted']}</td>"
                         f"<td>{f'<ol>{diagnoses}</ol>{example}' if diagnoses else '—'}</td></tr>")
        parts.append("</table>")
        parts.append("<details><summary>Every student</summary><table><tr><th>Student</th>"
                     + "".join(f"<th>{e(x)}</th>" for x in exercises) + "<th>Points</th></tr>")
        for student in students:
            theirs = {r["exercise"]: r for r in mine if r["student"] == student}
            if "-" in theirs:
                cells = f'<td colspan="{len(exercises)}" class="no">{e(theirs["-"]["message"])}</td>'
            else:
                cells = "".join(_mark(theirs[x]) if x in theirs else "<td>?</td>" for x in exercises)
            parts.append(f"<tr><td>{e(student)}</td>{cells}<td class=\"num\">{earned[student]:g}/{worth:g}</td></tr>")
        parts.append("</table></details>")
    ungraded = [r for r in rows if r["chapter"] == "-"]
    if ungraded:
        parts.append("<h2>Files that could not be graded</h2><ul>")
        parts += [f"<li>{e(r['student'])}: {e(r['message'])}</li>" for r in ungraded]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"

"""Measure how long each solution notebook takes at `book` and `test` scale, and keep the README table true.

    python -m tools.timings                      # print the table
    python -m tools.timings --write README.md    # also replace the table between its markers in README.md
    python -m tools.timings 01_attention --scales test   # one chapter, one scale (also: --scales book,test)
    python -m tools.timings 02_normalization --scales book --cells 8   # also the 8 slowest cells, and where

With ``--write`` and a subset of chapters or scales, the other rows and columns of the README table are kept.

Each notebook runs in a fresh kernel, offline, as CI and a learner would run it; a failing cell stops with its
error. Times are wall-clock seconds on this machine, whose core count the table states, and multiples of a fixed
reference workload (``tools.reference_workload``: small conv-net and transformer training steps) measured in the
same run, before and after the chapters (the faster of the two): a multiple means the same on a fast laptop and a
slow one, so tables from different machines compare. A chapter's budget of 180 s on a slow machine is kept by
staying within 120 s on the machine of the table.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import datetime
from pathlib import Path

import jupytext
from nbclient import NotebookClient

from tools.reference_workload import STEPS as REFERENCE_STEPS
from tools.reference_workload import reference_workload
from utils import conventions

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- timings:start -->", "<!-- timings:end -->"


def run_notebook(path: Path, scale: str, timeout: int = 600):
    """Execute one solution notebook at ``scale``; return (seconds, executed notebook)."""
    notebook = jupytext.read(path)
    previous = os.environ.get("COURSE_SCALE")
    os.environ["COURSE_SCALE"] = scale  # the kernel inherits this process's environment
    try:
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        start = time.perf_counter()
        client.execute()
        return time.perf_counter() - start, notebook
    finally:
        if previous is None:
            os.environ.pop("COURSE_SCALE")
        else:
            os.environ["COURSE_SCALE"] = previous


def cell_seconds(notebook) -> list[tuple[float, int, str]]:
    """(seconds, cell number, first line) of every executed code cell, from the timing nbclient records."""
    cells = []
    for number, cell in enumerate(notebook.cells):
        timing = cell.get("metadata", {}).get("execution", {})
        if cell.cell_type != "code" or "iopub.execute_input" not in timing or "shell.execute_reply" not in timing:
            continue
        start, end = (datetime.fromisoformat(timing[key].replace("Z", "+00:00"))
                      for key in ("iopub.execute_input", "shell.execute_reply"))
        first_line = next((line for line in cell.source.splitlines() if line.strip()), "")
        cells.append(((end - start).total_seconds(), number, first_line[:70]))
    return cells


def table(rows: dict[str, dict[str, float]], scales: list[str], reference: float | None = None) -> str:
    """The README table. ``rows[chapter][scale]`` is seconds and ``rows[chapter][scale + "×"]`` the multiple of
    the reference workload; ``reference`` (seconds) is the reference's own time in this run."""
    header = "| chapter | " + " | ".join(f"{scale} scale (s) | {scale} (× reference)" for scale in scales) + " |"
    lines = [header, "|" + "---|" * (2 * len(scales) + 1)]
    for chapter, values in rows.items():
        cells = []
        for scale in scales:
            seconds, multiple = values.get(scale), values.get(scale + "×")
            cells += ["–" if seconds is None else f"{seconds:.0f}", "–" if multiple is None else f"{multiple:.1f}"]
        lines.append(f"| {chapter} | " + " | ".join(cells) + " |")
    lines.append(f"\nMeasured by `make timings` on {os.cpu_count()} CPU cores, "
                 f"{time.strftime('%Y-%m-%d')}; budgets: book ≤ 180 s, test ≤ 60 s (book ≤ 120 s on a machine as "
                 f"fast as this one, so that it stays under 180 s on one twice as slow).")
    if reference is not None:
        lines.append(f"The reference workload (`python -m tools.reference_workload`: {REFERENCE_STEPS} training steps "
                     f"each of a small conv-net and a small transformer, 2 threads) took {reference:.2f} s here; "
                     f"divide a time measured on your machine by the reference's time there to compare it with the "
                     f"× columns.")
    return "\n".join(lines)


def previous_rows(readme: Path, scales: list[str] | None = None) -> dict[str, dict[str, float]]:
    """The rows already in the README's table, so re-measuring one chapter keeps the others.

    The columns are read from the table's header; a table without one (or an old one without the multiples)
    is read as ``scales`` of seconds, in order."""
    text = readme.read_text(encoding="utf-8")
    inside = text.split(START, 1)[1].split(END, 1)[0] if START in text and END in text else ""
    header = re.search(r"^\| chapter \|(.*)\|\s*$", inside, re.MULTILINE)
    keys = []
    for name in ([cell.strip() for cell in header.group(1).split("|")] if header else []):
        match = re.fullmatch(r"(\w+) (scale \(s\)|\(× reference\))", name)
        keys.append(None if match is None else match.group(1) + ("×" if "reference" in name else ""))
    if not keys:
        keys = list(scales or [])
    rows = {}
    for match in re.finditer(r"^\| (\d\d_\w+) \|(.*)\|\s*$", inside, re.MULTILINE):
        numbers = [cell.strip() for cell in match.group(2).split("|")]
        rows[match.group(1)] = {key: float(n) for key, n in zip(keys, numbers)
                                if key is not None and re.fullmatch(r"\d+(\.\d+)?", n)}
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="chapter stems such as 01_attention (default: all)")
    parser.add_argument("--scales", default="book,test", help="comma-separated, e.g. test or book,test")
    parser.add_argument("--write", type=Path, help="README to update between the timings markers")
    parser.add_argument("--cells", type=int, default=0, metavar="N",
                        help="also print each run's N slowest code cells (seconds and × reference)")
    parser.add_argument("--reference-steps", type=int, default=REFERENCE_STEPS, help=argparse.SUPPRESS)  # tests
    args = parser.parse_args(argv)
    scales = [scale.strip() for scale in args.scales.split(",") if scale.strip()]
    unknown = [scale for scale in scales if scale not in ("book", "test", "full")]
    paths = conventions.solution_files(ROOT)
    missing = sorted(set(args.chapters) - {p.stem for p in paths})
    if unknown:
        print(f"error: unknown scale(s) {', '.join(unknown)}; the scales are book, test and full", file=sys.stderr)
        return 2
    if missing:
        print(f"error: no chapter {', '.join(missing)}; the chapters are {', '.join(p.stem for p in paths)}",
              file=sys.stderr)
        return 2
    if args.write and not (args.write.exists() and START in (readme := args.write.read_text(encoding="utf-8"))
                           and END in readme):
        print(f"error: {args.write} has no {START} … {END} markers", file=sys.stderr)
        return 2
    if args.chapters:
        paths = [p for p in paths if p.stem in args.chapters]
    all_scales = ["book", "test"] if args.write else scales
    rows = previous_rows(args.write, all_scales) if args.write else {}
    reference = reference_workload(args.reference_steps)  # before the chapters, and again after: the faster
    print(f"reference workload: {reference:.2f} s", flush=True)
    measured = []
    for path in paths:
        rows[path.stem] = {key: value for key, value in rows.get(path.stem, {}).items()
                           if key.rstrip("×") not in scales}  # a re-measured scale replaces both its columns
        for scale in scales:
            seconds, notebook = run_notebook(path, scale)
            rows[path.stem][scale] = seconds
            measured.append((path.stem, scale, seconds, notebook))
            print(f"{path.stem} at {scale} scale: {seconds:.1f} s = {seconds / reference:.1f} × reference", flush=True)
    after = reference_workload(args.reference_steps)
    print(f"reference workload: {after:.2f} s (before the chapters: {reference:.2f} s)", flush=True)
    reference = min(reference, after)
    for chapter, scale, seconds, notebook in measured:
        rows[chapter][scale + "×"] = seconds / reference
        if args.cells:
            print(f"\n{chapter} at {scale} scale, slowest cells (reference {reference:.2f} s):")
            for cell_time, number, first_line in sorted(cell_seconds(notebook), reverse=True)[:args.cells]:
                print(f"  {cell_time:6.1f} s  {cell_time / reference:5.2f} ×  cell {number:3d}: {first_line}")
    text = table(dict(sorted(rows.items())), all_scales, reference)
    print(text)
    if args.write:
        pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
        readme = args.write.read_text(encoding="utf-8")
        args.write.write_text(pattern.sub(lambda _: f"{START}\n{text}\n{END}", readme), encoding="utf-8")
        print(f"updated {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Measure how long each solution notebook takes at `book` and `test` scale, and keep the README table true.

    python -m tools.timings                      # print the table
    python -m tools.timings --write README.md    # also replace the table between its markers in README.md
    python -m tools.timings 01_attention --scales test   # one chapter, one scale (also: --scales book,test)

With ``--write`` and a subset of chapters or scales, the other rows and columns of the README table are kept.

Each notebook runs in a fresh kernel, offline, as CI and a learner would run it; a failing cell stops with its
error. Times are wall-clock seconds on this machine, whose core count the table states.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import jupytext
from nbclient import NotebookClient

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


def table(rows: dict[str, dict[str, float]], scales: list[str]) -> str:
    header = "| chapter | " + " | ".join(f"{s} scale (s)" for s in scales) + " |"
    lines = [header, "|" + "---|" * (len(scales) + 1)]
    for chapter, seconds in rows.items():
        lines.append(f"| {chapter} | " + " | ".join(f"{seconds[s]:.0f}" if s in seconds else "–" for s in scales)
                     + " |")
    lines.append(f"\nMeasured by `make timings` on {os.cpu_count()} CPU cores, "
                 f"{time.strftime('%Y-%m-%d')}; budgets: book ≤ 180 s, test ≤ 60 s.")
    return "\n".join(lines)


def previous_rows(readme: Path, scales: list[str]) -> dict[str, dict[str, float]]:
    """The rows already in the README's table, so re-measuring one chapter keeps the others."""
    text = readme.read_text(encoding="utf-8")
    inside = text.split(START, 1)[1].split(END, 1)[0] if START in text and END in text else ""
    rows = {}
    for match in re.finditer(r"^\| (\d\d_\w+) \|(.*)\|\s*$", inside, re.MULTILINE):
        numbers = [cell.strip() for cell in match.group(2).split("|")]
        rows[match.group(1)] = {scale: float(n) for scale, n in zip(scales, numbers) if n.replace(".", "").isdigit()}
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="chapter stems such as 01_attention (default: all)")
    parser.add_argument("--scales", default="book,test", help="comma-separated, e.g. test or book,test")
    parser.add_argument("--write", type=Path, help="README to update between the timings markers")
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
    if args.chapters:
        paths = [p for p in paths if p.stem in args.chapters]
    all_scales = ["book", "test"] if args.write else scales
    rows = previous_rows(args.write, all_scales) if args.write else {}
    for path in paths:
        rows.setdefault(path.stem, {})
        for scale in scales:
            seconds, _ = run_notebook(path, scale)
            rows[path.stem][scale] = seconds
            print(f"{path.stem} at {scale} scale: {seconds:.1f} s", flush=True)
    text = table(dict(sorted(rows.items())), all_scales)
    print(text)
    if args.write:
        readme = args.write.read_text(encoding="utf-8")
        if START not in readme or END not in readme:
            print(f"error: {args.write} has no {START} … {END} markers", file=sys.stderr)
            return 2
        pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
        args.write.write_text(pattern.sub(lambda _: f"{START}\n{text}\n{END}", readme), encoding="utf-8")
        print(f"updated {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

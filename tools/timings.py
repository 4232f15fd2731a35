"""Measure how long each solution notebook takes at `book` and `test` scale, and keep the README table true.

    python -m tools.timings                      # print the table
    python -m tools.timings --write README.md    # also replace the table between its markers in README.md
    python -m tools.timings --scales test 01_attention

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
        lines.append(f"| {chapter} | " + " | ".join(f"{seconds[s]:.0f}" for s in scales) + " |")
    lines.append(f"\nMeasured by `make timings` on {os.cpu_count()} CPU cores, "
                 f"{time.strftime('%Y-%m-%d')}; budgets: book ≤ 180 s, test ≤ 60 s.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="chapter stems such as 01_attention (default: all)")
    parser.add_argument("--scales", nargs="+", default=["book", "test"])
    parser.add_argument("--write", type=Path, help="README to update between the timings markers")
    args = parser.parse_args(argv)
    paths = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.md"))
    if args.chapters:
        paths = [p for p in paths if p.stem in args.chapters]
    rows: dict[str, dict[str, float]] = {}
    for path in paths:
        rows[path.stem] = {}
        for scale in args.scales:
            seconds, _ = run_notebook(path, scale)
            rows[path.stem][scale] = seconds
            print(f"{path.stem} at {scale} scale: {seconds:.1f} s", flush=True)
    text = table(rows, args.scales)
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

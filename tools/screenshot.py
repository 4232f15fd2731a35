"""Take a tall screenshot of a built book page with headless Chromium, to check it by eye.

    python -m tools.screenshot _build/html/solutions/01_attention.html out.png [--width 1400] [--height 4000]

The page is served over HTTP from the book's root (the nearest folder above it holding ``_static/``) on a
free local port, so MathJax loads its fonts and extensions from the local copies as a browser would; a
virtual-time budget lets MathJax finish typesetting before the shot. Needs Debian's ``chromium``
(``apt-get install chromium``); this script installs nothing.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def site_root(page: Path) -> Path:
    """The book's HTML root: the nearest folder above ``page`` that holds ``_static/``."""
    for folder in page.parents:
        if (folder / "_static").is_dir():
            return folder
    return page.parent


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def screenshot(page: Path, out: Path, width: int = 1400, height: int = 4000, budget_ms: int = 20000) -> None:
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("screenshot: no Chromium found; install it with `apt-get install -y chromium` (Debian).")
    page, out = page.resolve(), out.resolve()
    if not page.is_file():
        raise SystemExit(f"screenshot: {page} does not exist; build the book first (`make book`).")
    root = site_root(page)
    handler = functools.partial(QuietHandler, directory=str(root))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server, \
            tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/{page.relative_to(root).as_posix()}"
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
            f"--window-size={width},{height}", f"--virtual-time-budget={budget_ms}",
            f"--screenshot={out}", url,
        ]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        finally:
            server.shutdown()
    if result.returncode != 0 or not out.is_file():
        raise SystemExit(f"screenshot: Chromium failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    print(f"screenshot: {url} -> {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", type=Path, help="an HTML page of the built book")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=4000)
    args = parser.parse_args(argv)
    screenshot(args.page, args.out, args.width, args.height)
    return 0


if __name__ == "__main__":
    sys.exit(main())

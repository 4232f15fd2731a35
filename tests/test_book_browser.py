"""The rendered book in a real browser: every display equation of every chapter page can be read whole, on a
laptop (1280 px) and on a phone (390 px), and the pages request nothing from the book that is not there.

The book built by tests/book_build.py (``book_html``) is served over HTTP on 127.0.0.1 and opened in headless
Chromium through Playwright, with the system's Chromium (Debian's ``chromium`` package, which ``make install`` and
``make test`` install as root when it is missing; Playwright downloads no browser here). For each page and width,
after MathJax has typeset everything, each display equation (``mjx-container[display="true"]``) is scrolled into
view and its glyphs are hit-tested with ``document.elementFromPoint``: a glyph under the sidebar, clipped by an
``overflow: hidden`` ancestor, or off the screen is not hit. The equation's own box may scroll sideways (the
course's CSS makes one wider than the column do so): every glyph must be hit at some scroll position of that box,
its first glyph with the box scrolled fully left and its last with the box scrolled fully right; and the box
itself must stay inside its column. At 1280 px no equation may need scrolling at all (long ones are split).
The counts are printed (``pytest -s``).
"""
from __future__ import annotations

import functools
import http.server
import threading
import time

import pytest
from book_build import toc_chapters

from tools.screenshot import find_chromium

CHAPTERS = toc_chapters()
WIDTHS = {"laptop": 1280, "phone": 390}
MATHJAX_TIMEOUT_MS = 120_000  # generous: a loaded 2-core machine is slow

pytestmark = pytest.mark.skipif(not CHAPTERS, reason="no chapter listed in _toc.yml yet")

# For every display equation: scrolled into view, and its own box scrolled sideways from fully left to fully right,
# is every glyph hit at its centre at some scroll position, its first glyph at its left edge with the box fully
# left, and its last glyph at its right edge with the box fully right? A hit on another part of the same
# equation's body counts (glyphs of a formula touch); a hit on the sidebar, on something beside the equation, or on
# its tag (the equation's body under its number) does not. Returns one record per equation.
MEASURE_JS = r"""
() => {
  const glyphs = (eq) => [...eq.querySelectorAll('mjx-c, mjx-line, mjx-box[style*="border"]')]
      .filter((el) => !el.closest('mjx-assistive-mml'));
  const rect = (el) => el.getBoundingClientRect();
  const hit = (eq, el, x, y) => {
    if (x < 0 || x >= window.innerWidth || y < 0 || y >= window.innerHeight) return false;
    const found = document.elementFromPoint(x, y);
    if (found === null || !eq.contains(found) || found === eq) return found === el;
    return found === el || el.contains(found) || (!!found.closest('mjx-labels') === !!el.closest('mjx-labels'));
  };
  const sources = new Map(Array.from(MathJax.startup.document.math).map((m) => [m.typesetRoot, m.math]));
  const results = [];
  for (const eq of document.querySelectorAll('mjx-container[display="true"]')) {
    const top = rect(eq).top + window.scrollY;
    window.scrollTo(0, Math.max(0, top - window.innerHeight / 3));
    const all = glyphs(eq).filter((el) => rect(el).width > 0 && rect(el).height > 0);
    const seen = new Set();
    const maxScroll = Math.max(0, eq.scrollWidth - eq.clientWidth);
    const positions = [];
    for (let x = 0; x < maxScroll; x += Math.max(20, eq.clientWidth * 0.8)) positions.push(x);
    positions.push(maxScroll);
    let left = false, right = false;
    for (const position of positions) {
      eq.scrollLeft = position;
      for (const el of all) {
        const r = rect(el);
        if (!seen.has(el) && hit(eq, el, r.left + r.width / 2, r.top + r.height / 2)) seen.add(el);
      }
      const rects = all.map((el) => [el, rect(el)]);
      if (!rects.length) break;  // nothing drawn: a TeX error, reported below
      if (position === 0) {
        const [el, r] = rects.reduce((a, b) => (b[1].left < a[1].left ? b : a));
        left = hit(eq, el, r.left + Math.min(1.5, r.width / 2), r.top + r.height / 2);
      }
      if (position === maxScroll) {
        const [el, r] = rects.reduce((a, b) => (b[1].right > a[1].right ? b : a));
        right = hit(eq, el, r.right - Math.min(1.5, r.width / 2), r.top + r.height / 2);
      }
    }
    eq.scrollLeft = 0;
    const tex = (sources.get(eq) || '').trim().replace(/\s+/g, ' ');
    results.push({
      left, right, glyphs: all.length, hidden: all.length - seen.size,
      tex: tex.slice(0, 70),
      tag: (/\\tag\{([^}]*)\}/.exec(tex) || [])[1] || '',
      error: (eq.querySelector('mjx-merror') || {}).textContent || '',
      scrolls: maxScroll > 1,
      overflows: (() => { const r = rect(eq), column = rect(eq.parentElement);  // wider than its column?
        return r.left < column.left - 0.5 || r.right > column.right + 0.5; })(),
    });
  }
  window.scrollTo(0, 0);
  return results;
}
"""


# The first (preferred: what a browser fetches) URL of every @font-face rule on the page, whether or not a glyph
# of that font is shown yet (the widget manager's icon font is only fetched once an icon is drawn).
FONT_URLS_JS = r"""
() => {
  const urls = new Set();
  for (const sheet of document.styleSheets) {
    let rules;
    try { rules = sheet.cssRules; } catch (error) { continue; }  // a cross-origin sheet
    for (const rule of rules) {
      if (!(rule instanceof CSSFontFaceRule)) continue;
      const first = /url\(\s*["']?([^"')]+)["']?\s*\)/.exec(rule.style.getPropertyValue('src'));
      if (first && !first[1].startsWith('data:')) urls.add(new URL(first[1], sheet.href || document.baseURI).href);
    }
  }
  return [...urls];
}
"""


class RecordingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the book quietly; the server's ``errors`` lists every request it answered with an error."""

    def log_request(self, code="-", size="-"):
        if isinstance(code, int) and code >= 400:
            self.server.errors.append(f"{code} {self.path}")

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def site(book_html):
    """The built book served on a free local port: (base URL, the server's list of error answers)."""
    handler = functools.partial(RecordingHandler, directory=str(book_html))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        server.errors = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{server.server_address[1]}/", server.errors
        server.shutdown()


@pytest.fixture(scope="module")
def browser():
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium on this machine (Debian: `apt-get install -y chromium`, which `make install` "
                    "runs as root); the browser test of the book needs one")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


def visit(page, base: str, page_path: str, width: int) -> tuple[list[dict], list[str], int]:
    """Open one page at ``width``; return (equation records, failed same-origin requests, number of .math blocks).

    One browser page serves every visit, so MathJax and its fonts come from the browser's cache after the first.
    """
    failures: list[str] = []
    pending: dict[int, str] = {}  # same-origin requests not finished yet

    def on_request(request):
        if request.url.startswith(base):
            pending[id(request)] = request.url

    def on_failed(request):
        if pending.pop(id(request), None):
            failures.append(f"failed {request.url}: {request.failure}")

    def on_response(response):
        if response.url.startswith(base) and response.status >= 400:
            failures.append(f"{response.status} {response.url}")

    listeners = {"request": on_request, "requestfinished": lambda r: pending.pop(id(r), None),
                 "requestfailed": on_failed, "response": on_response}
    for event, listener in listeners.items():
        page.on(event, listener)
    try:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(base + page_path, wait_until="load")
        page.wait_for_function(
            "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=MATHJAX_TIMEOUT_MS)
        page.evaluate("() => MathJax.startup.promise.then(() => document.fonts.ready).then(() => true)")
        quiet_since, deadline = time.monotonic(), time.monotonic() + 10
        while time.monotonic() < deadline and time.monotonic() - quiet_since < 0.3:  # late requests (fonts)
            page.wait_for_timeout(100)
            if pending:
                quiet_since = time.monotonic()
        failures += [f"never answered: {url}" for url in pending.values()]
        for url in page.evaluate(FONT_URLS_JS):
            if url.startswith(base) and not (response := page.request.head(url)).ok:
                failures.append(f"{response.status} {url} (a font named by the page's CSS)")
        blocks = page.evaluate("() => document.querySelectorAll('div.math').length")
        return page.evaluate(MEASURE_JS), failures, blocks
    finally:
        for event, listener in listeners.items():
            page.remove_listener(event, listener)


@pytest.fixture(scope="module")
def measured(browser, site) -> dict:
    """{(chapter, width name): (records, failures, blocks)} for every chapter page and width."""
    base, _ = site
    context = browser.new_context(device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(MATHJAX_TIMEOUT_MS)
    try:
        return {(chapter, name): visit(page, base, f"{chapter}.html", width)
                for chapter in CHAPTERS for name, width in WIDTHS.items()}
    finally:
        context.close()


def name_of(record: dict) -> str:
    return f"({record['tag']})" if record["tag"] else repr(record["tex"])


def test_every_display_equation_is_visible_whole(measured):
    """At both widths: each equation's box stays inside its column, and every glyph, its first and its last, can be
    seen (scrolling the equation's own box where it is wider than the column)."""
    problems, lines = [], []
    for (chapter, name), (records, _, blocks) in measured.items():
        cut = [r for r in records if not (r["left"] and r["right"]) or r["hidden"] or r["overflows"] or r["error"]]
        lines.append(f"{chapter} at {WIDTHS[name]} px: {len(records)} display equations, {len(cut)} cut off, "
                     f"{sum(r['scrolls'] for r in records)} scroll sideways in their own box")
        assert len(records) >= blocks, f"{chapter}: MathJax typeset {len(records)} of {blocks} display blocks"
        for r in cut:
            what = [f"its {side} end out of sight" for side in ("left", "right") if not r[side]]
            what += [f"{r['hidden']} of its {r['glyphs']} glyphs out of sight"] if r["hidden"] else []
            what += ["a box wider than its column"] if r["overflows"] else []
            what += [f"a TeX error: {r['error']}"] if r["error"] else []
            problems.append(f"{chapter} at {WIDTHS[name]} px: equation {name_of(r)} has {', '.join(what)}")
    print("\n" + "\n".join(lines))
    assert sum(len(records) for records, _, _ in measured.values()), "no display equation found on any page"
    assert not problems, f"{len(problems)} display equations are cut off:\n" + "\n".join(problems)


def test_equations_fit_a_laptop_column(measured):
    """At 1280 px no equation needs scrolling: a long one is split, one relation per line (``aligned``)."""
    wide = [f"{chapter}: equation {name_of(r)}" for (chapter, name), (records, _, _) in measured.items()
            if name == "laptop" for r in records if r["scrolls"]]
    assert not wide, (f"{len(wide)} display equations are wider than the column at {WIDTHS['laptop']} px; split "
                      "them with \\begin{aligned} … \\end{aligned} (the \\tag after it):\n" + "\n".join(wide))


def test_pages_request_nothing_missing(measured, site):
    """No request to the book fails: scripts, styles, MathJax's fonts, the widget manager's fonts (fetched from the
    URLs its CSS names, even when no icon is on screen yet)."""
    _, server_errors = site
    failures = sorted({f for _, found, _ in measured.values() for f in found})
    failures += sorted({e for e in server_errors if not e.endswith(" /favicon.ico")})  # the site's, not the book's
    assert not failures, "requests to the book that failed:\n" + "\n".join(failures)

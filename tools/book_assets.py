"""Put the book's third-party JavaScript (MathJax 3, RequireJS, the ipywidgets embed script) beside the book.

Run by ``make book`` before ``jupyter-book build``; nothing here is committed.

    python -m tools.book_assets            # fetch what is missing (fast no-op when already there)
    python -m tools.book_assets --force    # fetch again

Design
------
``_config.yml`` always points at *local* paths inside ``_static/`` (``mathjax_path`` and myst-nb's
``nb_ipywidgets_js``), and lists ``_build/book_assets`` in ``html_extra_path``, so Sphinx copies
``_build/book_assets/_static/...`` into ``_build/html/_static/...`` as plain files. (Files in the book's own
``_static/`` folder would each be added as a ``<script>`` to every page by Jupyter Book; extra-path files
are only copied.) MathJax is loaded on every page; the two widget scripts only on pages with widget state.

Each package is fetched from the npm registry with ``npm pack`` into ``_build/npm_cache/`` (so later builds
need no network) and the few files the book needs are unpacked under ``_build/book_assets/_static/``.

The widget manager's CSS (its icon font, Font Awesome) names its font files relative to the URI that RequireJS
gives each named module of the embed script (``@jupyter-widgets/controls``,
``@jupyter-widgets/html-manager/dist/libembed-amd``, …): by default a folder of that name beside *each page*
(``solutions/@jupyter-widgets/*.woff2``, ``solutions/@jupyter-widgets/html-manager/dist/*.woff2``), which does
not exist. So the font files are unpacked beside ``embed-amd.js``, and ``html-manager/paths.js`` (loaded between
RequireJS and the embed script, see ``_config.yml``) maps those module folders onto ``_static/html-manager/``.

When npm or the registry is unavailable, this prints one line and writes, at the same local paths, tiny
*loader* files that pull the same scripts from the public CDNs (myst-nb's and Sphinx's defaults). The build
never hangs (npm gets short timeouts and no retries) and never fails for want of these files; the pages then
need the network to show math and widgets, exactly as with Jupyter Book's defaults. The next run retries.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "_build" / "npm_cache"  # npm tarballs, kept between builds
STATIC = ROOT / "_build" / "book_assets" / "_static"  # lands in _build/html/_static/
NPM_TIMEOUT_S = 120  # whole `npm pack` call; the registry itself gets 20 s and no retries
FALLBACK = "// tools/book_assets.py could not fetch this file from npm: load it from the CDN instead.\n"


@dataclass(frozen=True)
class Package:
    spec: str  # what `npm pack` fetches
    tarball_glob: str  # its tarball's name in CACHE, any version
    source: str  # folder or file inside the tarball (under package/)
    target: str  # folder under STATIC; the source's content goes here
    entry: str  # the file _config.yml points at, relative to STATIC
    fallback_js: str  # loader written at `entry` when the package cannot be fetched
    assets: tuple[str, ...] = ()  # further files of the package (globs under package/) unpacked beside the source


def _inject(url: str) -> str:  # for MathJax, which Sphinx loads with `defer`
    return (
        f"{FALLBACK}(function () {{\n"
        '  var s = document.createElement("script");\n'
        f'  s.src = "{url}";\n'
        "  s.async = true;\n"
        "  document.head.appendChild(s);\n"
        "})();\n"
    )


def _write(url: str, attributes: str = "") -> str:  # for the widget scripts: plain, ordered <script>s
    return (
        f"{FALLBACK}document.write('<script src=\"{url}\"{attributes}><\\/script>');\n"
    )


PACKAGES = [
    Package(
        spec="mathjax@3.2.2",  # exact versions: the book is built the same way every time
        tarball_glob="mathjax-3.*.tgz",
        source="es5",
        target="mathjax/es5",
        entry="mathjax/es5/tex-mml-chtml.js",
        fallback_js=_inject("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"),
    ),
    Package(
        spec="requirejs@2.3.8",
        tarball_glob="requirejs-2.*.tgz",
        source="require.js",
        target="require",
        entry="require/require.js",
        fallback_js=_write("https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/require.min.js"),
    ),
    Package(
        spec="@jupyter-widgets/html-manager@1.0.15",
        tarball_glob="jupyter-widgets-html-manager-1.*.tgz",
        source="dist/embed-amd.js",
        target="html-manager",
        entry="html-manager/embed-amd.js",
        fallback_js=_write(
            "https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1/dist/embed-amd.js",
            ' data-jupyter-widgets-cdn="https://cdn.jsdelivr.net/npm/"',
        ),
        assets=("dist/*.woff2", "dist/*.woff"),  # Font Awesome, named by the widgets' CSS (browsers take woff2)
    ),
]
WIDGET_PACKAGE = PACKAGES[-1]
WIDGET_PATHS = "html-manager/paths.js"  # under STATIC; _config.yml loads it after require.js, before embed-amd.js
# The folders of the embed script's named AMD modules (@jupyter-widgets/base, …/html-manager/dist/libembed-amd).
WIDGET_MODULE_DIRS = ("@jupyter-widgets", "@jupyter-widgets/html-manager/dist")
WIDGET_CDN_DIST = "https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1/dist"


def _widget_paths_js(local: bool) -> str:
    """RequireJS config that puts the embed script's module (and so the fonts its CSS names) where they are."""
    if local:
        folder = 'new URL(".", document.currentScript.src).href.replace(/\\/$/, "")'  # _static/html-manager
    else:
        folder = f'"{WIDGET_CDN_DIST}"'
    paths = ", ".join(f'"{module_dir}": folder' for module_dir in WIDGET_MODULE_DIRS)
    return (
        "// Written by tools/book_assets.py: where the widget manager's fonts are (see its docstring).\n"
        f"(function () {{\n  var folder = {folder};\n  require.config({{paths: {{{paths}}}}});\n}})();\n"
    )


class FetchError(RuntimeError):
    pass


def _version_key(path: Path) -> tuple:
    version = path.name.rsplit("-", 1)[-1].removesuffix(".tgz")
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


def _tarball(package: Package) -> Path:
    """The package's tarball in CACHE, fetched with `npm pack` when not there yet."""
    cached = sorted(CACHE.glob(package.tarball_glob), key=_version_key)
    if cached:
        return cached[-1]
    if shutil.which("npm") is None:
        raise FetchError("npm is not installed")
    CACHE.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, npm_config_fetch_retries="0", npm_config_fetch_timeout="20000",
               npm_config_update_notifier="false", npm_config_audit="false", npm_config_fund="false")
    try:
        result = subprocess.run(
            ["npm", "pack", package.spec, "--json", "--pack-destination", str(CACHE)],
            capture_output=True, text=True, timeout=NPM_TIMEOUT_S, env=env, cwd=CACHE,
        )
    except subprocess.TimeoutExpired:
        raise FetchError(f"`npm pack {package.spec}` took over {NPM_TIMEOUT_S} s") from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if "npm error" in line] or [""]
        raise FetchError(f"`npm pack {package.spec}` failed: {lines[0].strip()}")
    try:
        return CACHE / json.loads(result.stdout)[0]["filename"]
    except (ValueError, LookupError):
        raise FetchError(f"`npm pack {package.spec}` printed no tarball name") from None


def _unpack(tarball: Path, package: Package) -> None:
    """Copy package/<source> out of the tarball into STATIC/<target>, replacing what was there."""
    target = STATIC / package.target
    prefix = f"package/{package.source}"
    with tempfile.TemporaryDirectory(dir=STATIC) as tmp, tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if m.name == prefix or m.name.startswith(prefix + "/")]
        if not members:
            raise FetchError(f"{tarball.name} holds no {package.source}")
        assets = [m for m in tar.getmembers() if m.isfile()
                  and any(fnmatch.fnmatch(m.name, f"package/{pattern}") for pattern in package.assets)]
        for pattern in package.assets:
            if not any(fnmatch.fnmatch(m.name, f"package/{pattern}") for m in assets):
                raise FetchError(f"{tarball.name} holds no {pattern}")
        tar.extractall(tmp, members=members + assets, filter="data")
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        unpacked = Path(tmp) / prefix
        if unpacked.is_dir():
            shutil.move(unpacked, target)
        else:
            target.mkdir()
            shutil.move(unpacked, target / unpacked.name)
        for asset in assets:
            shutil.move(Path(tmp) / asset.name, target / Path(asset.name).name)


def _write_fallback(package: Package) -> None:
    target = STATIC / package.target
    shutil.rmtree(target, ignore_errors=True)
    entry = STATIC / package.entry
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(package.fallback_js)


def is_local(package: Package) -> bool:
    """True when the package's real files (not a CDN loader) are in place."""
    entry = STATIC / package.entry
    if not entry.is_file():
        return False
    with entry.open() as file:
        if file.readline() == FALLBACK:
            return False
    return all(any((STATIC / package.target).glob(Path(pattern).name)) for pattern in package.assets)


def ensure_assets(force: bool = False) -> bool:
    """Fetch and unpack every package that is missing; return True when all are local copies."""
    STATIC.mkdir(parents=True, exist_ok=True)
    failure = None
    for package in PACKAGES:
        if is_local(package) and not force:
            continue
        if failure is None:  # once the registry failed, don't wait on it again in this run
            try:
                if force:
                    for old in CACHE.glob(package.tarball_glob):
                        old.unlink()
                _unpack(_tarball(package), package)
                continue
            except (FetchError, OSError, tarfile.TarError) as error:
                failure = error
        _write_fallback(package)
    (STATIC / WIDGET_PATHS).write_text(_widget_paths_js(is_local(WIDGET_PACKAGE)))
    if failure is not None:
        print(f"book_assets: {failure}; the book will load MathJax and the widget scripts from the CDN.")
        return False
    print(f"book_assets: MathJax, RequireJS and the ipywidgets embed script are local ({STATIC.relative_to(ROOT)}).")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="fetch every package again")
    ensure_assets(parser.parse_args(argv).force)
    return 0  # never fail the build: the CDN loaders keep the book working


if __name__ == "__main__":
    sys.exit(main())

"""Publishing the book: the GitHub Actions workflows are valid and do what the README says, and the published book's
repository links follow the repository that publishes it.

- ``.github/workflows/*.yml`` pass actionlint (with shellcheck on their ``run:`` scripts), offline, so a broken
  workflow fails here rather than after a push; and actionlint does reject a broken one.
- ``book.yml``: on a push to main, installs and builds with the README's command (``make book``), restores and saves
  Jupyter Book's execution cache, sets ``COURSE_REPOSITORY_URL`` to the repository it runs in, and deploys
  ``_build/html`` to GitHub Pages. ``test.yml``: ``make test`` on pull requests.
- A book built with ``COURSE_REPOSITORY_URL`` set (tests/book_build.py builds it so) links its Colab buttons and
  links, the ``pip install git+…`` line and the repository and issues buttons to that repository, not to
  ``_config.yml``'s.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml
from book_build import FORK_REPOSITORY_URL, toc_chapters

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name if (BIN / name).is_file() else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: `make install` installs it from requirements.txt")
    return str(path)


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool("actionlint"), "-no-color", "-oneline", "-shellcheck", tool("shellcheck"), "-pyflakes", "",
         *map(str, files)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )


def workflow(name: str) -> dict:
    text = (WORKFLOWS / name).read_text()
    data = yaml.safe_load(text)
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def steps(job: dict) -> list[dict]:
    return job.get("steps", [])


def uses(job: dict, action: str) -> list[dict]:
    return [step for step in steps(job) if step.get("uses", "").split("@")[0] == action]


def test_workflows_pass_actionlint():
    files = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))
    assert {f.name for f in files} >= {"book.yml", "test.yml"}, f"workflows in {WORKFLOWS}: {files}"
    result = actionlint(*files)
    assert result.returncode == 0, "actionlint found problems in the workflows:\n" + result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path):
    broken = (WORKFLOWS / "test.yml").read_text().replace("runs-on:", "run-on:").replace(
        "run: make test", 'run: echo "${{ github.event.pull_request.titel }}" && make test $UNQUOTED')
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    path = tmp_path / ".github" / "workflows" / "broken.yml"
    path.write_text(broken)
    result = actionlint(path)
    assert result.returncode != 0, "actionlint passed a workflow with a misspelt key"
    assert "run-on" in result.stdout, result.stdout


def test_book_workflow_builds_and_deploys_on_push_to_main():
    book = workflow("book.yml")
    assert book["on"]["push"]["branches"] == ["main"], book["on"]
    assert book["permissions"].get("pages") == "write" and book["permissions"].get("id-token") == "write", \
        "deploying to Pages needs `pages: write` and `id-token: write`"
    assert book.get("concurrency", {}).get("group"), "two deployments must not run at once"
    build, deploy = book["jobs"]["build"], book["jobs"]["deploy"]
    runs = [step for step in steps(build) if "run" in step]
    assert [step["run"].strip() for step in runs] == ["make book"], "the book is built with the README's command"
    assert runs[0]["env"]["COURSE_REPOSITORY_URL"] == "${{ github.server_url }}/${{ github.repository }}", \
        "the published links must point at the repository the workflow runs in"
    python = uses(build, "actions/setup-python")
    assert python and str(python[0]["with"]["python-version"]) == "3.11", "the course is tested on Python 3.11"
    cache = uses(build, "actions/cache")
    assert cache and cache[0]["with"]["path"] == "_build/.jupyter_cache", "the execution cache is not restored"
    assert "restore-keys" in cache[0]["with"], "without restore-keys every changed chapter re-executes them all"
    order = [step.get("uses", step.get("run", "")).split("@")[0] for step in steps(build)]
    assert order.index("actions/cache") < order.index("make book"), "restore the cache before building"
    artifact = uses(build, "actions/upload-pages-artifact")
    assert artifact and artifact[0]["with"]["path"] == "_build/html"
    assert deploy["needs"] == "build" and uses(deploy, "actions/deploy-pages")
    assert deploy["environment"]["name"] == "github-pages"


def test_execution_cache_is_where_the_book_keeps_it():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "cache"
    assert config["execute"].get("cache", "") == "", "the workflow caches _build/.jupyter_cache (execute.cache: '')"


def test_pull_requests_run_make_test():
    test = workflow("test.yml")
    assert "pull_request" in test["on"], test["on"]
    runs = [step["run"].strip() for job in test["jobs"].values() for step in steps(job) if "run" in step]
    assert runs == ["make test"], runs


def test_the_workflows_run_the_readmes_commands():
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^make book\b", readme, re.M) and re.search(r"^make test\b", readme, re.M)


# ----- the repository the links point at

def load_course_links():
    sys.path.insert(0, str(ROOT / "_ext"))
    try:
        import course_links
    finally:
        sys.path.remove(str(ROOT / "_ext"))
    return course_links


@pytest.mark.parametrize("environment, expected", [
    ({}, "https://github.com/the-course/repo"),
    ({"COURSE_REPOSITORY_URL": "https://github.com/someone/fork/"}, "https://github.com/someone/fork"),
])
def test_repository_url_comes_from_the_environment_else_config(monkeypatch, environment, expected):
    course_links = load_course_links()
    monkeypatch.delenv("COURSE_REPOSITORY_URL", raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    config = types.SimpleNamespace(html_theme_options={"repository_url": "https://github.com/the-course/repo",
                                                       "repository_branch": "main"})
    course_links.repository_from_environment(None, config)
    assert config.html_theme_options["repository_url"] == expected
    assert config.course_repository_url == expected  # a new URL re-reads every page (its Colab links)
    assert course_links.colab_url(config, "chapters/01_attention.ipynb") == \
        f"https://colab.research.google.com/github/{expected.removeprefix('https://github.com/')}" \
        "/blob/main/chapters/01_attention.ipynb"


def test_built_book_links_follow_the_repository_url(book_html):
    configured = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")
    assert FORK_REPOSITORY_URL != configured
    fork = FORK_REPOSITORY_URL.removeprefix("https://github.com/")
    for chapter in toc_chapters():
        page = (book_html / f"{chapter}.html").read_text()
        name = chapter.split("/")[-1]
        colab = re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', page)
        assert len(colab) >= 2, f"{chapter}: expected the box's and the header's Colab links, found {colab}"
        assert set(colab) == {f"https://colab.research.google.com/github/{fork}/blob/main/chapters/{name}.ipynb"}
        assert f'<span class="pre">git+{FORK_REPOSITORY_URL}</span>' in page, f"{chapter}: the pip install line"
        assert f'href="{FORK_REPOSITORY_URL}"' in page, f"{chapter}: the repository button"
        assert f'{FORK_REPOSITORY_URL}/issues' in page, f"{chapter}: the issues button"
        assert configured not in page, f"{chapter} still links to _config.yml's {configured}"

"""Teach pytest (with nbval's --nbval-lax) to run the jupytext MyST notebooks in solutions/ as notebooks.

nbval only collects .ipynb files; our single source is solutions/NN_slug.md. ``MystNotebook`` is nbval's own
collector with the notebook read by jupytext instead of nbformat, so nothing is converted on disk.

It also registers the course's markers (one per exercise, one per chapter) and gives every test its chapter's.
"""
import types
from unittest import mock

import jupytext
import nbval.plugin
import pytest

from utils import conventions

collect_ignore_glob = ["chapters/*", "_build/*", ".venv/*"]  # student notebooks have their own test


class MystNotebook(nbval.plugin.IPyNbFile):
    """A solutions/*.md notebook, executed cell by cell by nbval."""

    def collect(self):
        reader = types.SimpleNamespace(read=lambda path, as_version: jupytext.read(path))
        with mock.patch.object(nbval.plugin, "nbformat", reader):
            return list(super().collect())


def pytest_collect_file(file_path, parent):
    option = parent.config.option
    is_solution = file_path.parent.name == "solutions" and conventions.CHAPTER_FILE.match(file_path.name)
    if getattr(option, "nbval_lax", False) and is_solution:
        return MystNotebook.from_parent(parent, path=file_path)
    return None


# ----- markers: one per exercise (`pytest -m ex2_4`), one per chapter (`pytest -m chapter02`, `make test CHAPTER=02`)
def pytest_configure(config):
    config.addinivalue_line("markers", "heldout: wrong answers written after the checks, never tuned on")
    for chapter in conventions.chapters():
        config.addinivalue_line("markers", f"{conventions.marker(chapter)}: the tests of chapter {chapter}")
        for exercise in conventions.exercises(chapter):
            config.addinivalue_line("markers", f"{conventions.marker(exercise)}: the tests of exercise {exercise}")


def pytest_collection_modifyitems(config, items):
    """Give each test its chapter's marker: from its exercise marker, its module's ``CHAPTER``, a ``chapter``
    parameter, or (nbval) the solution notebook it runs."""
    slugs = {slug[:2]: slug for slug in conventions.chapters()}
    for item in items:
        found = set()
        for mark in item.iter_markers():
            if mark.name.startswith("ex") and "_" in mark.name:
                found.add(mark.name[2:].split("_")[0].zfill(2))
        module_chapter = getattr(getattr(item, "module", None), "CHAPTER", None)
        if module_chapter:
            found.add(module_chapter[:2])
        parameter = getattr(getattr(item, "callspec", None), "params", {}).get("chapter")
        if isinstance(parameter, str):
            found.add(parameter[:2])
        if item.path.parent.name == "solutions" and conventions.CHAPTER_FILE.match(item.path.name):
            found.add(item.path.name[:2])
        for number in found & set(slugs):
            item.add_marker(getattr(pytest.mark, conventions.marker(slugs[number])))

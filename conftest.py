"""Teach pytest (with nbval's --nbval-lax) to run the jupytext MyST notebooks in solutions/ as notebooks.

nbval only collects .ipynb files; our single source is solutions/NN_slug.md. ``MystNotebook`` is nbval's own
collector with the notebook read by jupytext instead of nbformat, so nothing is converted on disk.
"""
import types
from unittest import mock

import jupytext
import nbval.plugin

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
    if getattr(option, "nbval_lax", False) and file_path.parent.name == "solutions" and conventions.CHAPTER_FILE.match(file_path.name):
        return MystNotebook.from_parent(parent, path=file_path)
    return None

"""Fixtures shared by the test modules of tests/ (the root conftest.py teaches pytest the notebooks)."""
from book_build import book_build, book_html  # noqa: F401 - fixtures: the book, built once per run

"""Checks for the exercises: one module per chapter (``from utils.checks import attention``).

A check takes the learner's object, runs it on seeded inputs of several shapes, compares it with a reference
(PyTorch's own op where one exists) and, on failure, raises :class:`CheckFailure` with a message that names the
mistake. On success it prints one line.
"""
from utils.checks.core import CheckFailure, LearnerError

__all__ = ["CheckFailure", "LearnerError"]

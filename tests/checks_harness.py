"""One way to test a check: it passes on the reference, and it names a wrong answer in words the learner can act on.

    from tests.checks_harness import assert_diagnoses, assert_passes, exercise

    @exercise("1.1")                       # the marker `ex1_1` (run one exercise: pytest -m ex1_1)
    def test_reference_passes():
        assert_passes(checks.check_attention_weights, weights_ok)

    @exercise("1.1")
    def test_forgot_the_scale():
        assert_diagnoses(checks.check_attention_weights, weights_no_scale, "√d_k")

Wrong answers are written as a learner writes them (a function or class with the exercise's signature), never
built from the check's own references, so a diagnosis that drifts away from real mistakes shows up here.
"""
from __future__ import annotations

import contextlib
import io
import re

import pytest

from utils import conventions
from utils.checks import CheckFailure, LearnerError


def exercise(exercise_id: str):
    """The pytest marker of one exercise: ``@exercise("2.4")`` is ``@pytest.mark.ex2_4`` (see tests/conftest.py)."""
    return getattr(pytest.mark, conventions.marker(exercise_id))


def _run(check, answer):
    """A check takes one learner object, or several (``check_fourier_mixing(dft_matrix, fourier_mixing)``)."""
    return check(*answer) if isinstance(answer, tuple) else check(answer)


def assert_passes(check, reference) -> str:
    """``check(reference)`` passes and prints its one success line; returns that line. ``reference`` may be a
    tuple when the check takes several objects."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        _run(check, reference)
    lines = printed.getvalue().strip().splitlines()
    assert lines and "✓ Exercise" in lines[-1] and " passed: " in lines[-1], \
        f"no success line: {printed.getvalue()!r}"
    return lines[-1]


def assert_diagnoses(check, wrong, *words: str, error: type[Exception] | tuple = (CheckFailure, LearnerError)) -> str:
    """``check(wrong)`` raises ``error`` whose message contains every one of ``words`` (case-insensitive; a word
    starting with ``re:`` is a regular expression) and is not only a vague "differs". Returns the message."""
    assert words, "say which words the diagnosis must contain"
    with contextlib.redirect_stdout(io.StringIO()):
        with pytest.raises(error) as caught:
            _run(check, wrong)
    message = str(caught.value)
    assert message.startswith("Exercise "), f"a diagnosis starts with 'Exercise N.M': {message}"
    for word in words:
        found = re.search(word[3:], message, re.IGNORECASE) if word.startswith("re:") else \
            word.lower() in message.lower()
        assert found, f"the diagnosis should mention {word!r}; it says: {message}"
    return message


def assert_stub_passes_through(check, stub_answer) -> None:
    """An untouched stub's NotImplementedError reaches the learner unchanged (its message names the exercise)."""
    with pytest.raises(NotImplementedError, match=conventions.STUB_EXERCISE.pattern):
        check(stub_answer)

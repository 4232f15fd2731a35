"""What every chapter's checks share: running the learner's code and diagnosing a wrong tensor."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


def seeded_randn(*shape, seed: int, dtype=torch.float32) -> torch.Tensor:
    """Standard normal numbers that depend only on ``seed``, not on the global generator the learner's code uses."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


class CheckFailure(AssertionError):
    """A check found a mistake in the learner's code; the message says which and what to try."""


class LearnerError(RuntimeError):
    """The learner's code raised an exception inside a check (its traceback is chained above this one)."""


def call(fn: Callable, *args, exercise: str, what: str, **kwargs):
    """Call the learner's ``fn``; an exception it raises is reported as theirs, not the check's.

    ``NotImplementedError`` (an untouched stub) passes through unchanged, so a learner sees the stub's own
    message, "Exercise 1.3: write the body of ...".
    """
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001 - any error in the learner's code is reported as theirs
        hint = _hint_for_exception(error)
        raise LearnerError(
            f"Exercise {exercise}: your {what} raised {type(error).__name__}: {str(error).rstrip('.')}."
            f"{hint} The traceback above ends at the line in your code."
        ) from error


def _hint_for_exception(error: Exception) -> str:
    text = str(error)
    matmul_errors = ("must match the size", "cannot be multiplied", "mat1 and mat2", "batch2 tensor")
    if any(message in text for message in matmul_errors):
        return " These shapes don't fit a matmul: is a transpose missing, or on the wrong axes?"
    if "einops" in type(error).__module__:
        return " Check the einops pattern's axis names against the tensor's shape."
    return ""


@dataclass
class Mistake:
    """A known wrong answer: what it computes (a tensor) and the hint to give when the learner's matches it."""

    output: torch.Tensor
    hint: str


def diagnose(
    got,
    expected: torch.Tensor,
    *,
    exercise: str,
    case: str,
    mistakes: tuple[Mistake | None, ...] = (),
    atol: float = 1e-5,
    rtol: float = 1e-4,
    name: str = "output",
    otherwise: str = "",
) -> None:
    """Raise :class:`CheckFailure` unless ``got`` matches ``expected``; the message names the likely mistake.

    The order matters: type, shape, dtype, a match, a match with a known mistake (NaNs included), NaN/inf, a
    constant factor, and last a plain "differs" with the worst entry, followed by ``otherwise`` (where else to look).
    """
    where = f"Exercise {exercise} ({case}), your {name}"
    if not isinstance(got, torch.Tensor):
        raise CheckFailure(f"{where}: got a {type(got).__name__}, not a torch.Tensor. Did you forget to return it?")
    if got.shape != expected.shape:
        hint = ""
        if got.dim() >= 2 and got.transpose(-1, -2).shape == expected.shape:
            hint = " That is the expected shape with its last two axes swapped: is it transposed?"
        raise CheckFailure(f"{where}: shape {tuple(got.shape)} but expected {tuple(expected.shape)}.{hint}")
    if got.dtype != expected.dtype:
        raise CheckFailure(f"{where}: dtype {got.dtype} but expected {expected.dtype} (the inputs' dtype). "
                           f"Avoid hard-coded dtypes such as torch.float32 or .float().")
    got, expected = got.detach(), expected.detach()
    if torch.allclose(got, expected, atol=atol, rtol=rtol):
        return
    for mistake in filter(None, mistakes):  # a None entry is a mistake that cannot happen for this case
        wrong = mistake.output.detach()
        if wrong.shape == got.shape and torch.allclose(got, wrong, atol=atol, rtol=rtol, equal_nan=True):
            raise CheckFailure(f"{where}: {mistake.hint}")
    if not torch.isfinite(got).all():
        bad = (~torch.isfinite(got)).nonzero()[0].tolist()
        raise CheckFailure(f"{where}: contains NaN or inf (first at index {bad}). A row whose scores are all "
                           f"-inf gives NaN after softmax; a division by zero gives inf.")
    factor = constant_factor(got, expected)
    if factor is not None:
        raise CheckFailure(f"{where}: {factor:.4g} × the expected values everywhere: a constant factor is off "
                           f"(a scale such as √d or 1/n applied twice, or missing).")
    worst = (got - expected).abs().flatten().argmax()
    index = list(torch.unravel_index(worst, got.shape))
    message = (f"{where}: differs from the reference: at index {[int(i) for i in index]} you have "
               f"{got.flatten()[worst].item():.6g}, expected {expected.flatten()[worst].item():.6g} "
               f"(max abs difference {(got - expected).abs().max().item():.3g}).")
    raise CheckFailure(f"{message} {otherwise}" if otherwise else message)


def constant_factor(got: torch.Tensor, expected: torch.Tensor, tolerance: float = 1e-3) -> float | None:
    """The constant c with got ≈ c · expected, if there is one (and it is not 1)."""
    big = expected.abs() > 1e-3 * expected.abs().max().clamp_min(1e-12)
    if big.sum() < 2:
        return None
    ratios = got[big] / expected[big]
    factor = ratios.median().item()
    if abs(factor - 1) < tolerance or not torch.allclose(ratios, torch.full_like(ratios, factor), rtol=tolerance):
        return None
    return factor


def passed(exercise: str, summary: str) -> None:
    """The one line a check prints on success."""
    print(f"✓ Exercise {exercise} passed: {summary}")

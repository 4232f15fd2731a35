"""What every exercise of Chapter 01 shares: the exercises, the chapter's case, its readings of exceptions, the
references, and the comparison that names the axes."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from utils.checks.attention.roles import Roles, learner_call, read_roles
from utils.checks.core import (
    Case,
    Exercise,
    nonfinite_origin,
    structure_problem,
)
from utils.checks.origins import decisive

EX_WEIGHTS = Exercise("1.1", "attention_weights")


EX_SOFTMAX_BACKWARD = Exercise("1.2", "softmax_backward")


EX_FUNCTION = Exercise("1.3", "AttentionFunction")


EX_HEADS = Exercise("1.4", "MultiHeadSelfAttention")


EX_TILED = Exercise("1.5", "tiled_attention")


EX_DFT = Exercise("1.6", "dft_matrix")


EX_MIXING = Exercise("1.6", "fourier_mixing")


BATCH_AXES = ("B", "H")


FLOAT64_TOLERANCE = (1e-11, 1e-10)  # (atol, rtol): every float64 reference here is right to ~1e-14


SHIFT = -2e4  # added to every score of a row in the cases that test invariance to a constant shift


_BROADCAST = re.compile(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)")


MATMUL = re.compile(r"cannot be multiplied|Expected size for first two dimensions|size mismatch")


INVALID_GRADIENT = re.compile(r"returned an invalid gradient at index (\d+) - got \[([\d, ]*)\]")


_BMM_INNER = re.compile(r"batch2 tensor to be: \[\d+, (\d+)\] but got: \[\d+, (\d+)\]")


_MM_INNER = re.compile(r"shapes cannot be multiplied \(\d+x(\d+) and (\d+)x\d+\)")


def matmul_inner_sizes(error: BaseException) -> tuple[int, int] | None:
    """(the first operand's last size, the second's rows) of a matrix product that failed, or None."""
    match = _BMM_INNER.search(str(error)) or _MM_INNER.search(str(error))
    return (int(match.group(1)), int(match.group(2))) if match else None


def broadcast_sizes(error: BaseException) -> set[int] | None:
    """The two sizes of a failed broadcast, or None when the error is no broadcast."""
    match = _BROADCAST.search(str(error))
    return {int(match.group(1)), int(match.group(2))} if match else None


_FIXED_AXES = re.compile(r"does not match the length of the desired ordering|number of subscripts in the equation "
                         r"\(\d+\) does not match the number of dimensions|(too many|not enough) values to unpack")


def code_reading(error: BaseException, line: str, layout: str) -> str | None:
    """Readings of exceptions that any exercise of the chapter can raise: a (values, indices) pair used as a
    tensor, code written for a fixed number of axes, a Jacobian built for one row only. ``layout`` is the shape the
    exercise's input may have ("(..., Tq, d_k)")."""
    text = str(error)
    if "torch.return_types." in text:
        return ("max(dim=…) (like min, sort and topk) returns a pair (values, indices), not a tensor: take its "
                ".values, or use amax(dim=-1, keepdim=True), which returns the values only.")
    if _FIXED_AXES.search(text) and ("unpack" not in text or ".shape" in line or ".size(" in line):
        return (f"Your code assumes a fixed number of axes, but the input may have any number of leading (batch) "
                f"axes, {layout}, and this case's has another number: count axes from the end — x.shape[-2:], "
                f"k.transpose(-2, -1), '...' in einsum and rearrange patterns.")
    if "Expected 1-D argument" in text or ("diag" in line and "must be 1D or 2D" in text):
        return ("torch.outer and torch.diag work on a single row (a 1-D vector), but p has leading axes (…, T): "
                "for a batch use p[..., :, None] * p[..., None, :] and torch.diag_embed(p) — or, better, eq. (1.5), "
                "which needs no Jacobian.")
    return None


@dataclass(frozen=True)
class ChapterCase(Case):
    """A case of this chapter: it reads the learner's exceptions in its exercise's quantities (``roles``: which
    tensor is not what it should be), then in its exercise's terms (``own_reading``), then with the chapter's
    common readings (:func:`code_reading`)."""

    @property
    def layout(self) -> str:
        return "(..., T, d)"

    @property
    def roles(self) -> Roles | None:
        """The exercise's quantities and products, with this case's sizes (see :mod:`.roles`); None: none."""
        return None

    @property
    def quantities(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """The roles' quantities in core's terms: each name a learner gives one, with its symbol and its shape in
        this case (the batch axes of the case before a layout that does not name them)."""
        roles = self.roles
        if roles is None:
            return {}
        batch = [size for axis, size in roles.sizes.items() if axis in BATCH_AXES]
        found = {}
        for quantity in roles.quantities:
            layout = roles.layout_sizes(quantity.layouts[0])
            if layout is None:
                continue
            shape = layout if quantity.layouts[0][0] in BATCH_AXES else (*batch, *layout)
            symbol = f"{quantity.symbol} ({quantity.meaning})" if quantity.meaning else quantity.symbol
            for alias in quantity.aliases:
                found.setdefault(alias, (symbol, tuple(shape)))
        return found

    def own_reading(self, error: BaseException, line: str) -> str | None:
        return None

    def explain(self, error: BaseException, line: str) -> str | None:
        roles = self.roles
        return (read_roles(error, line, roles) if roles else None) or self.own_reading(error, line) or \
            code_reading(error, line, self.layout)


def run_learner(exercise: Exercise, fn: Callable, *args, case: Case | str, what: str | None = None, **kwargs):
    """``exercise.call`` that remembers the call, so that a shape error can be read in the exercise's quantities
    (:func:`.roles.read_roles` runs it once more to see the operands and the learner's variables)."""
    with learner_call(fn, args, kwargs):
        return exercise.call(fn, *args, what=what, case=case, **kwargs)


def causal_mask(t: int) -> torch.Tensor:
    """(T, T) bool, True on and below the diagonal: query i may attend to keys 0..i."""
    return torch.ones(t, t, dtype=torch.bool).tril()


def reference_attention_weights(q, k, mask=None):
    """softmax(Q Kᵀ / √d_k) over the keys, forbidden scores set to −∞ first: PyTorch's own softmax.  (..., Tq, Tk)"""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    return scores.softmax(dim=-1)


def compare_answer(exercise: Exercise, got, expected: torch.Tensor, case: Case, *, equation: str, name: str = "output",
                   axes: Sequence[str] | None = None, nonfinite: str | Callable | None = None,
                   transposed: str = "", **kwargs) -> None:
    """``exercise.compare`` with three additions: a wrong shape is spelled with the axes' names; an answer laid out
    with its last two axes swapped is transposed back and read by the probes, after ``transposed`` (what such a
    layout means in the exercise: "the scores K Qᵀ, one row per key"); and NaN/inf gets a reading of its own where
    the check has one (``nonfinite``: a message, or a function of the answer that returns one or None), e.g. in a
    case built to make e^s overflow."""
    if expected.dtype == torch.float64:  # a single float32 rounding (≈ 6e-8) must not pass a float64 case
        kwargs.setdefault("atol", FLOAT64_TOLERANCE[0])
        kwargs.setdefault("rtol", FLOAT64_TOLERANCE[1])
    swapped = transposed_reading(got, expected, axes, transposed, kwargs.get("probes", ()))
    if swapped:
        raise exercise.fail(swapped, case=case, name=name)
    if isinstance(got, torch.Tensor) and got.shape != expected.shape and axes and len(axes) == expected.dim():
        named = ", ".join(f"{axis}={size}" for axis, size in zip(axes, expected.shape))
        problem = structure_problem(got, expected, case.sizes, case.quantities, name)
        raise exercise.fail(f"{problem} The expected axes are ({named}).", case=case,
                            name=name)
    if nonfinite and structure_problem(got, expected) is None and not torch.isfinite(got).all() \
            and torch.isfinite(expected).all():
        # the operation of their code that made the first NaN/inf, when it can be read, says more than any guess
        origin = nonfinite_origin(exercise.id, case, "NaN" if torch.isnan(got).any() else "inf", generic=False)
        message = nonfinite(got) if callable(nonfinite) else nonfinite
        message = origin if decisive(origin) else " ".join(filter(None, (origin, message)))  # the fact, then why
        if message:
            raise exercise.fail(message, case=case, name=name)
    exercise.compare(got, expected, case=case, equation=equation, name=name, axes=axes, **kwargs)


def transposed_reading(got, expected: torch.Tensor, axes: Sequence[str] | None, meaning: str,
                       probes: Sequence[Callable]) -> str | None:
    """An answer of shape (…, b, a) where (…, a, b) is expected (a ≠ b): its layout, what that layout means
    (``meaning``), and what the probes find in it once transposed back (a softmax over the wrong axis, …)."""
    if not meaning or not isinstance(got, torch.Tensor) or expected.dim() < 2 or got.dim() != expected.dim() or \
            expected.shape[-1] == expected.shape[-2] or got.shape != (*expected.shape[:-2], *expected.shape[-2:][::-1]):
        return None
    names = list(axes) if axes and len(axes) == expected.dim() else [str(size) for size in expected.shape]
    yours = ", ".join(f"{axis}={size}" for axis, size in zip([*names[:-2], names[-1], names[-2]], got.shape))
    head = (f"shape {tuple(got.shape)} = ({yours}), the expected ({', '.join(names)}) with its last two axes "
            f"swapped: {meaning}")
    back = got.detach().transpose(-2, -1)
    if back.dtype == expected.dtype and torch.allclose(back, expected, atol=1e-5, rtol=1e-4):
        return head + " Your numbers are right once transposed: return them as (…, " + ", ".join(names[-2:]) + ")."
    for probe in probes:
        found = probe(back) if back.dtype == expected.dtype else None
        if found:
            return head + " Transposed back, " + found
    return head


def entry_text(index: Sequence[int], batch_names: Sequence[str] = ()) -> str:
    """"query 2, key 4 (b=1)" for an index (..., i, j) of a weights tensor."""
    *batch, i, j = (int(n) for n in index)
    where = f"query {i}, key {j}"
    if batch:
        names = list(batch_names)[-len(batch):] if len(batch_names) >= len(batch) else [f"axis {a}" for a in
                                                                                        range(len(batch))]
        where += " (" + ", ".join(f"{n}={b}" for n, b in zip(names, batch)) + ")"
    return where


def is_close(a: float, b: float, rtol: float = 2e-3, atol: float = 1e-9) -> bool:
    return abs(a - b) <= rtol * abs(b) + atol


def shift_scores(q: torch.Tensor, k: torch.Tensor, shift: float):
    """q, k with their first feature replaced so that every score q·k/√d_k gains ``shift`` (the same for every key
    of a row, so the right weights are unchanged)."""
    d_k = q.shape[-1]
    size = math.sqrt(abs(shift) * math.sqrt(d_k))
    q, k = q.clone(), k.clone()
    q[..., 0] = size
    k[..., 0] = math.copysign(size, shift)
    return q, k


def overflow_text(case, subject: str) -> str | None:
    """The reading of NaN/inf in a case built so that e^s overflows or underflows."""
    if getattr(case, "score_shift", 0.0):
        return (f"NaN/inf where every score of a row is about {case.score_shift:.0e}. The right {subject} are "
                f"the same as without that shift: adding one number to every score of a row changes no softmax "
                f"(J·1 = 0 under eq. (1.4)). But e^(−2·10⁴) underflows to 0 for every key, and 0/0 = NaN: subtract "
                f"each row's maximum from its scores before exponentiating (or use torch.softmax, which does).")
    if getattr(case, "input_scale", 1.0) > 1:
        return ("NaN/inf on large scores (e^s overflows above s ≈ 88 in float32, and underflows to 0 for every key "
                "of a row far below it, giving 0/0). Subtract each row's maximum from its scores before "
                "exponentiating: softmax(s) = softmax(s − max_j s_j) (J·1 = 0 under eq. (1.4)).")
    return None


def once(compute: Callable[[], str | None]) -> Callable[[], str | None]:
    """``compute`` run at most once (probes that run the learner's code again are asked from several places)."""
    cache = []

    def cached():
        if not cache:
            cache.append(compute())
        return cache[0]
    return cached


def softmax_backward_reference(p: torch.Tensor, grad_p: torch.Tensor) -> torch.Tensor:
    """Eq. (1.5): p ⊙ (g − ⟨g, p⟩) over the last axis."""
    return p * (grad_p - (grad_p * p).sum(-1, keepdim=True))

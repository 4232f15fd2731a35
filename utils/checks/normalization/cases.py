"""The exercises of Chapter 02, their cases (explicit fields: shapes, eps, momentum, groups), small numbers."""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch

from utils.checks.core import Case, CheckFailure, Exercise

EX_BACKWARD = Exercise("2.1", "batch_norm_backward")
EX_FUNCTION = Exercise("2.2", "BatchNormFunction")
EX_MODULE = Exercise("2.3", "BatchNorm2d")
EX_LAYER = Exercise("2.4", "LayerNorm")
EX_INSTANCE = Exercise("2.5", "InstanceNorm2d")
EX_GROUP = Exercise("2.6", "GroupNorm")
EX_RMS = Exercise("2.7", "RMSNorm")

IMAGE_AXES = ("N", "C", "H", "W")
STATISTICS = (0, 2, 3)  # BatchNorm2d's reduction axes: every example and pixel of a channel


# ============================================================================================== cases
NONFINITE = ("In a normalisation NaN comes from the square root of a negative number — take the root of σ² + ε "
             "(σ² = mean((x − μ)²) ≥ 0; RMSNorm: mean(x²) + ε), not of a mean or a difference, which can be "
             "negative (are two statistics swapped?) — or from a division by zero, 0/0.")


@dataclass(frozen=True)
class ImageCase(Case):
    """An (N, C, H, W) batch: its shape, eps, the spread of its values; ``groups`` for GroupNorm."""

    shape: tuple = (4, 3, 5, 5)
    eps: float = 1e-5
    scale: float = 1.0  # standard deviation of the input's values: ×0.01 makes eps matter
    groups: int = 1
    offset: float = 0.0  # added to every value: a large mean, where a one-pass E[x²] − μ² loses its digits

    @property
    def sizes(self) -> dict[str, int]:
        N, C, H, W = self.shape
        grouped = {"G": self.groups, "C/G": C // self.groups} if self.groups > 1 else {}  # (N, G, C/G, H, W) too
        return {"N": N, "C": C, "H": H, "W": W, **grouped}

    @property
    def nonfinite_causes(self) -> str:
        return NONFINITE

    @property
    def size_sources(self) -> dict[str, str]:
        return {"N, C, H, W": "x.shape", "G": "self.num_groups"} if self.groups > 1 else {}

    @property
    def quantities(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        C = self.shape[1]
        return {"x_hat": ("x̂", self.shape), "grad_out": ("dL/dy", self.shape),  # not x: often reassigned
                "weight": ("γ", (C,)), "bias": ("β", (C,)), "inv_std": ("s = 1/√(σ² + ε)", (C,))}

    @property
    def tolerance(self) -> tuple[float, float]:
        atol, rtol = super().tolerance  # x − μ of values near a large mean keeps fewer digits, in any correct code
        return (10 * atol, rtol) if abs(self.offset) >= LARGE_MEAN else (atol, rtol)

    @property
    def m(self) -> int:  # values per channel for BatchNorm: N·H·W
        N, _, H, W = self.shape
        return N * H * W


@dataclass(frozen=True)
class ModuleCase(ImageCase):
    """BatchNorm2d over three training steps and then eval mode."""

    momentum: float | None = 0.1

    @property
    def none_means(self) -> dict[str, tuple[str, str]]:
        return {"momentum": ("a cumulative average, α = 1/num_batches_tracked (eq. (2.9))", "α = 1 / "
                             "self.num_batches_tracked.item() if self.momentum is None else self.momentum")}

    def explain(self, error: BaseException, line: str) -> str | None:
        if self.momentum is None and isinstance(error, ZeroDivisionError):
            return ("With momentum=None, α = 1/num_batches_tracked counts this batch too: add 1 to "
                    "num_batches_tracked first, then compute α (α = 1/1 at the first training step, eq. (2.9)).")
        return None


@dataclass(frozen=True)
class TrailingCase(Case):
    """LayerNorm / RMSNorm: an input of any rank normalised over its last ``len(normalized_shape)`` axes."""

    shape: tuple = (2, 5, 8)
    normalized_shape: int | tuple = 8
    axes: tuple = ("B", "T", "D")  # the names of the input's axes, for messages
    eps: float | None = 1e-5
    scale: float = 2.0
    offset: float = 0.5  # a nonzero mean, so that not subtracting it shows; a large one for a one-pass E[x²] − μ²

    @property
    def trailing(self) -> tuple[int, ...]:
        return (self.normalized_shape,) if isinstance(self.normalized_shape, int) else tuple(self.normalized_shape)

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(range(-len(self.trailing), 0))

    @property
    def sizes(self) -> dict[str, int]:
        return dict(zip(self.axes, self.shape))

    @property
    def nonfinite_causes(self) -> str:
        return NONFINITE

    @property
    def none_means(self) -> dict[str, tuple[str, str]]:
        return {"eps": ("ε = torch.finfo(x.dtype).eps, the machine epsilon of the input's dtype, as in nn.RMSNorm "
                        "(eq. (2.12))", "eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps")}


LARGE_MEAN = 10.0  # an offset at least this large is a case built for the cancellation of E[x²] − μ²


def large_offset(case: Case) -> float:
    """The case's offset when it is a large mean (0.0 otherwise): the precision probe runs on such cases only."""
    offset = getattr(case, "offset", 0.0) or 0.0
    return offset if abs(offset) >= LARGE_MEAN else 0.0


class _NamedFirst:
    """Run on past a case whose failure got only the generic fallback ("compare … term by term"), and report the
    first case that names the mistake: each mistake shows most clearly on some input (ε on tiny ones, x where x̂
    belongs on large ones), so the order of the cases must not decide between a vague and a precise message."""

    def __init__(self):
        self.vague: CheckFailure | None = None

    @contextlib.contextmanager
    def case(self):
        try:
            yield
        except CheckFailure as failure:
            if "term by term" not in str(failure):
                raise
            self.vague = self.vague or failure

    def finish(self) -> None:
        if self.vague is not None:
            raise self.vague


def _labelled(case: Case, text: str) -> Case:
    """The same case with more said about where in the check we are ("…, training step 2")."""
    return dataclasses.replace(case, label=f"{case.label}, {text}")


# ============================================================================================== numbers
def _close(got: torch.Tensor, want, rtol: float, scale: float | None = None) -> bool:
    """``got`` ≈ ``want`` (a tensor or a number) to ``rtol`` of the size of ``want`` — or of ``scale``, the size of
    the quantity it is part of, when ``want`` may be 0 — and finite."""
    want = torch.as_tensor(want, dtype=got.dtype).expand_as(got)
    if not torch.isfinite(got).all() or not torch.isfinite(want).all():
        return False
    size = want.abs().max().item() if scale is None else scale
    return bool(((got - want).abs() <= rtol * (want.abs() + max(size, 1e-30))).all())


def _probe_rtol(dtype: torch.dtype) -> float:
    """How close a recovered coefficient must be to a named one: float32 rounding, with room to spare."""
    return 1e-6 if dtype == torch.float64 else 2e-3


def _view(param: torch.Tensor, ndim: int, axes: tuple[int, ...]) -> torch.Tensor:
    """A parameter of shape (x.shape[d] for d in axes) viewed to broadcast against an ``ndim``-dim tensor."""
    shape = [1] * ndim
    for i, axis in enumerate(axes):
        shape[axis] = param.shape[i]
    return param.reshape(shape)


def _show(values: torch.Tensor, limit: int = 4) -> str:
    flat = [f"{v:.3g}" for v in values.flatten().tolist()]
    return "[" + ", ".join(flat[:limit]) + (", …" if len(flat) > limit else "") + "]"

"""Checks for Chapter 02, Normalization Wars.

Each check first tests what the right answer must satisfy, one property at a time, and the first that fails is the
message; only then does it fall back to comparing numbers. The properties come from the chapter's equations:

- **Which values share statistics** (eq. (2.10)). Within each group of values that share μ and σ², a normalisation
  is an affine function of x: x̂ = (x − μ)·a. The probe finds the coarsest way of cutting the tensor into groups
  (every set of axes, and for GroupNorm blocks or strides of channels) within which your output is such a
  function, then *recovers* μ and a per value and names them: the mean over which axes, the biased or unbiased
  variance or the mean square, ε inside or outside the square root, or the ε you actually used.
- **Where γ and β act**: your output is fitted as A·x̂ + B per entry of γ; A and B are then named (γ, 1, β, …),
  or the axis along which your γ really varies is named.
- **The three paths of the backward pass** (eq. (2.8)): dL/dx is fitted as a combination of γs·g, γs·mean(g)
  and γs·x̂·mean(g·x̂); a missing path, a wrong sign, a wrong count (m or N), a missing γ, σ where 1/σ
  belongs, or means over the wrong axes are read from the recovered coefficients.
- **The running statistics** (eq. (2.9)): the momentum you used is recovered from how far each buffer moved
  toward the batch's statistic, and whether that statistic was the biased or the unbiased variance.
- **Invariances**: the output does not change when a constant is added to a group's values, nor (for the
  per-example methods) when the other examples change, nor between training and eval mode (2.4–2.7).

Conventions (the chapter states them too): images are batch first, (N, C, H, W); the variance that normalises
is the biased one (÷ n), the one in BatchNorm's running estimate the unbiased one (÷ (n − 1)), as in PyTorch;
running = (1 − momentum)·running + momentum·batch, ``momentum=None`` meaning a cumulative average; RMSNorm with
``eps=None`` uses ``torch.finfo(x.dtype).eps``, as ``nn.RMSNorm`` does.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.checks.core import (
    Case,
    CheckFailure,
    Exercise,
    LearnerError,
    compare_runs,
    copy_parameters,
    fit_linear,
    name_value,
    one_thread,
    run_module,
)

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

    @property
    def sizes(self) -> dict[str, int]:
        N, C, H, W = self.shape
        grouped = {"G": self.groups, "C/G": C // self.groups} if self.groups > 1 else {}  # (N, G, C/G, H, W) too
        return {"N": N, "C": C, "H": H, "W": W, **grouped}

    @property
    def nonfinite_causes(self) -> str:
        return NONFINITE

    @property
    def m(self) -> int:  # values per channel for BatchNorm: N·H·W
        N, _, H, W = self.shape
        return N * H * W


@dataclass(frozen=True)
class ModuleCase(ImageCase):
    """BatchNorm2d over three training steps and then eval mode."""

    momentum: float | None = 0.1


@dataclass(frozen=True)
class TrailingCase(Case):
    """LayerNorm / RMSNorm: an input of any rank normalised over its last ``len(normalized_shape)`` axes."""

    shape: tuple = (2, 5, 8)
    normalized_shape: int | tuple = 8
    axes: tuple = ("B", "T", "D")  # the names of the input's axes, for messages
    eps: float | None = 1e-5
    scale: float = 2.0
    offset: float = 0.5  # a nonzero mean, so that not subtracting it shows

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

    def explain(self, error: BaseException, line: str) -> str | None:
        if self.eps is None and isinstance(error, TypeError) and "NoneType" in str(error):
            return ("eps=None is not a number to add: it means ε = torch.finfo(x.dtype).eps, the machine epsilon "
                    "of the input's dtype, as in nn.RMSNorm (eq. (2.12)) — eps = torch.finfo(x.dtype).eps if "
                    "self.eps is None else self.eps.")
        return None


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


# ============================================================================================== partitions
@dataclass(frozen=True, eq=False)
class Partition:
    """A way of cutting a tensor's values into equal groups that share statistics: the sets S_i of eq. (2.10)."""

    name: str  # "(N, H, W)", "blocks of 2 consecutive channels of each example"
    labels: torch.Tensor  # (x.shape) long: the group of each value
    method: str = ""  # whose set it is: "BatchNorm's"

    @property
    def groups(self) -> int:
        return int(self.labels.max()) + 1

    @property
    def size(self) -> int:
        return self.labels.numel() // self.groups

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """The mean of ``t`` over each group, given back at every value (shaped like ``t``)."""
        sums = torch.zeros(self.groups, dtype=t.dtype).index_add_(0, self.labels.reshape(-1), t.reshape(-1))
        return (sums / self.size)[self.labels]

    def describe(self) -> str:
        return f"{self.name} ({self.method})" if self.method else self.name

    def same_as(self, other: Partition) -> bool:
        return other is not None and torch.equal(_canonical(self.labels), _canonical(other.labels))


def _canonical(labels: torch.Tensor) -> torch.Tensor:
    """Each value labelled by the first flat index of its group, so that equal partitions compare equal."""
    flat = labels.reshape(-1)
    first = torch.full((int(flat.max()) + 1,), flat.numel(), dtype=torch.long)
    first.scatter_reduce_(0, flat, torch.arange(flat.numel()), "amin")
    return first[flat]


def axes_partition(shape, names, dims, method: str = "") -> Partition:
    """The groups of values that share every index but those along ``dims`` (a reduction over ``dims``)."""
    dims = sorted({d % len(shape) for d in dims})
    kept = [1 if d in dims else size for d, size in enumerate(shape)]
    labels = torch.arange(math.prod(kept)).reshape(kept).expand(*shape)
    return Partition("(" + ", ".join(names[d] for d in dims) + ")", labels, method)


def channel_partition(shape, *, block: int = 0, stride: int = 0, per_example: bool = True, method: str = ""):
    """(N, C, H, W) values grouped by blocks of ``block`` consecutive channels, or by channels c, c + stride, …"""
    N, C, H, W = shape
    c = torch.arange(C).view(1, C, 1, 1)
    group, count = (c // block, C // block) if block else (c % stride, stride)
    labels = group + count * torch.arange(N).view(N, 1, 1, 1) if per_example else group
    what = (f"blocks of {block} consecutive channels" if block else
            f"channels c, c + {stride}, c + {2 * stride}, … (a stride of {stride})")
    where = " of each example" if per_example else ", pooled over the whole batch"
    return Partition(what + where, labels.expand(N, C, H, W), method)


def _unique(partitions) -> list[Partition]:
    kept = []
    for partition in partitions:
        if not any(partition.same_as(other) for other in kept):
            kept.append(partition)
    return kept


def every_axes_partition(shape, names, known: dict[tuple[int, ...], str]) -> list[Partition]:
    """Every reduction over a nonempty set of axes, the ``known`` ones (named after their method) first."""
    ndim = len(shape)
    subsets = [tuple(sorted(d % ndim for d in dims)) for dims in known]
    subsets += [dims for r in range(ndim, 0, -1) for dims in itertools.combinations(range(ndim), r)]
    named = {tuple(sorted(d % ndim for d in dims)): method for dims, method in known.items()}
    return _unique(axes_partition(shape, names, dims, named.get(dims, "")) for dims in dict.fromkeys(subsets))


IMAGE_METHODS = {STATISTICS: "BatchNorm's set: each channel over every example", (1, 2, 3): "LayerNorm's set: "
                 "each example over every channel", (2, 3): "InstanceNorm's set: each example's channel on its own",
                 (0, 1, 2, 3): "every value at once", (0,): "the batch axis only: one μ per (c, h, w)"}


# ============================================================================================== normalisation
@dataclass(frozen=True, eq=False)
class NormSpec:
    """What one exercise's normalisation computes (eqs. (2.1), (2.10)–(2.12)), for the probes to compare with."""

    method: str  # "BatchNorm"
    equation: str  # "eq. (2.1)"
    partition: Partition  # the values that share statistics
    code: str  # how to reduce over them: "dim=(0, 2, 3)"
    candidates: tuple  # every partition the probe tries, the right one among them
    eps: float
    eps_text: str = "eps"  # where the right ε comes from
    centred: bool = True  # subtract μ (RMSNorm: no)
    extra_means: dict = field(default_factory=dict)  # message → per-value tensor (e.g. a running mean)
    sizes: dict = field(default_factory=dict)  # the case's named sizes, to name a wrong count ("W", "N·H")


@dataclass
class _AffineFit:
    """y ≈ a·x + b within each group of ``partition``; ``a`` and ``b`` given at every value."""

    partition: Partition
    a: torch.Tensor
    b: torch.Tensor
    residual: float


def _fit_affine(x: torch.Tensor, y: torch.Tensor, partition: Partition) -> _AffineFit:
    mean_x, mean_y = partition.mean(x), partition.mean(y)
    dx, dy = x - mean_x, y - mean_y
    a = partition.mean(dx * dy) / partition.mean(dx * dx).clamp_min(1e-300)
    b = mean_y - a * mean_x
    residual = ((a * x + b - y).norm() / y.norm().clamp_min(1e-300)).item()
    return _AffineFit(partition, a, b, residual)


def _affine_fits(x, y, partitions, tolerance=1e-4):
    """The groupings within which y is an affine function of x, largest groups first: the values that share your
    statistics. Groups of two come last: two points always lie on a line, so such a fit proves nothing alone."""
    for partition in sorted(partitions, key=lambda p: (p.size < 3, -p.size)):
        if partition.size >= 2:
            fit = _fit_affine(x, y, partition)
            if fit.residual < tolerance:
                yield fit


# the second moments a learner might divide by, each computed over a partition of x
_MOMENTS = {
    "variance": "the biased variance (÷ n)",
    "unbiased": "the unbiased variance (÷ (n − 1), what torch.var and x.var() give by default)",
    "squared deviations": "the sum of squared deviations Σ(x − μ)², with no ÷ n",
    "mean square": "the mean square mean(x²), about 0 rather than about μ",
    "sum of squares": "the sum of squares Σx² (the squared L2 norm), with no ÷ n",
    "mean |x|": "the mean absolute value mean(|x|), an L1 average rather than a root mean square",
    "about your μ": "the mean of (x − μ)² with your μ",  # your μ came from other values: σ² follows them
    "unbiased about your μ": "the unbiased variance (÷ (n − 1), what torch.var and x.var() give by default)",
}
# the ways of turning a second moment M into the factor a of x̂ = (x − μ)·a
_FORMS = {
    "inside": (lambda M, eps: 1 / torch.sqrt(M + eps), ""),
    "outside": (lambda M, eps: 1 / (M.sqrt() + eps), "ε is outside the square root: divide by √(σ² + ε), not "
                                                     "by σ + ε"),
    "no eps": (lambda M, eps: 1 / M.sqrt(), "ε is missing (or far too small): divide by √(σ² + ε)"),
    "no sqrt": (lambda M, eps: 1 / (M + eps), "the square root is missing: divide by √(σ² + ε), not by σ² + ε"),
    "inverted": (lambda M, eps: torch.sqrt(M + eps), "you multiply by √(σ² + ε) where eq. divides by it"),
    "inverted no sqrt": (lambda M, eps: M + eps, "you multiply by σ² + ε: divide by √(σ² + ε)"),
}
_NAMED_EPS = {"1e-5": 1e-5, "1e-6": 1e-6, "1e-8": 1e-8, "1e-3": 1e-3, "1e-12": 1e-12,
              "torch.finfo(torch.float32).eps": torch.finfo(torch.float32).eps,
              "torch.finfo(torch.float64).eps": torch.finfo(torch.float64).eps}


def _moment(x: torch.Tensor, partition: Partition, kind: str, mu: torch.Tensor | None = None) -> torch.Tensor | None:
    n = partition.size
    if kind.endswith("about your μ"):  # σ² of x − μ with the learner's μ, e.g. ((x − μ)²).mean(other axes)
        if mu is None or _close(mu, partition.mean(x), 1e-9, x.abs().max().item()):
            return None  # the same as the plain variance
        square = partition.mean((x - mu) ** 2)
        return square * n / (n - 1) if kind.startswith("unbiased") and n > 1 else \
            (None if kind.startswith("unbiased") else square)
    if kind == "mean |x|":  # squared, like the others: then 1/(√M + ε) is 1/(mean(|x|) + ε)
        return partition.mean(x.abs()) ** 2
    if kind in ("mean square", "sum of squares"):
        square = partition.mean(x * x)
        return square if kind == "mean square" else square * n
    deviation = x - partition.mean(x)
    variance = partition.mean(deviation * deviation)
    if kind == "unbiased":
        return variance * n / (n - 1) if n > 1 else None
    return variance if kind == "variance" else variance * n


@dataclass
class _Scale:
    partition: Partition
    moment: str
    form: str
    eps: float | None = None  # the ε recovered, when it is not the exercise's
    count: float | None = None  # what the sum was divided by, when it is not n


def _which_scale(x, a, spec: NormSpec, rtol: float, mu: torch.Tensor | None = None) -> _Scale | None:
    """Which second moment over which values, turned into a factor how, gives your a: the right ones first, and of
    the forms that fit the closest; ``mu`` is your μ, about which σ² may be taken over other values. A constant ε
    other than the exercise's, over the right values, is tried before other moments (it can look like one to
    float32 rounding); only when no form fits any values: the count (÷ n) you really used with the right moment."""
    expected_moment = "variance" if spec.centred else "mean square"
    moments = [expected_moment] + [m for m in _MOMENTS if m != expected_moment]
    partitions = [spec.partition] + [p for p in spec.candidates if not p.same_as(spec.partition)]
    tried_eps = False
    for partition in partitions:
        for moment in moments:
            M = _moment(x, partition, moment, mu)
            if M is None:
                continue
            errors = {form: ((a - formula(M, spec.eps)).abs() / a.abs()).max().item()
                      for form, (formula, _) in _FORMS.items() if _close(a, formula(M, spec.eps), rtol)}
            if errors:
                return _Scale(partition, moment, min(errors, key=errors.get))
            if not tried_eps:  # right after the right values and moment
                tried_eps = True
                eps = _other_eps(a, M, spec, rtol) if M.max() > 1.1 * M.min() else None  # groups that differ
                if eps is not None:
                    return _Scale(partition, moment, "inside", eps=eps)
    for partition in partitions:
        M = _moment(x, partition, expected_moment)
        eps = _other_eps(a, M, spec, rtol)
        if eps is not None:
            return _Scale(partition, expected_moment, "inside", eps=eps)
        ratio = (1 / (a * a) - spec.eps) / M  # your M′ as a multiple of the right one
        if partition.same_as(spec.partition) and _close(ratio, torch.full_like(ratio, ratio.mean().item()), rtol):
            return _Scale(partition, expected_moment, "inside", count=partition.size / ratio.mean().item())
    return None


def _other_eps(a, M, spec: NormSpec, rtol: float) -> float | None:
    """The ε′ with a = 1/√(M + ε′) in every group, when one ε′ fits all, well above rounding and not the
    exercise's ε; else None."""
    eps_used = 1 / (a * a) - M
    level, spread = eps_used.mean().item(), (eps_used.max() - eps_used.min()).item()
    if level > 5e-3 * rtol * M.mean().item() and spread <= 0.02 * level and \
            abs(level - spec.eps) > 0.05 * max(level, spec.eps):
        return level
    return None


def _which_mean(x, mu, spec: NormSpec, rtol: float):
    """What your μ is: the mean over the right values, "zero", another partition's mean, an extra, or None."""
    scale = x.abs().max().item()
    others = [p for p in spec.candidates if not p.same_as(spec.partition)]
    if _close(mu, spec.partition.mean(x), rtol):
        return spec.partition
    if mu.abs().max().item() <= rtol * scale:
        return "zero"
    for partition in others:
        if _close(mu, partition.mean(x), rtol):
            return partition
    for message, value in spec.extra_means.items():
        if _close(mu, value.double().expand_as(mu), rtol):
            return message
    right = spec.partition.mean(x)
    big = right.abs() > 1e-3 * right.abs().max()
    ratio = mu[big] / right[big] if big.any() else None
    if ratio is not None and _close(ratio, torch.full_like(ratio, ratio.mean().item()), rtol):
        count = spec.partition.size / ratio.mean().item()  # your μ = Σx / count
        named = count_name(count, spec.sizes)
        return (f"your μ is {ratio.mean().item():.4g} × the mean over {spec.partition.name}: you divide the sum by "
                f"{count:.4g}" + (f" (= {named})" if named else "") + f", but each group has n = "
                f"{spec.partition.size} values — take the mean over all of them ({spec.code})")
    return None


def count_name(count: float, sizes: dict) -> str | None:
    """``20`` → ``"N·H = N·W"``: the products of the fewest named sizes that equal a count a learner divided by
    (all of them, up to three, where sizes coincide)."""
    if abs(count - round(count)) > 1e-4 * max(count, 1) or round(count) < 1:
        return None
    names = [name for name in sizes if "/" not in name]  # products of axes, not of ratios
    for r in range(1, len(names) + 1):
        found = ["·".join(subset) for subset in itertools.combinations(names, r)
                 if math.prod(sizes[name] for name in subset) == round(count)]
        if found:
            return " = ".join(found[:3])
    return None


def normalisation_problems(x: torch.Tensor, y: torch.Tensor, spec: NormSpec) -> str | None:
    """What your normalisation computes, recovered from its output ``y`` (with γ = 1, β = 0), said as what to
    change; None when it is eq. (2.10) over the right values, or when no such structure can be recovered."""
    rtol = _probe_rtol(x.dtype)
    x, y = x.detach().double(), y.detach().double()
    if not torch.isfinite(y).all() or y.norm() < 1e-12:
        return None
    for fit in _affine_fits(x, y, spec.candidates):
        if (fit.a.abs() < 1e-12).any():
            continue
        mu = -fit.b / fit.a  # x̂ = a·x + b = (x − μ)·a
        mean = _which_mean(x, mu, spec, rtol)
        scale = _which_scale(x, fit.a, spec, rtol, mu)
        if mean is None and scale is None:
            return None  # nothing recognised: the invariance probes say it better
        if fit.partition.size >= 3 or (mean is not None and scale is not None):
            return _normalisation_message(x, fit, mean, scale, spec)
    return None


def _right_scale(scale: _Scale | None, spec: NormSpec) -> bool:
    return scale is not None and scale.partition.same_as(spec.partition) and scale.form == "inside" and \
        scale.eps is None and scale.moment == ("variance" if spec.centred else "mean square")


def _centre(x, spec: NormSpec) -> torch.Tensor:
    """The right μ (0 for RMSNorm) at every value."""
    return spec.partition.mean(x) if spec.centred else torch.zeros_like(x)


def _constant(t: torch.Tensor) -> bool:
    return bool((t.max() - t.min()).abs() <= 1e-6 * max(t.abs().max().item(), 1e-12)) and t.abs().max() > 1e-9


def _normalisation_message(x, fit: _AffineFit, mean, scale: _Scale | None, spec: NormSpec) -> str | None:
    right = spec.partition
    problems = []
    # -- the centring
    if spec.centred and mean == "zero":
        problems.append(f"nothing is subtracted from x: x̂ = (x − μ)/√(σ² + ε) with μ the mean over {right.name}")
    elif spec.centred and isinstance(mean, str):
        problems.append(mean)
    elif mean is None and _right_scale(scale, spec) and _constant(shift := fit.b + fit.a * _centre(x, spec)):
        problems.append(f"your output is shifted by {shift.mean().item():.4g} everywhere: with γ = 1 and β = 0 "
                        f"nothing is added after normalising" + ("" if spec.centred else
                                                                 f" ({spec.method} has no β at all)"))
    elif spec.centred and mean is None:
        problems.append(f"the value you subtract from x is not its mean over {right.name} (nor over any other set "
                        f"of axes): μ = mean of x over {right.name}")
    elif not spec.centred and isinstance(mean, Partition):
        problems.append(f"you subtract the mean over {mean.name}: {spec.method} does not centre, it divides x "
                        f"itself by √(mean(x²) + ε)")
    elif not spec.centred and mean != "zero" and not problems:
        problems.append(f"you subtract something from x: {spec.method} divides x itself by √(mean(x²) + ε)")
    # -- the values the statistics come from
    mean_partition = mean if isinstance(mean, Partition) and spec.centred else None
    scale_partition = scale.partition if scale else None
    statistic = "σ²" if spec.centred else "mean(x²)"
    called = "variance σ²" if spec.centred else "mean square mean(x²)"
    if mean_partition and scale_partition and mean_partition.same_as(scale_partition) \
            and not mean_partition.same_as(right):
        problems.append(f"your mean μ and variance σ² are computed over {mean_partition.describe()}, but "
                        f"{spec.method}'s are over "
                        f"{right.describe()}: reduce over {spec.code}")
    else:
        if mean_partition and not mean_partition.same_as(right):
            problems.append(f"your mean μ is over {mean_partition.describe()}, but {spec.method}'s is over "
                            f"{right.describe()}: reduce over {spec.code}")
        if scale_partition and not scale_partition.same_as(right):
            problems.append(f"your {called} is computed over {scale_partition.describe()}, but {spec.method}'s "
                            f"is over {right.describe()}: reduce over {spec.code}")
    # -- the second moment and how it becomes the factor
    if scale is None:
        want = 1 / torch.sqrt(_moment(x, right, "variance" if spec.centred else "mean square") + spec.eps)
        worst = ((fit.a - want).abs() / want).flatten().argmax()
        problems.append(f"the factor that multiplies {'x − μ' if spec.centred else 'x'} is not 1/√({statistic} + ε) "
                        f"over any set of values we tried (yours is {fit.a.flatten()[worst].item():.4g} where "
                        f"1/√({statistic} + ε) over {right.name} is {want.flatten()[worst].item():.4g})")
    else:
        expected_moment = "variance" if spec.centred else "mean square"
        moment = {"about your μ": "variance", "unbiased about your μ": "unbiased"}.get(scale.moment, scale.moment)
        if moment != expected_moment and scale.count is None:
            problems.append(f"you divide by {_MOMENTS[scale.moment]}; {spec.method} divides by "
                            f"{_MOMENTS[expected_moment]}" + (": x.var(..., unbiased=False), or ((x − μ)²).mean(...)"
                                                             if spec.centred else ""))
        if scale.count is not None:
            named = count_name(scale.count, spec.sizes)
            problems.append(f"your {statistic} divides its sum by {scale.count:.4g}"
                            + (f" (= {named})" if named else "") + f", but each group {right.name} has "
                            f"n = {right.size} values: take the mean over all of them ({spec.code}) — or, the same "
                            f"numbers, your output is {math.sqrt(right.size / scale.count):.4g} × the right one")
        elif scale.eps is not None:
            named = name_value(scale.eps, _NAMED_EPS, rtol=0.02)
            problems.append(f"your ε is {scale.eps:.3g}" + (f" (= {named})" if named else "") +
                            f" but should be {spec.eps:.3g} ({spec.eps_text})")
        elif scale.form == "no eps":
            problems.append(f"ε is missing (or far too small): divide by √({statistic} + ε) with ε = {spec.eps:.3g} "
                            f"({spec.eps_text})")
        elif scale.form != "inside" and scale.moment != "mean |x|":  # an L1 average: where ε sits is moot
            said = _FORMS[scale.form][1]
            problems.append(said if spec.centred else said.replace("σ²", "mean(x²)").replace("σ", "√mean(x²)"))
    if not problems:
        return None
    return ("with γ = 1 and β = 0, " + "; ".join(problems) + f" ({spec.equation}).")


def normalisation_probe(x, spec: NormSpec) -> Callable[[torch.Tensor], str | None]:
    return lambda got: normalisation_problems(x, got, spec)


def group_property_probe(x, spec: NormSpec) -> Callable[[torch.Tensor], str | None]:
    """Per group of the right values, the output (γ = 1, β = 0) has mean 0 and the variance σ²/(σ² + ε)
    (RMSNorm: mean square mean(x²)/(mean(x²) + ε)); said for whichever fails first."""
    def probe(got):
        y, xd = got.detach().double(), x.detach().double()
        P = spec.partition
        tolerance = 10 * _probe_rtol(x.dtype)
        if spec.centred:
            mean = P.mean(y)
            if mean.abs().max() > tolerance:
                return (f"with γ = 1 and β = 0 your output should have mean 0 over every group of {P.describe()} "
                        f"(it subtracts their mean, {spec.equation}); yours has means up to "
                        f"{mean.abs().max().item():.3g}: check what you subtract and over which axes ({spec.code}).")
            second, want = P.mean(y * y), _moment(xd, P, "variance")
        else:
            second, want = P.mean(y * y), _moment(xd, P, "mean square")
        expected = want / (want + spec.eps)
        if not _close(second, expected, tolerance):
            what = "variance" if spec.centred else "mean square"
            return (f"with γ = 1 and β = 0 your output's {what} over each group of {P.describe()} should be "
                    f"{what} / ({what} + ε) ≈ {expected.flatten()[0].item():.4g} ({spec.equation}); yours is "
                    f"{second.flatten()[0].item():.4g} in the first group: check what you divide by.")
        return None
    return probe


def shift_probe(exercise: Exercise, run: Callable, x: torch.Tensor, spec: NormSpec, case: Case):
    """Adding a constant to every value of one group must not change the output: eq. (2.10) subtracts their mean."""
    def probe(got):
        if not spec.centred:
            return None
        shift = exercise.randn(spec.partition.groups, key=(case.label, "shift"), dtype=x.dtype)[spec.partition.labels]
        shifted = exercise.call(run, x + 3 * shift, case=case)
        if isinstance(shifted, torch.Tensor) and shifted.shape == got.shape and \
                not _close(shifted.detach().double(), got.detach().double(), 10 * _probe_rtol(x.dtype)):
            return (f"adding a constant to all the values of one group — {spec.partition.describe()} — changes your "
                    f"output, but {spec.method} subtracts their mean ({spec.equation}), so it must not: your μ is not "
                    f"the mean over {spec.partition.name} ({spec.code}).")
        return None
    return probe


def independence_probe(exercise: Exercise, run: Callable, x: torch.Tensor, spec: NormSpec, case: Case):
    """A per-example normalisation: one example's output must not change when the other examples change."""
    def probe(got):
        if x.shape[0] < 2:
            return None
        for kept, moved in ((0, slice(1, None)), (1, slice(0, 1))):
            others = x.clone()
            others[moved] = others[moved] * 2 + 1
            changed = exercise.call(run, others, case=case)
            if isinstance(changed, torch.Tensor) and changed.shape == got.shape and \
                    not _close(changed[kept].detach().double(), got[kept].detach().double(), 10 * _probe_rtol(x.dtype)):
                who = "the other examples of the batch change" if kept == 0 else "example 0 of the batch changes"
                return (f"your output for example {kept} changes when {who}, but {spec.method} normalises each "
                        f"example on its own ({spec.equation}): compute every statistic from that example's own "
                        f"values, never across the batch axis (axis 0).")
        return None
    return probe


# ============================================================================================== affine
def affine_problems(x_hat, y, weight, bias, param_axes, names, method: str, equation: str, *,
                    named_only: bool = False) -> str | None:
    """Where your γ and β act: ``y`` fitted as A·x̂ + B per entry of γ, A and B named; or the axis your γ
    really follows. ``x_hat`` is your own output with γ = 1, β = 0 (already checked right), or the right x̂ with
    ``named_only`` (then only a named combination is reported: γ and β swapped shows even at γ = 1, β = 0).
    ``bias`` is None for RMSNorm, which has no β."""
    rtol = _probe_rtol(y.dtype)
    x_hat, y = x_hat.detach().double(), y.detach().double()
    shape, ndim = tuple(y.shape), y.dim()
    gamma = _view(weight.detach().double(), ndim, param_axes).expand(*shape)
    zeros = torch.zeros_like(y)
    beta = zeros if bias is None else _view(bias.detach().double(), ndim, param_axes).expand(*shape)
    others = tuple(d for d in range(ndim) if d not in param_axes)
    where = "entry of γ" if len(param_axes) > 1 else names[param_axes[0]]
    fit = _fit_affine(x_hat, y, axes_partition(shape, names, others)) if others else None
    if fit is not None and fit.partition.size >= 2 and fit.residual < 1e-4:
        size = y.abs().max().item()
        scales = {"γ": gamma, "1": torch.ones_like(y), "β": beta, "γ²": gamma * gamma}
        offsets = {"β": beta, "0": zeros, "γ": gamma, "γ·β": gamma * beta}
        if bias is None:  # no β: only γ may scale, nothing may be added
            scales, offsets = {"γ": gamma, "1": torch.ones_like(y), "γ²": gamma * gamma}, {"0": zeros}
        A_is = next((k for k, v in scales.items() if _close(fit.a, v, rtol, size)), None)
        B_is = next((k for k, v in offsets.items() if _close(fit.b, v, rtol, size)), None)
        y_is = "y = γ ⊙ x̂" if bias is None else "y = γ·x̂ + β"
        known = {("γ", "β"): None,
                 ("1", "β"): f"γ is not applied: y = γ·x̂ + β ({equation}), γ = self.weight.",
                 ("γ", "0"): f"β is not added: y = γ·x̂ + β ({equation}), β = self.bias.",
                 ("1", "0"): f"γ and β are not applied: y = γ·x̂ + β ({equation}).",
                 ("β", "γ"): f"γ and β are swapped: y = γ·x̂ + β, with γ = self.weight multiplying ({equation}).",
                 ("γ", "γ·β"): f"you computed γ·(x̂ + β): add β after multiplying by γ, y = γ·x̂ + β ({equation}).",
                 ("γ²", "β"): f"γ is applied twice: y = γ·x̂ + β ({equation})."}
        if bias is None:
            known = {("γ", "0"): None, ("1", "0"): f"γ is not applied: {y_is} ({equation}), γ = self.weight.",
                     ("γ²", "0"): f"γ is applied twice: {y_is} ({equation})."}
        if (A_is, B_is) in known:
            return known[A_is, B_is]
        if named_only:
            return None
        said = []  # a constant factor on γ or on β (applied twice, halved, negated…)
        for symbol, got_values, want in (("γ", fit.a, gamma), ("β", fit.b, beta)):
            if symbol == "β" and bias is None or want.abs().max() < 1e-12:
                continue
            k = ((got_values * want).sum() / (want * want).sum()).item()  # least squares: got ≈ k · want
            if abs(k - 1) > rtol and _close(got_values, k * want, rtol, size):
                said.append(f"your {symbol} acts as {k:.4g} × {symbol}" + (
                    f": {symbol} is applied twice" if abs(k - 2) < rtol else ""))
            elif not _close(got_values, want, rtol, size):
                said = []
                break
        if said:
            return "; ".join(said) + f" — y = γ·x̂ + β ({equation})." if bias is not None else \
                "; ".join(said) + f" — y = γ ⊙ x̂ ({equation})."
        A_values, B_values = _per_position(fit.a, param_axes), _per_position(fit.b, param_axes)
        if A_is != "γ" and \
                _close(A_values.flatten().sort().values, weight.double().flatten().sort().values, rtol, size) and \
                (bias is None or _close(B_values.flatten().sort().values, bias.double().flatten().sort().values, rtol,
                                        size)):
            return (f"your γ{'' if bias is None else ' and β'} reach the wrong {where}s: each entry of yours "
                    f"scales some other {where} (A = {_show(A_values)} where γ = {_show(weight)}). A reshape or "
                    f"view of γ does not line up with the axes of x ({equation}): keep γ as it is and view it "
                    f"{_view_code(ndim, param_axes[0], names) if len(param_axes) == 1 else 'on the last axes'}.")
        if bias is None and B_is is None:
            return (f"you add {_show(_per_position(fit.b, param_axes))} after scaling, but {method} has no β: "
                    f"{y_is} ({equation}).")
        return (f"your output is A·x̂ + B per {where} with A = {_show(_per_position(fit.a, param_axes))} and B = "
                f"{_show(_per_position(fit.b, param_axes))}, but {y_is} has A = γ = {_show(weight)}"
                + ("" if bias is None else f" and B = β = {_show(bias)}") + f" ({equation}).")
    for axis in () if named_only else others:  # does your γ follow another axis? (a (C,) tensor meets the last)
        along = _fit_affine(x_hat, y, axes_partition(shape, names, [d for d in range(ndim) if d != axis]))
        if along.residual < 1e-4 and len(param_axes) == 1 and shape[axis] == shape[param_axes[0]]:
            gamma_there = _view(weight.detach().double(), ndim, (axis,)).expand(*shape)
            if _close(along.a, gamma_there, rtol):
                return (f"your γ and β are lined up with the {names[axis]} axis (axis {axis}), not the "
                        f"{names[param_axes[0]]} axis: a ({names[param_axes[0]]},) tensor broadcasts against the "
                        f"LAST axis. View them as {_view_code(ndim, param_axes[0], names)} ({equation}).")
    return None


def _per_position(t: torch.Tensor, param_axes: tuple[int, ...]) -> torch.Tensor:
    """A per-parameter-entry quantity given at every value, back to one value per entry of γ."""
    others = [d for d in range(t.dim()) if d not in param_axes]
    return t.permute(*param_axes, *others).reshape(*(t.shape[d] for d in param_axes), -1)[..., 0]


def _view_code(ndim: int, axis: int, names) -> str:
    shape = ["1"] * ndim
    shape[axis] = names[axis]
    index = ["None"] * ndim
    index[axis] = ":"
    return f"({', '.join(shape)}): weight[{', '.join(index)}]"


def affine_probe(x_hat, weight, bias, param_axes, names, method, equation, *, named_only=False):
    return lambda got: affine_problems(x_hat, got, weight, bias, param_axes, names, method, equation,
                                       named_only=named_only)


def initial_affine_probe(x_hat, parameter_shape, has_bias, param_axes, names, method, equation):
    """At γ = 1, β = 0 (the initial parameters) a mix-up of γ and β shows as a constant output."""
    ones = torch.ones(parameter_shape, dtype=x_hat.dtype)
    return affine_probe(x_hat, ones, torch.zeros_like(ones) if has_bias else None, param_axes, names, method,
                        equation, named_only=True)


# ============================================================================================== backward paths
@dataclass(frozen=True, eq=False)
class Paths:
    """The pieces of eq. (2.8) for one input, dL/dx = γ·s·(g − mean(g) − x̂·mean(g·x̂)), with the means over each
    group of the spec's partition. For the autograd modules γ varies inside a group, so the means are of γ·g."""

    g: torch.Tensor  # dL/dy, the gradient arriving from above
    gamma: torch.Tensor  # γ at every value
    x_hat: torch.Tensor  # the right x̂
    s: torch.Tensor  # 1/√(σ² + ε) (RMSNorm: 1/√(mean(x²) + ε)), at every value
    spec: NormSpec
    equation: str  # "eq. (2.8)"
    terms: dict  # how the chapter writes each term: {"direct": "γ·s·g", ...}
    factors: dict = field(default_factory=dict)  # named constants for a wrong count: {"m/N": 25.0, ...}
    factor_hints: dict = field(default_factory=dict)  # what to change for each named constant
    per_group: dict = field(default_factory=dict)  # "1/γ" → ((C,) values, message): a coefficient per channel
    alternatives: dict = field(default_factory=dict)  # what x̂ might have been: "x" → (tensor, message)
    detached_hint: str = ""  # where a missing path comes from in autograd code
    gamma_inside: bool = False  # the means are of γ·g (LayerNorm's γ varies within a group), not γ × mean(g)

    def basis(self, partition: Partition | None = None, x_hat: torch.Tensor | None = None) -> dict:
        P, xh = partition or self.spec.partition, self.x_hat if x_hat is None else x_hat
        if self.gamma_inside:
            h = self.gamma * self.g  # dL/dx̂
            return {"direct": self.s * h, "mean": self.s * P.mean(h), "var": self.s * xh * P.mean(h * xh)}
        scale = self.gamma * self.s
        return {"direct": scale * self.g, "mean": scale * P.mean(self.g), "var": scale * xh * P.mean(self.g * xh)}

    @property
    def expected(self) -> dict:
        return {"direct": 1.0, "mean": -1.0 if self.spec.centred else 0.0, "var": -1.0}

    def lookalikes(self) -> dict:
        """Terms a learner writes in place of eq. (2.8)'s: the variance term with the wrong mean in it, or
        without its x̂. name → (term at every value, how the chapter would write it)."""
        P = self.spec.partition
        if self.gamma_inside:
            h, scale, g_text = self.gamma * self.g, self.s, "γg"
        else:
            h, scale, g_text = self.g, self.gamma * self.s, "g"
        prefix = "s·" if self.gamma_inside else "γ·s·"
        return {"x̂·mean(g)": (scale * self.x_hat * P.mean(h), f"{prefix}x̂·mean({g_text})"),
                "mean(g·x̂)": (scale * P.mean(h * self.x_hat), f"{prefix}mean({g_text}·x̂)")}


_PATH_NAMES = {"direct": "the direct path (through x̂)", "mean": "the path through μ (eq. (2.6))",
               "var": "the path through σ² (eq. (2.5))"}  # RMSNorm's "σ²" is mean(x²): the same path


def _coefficient_problems(c: dict, paths: Paths, rtol: float) -> str | None:
    """The recovered coefficients of the three terms, compared with eq. (2.8)'s (1, −1, −1) and named."""
    want = paths.expected
    off = [k for k in want if abs(c[k] - want[k]) > rtol * max(1.0, abs(want[k]))]
    if not off:
        return None
    terms, eq = paths.terms, paths.equation
    if paths.spec.centred and abs(c["mean"]) < rtol and abs(c["var"]) < rtol and abs(c["direct"] - 1) < rtol:
        return (f"only the direct path {terms['direct']} is there: you treated μ and σ² as constants. Add the paths "
                f"through μ, −{terms['mean']} (eq. (2.6)), and through σ², −{terms['var']} (eq. (2.5)) — {eq}."
                + paths.detached_hint)
    ratio = c["direct"]
    if abs(ratio) > rtol and all(abs(c[k] - ratio * want[k]) <= rtol * abs(ratio) for k in want):
        named = name_value(ratio, paths.factors)
        return (f"your dL/dx is {ratio:.4g}" + (f" (= {named})" if named else "") + f" × {eq} in every term"
                + (f": {paths.factor_hints[named]}" if named in paths.factor_hints else
                   ": a constant factor is off (a scale applied twice, missing or inverted)") + ".")
    said = []
    means = [k for k in ("mean", "var") if k in off and want[k] != 0]
    if len(means) == 2 and abs(c["mean"] / want["mean"] - c["var"] / want["var"]) <= rtol and \
            abs(c["mean"]) > rtol and "direct" not in off:  # both means off by one factor: the count
        factor = c["mean"] / want["mean"]
        named = name_value(factor, paths.factors)
        said.append(f"both mean terms, −{terms['mean']} and −{terms['var']}, are {factor:.4g}"
                    + (f" (= {named})" if named else "") + " × what they should be"
                    + (f": {paths.factor_hints[named]}" if named in paths.factor_hints else
                       _count_hint(paths.spec.partition.size / factor, paths.spec)))
        off = []
    for key in off:
        have, should = c[key], want[key]
        if should == 0:
            said.append(f"there is a term {have:.3g}·{terms[key]}, but {paths.spec.method} subtracts no mean, so its "
                        f"gradient has no path through μ")
        elif abs(have) < rtol:
            said.append(f"{_PATH_NAMES[key]} is missing: it adds {'−' if should < 0 else ''}{terms[key]}")
        elif abs(have + should) < rtol * abs(should):
            said.append(f"{_PATH_NAMES[key]} has the wrong sign: it is {'−' if should < 0 else '+'}{terms[key]}")
        else:
            factor = have / should
            named = name_value(factor, paths.factors)
            said.append(f"{_PATH_NAMES[key]} is {factor:.4g}" + (f" (= {named})" if named else "") + f" × {eq}'s "
                        f"{'−' if should < 0 else ''}{terms[key]}"
                        + (f": {paths.factor_hints[named]}" if named in paths.factor_hints else ""))
    missing = [k for k in off if abs(c[k]) < rtol and want[k] != 0]
    return "in your dL/dx, " + "; ".join(said) + f" ({eq})." + (paths.detached_hint if missing else "")


def _count_hint(count: float, spec: NormSpec) -> str:
    """": you divided the sums by 20 (= N·H), but …" when ``count`` is a product of the case's sizes; else ""."""
    named, right = count_name(count, spec.sizes), count_name(spec.partition.size, spec.sizes)
    if not named:
        return ""
    return (f": you divided the sums by {round(count)} (= {named}), but the means run over the n = "
            + (f"{right} = " if right else "") + f"{spec.partition.size} values of each group "
            f"{spec.partition.name} ({spec.code})")


def _lookalike_problems(dx: torch.Tensor, paths: Paths, rtol: float, dtype: torch.dtype) -> str | None:
    """dL/dx fitted with one look-alike term added to eq. (2.8)'s three: a term eq. (2.8) does not have, named
    with its recovered coefficient and the term it stands in for."""
    for key, (term, text) in paths.lookalikes().items():
        fit = fit_linear(dx, {**paths.basis(), key: term})
        c = fit.coefficients
        if not _exact(fit, dtype) or abs(c[key]) < rtol:
            continue
        rest = {k: v for k, v in c.items() if k != key}
        replaced = [k for k in ("mean", "var") if abs(rest[k]) < rtol and paths.expected[k] != 0]
        said = f"your dL/dx has a term {c[key]:.4g}·{text} that {paths.equation} does not have"
        if replaced:
            said += " in place of " + " and ".join(f"−{paths.terms[k]}" for k in replaced)
            rest.update({k: paths.expected[k] for k in replaced})
        others = _coefficient_problems(rest, paths, rtol)
        return said + (f"; also {others[len('in your dL/dx, '):]}" if others and others.startswith("in your dL/dx, ")
                       else f" ({paths.equation})." if not others else f"; also: {others}")
    return None


def _exact(fit, dtype: torch.dtype) -> bool:
    """A least-squares fit that explains the answer to its dtype's rounding."""
    return fit.residual < (1e-9 if dtype == torch.float64 else 1e-4)


def paths_problems(got: torch.Tensor, paths: Paths) -> str | None:
    """dL/dx fitted as c₁·(direct) + c₂·(mean term) + c₃·(variance term) of eq. (2.8), and the c's named; then
    one fit per channel (a per-channel factor), means over other values, another x̂, and the two properties
    eq. (2.8) implies."""
    rtol = 50 * _probe_rtol(got.dtype)
    dx = got.detach().double()
    fit = fit_linear(dx, paths.basis())
    if _exact(fit, got.dtype):
        return _coefficient_problems(fit.coefficients, paths, rtol)
    lookalike = _lookalike_problems(dx, paths, rtol, got.dtype)
    if lookalike:
        return lookalike
    C = dx.shape[1] if dx.dim() > 1 else 0
    if paths.per_group and C and dx.numel() // C >= 6:  # one fit per channel: a per-channel factor (γ, s) is off
        fits = fit_linear(dx, paths.basis(), per=1)
        if all(_exact(f, got.dtype) for f in fits):  # always so when a term is off by a per-channel constant
            said = {}  # term → what its per-channel factor means
            for key, want in paths.expected.items():
                ratios = torch.tensor([f.coefficients[key] / want if want else f.coefficients[key] for f in fits],
                                      dtype=torch.float64)
                if not _close(ratios, torch.ones_like(ratios) if want else torch.zeros_like(ratios), rtol, 1.0):
                    said[key] = next((message for values, message in paths.per_group.values()
                                      if want and _close(ratios, values.double(), rtol)), None)
            if said and all(said.values()):  # only a recognised per-channel factor is worth saying; else read on
                if len(said) == 3 and len(set(said.values())) == 1:
                    return next(iter(said.values()))  # one factor on every term
                return "in your dL/dx, " + "; ".join(
                    f"{_PATH_NAMES[key]} has the wrong factor in each channel — {message[0].lower() + message[1:]}"
                    for key, message in said.items())
    for partition in paths.spec.candidates:  # means over the wrong values
        if partition.same_as(paths.spec.partition) or partition.size < 2:
            continue
        other = fit_linear(dx, paths.basis(partition))
        if _exact(other, got.dtype) and _coefficient_problems(other.coefficients, paths, rtol) is None:
            return (f"the means in your dL/dx, mean({paths.terms['mean_of']}) and mean({paths.terms['mean_of']}·x̂), "
                    f"are over {partition.describe()}, but {paths.equation}'s are over "
                    f"{paths.spec.partition.describe()} ({paths.spec.code}).")
    for name, (alternative, message) in paths.alternatives.items():
        other = fit_linear(dx, paths.basis(x_hat=alternative.double()))
        if _exact(other, got.dtype) and _coefficient_problems(other.coefficients, paths, rtol) is None:
            return message
    # the properties eq. (2.8) implies: shifting a group's inputs, or scaling them, leaves the output alone
    P, basis = paths.spec.partition, paths.basis()
    expected = basis["direct"] + paths.expected["mean"] * basis["mean"] + paths.expected["var"] * basis["var"]
    size = expected.abs().max().item()
    if paths.spec.centred and not _close(P.mean(dx), P.mean(expected), rtol, size):
        return (f"your dL/dx does not sum to 0 over each group {P.describe()}: the output does not change when a "
                f"constant is added to those inputs, so neither does the loss — the mean term −{paths.terms['mean']} "
                f"makes the sum 0 ({paths.equation}).")
    along = paths.x_hat * paths.s.reciprocal()  # x − μ: the direction in which scaling a group moves its inputs
    if not _close(P.mean(dx * along), P.mean(expected * along), rtol, (expected * along).abs().max().item()):
        return (f"your dL/dx has the wrong component along x̂ in each group {P.describe()}: the output (nearly) does "
                f"not change when a group's inputs are scaled, so Σ x̂·dL/dx must be (nearly) 0 — exactly the ε share "
                f"γ·s·Σ g·x̂·ε/(σ² + ε). That is the job of the variance term −{paths.terms['var']} "
                f"({paths.equation}): check it.")
    return None


def paths_probe(paths: Paths):
    return lambda got: paths_problems(got, paths)


def _count_factors(m: int, N: int, HW: int) -> tuple[dict, dict]:
    """Named wrong counts for the means of eq. (2.8) and what to change for each."""
    factors = {"m/N": m / N, "m/(H·W)": m / HW, "m": float(m), "m/(m − 1)": m / (m - 1) if m > 1 else math.inf,
               "1/m": 1 / m, "2": 2.0, "1/2": 0.5}
    hints = {"m/N": f"the bars of eq. (2.8) are means over the m = N·H·W = {m} values of a channel; you divided the "
                    f"sums by N = {N}",
             "m/(H·W)": f"the means run over the m = N·H·W = {m} values of a channel; you divided by H·W",
             "m": "use means (Σ ÷ m), not sums",
             "m/(m − 1)": "the bars are plain means, Σ ÷ m: not ÷ (m − 1)",
             "2": "a factor 2 too many (from the derivative of σ²?)", "1/2": "a factor 1/2 too few"}
    return factors, hints


def _batch_norm_paths(x_hat, weight, inv_std, grad_out, case: ImageCase, *, spec, detached_hint="",
                      alternatives=None) -> Paths:
    N, C, H, W = case.shape
    gamma, s = _view(weight.double(), 4, (1,)).expand(*case.shape), _view(inv_std.double(), 4, (1,))
    factors, hints = _count_factors(N * H * W, N, H * W)
    gamma_c, s_c = weight.double(), inv_std.double()
    per_group = {"1/γ": (1 / gamma_c, "γ is missing from your dL/dx: dL/dx̂ = γ·g (eq. (2.4)), so dL/dx = γ·s·(g − "
                                      "mean(g) − x̂·mean(g·x̂)) (eq. (2.8))."),
                 "γ": (gamma_c, "γ is applied twice in your dL/dx: dL/dx = γ·s·(…) (eq. (2.8))."),
                 "1/s²": (1 / s_c ** 2, "you multiplied by σ = √(σ² + ε) where eq. (2.8) has s = 1/√(σ² + ε): "
                                        "inv_std is already 1/√(σ² + ε), so multiply by it."),
                 "1/s": (1 / s_c, "s = 1/√(σ² + ε) is missing from your dL/dx (eq. (2.8)): dL/dx = γ·s·(…)."),
                 "s": (s_c, "s = 1/√(σ² + ε) is applied twice in your dL/dx (eq. (2.8))."),
                 "1/(γs)": (1 / (gamma_c * s_c), "the factor γ·s is missing from your dL/dx: dL/dx = γ·s·(g − "
                                                 "mean(g) − x̂·mean(g·x̂)) (eq. (2.8)).")}
    return Paths(grad_out.double(), gamma, x_hat.double(), s.expand(*case.shape), spec, "eq. (2.8)",
                 {"direct": "γ·s·g", "mean": "γ·s·mean(g)", "var": "γ·s·x̂·mean(g·x̂)", "mean_of": "g"}, factors,
                 hints, per_group, alternatives or {}, detached_hint)


# ============================================================================================== per-channel vectors
def _per_channel_factors(case: ImageCase, weight, inv_std, what: str) -> dict:
    """The chapter's per-channel quantities a per-channel gradient might be wrongly multiplied by, and what to
    change for each. ``what`` is the right formula ("Σ g·x̂")."""
    N, _, H, W = case.shape
    m = N * H * W
    gamma, s = weight.double(), inv_std.double()
    no_s = f"x̂ is already normalised, so no s = 1/√(σ² + ε) (nor σ) belongs in {what}"
    found = {"1/m": (1 / m, f"a mean where the equation has a sum over the m = N·H·W = {m} values of each channel: "
                            f".sum(dim=(0, 2, 3))"),
             "m": (float(m), f"a sum where there should be {what} alone: drop the factor m"),
             "γ": (gamma, f"no γ belongs in {what}"), "1/γ": (1 / gamma, f"no γ belongs in {what}"),
             "s": (s, no_s), "1/s": (1 / s, no_s), "−1": (-1.0, "a sign is flipped")}
    if N > 1:
        found["1/N"] = (1 / N, f"you divided by the batch size N = {N}: {what} is a plain sum")
    return found


def vector_problems(got: torch.Tensor, expected: torch.Tensor, equals: dict, ratios: dict, name: str,
                    formula: str) -> str | None:
    """A per-channel gradient (dL/dγ, dL/dβ) named: equal to another quantity, or a named factor per channel
    (``ratios``: name → (value(s), what to change)) times the right one."""
    rtol = 50 * _probe_rtol(got.dtype)
    g = got.detach().double()
    for value, message in equals.values():
        if _close(g, value.double(), rtol):
            return message
    big = expected.abs() > 1e-6 * expected.abs().max().clamp_min(1e-30)
    if big.sum() == 0:
        return None
    ratio = g[big] / expected.double()[big]
    for factor, (value, message) in ratios.items():
        if _close(ratio, torch.as_tensor(value, dtype=torch.float64).expand_as(expected)[big], rtol):
            return f"your {name} is {factor} × {formula} in every channel: {message}."
    return None


def _parameter_gradient_probes(x_hat, grad_out, weight, inv_std, case: ImageCase, order_hint: str):
    """Probes for dL/dγ = Σ g·x̂ (eq. (2.3)) and dL/dβ = Σ g (eq. (2.2)), per channel over (0, 2, 3)."""
    g, xh = grad_out.double(), x_hat.double()
    sum_g, sum_gx = g.sum(STATISTICS), (g * xh).sum(STATISTICS)
    weight_probe = lambda got: vector_problems(got, sum_gx, {  # noqa: E731
        "Σg": (sum_g, f"your dL/dγ is Σ g, which is dL/dβ (eq. (2.2)); dL/dγ = Σ g·x̂ (eq. (2.3)): {order_hint}"),
    }, _per_channel_factors(case, weight, inv_std, "dL/dγ = Σ g·x̂"), "dL/dγ", "Σ g·x̂ (eq. (2.3))")
    bias_probe = lambda got: vector_problems(got, sum_g, {  # noqa: E731
        "Σgx̂": (sum_gx, f"your dL/dβ is Σ g·x̂, which is dL/dγ (eq. (2.3)); dL/dβ = Σ g (eq. (2.2)): {order_hint}"),
    }, _per_channel_factors(case, weight, inv_std, "dL/dβ = Σ g"), "dL/dβ", "Σ g (eq. (2.2))")
    return weight_probe, bias_probe


# ============================================================================================== BatchNorm inputs
def _image_batch(exercise: Exercise, case: ImageCase, key: str = "x") -> torch.Tensor:
    """An (N, C, H, W) batch whose channels have different means and spreads, so that pooling them shows and a
    per-channel factor (s, γ) differs from channel to channel."""
    N, C, H, W = case.shape
    offsets = exercise.randn(1, C, 1, 1, key=(case.label, key, "offset"), dtype=case.dtype)
    spreads = 1 + 0.4 * torch.arange(C, dtype=case.dtype).view(1, C, 1, 1)
    return (exercise.randn(*case.shape, key=(case.label, key), dtype=case.dtype) * spreads + offsets) * case.scale


def _affine_parameters(exercise: Exercise, shape, case: Case):
    """γ away from 0 and ±1 (so a missing γ shows), β away from 0."""
    gamma = 1.5 + 0.5 * torch.tanh(exercise.randn(*shape, key=(case.label, "gamma"), dtype=case.dtype))
    beta = exercise.randn(*shape, key=(case.label, "beta"), dtype=case.dtype)
    return gamma, beta


def _batch_norm_spec(x: torch.Tensor, case: ImageCase, extra_means=None) -> NormSpec:
    candidates = every_axes_partition(tuple(x.shape), IMAGE_AXES, IMAGE_METHODS)
    right = next(p for p in candidates if p.same_as(axes_partition(x.shape, IMAGE_AXES, STATISTICS)))
    return NormSpec("BatchNorm", "eq. (2.1)", right, "dim=(0, 2, 3)", tuple(candidates), case.eps,
                    "the eps argument", extra_means=extra_means or {}, sizes=case.sizes)


def _statistics(x: torch.Tensor, eps: float):
    """x̂ and s = 1/√(σ² + ε) (C,) of training-mode BatchNorm, eq. (2.1)."""
    mean = x.mean(dim=STATISTICS, keepdim=True)  # (1, C, 1, 1)
    var = x.var(dim=STATISTICS, unbiased=False, keepdim=True)  # (1, C, 1, 1), biased
    inv_std = 1 / torch.sqrt(var + eps)
    return (x - mean) * inv_std, inv_std.flatten()


def _library_batch_norm(x, weight, bias, eps, grad_out):
    """PyTorch's own BatchNorm in training mode, and its autograd gradients (x, γ, β)."""
    x, weight, bias = (t.detach().clone().requires_grad_() for t in (x, weight, bias))
    y = F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
    return y.detach(), torch.autograd.grad(y, (x, weight, bias), grad_out)


def _per_channel_shape(got, C: int, exercise: Exercise, case: Case, name: str, what: str) -> None:
    """dL/dγ and dL/dβ have γ's shape (C,): say so in the chapter's words before the generic shape message."""
    if isinstance(got, torch.Tensor) and tuple(got.shape) != (C,):
        hint = (" keepdim=True kept the reduced axes: drop it, a per-channel gradient has γ's shape (C,)."
                if got.numel() == C else f" {what} is a sum over the axes (0, 2, 3), one entry per channel: "
                                        f"(…).sum(dim=(0, 2, 3)).")
        raise exercise.fail(f"shape {tuple(got.shape)} but expected ({C},).{hint}", case=case, name=name)


# ============================================================================================== Exercise 2.1
BACKWARD_CASES = (
    ImageCase("N=4, C=3, H=W=5", torch.float64, shape=(4, 3, 5, 5)),
    ImageCase("N=2, C=2, H=3, W=4", torch.float64, shape=(2, 2, 3, 4), scale=2.0),
    ImageCase("batch of 1 (statistics over H·W only)", torch.float64, shape=(1, 3, 4, 4)),
    ImageCase("H=W=1 (m = N)", torch.float64, shape=(8, 4, 1, 1), eps=1e-3),
    ImageCase("large eps=0.5", torch.float64, shape=(3, 2, 2, 2), eps=0.5, scale=0.3),
)


@one_thread
def check_batch_norm_backward(batch_norm_backward) -> None:
    """Exercise 2.1: ``batch_norm_backward(grad_out, x_hat, weight, inv_std)`` returns (dL/dx, dL/dγ, dL/dβ),
    eqs. (2.8), (2.3), (2.2), equal to the autograd gradients of ``F.batch_norm``."""
    EX = EX_BACKWARD
    cases = _NamedFirst()
    for case in BACKWARD_CASES:
        with cases.case():
            N, C, H, W = case.shape
            x = _image_batch(EX, case)
            weight, bias = _affine_parameters(EX, (C,), case)
            grad_out = EX.randn(*case.shape, key=(case.label, "grad_out"), dtype=case.dtype)
            _, expected = _library_batch_norm(x, weight, bias, case.eps, grad_out)
            x_hat, inv_std = _statistics(x, case.eps)  # (N, C, H, W), (C,)
            got = EX.call(batch_norm_backward, grad_out.clone(), x_hat.clone(), weight.clone(), inv_std.clone(),
                          case=case)  # core names an argument changed in place
            if not isinstance(got, (tuple, list)) or len(got) != 3:
                kind = type(got).__name__ + (f" of {len(got)}" if isinstance(got, (tuple, list)) else "")
                raise EX.fail(f"return three tensors, (grad_x, grad_weight, grad_bias), in that order; you returned a "
                              f"{kind}.", case=case)
            shapes = [tuple(t.shape) if isinstance(t, torch.Tensor) else None for t in got]
            if shapes != [case.shape, (C,), (C,)] and sorted(map(str, shapes)) == sorted(map(str, [case.shape, (C,),
                                                                                                  (C,)])):
                raise EX.fail(f"your three results have the shapes {shapes}: return them in the order (grad_x, "
                              f"grad_weight, grad_bias), with grad_x shaped like x {case.shape}.", case=case)
            spec = _batch_norm_spec(x, case)
            paths = _batch_norm_paths(x_hat, weight, inv_std, grad_out, case, spec=spec)
            weight_probe, bias_probe = _parameter_gradient_probes(x_hat, grad_out, weight, inv_std, case,
                                                                  "did you swap them, or leave out x̂?")
            EX.compare(got[0], expected[0], case=case, name="grad_x", equation="eq. (2.8)", probes=[paths_probe(paths)],
                       axes=IMAGE_AXES)
            for name, probe, equation, index in (("grad_weight", weight_probe, "eq. (2.3)", 1),
                                                 ("grad_bias", bias_probe, "eq. (2.2)", 2)):
                _per_channel_shape(got[index], C, EX, case, name, "dL/dγ" if index == 1 else "dL/dβ")
                EX.compare(got[index], expected[index], case=case, name=name, equation=equation, probes=[probe])
    cases.finish()
    EX.passed(f"{len(BACKWARD_CASES)} cases (batch of 1, H=W=1, large eps; float64) match the autograd gradients "
              f"of F.batch_norm: all three paths of eq. (2.8), eqs. (2.2) and (2.3).")


# ============================================================================================== Exercise 2.2
FUNCTION_CASES = (
    ImageCase("N=4, C=3, H=W=5", shape=(4, 3, 5, 5)),
    ImageCase("C = W = 3, so γ on the wrong axis still broadcasts", shape=(2, 3, 4, 3)),
    ImageCase("small inputs (×0.01), where ε matters", shape=(4, 2, 3, 3), scale=0.01),
    ImageCase("batch of 1", shape=(1, 2, 4, 4)),
    ImageCase("H=W=1, N=6 (m = N)", shape=(6, 4, 1, 1)),
    ImageCase("float64, eps=0.1", torch.float64, shape=(3, 2, 4, 2), eps=0.1),
    ImageCase("float64, N=5, C=4, H=3, W=2", torch.float64, shape=(5, 4, 3, 2)),
)
_ORDER_HINT = ("backward returns the gradients in the order forward takes its inputs: (grad_x, grad_weight, "
               "grad_bias, None).")


@one_thread
def check_batch_norm_function(BatchNormFunction) -> None:
    """Exercise 2.2: ``BatchNormFunction.apply(x, weight, bias, eps)`` matches F.batch_norm (training mode) in
    its output and its three gradients, and passes ``torch.autograd.gradcheck`` in float64."""
    EX = EX_FUNCTION
    if not hasattr(BatchNormFunction, "apply"):
        raise EX.fail("BatchNormFunction should be a class that subclasses torch.autograd.Function (keep the "
                      "given `class BatchNormFunction(torch.autograd.Function):`), called as "
                      "BatchNormFunction.apply(x, weight, bias, eps).")
    cases = _NamedFirst()
    for case in FUNCTION_CASES:
        with cases.case():
            N, C, H, W = case.shape
            x = _image_batch(EX, case)
            weight, bias = _affine_parameters(EX, (C,), case)
            grad_out = EX.randn(*case.shape, key=(case.label, "grad_out"), dtype=case.dtype)
            expected, expected_grads = _library_batch_norm(x, weight, bias, case.eps, grad_out)
            x_hat, inv_std = _statistics(x, case.eps)
            spec = _batch_norm_spec(x, case)
            # 1. the normalisation alone, with γ = 1 and β = 0
            ones, zeros = torch.ones(C, dtype=case.dtype), torch.zeros(C, dtype=case.dtype)
            plain = EX.call(BatchNormFunction.apply, x.clone(), ones, zeros, case.eps, what="BatchNormFunction.forward",
                            case=case)
            EX.compare(plain, x_hat, case=case, name="output with γ = 1, β = 0", equation="eq. (2.1)",
                       probes=[normalisation_probe(x, spec),
                               initial_affine_probe(x_hat, (C,), True, (1,), IMAGE_AXES, "BatchNorm", "eq. (2.1)"),
                               group_property_probe(x, spec)], axes=IMAGE_AXES)
            # 2. with γ and β
            leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
            got = EX.call(BatchNormFunction.apply, *leaves, case.eps, what="BatchNormFunction.forward", case=case)
            EX.compare(got, expected, case=case, equation="eq. (2.1)", axes=IMAGE_AXES,
                       probes=[affine_probe(plain, weight, bias, (1,), IMAGE_AXES, "BatchNorm", "eq. (2.1)")])
            # 3. the gradients, through your backward
            grads = EX.call(torch.autograd.grad, got, leaves, grad_out, allow_unused=True,
                            what="BatchNormFunction.backward", case=case)
            names = ("dL/dx", "dL/dγ (grad_weight)", "dL/dβ (grad_bias)")
            for name, grad in zip(names, grads):
                if grad is None:
                    raise EX.fail(f"backward returned None for {name}: {_ORDER_HINT}", case=case)
            atol, rtol = (10 * t for t in case.tolerance)
            alternatives = {
                "x": (x, "your backward used x where eq. (2.8) has x̂: save x̂ = (x − μ)·s in forward "
                         "(ctx.save_for_backward(x_hat, weight, inv_std)) and pass it to batch_norm_backward."),
                "x − μ": (x - x.mean(STATISTICS, keepdim=True), "your backward used x − μ where eq. (2.8) has "
                                                                "x̂ = (x − μ)·s: save x̂, not the centred input."),
                "x·s": (x * _view(inv_std, 4, (1,)), "your backward used x·s where eq. (2.8) has x̂ = (x − μ)·s: save "
                                                     "the x̂ your output is made from (the mean subtracted)."),
                "y": (expected, "your backward used the output y = γ·x̂ + β where eq. (2.8) has x̂: save x̂ itself in "
                                "forward, before γ and β are applied."),
                "γ·x̂": (x_hat * _view(weight, 4, (1,)), "your backward used γ·x̂ where eq. (2.8) has x̂: save x̂ "
                                                         "itself in forward, before γ is applied."),
            }
            paths = _batch_norm_paths(x_hat, weight, inv_std, grad_out, case, spec=spec, alternatives=alternatives)
            EX.compare(grads[0], expected_grads[0], case=case, name=names[0], equation="eq. (2.8)", atol=atol,
                       rtol=rtol, probes=[paths_probe(paths)], axes=IMAGE_AXES,
                       otherwise="does your batch_norm_backward pass the check of Exercise 2.1, and do you save x̂ and "
                                 "s = 1/√(σ² + ε) of the forward pass?")
            weight_probe, bias_probe = _parameter_gradient_probes(x_hat, grad_out, weight, inv_std, case, _ORDER_HINT)
            for index, probe, equation in ((1, weight_probe, "eq. (2.3)"), (2, bias_probe, "eq. (2.2)")):
                EX.compare(grads[index], expected_grads[index], case=case, name=names[index], equation=equation,
                           atol=atol, rtol=rtol, probes=[probe])
    cases.finish()
    inputs = [t.clone().requires_grad_() for t in (_image_batch(EX, ImageCase("gradcheck", torch.float64,
                                                                              shape=(3, 2, 2, 3)), "gradcheck"),
                                                   torch.tensor([1.3, 0.7], dtype=torch.float64),
                                                   torch.tensor([0.2, -0.4], dtype=torch.float64))]
    ok = EX.call(torch.autograd.gradcheck, lambda x, w, b: BatchNormFunction.apply(x, w, b, 1e-5), inputs,
                 raise_exception=False, what="BatchNormFunction (under gradcheck)", case="gradcheck, float64")
    if not ok:
        raise EX.fail("torch.autograd.gradcheck disagrees with your backward in float64 (finite differences of your "
                      "forward vs your backward): keep every step in the input's dtype.", case="gradcheck, float64")
    EX.passed(f"{len(FUNCTION_CASES)} cases (C = W, small inputs, batch of 1, H=W=1, float64) match F.batch_norm in "
              f"training mode, output and all three gradients, and gradcheck passes in float64.")


# ============================================================================================== Exercise 2.3
MODULE_CASES = (
    ModuleCase("C=3, momentum=0.1", shape=(4, 3, 5, 5), momentum=0.1),
    ModuleCase("C=3, momentum=0.3, eps=0.5 (where ε shows in eval mode)", shape=(2, 3, 3, 4), momentum=0.3, eps=0.5),
    ModuleCase("momentum=None (cumulative average)", shape=(3, 4, 2, 2), momentum=None),
    ModuleCase("batch of 2, H=W=1 (m = 2)", shape=(2, 3, 1, 1), momentum=0.1),
)
TRAINING_STEPS = 3


def _step_batch(exercise: Exercise, case: ModuleCase, step: int) -> torch.Tensor:
    """Batches whose means and spreads move from step to step (σ ≈ 2.5, 3.5, 4.5, more in later channels), so the
    buffers move far, and by different amounts in each channel."""
    C = case.shape[1]
    spread = (1.5 + step) * (1 + 0.5 * torch.arange(C, dtype=case.dtype)).view(1, C, 1, 1)  # σ differs per channel
    return _image_batch(exercise, dataclasses.replace(case, scale=1.0), key=f"step {step}") * spread + 2 * step - 1


def _momentum_factor(momentum, step: int) -> float:
    return 1 / step if momentum is None else momentum


def running_problems(before: torch.Tensor, after: torch.Tensor, x: torch.Tensor, kind: str, case: ModuleCase,
                     step: int | None, output: torch.Tensor | None = None) -> str | None:
    """How your buffer moved toward this batch's statistic: the statistic you averaged in (recovered with the
    right α and named), else the momentum you used (eq. (2.9)) and whether the statistic was the biased or the
    unbiased variance. ``step`` is None in eval mode (it must not move); ``output`` is your training output."""
    rtol = 1e-3
    old, new = before.detach().double(), after.detach().double()
    xd = x.detach().double()
    if step is not None and _close(new, old, 1e-6):
        if case.momentum is None and step == 1:
            return (f"{kind} did not change at training step 1, as if α were 0: with momentum=None, α = "
                    f"1/num_batches_tracked after counting this batch, so α = 1/1 at the first step — increment "
                    f"num_batches_tracked before computing α (eq. (2.9)).")
        return f"{kind} did not change at training step {step}: update it in every training-mode forward (eq. (2.9))."
    if step is not None:
        named = _averaged_statistic(old, new, xd, kind, case, _momentum_factor(case.momentum, step), output)
        if named:
            return f"at training step {step} your {kind} averages in {named} (eq. (2.9))."
    statistics = {"mean": {"the batch mean": xd.mean(STATISTICS)}} if kind == "running_mean" else {
        "var": {"the unbiased batch variance": xd.var(STATISTICS, unbiased=True),
                "the biased batch variance": xd.var(STATISTICS, unbiased=False),
                "the batch standard deviation": xd.std(STATISTICS)}}
    statistics = next(iter(statistics.values()))
    want = None if step is None else _momentum_factor(case.momentum, step)
    moves = {}  # statistic → the share of the way toward it that your buffer moved, when one share fits all
    for statistic_name, statistic in statistics.items():
        distance = statistic - old
        usable = distance.abs() > 1e-3 * statistic.abs().max()
        if not usable.any():
            continue
        alpha = (new - old)[usable] / distance[usable]  # how far it moved, as a share of the way to the batch's
        if (alpha.max() - alpha.min()).abs() <= rtol * max(1.0, alpha.abs().max().item()):
            moves[statistic_name] = alpha.mean().item()
    if want is not None:  # a share that is exactly right names the statistic as the mistake
        moves = dict(sorted(moves.items(), key=lambda item: abs(item[1] - want) > rtol * max(want, 1e-3)))
    for statistic_name, used in moves.items():
        if step is None:
            return (f"{kind} changed in eval mode: it moved {used:.3g} of the way toward {statistic_name}. Update "
                    f"the running statistics only when self.training is True (eq. (2.9)).")
        wrong_statistic = statistic_name != next(iter(statistics))
        factor_ok = abs(used - want) <= rtol * max(want, 1e-3)
        said = []
        if wrong_statistic:
            said.append(f"your {kind} averages {statistic_name}, but eq. (2.9) averages the unbiased batch variance "
                        f"(÷ (m − 1), m = N·H·W = {case.m}): x.var(dim=(0, 2, 3), unbiased=True); only the "
                        f"normalisation itself uses the biased one")
        if not factor_ok:
            what = f"momentum = {case.momentum}" if case.momentum is not None else \
                f"momentum=None, a cumulative average: α = 1/num_batches_tracked = 1/{step}"
            named = {f"1/{step - 1}": 1 / (step - 1)} if step > 1 and case.momentum is None else {}
            named.update({"1 − momentum": 1 - want, "0.1": 0.1, "1 (no average)": 1.0, "0": 0.0,
                          f"1/{step + 1}": 1 / (step + 1)})
            name = next((n for n, v in named.items() if abs(used - v) <= rtol * max(v, 1e-3) + 1e-9), None)
            explain = {
                "1 − momentum": "momentum is applied backwards: running = (1 − momentum)·running + momentum·batch, "
                                "so the new batch gets the weight momentum, not 1 − momentum",
                "0.1": "use self.momentum (or 1/num_batches_tracked when it is None), not a hard-coded 0.1",
                "1 (no average)": "you replaced the running statistic by the batch's: average them, "
                                  "(1 − α)·running + α·batch",
                f"1/{step + 1}": f"your α is 1/{step + 1} = 1/(num_batches_tracked + 1), one batch too many: "
                                 f"increment num_batches_tracked once, then use α = 1/num_batches_tracked",
                f"1/{step - 1}": "increment num_batches_tracked before computing α = 1/num_batches_tracked",
            }.get(name, "")
            said.append(f"at training step {step} your {kind} moved {used:.3g} of the way from its old value toward "
                        f"{statistic_name}, but eq. (2.9) with {what} moves it by α = {want:.3g}"
                        + (f": {explain}" if explain else ""))
        if said:
            return "; ".join(said) + " (eq. (2.9))."
    if step is None:
        return None
    used = (new - (1 - want) * old) / want  # the batch statistic you averaged in, if your α is right
    name, right = next(iter(statistics.items()))
    code = "x.mean(dim=(0, 2, 3))" if kind == "running_mean" else "x.var(dim=(0, 2, 3), unbiased=True)"
    if torch.isfinite(used).all():
        return (f"at training step {step}, if your α is {want:.3g} (eq. (2.9)), the batch statistic your {kind} "
                f"averages in is {_show(used)}, but {name} is {_show(right)}: compute it as {code}, from x itself.")
    return None


def _averaged_statistic(old, new, x, kind: str, case: ModuleCase, alpha: float, output) -> str | None:
    """The batch statistic your buffer averaged in, if your α is right: (new − (1 − α)·old)/α, named among the
    statistics a learner might compute instead (other values, the output, a count off by a factor); else None."""
    used = (new - (1 - alpha) * old) / alpha
    if not torch.isfinite(used).all():
        return None
    m = case.m
    every = "one number for every channel: reduce over dim=(0, 2, 3) only, keeping one entry per channel"
    from_x = "compute the statistics from the input x, before normalising"
    if kind == "running_mean":
        right = x.mean(STATISTICS)
        candidates = {"the mean of every value of the batch": (x.mean().expand_as(right), every)}
        if output is not None:
            candidates["the mean of your output y (≈ β, since y is normalised)"] = (output.double().mean(STATISTICS),
                                                                                 from_x)
    else:
        right = x.var(STATISTICS, unbiased=True)
        per_example = "it leaves out how the examples differ: take the variance over (N, H, W) at once"
        candidates = {
            "the variance of every value of the batch": (x.var().expand_as(right), every),
            "the unbiased variance of each example's channel over (H, W), averaged over the N examples": (
                x.var((2, 3), unbiased=True).mean(0), per_example),
            "the biased variance of each example's channel over (H, W), averaged over the N examples": (
                x.var((2, 3), unbiased=False).mean(0), per_example)}
        if output is not None:
            candidates["the variance of your output y (≈ γ², since y is normalised)"] = (
                output.double().var(STATISTICS, unbiased=True), from_x)
    for name, (value, advice) in candidates.items():
        if _close(used, value, rtol=1e-4):
            return f"{name}: {advice}"
    ratio = used / right
    k = ratio.mean().item()
    if kind == "running_var" and _close(ratio, torch.full_like(ratio, k), 1e-4) and abs(k - 1) > 1e-3:
        if abs(k - m / (m - 1)) <= 1e-4 * k:
            return (f"{k:.4g} (= m/(m − 1), m = N·H·W = {m}) × the unbiased batch variance: Bessel's correction is "
                    f"applied twice — x.var(dim=(0, 2, 3), unbiased=True) already divides by m − 1, so do not "
                    f"multiply by m/(m − 1) again")
        count = (m - 1) / k  # your variance = Σ(x − μ)² / count
        named = count_name(count, case.sizes)
        if named and round(count) not in (m, m - 1):  # m itself: the biased variance, said below
            return (f"the sum of squared deviations divided by {round(count)} (= {named}) instead of m − 1 = "
                    f"{m - 1} (m = N·H·W): x.var(dim=(0, 2, 3), unbiased=True)")
    return None


def eval_problems(x, y, weight, bias, sources: dict, eps: float, ratios: dict | None = None) -> str | None:
    """What your eval-mode output normalises with, recovered per channel: y = A·x + B, so the mean μ′ = (β − B)/A
    and the factor a′ = A/γ are compared with the running statistics and with what else they might be."""
    rtol = 2e-5  # the per-channel fit recovers A and B to float32 rounding
    xd, yd = x.detach().double(), y.detach().double()
    fit = _fit_affine(xd, yd, axes_partition(xd.shape, IMAGE_AXES, STATISTICS))
    if fit.residual > 1e-4:
        return None
    C = xd.shape[1]
    A = fit.a.transpose(0, 1).reshape(C, -1)[:, 0]
    B = fit.b.transpose(0, 1).reshape(C, -1)[:, 0]
    gamma, beta = weight.detach().double(), bias.detach().double()
    mean_used, factor_used = (beta - B) / A, A / gamma
    size = next(iter(sources.values()))[0].abs().max().item()  # a mean of 0 is then recognised too
    mean_is = next((n for n, (mean, _) in sources.items() if _close(mean_used, mean.double(), rtol, size)), None)
    factor_is = None
    for name, (_, var) in sources.items():  # of the forms that fit, the closest (ε may be small next to σ²)
        errors = {form: ((factor_used - formula(var.double(), eps)).abs() / factor_used.abs()).max().item()
                  for form, (formula, _) in _FORMS.items()}
        form = min(errors, key=errors.get)
        if errors[form] <= rtol:
            factor_is = (name, form, _FORMS[form][1])
            break
    if factor_is and _close(mean_used, sources[factor_is[0]][0].double(), rtol, size):
        mean_is = factor_is[0]  # one source explains both: say it once
    right = next(iter(sources))
    if mean_is == right and factor_is and factor_is[0] == right and factor_is[1] == "inside":
        return None
    said = []
    if mean_is == factor_is[0] if factor_is else False:
        if mean_is != right:
            said.append(f"in eval mode you normalise with {mean_is}")
    else:
        if mean_is != right:
            said.append(f"in eval mode the mean you subtract is {mean_is or 'not the running mean'}")
        if factor_is is None:
            running_var = next(iter(sources.values()))[1].double()
            ratio = ((gamma / A) ** 2 - eps) / running_var  # the variance you used, as a multiple of running_var
            named = next((n for n, (value, _) in (ratios or {}).items() if _close(ratio, torch.full_like(ratio, value),
                                                                                  rtol)), None)
            if named:
                said.append(f"your variance is {ratio.mean().item():.4g} (= {named}) × running_var: "
                            f"{ratios[named][1]}")
            else:
                said.append("the factor you multiply by is not 1/√(running_var + ε)")
        elif factor_is[0] != right:
            said.append(f"your variance is {factor_is[0]}")
    if factor_is and factor_is[1] != "inside":
        said.append(factor_is[2].replace("σ²", "running_var").replace("σ", "√running_var"))
    advice = {"this batch's mean and variance": "eval mode uses running_mean and running_var (eq. (2.9), right), "
                                                "so that an example's output does not depend on its batch",
              "running statistics that this eval batch had already updated": "update them only when self.training",
              "mean 0 and variance 1, the initial buffers": "use the buffers the training steps updated"}
    tips = [advice[n] for n in (mean_is, factor_is[0] if factor_is else None) if n in advice]
    return "; ".join(said) + (": " + tips[0] if tips else "") + " (eq. (2.9), y_eval)."


def _buffer(module, name: str, C: int) -> torch.Tensor:
    """A copy of a buffer as it is before a step (NaN when it is not a tensor of C entries: no probe can use it)."""
    buffer = getattr(module, name, None)
    if isinstance(buffer, torch.Tensor) and buffer.numel() == C:
        return buffer.detach().reshape(C).clone()
    return torch.full((C,), math.nan)


def _buffer_problems(EX, module, case, step: int | None, before: dict, x, expected_tracked: int,
                     library, output: torch.Tensor | None = None) -> None:
    for name in ("running_mean", "running_var"):
        buffer = getattr(module, name, None)
        if not isinstance(buffer, torch.Tensor):
            raise EX.fail(f"self.{name} is gone (it is {type(buffer).__name__}): keep the buffer from the given "
                          f"__init__ and update it in place.", case=case)
        if buffer.shape != (case.shape[1],):
            raise EX.fail(f"self.{name} has shape {tuple(buffer.shape)} but should keep its shape ({case.shape[1]},), "
                          f"one entry per channel: update it with a (C,) batch statistic, x.mean(dim=(0, 2, 3)) "
                          f"without keepdim=True (a (C,) buffer and a (1, C, 1, 1) statistic broadcast to "
                          f"(1, C, 1, C)), in place: self.{name}.mul_(1 − α).add_(α · …).", case=case)
        if buffer.requires_grad or buffer.grad_fn is not None:
            raise EX.fail(f"self.{name} is part of the autograd graph: update the running statistics under "
                          f"`with torch.no_grad():` (or from x.detach()).", case=case)
        probe = (lambda got, name=name: running_problems(before[name], got, x, name, case, step, output))
        EX.compare(buffer.detach(), getattr(library, name), case=case, name=name, equation="eq. (2.9)",
                   probes=[probe], atol=1e-5, rtol=1e-4)
    tracked = getattr(module, "num_batches_tracked", None)
    if not isinstance(tracked, torch.Tensor) or tracked.numel() != 1:
        raise EX.fail("self.num_batches_tracked is gone: keep the buffer from the given __init__.", case=case)
    if int(tracked) != expected_tracked:
        raise EX.fail(f"num_batches_tracked is {int(tracked)} but should be {expected_tracked}: add 1 at every "
                      f"training-mode forward, and not in eval mode.", case=case)


@one_thread
def check_batch_norm_module(BatchNorm2d) -> None:
    """Exercise 2.3: ``BatchNorm2d(C, eps, momentum)`` against ``nn.BatchNorm2d`` with the same γ, β: three
    training steps (outputs, all gradients, running statistics, num_batches_tracked), then eval mode."""
    EX = EX_MODULE
    cases = _NamedFirst()
    for case in MODULE_CASES:
        with cases.case():
            N, C, H, W = case.shape

            def build():
                module = EX.call(BatchNorm2d, C, eps=case.eps, momentum=case.momentum, what="BatchNorm2d(...)",
                                 case=case)
                if not isinstance(module, nn.Module):
                    raise EX.fail(f"BatchNorm2d(...) gave a {type(module).__name__}, not an nn.Module: keep the given "
                                  f"class.", case=case)
                return module

            module, plain = build(), build()  # plain keeps γ = 1, β = 0: its output is x̂ itself
            library = nn.BatchNorm2d(C, eps=case.eps, momentum=case.momentum)
            _check_parameters(EX, module, library, case, "BatchNorm2d has one γ and one β per channel (C,).")
            with torch.no_grad():
                weight, bias = _affine_parameters(EX, (C,), case)
                library.weight.copy_(weight)
                library.bias.copy_(bias)
            copy_parameters(library, module, EX)
            for step in range(1, TRAINING_STEPS + 1):
                step_case = _labelled(case, f"training step {step}")
                x = _step_batch(EX, case, step)
                grad_out = EX.randn(*case.shape, key=(case.label, "grad_out", step))
                before = {name: _buffer(module, name, C) for name in ("running_mean", "running_var")}
                for each in (module, plain, library):
                    each.train()
                plain_before = {name: _buffer(plain, name, C) for name in ("running_mean", "running_var")}
                x_hat_got = EX.call(plain, x.clone(), what="BatchNorm2d.forward", case=step_case)
                running_means = {
                    "you subtract the running mean in training mode: normalise with the batch's own statistics (your "
                    "BatchNormFunction)": plain_before["running_mean"],
                    "you subtract the running mean (already updated with this batch) in training mode: normalise with "
                    "the batch's own statistics (your BatchNormFunction)": getattr(plain, "running_mean", None)}
                spec = _batch_norm_spec(x, case, extra_means={
                    message: _view(mean.detach().reshape(C), 4, (1,)).expand(*x.shape)
                    for message, mean in running_means.items() if isinstance(mean, torch.Tensor) and mean.numel() == C})
                x_hat, inv_std = _statistics(x, case.eps)
                EX.compare(x_hat_got, x_hat, case=step_case, name="output with γ = 1, β = 0", equation="eq. (2.1)",
                           probes=[normalisation_probe(x, spec),
                                   initial_affine_probe(x_hat, (C,), True, (1,), IMAGE_AXES, "BatchNorm", "eq. (2.1)"),
                                   group_property_probe(x, spec)], axes=IMAGE_AXES)
                got, expected = run_module(EX, module, x, grad_out, case=step_case), \
                    run_module(EX, library, x, grad_out, case=step_case)
                EX.compare(got.output, expected.output, case=step_case, equation="eq. (2.1)", axes=IMAGE_AXES,
                           probes=[affine_probe(x_hat_got, weight, bias, (1,), IMAGE_AXES, "BatchNorm", "eq. (2.1)")],
                           otherwise="does your BatchNormFunction pass the check of Exercise 2.2?")
                paths = _batch_norm_paths(x_hat, weight, inv_std, grad_out, case, spec=spec)
                atol, rtol = (10 * t for t in case.tolerance)
                _compare_input_gradient(EX, got, expected, step_case, paths, atol, rtol)
                compare_runs(EX, got, expected, case=step_case, equation="eq. (2.1)", axes=IMAGE_AXES,
                             grad_equation="eq. (2.8) (your BatchNormFunction's backward)")
                _buffer_problems(EX, module, step_case, step, before, x, step, library, got.output)
            # eval mode: the running statistics are constants
            eval_case = _labelled(case, "eval mode")
            module.eval()
            library.eval()
            x = _image_batch(EX, case, key="eval") * 2 + 1
            grad_out = EX.randn(*case.shape, key=(case.label, "grad_out", "eval"))
            before = {name: _buffer(module, name, C) for name in ("running_mean", "running_var")}
            got, expected = run_module(EX, module, x, grad_out, case=eval_case), \
                run_module(EX, library, x, grad_out, case=eval_case)
            running_mean, running_var = library.running_mean.double(), library.running_var.double()
            alpha = _momentum_factor(case.momentum, TRAINING_STEPS + 1)
            xd = x.double()
            sources = {
                "the running statistics": (running_mean, running_var),
                "this batch's mean and variance": (xd.mean(STATISTICS), xd.var(STATISTICS, unbiased=False)),
                "running statistics that this eval batch had already updated": (
                    (1 - alpha) * running_mean + alpha * xd.mean(STATISTICS),
                    (1 - alpha) * running_var + alpha * xd.var(STATISTICS, unbiased=True)),
                "0 — you subtract nothing: subtract running_mean": (torch.zeros(C, dtype=torch.float64), running_var),
                "mean 0 and variance 1, the initial buffers": (torch.zeros(C, dtype=torch.float64),
                                                               torch.ones(C, dtype=torch.float64)),
            }
            m = case.m
            as_it_is = "running_var already holds the unbiased estimate; normalise with it as it is"
            ratios = {"(m − 1)/m": ((m - 1) / m, as_it_is), "m/(m − 1)": (m / (m - 1), as_it_is)}
            eval_x_hat = (x - _view(library.running_mean, 4, (1,))) / torch.sqrt(_view(library.running_var, 4, (1,))
                                                                                  + case.eps)
            EX.compare(got.output, expected.output, case=eval_case, equation="eq. (2.9)", axes=IMAGE_AXES,
                       probes=[affine_probe(eval_x_hat, weight, bias, (1,), IMAGE_AXES, "BatchNorm", "eq. (2.9)",
                                            named_only=True),
                               lambda y: eval_problems(x, y, weight, bias, sources, case.eps, ratios)])
            compare_runs(EX, got, expected, case=eval_case, equation="eq. (2.9)", axes=IMAGE_AXES,
                         grad_equation="the backward of eq. (2.9), right (autograd: in eval mode the statistics are "
                                       "constants)")
            _buffer_problems(EX, module, eval_case, None, before, x, TRAINING_STEPS, library)
    cases.finish()
    EX.passed(f"{len(MODULE_CASES)} cases (momentum 0.1, 0.3 and None, batch of 2) match nn.BatchNorm2d over "
              f"{TRAINING_STEPS} training steps and in eval mode: outputs, gradients, running_mean, running_var "
              f"(unbiased) and num_batches_tracked.")


def _compare_input_gradient(EX, got, expected, case, paths: Paths, atol, rtol) -> None:
    if got.input_grad is None:
        raise EX.fail("your output does not depend on x in the autograd graph (x.grad is None): compute it from x.",
                      case=case)
    EX.compare(got.input_grad, expected.input_grad, case=case, name="dL/dx", equation=paths.equation,
               atol=atol, rtol=rtol, probes=[paths_probe(paths)], axes=None)


# ============================================================================================== modules 2.4–2.7
def _check_parameters(EX, module: nn.Module, library: nn.Module, case: Case, hint: str) -> None:
    """Your module has the library's parameters (γ = weight, β = bias), of its shapes, starting at ones and
    zeros, and no others."""
    theirs = dict(module.named_parameters())
    for name, parameter in library.named_parameters():
        symbol = "γ" if name == "weight" else "β"
        if name not in theirs:
            plain = getattr(module, name, None)
            kind = "a plain tensor, not an nn.Parameter, so it is not learned" if isinstance(plain, torch.Tensor) \
                else "missing"
            raise EX.fail(f"your module's parameter `self.{name}` ({symbol}) is {kind}: create it in __init__ as "
                          f"nn.Parameter(torch.{'ones' if name == 'weight' else 'zeros'}(…)). {hint}", case=case)
        if theirs[name].shape != parameter.shape:
            raise EX.fail(f"self.{name} ({symbol}) has shape {tuple(theirs[name].shape)} but should have "
                          f"{tuple(parameter.shape)}. {hint}", case=case)
        start = "ones" if name == "weight" else "zeros"
        if not torch.equal(theirs[name].detach().to(parameter.dtype), parameter.detach()):
            raise EX.fail(f"self.{name} ({symbol}) should start at {start}, so that the layer starts as a pure "
                          f"normalisation, like {type(library).__name__}'s.", case=case)
    extra = sorted(set(theirs) - {name for name, _ in library.named_parameters()})
    if extra:
        raise EX.fail(f"your module has parameters {extra} that {type(library).__name__} does not have. {hint}",
                      case=case)


def inside_probe(EX: Exercise, fresh: nn.Module, x, weight, bias, param_axes, case: Case, spec: NormSpec):
    """γ (or γ and β) applied to x before normalising, recognised by running your own module at γ = 1, β = 0 on
    γ·x (or γ·x + β)."""
    def probe(got):
        gamma = _view(weight, x.dim(), param_axes)
        beta = 0 if bias is None else _view(bias, x.dim(), param_axes)
        fresh.train()
        tries = {"γ": (lambda: EX.call(fresh, x * gamma, case=case) + beta),
                 "γ and β": (lambda: EX.call(fresh, x * gamma + beta, case=case))}
        for what, make in tries.items():
            with torch.no_grad():
                candidate = make()
            if isinstance(candidate, torch.Tensor) and candidate.shape == got.shape and \
                    _close(got.detach().double(), candidate.double(), 10 * _probe_rtol(x.dtype)):
                return (f"you apply {what} to x before normalising, so the normalisation undoes most of it: "
                        f"{'y = γ ⊙ x̂' if bias is None else 'y = γ·x̂ + β'} scales (and shifts) the normalised x̂ "
                        f"({spec.equation}).")
        return None
    return probe


def _train_eval_probe(train_output: torch.Tensor, method: str):
    """Without running statistics the function is the same in training and eval mode."""
    def probe(got):
        if not _close(got.detach().double(), train_output.double(), 1e-5):
            return (f"your output in eval mode differs from training mode, but {method} has no running statistics "
                    f"(PyTorch's track_running_stats=False): it uses each example's own statistics in eval mode too, "
                    f"so ignore self.training.")
        return None
    return probe


def _check_normalisation_module(EX: Exercise, case: Case, build: Callable, library: nn.Module, x: torch.Tensor,
                                spec: NormSpec, param_axes: tuple, names: tuple, hint: str, *,
                                per_example: bool = True) -> None:
    """A module against PyTorch's: its parameters; the normalisation with γ = 1, β = 0; the output with copied
    random γ, β in training and eval mode; dL/dx (the paths of eq. (2.8)) and the parameter gradients."""
    module = EX.call(build, what=f"{EX.name}(...)", case=case)
    if not isinstance(module, nn.Module):
        raise EX.fail(f"{EX.name}(...) gave a {type(module).__name__}, not an nn.Module: keep the given class.",
                      case=case)
    module.to(case.dtype)
    library.to(case.dtype)
    _check_parameters(EX, module, library, case, hint)
    module.train()
    library.train()
    run = lambda inputs: module(inputs)  # noqa: E731 - the learner's forward, as the probes call it
    plain = EX.call(run, x.clone(), what=f"{EX.name}.forward", case=case)
    with torch.no_grad():
        expected_plain = library(x)
    EX.compare(plain, expected_plain, case=case, name="output with γ = 1, β = 0", equation=spec.equation,
               axes=names, probes=[normalisation_probe(x, spec),
                                   initial_affine_probe(expected_plain, library.weight.shape,
                                                        getattr(library, "bias", None) is not None, param_axes,
                                                        names, spec.method, spec.equation),
                                   *([independence_probe(EX, run, x, spec, case)] if per_example else []),
                                   shift_probe(EX, run, x, spec, case), group_property_probe(x, spec)])
    with torch.no_grad():
        for name, parameter in library.named_parameters():
            if name == "weight":
                parameter.copy_(_affine_parameters(EX, parameter.shape, case)[0])
            else:
                parameter.copy_(_affine_parameters(EX, parameter.shape, case)[1])
    copy_parameters(library, module, EX)
    fresh = EX.call(build, what=f"{EX.name}(...)", case=case).to(case.dtype)  # γ = 1, β = 0: your normalisation
    weight = library.weight.detach()
    bias = library.bias.detach() if getattr(library, "bias", None) is not None else None
    grad_out = EX.randn(*x.shape, key=(case.label, "grad_out"), dtype=case.dtype)
    gamma = _view(weight.double(), x.dim(), param_axes)
    P = spec.partition
    xd = x.double()
    if spec.centred:
        s = 1 / torch.sqrt(_moment(xd, P, "variance") + spec.eps)
        x_hat = (xd - P.mean(xd)) * s
    else:
        s = 1 / torch.sqrt(_moment(xd, P, "mean square") + spec.eps)
        x_hat = xd * s
    factors, hints = _count_factors(P.size, P.size, P.size)
    paths = Paths(grad_out.double(), gamma.expand(*x.shape), x_hat, s, spec, "eq. (2.8)'s form",
                  {"direct": "s·γg", "mean": "s·mean(γg)", "var": "s·x̂·mean(γg·x̂)", "mean_of": "γg"},
                  {"2": 2.0, "1/2": 0.5}, {k: v for k, v in hints.items() if k in ("2", "1/2")},
                  detached_hint=" In autograd code a path goes missing when a statistic is cut from the graph: compute "
                                "μ and σ² from x without .detach(), .item(), .data or torch.no_grad().",
                  gamma_inside=True)
    train_output = None
    for mode in ("train", "eval"):
        mode_case = _labelled(case, f"{mode} mode")
        module.train(mode == "train")
        library.train(mode == "train")
        got = run_module(EX, module, x, grad_out, case=mode_case)
        expected = run_module(EX, library, x, grad_out, case=mode_case)
        probes = [affine_probe(plain, weight, bias, param_axes, names, spec.method, spec.equation),
                  inside_probe(EX, fresh, x, weight, bias, param_axes, mode_case, spec)]
        if mode == "eval":
            probes.insert(0, _train_eval_probe(train_output, spec.method))
        EX.compare(got.output, expected.output, case=mode_case, equation=spec.equation, axes=names, probes=probes)
        train_output = got.output
        atol, rtol = (10 * t for t in case.tolerance)
        _compare_input_gradient(EX, got, expected, mode_case, paths, atol, rtol)
        compare_runs(EX, got, expected, case=mode_case, equation=spec.equation, axes=names,
                     grad_equation=f"the backward of {spec.equation} (autograd computes it from your forward)")


def _trailing_spec(case: TrailingCase, method: str, equation: str, eps: float, eps_text: str, centred: bool):
    ndim = len(case.shape)
    dims = tuple(d % ndim for d in case.dims)
    known = {dims: f"{method}'s set: the last len(normalized_shape) = {len(dims)} axes", (0,): "the batch axis"}
    if len(dims) > 1:
        known[(ndim - 1,)] = "the last axis only"
    candidates = every_axes_partition(case.shape, case.axes, known)
    right = next(p for p in candidates if p.same_as(axes_partition(case.shape, case.axes, dims)))
    return NormSpec(method, equation, right, f"dim={case.dims if len(case.dims) > 1 else case.dims[0]} (the last "
                    f"len(normalized_shape) axes)", tuple(candidates), eps, eps_text, centred, sizes=case.sizes)


def _trailing_input(EX, case: TrailingCase) -> torch.Tensor:
    return EX.randn(*case.shape, key=(case.label, "x"), dtype=case.dtype) * case.scale + case.offset


# ---------------------------------------------------------------------------------------------- Exercise 2.4
LAYER_CASES = (
    TrailingCase("(B, T, D) = (2, 5, 8)", shape=(2, 5, 8), normalized_shape=8),
    TrailingCase("images (N, C, H, W), normalized_shape=(C, H, W)", shape=(2, 3, 4, 4), normalized_shape=(3, 4, 4),
                 axes=IMAGE_AXES),
    TrailingCase("(N, D) = (4, 6), small inputs (×0.01)", shape=(4, 6), normalized_shape=6, axes=("N", "D"),
                 scale=0.01, offset=0.005),
    TrailingCase("(B, T, D) = (3, 4, 5), normalized_shape=(4, 5), eps=0.1", shape=(3, 4, 5), normalized_shape=(4, 5),
                 eps=0.1),
    TrailingCase("float64, one example (1, 7)", torch.float64, shape=(1, 7), normalized_shape=7, axes=("N", "D")),
    TrailingCase("float64, (B, T, D) = (3, 2, 6)", torch.float64, shape=(3, 2, 6), normalized_shape=6),
)


@one_thread
def check_layer_norm(LayerNorm) -> None:
    """Exercise 2.4: ``LayerNorm(normalized_shape, eps)`` against ``nn.LayerNorm`` with copied γ, β."""
    EX = EX_LAYER
    cases = _NamedFirst()
    for case in LAYER_CASES:
        with cases.case():
            x = _trailing_input(EX, case)
            spec = _trailing_spec(case, "LayerNorm", "eq. (2.10)", case.eps, "the eps argument", centred=True)
            ndim = len(case.shape)
            _check_normalisation_module(
                EX, case, lambda: LayerNorm(case.normalized_shape, eps=case.eps),
                nn.LayerNorm(case.normalized_shape, eps=case.eps), x, spec, tuple(d % ndim for d in case.dims),
                case.axes, "LayerNorm has one γ and one β per element of normalized_shape: "
                           "torch.ones(self.normalized_shape).", per_example=True)
    cases.finish()
    EX.passed(f"{len(LAYER_CASES)} cases (images with normalized_shape=(C, H, W), small inputs, large eps, float64) "
              f"match nn.LayerNorm: outputs and gradients.")


# ---------------------------------------------------------------------------------------------- Exercise 2.5
INSTANCE_CASES = (
    ImageCase("C = W = 4", shape=(3, 4, 2, 4), scale=2.0),
    ImageCase("N=2, C=3, H=W=5", shape=(2, 3, 5, 5), scale=2.0),
    ImageCase("batch of 1", shape=(1, 2, 3, 3), scale=2.0),
    ImageCase("small inputs (×0.01), eps=1e-3", shape=(2, 2, 4, 4), scale=0.01, eps=1e-3),
    ImageCase("float64, N=2, C=3, H=4, W=5", torch.float64, shape=(2, 3, 4, 5)),
)


def _image_spec(x, method, equation, right: Partition, code: str, case: ImageCase, extra=()) -> NormSpec:
    candidates = _unique(every_axes_partition(tuple(x.shape), IMAGE_AXES, IMAGE_METHODS) + list(extra))
    right = next(p for p in candidates if p.same_as(right))
    return NormSpec(method, equation, right, code, tuple(candidates), case.eps, "the eps argument", sizes=case.sizes)


@one_thread
def check_instance_norm(InstanceNorm2d) -> None:
    """Exercise 2.5: ``InstanceNorm2d(C, eps)`` (affine, no running statistics) against
    ``nn.InstanceNorm2d(C, eps, affine=True)`` with copied γ, β, in training and eval mode."""
    EX = EX_INSTANCE
    cases = _NamedFirst()
    for case in INSTANCE_CASES:
        with cases.case():
            N, C, H, W = case.shape
            x = _image_batch(EX, case)
            spec = _image_spec(x, "InstanceNorm", "eq. (2.10)", axes_partition(x.shape, IMAGE_AXES, (2, 3)),
                               "dim=(2, 3)", case)
            _check_normalisation_module(EX, case, lambda: InstanceNorm2d(C, eps=case.eps),
                                        nn.InstanceNorm2d(C, eps=case.eps, affine=True), x, spec, (1,), IMAGE_AXES,
                                        "InstanceNorm2d has one γ and one β per channel: torch.ones(num_features).")
    cases.finish()
    EX.passed(f"{len(INSTANCE_CASES)} cases (C = W, batch of 1, small inputs, float64) match "
              f"nn.InstanceNorm2d(affine=True) in training and eval mode: outputs and gradients.")


# ---------------------------------------------------------------------------------------------- Exercise 2.6
GROUP_CASES = (
    ImageCase("N=2, C=6, G=3", shape=(2, 6, 4, 4), groups=3, scale=2.0),
    ImageCase("N=3, C=8, G=2, H≠W", shape=(3, 8, 3, 5), groups=2, scale=2.0),
    ImageCase("G=1 (LayerNorm over C, H, W)", shape=(2, 4, 3, 3), groups=1, scale=2.0),
    ImageCase("G=C (InstanceNorm)", shape=(2, 4, 3, 3), groups=4, scale=2.0),
    ImageCase("batch of 1, C=8, G=4, eps=0.1", shape=(1, 8, 2, 2), groups=4, eps=0.1, scale=2.0),
    ImageCase("small inputs (×0.01), C=6, G=2", shape=(2, 6, 3, 3), groups=2, scale=0.01),
    ImageCase("float64, N=2, C=6, G=2", torch.float64, shape=(2, 6, 2, 3), groups=2),
)


def _channel_partitions(shape, groups: int) -> list[Partition]:
    """Groups of channels a GroupNorm might form: blocks and strides of every size, per example or not."""
    C = shape[1]
    found = []
    for size in (d for d in range(1, C + 1) if C % d == 0):
        right = size == C // groups
        method = "GroupNorm's set: a block of C/G consecutive channels of one example" if right else \
            f"GroupNorm's set for num_groups = {C // size}"
        found.append(channel_partition(shape, block=size, method=method))
        found.append(channel_partition(shape, block=size, per_example=False))
        if 1 < size < C:
            found.append(channel_partition(shape, stride=C // size, method="groups formed by "
                                           "reshaping to (N, C/G, G, H, W)" if C // size == groups else ""))
            found.append(channel_partition(shape, stride=C // size, per_example=False))
    return found


@one_thread
def check_group_norm(GroupNorm) -> None:
    """Exercise 2.6: ``GroupNorm(num_groups, num_channels, eps)`` against ``nn.GroupNorm`` with copied γ, β."""
    EX = EX_GROUP
    cases = _NamedFirst()
    for case in GROUP_CASES:
        with cases.case():
            N, C, H, W = case.shape
            G = case.groups
            x = _image_batch(EX, case)
            right = channel_partition(x.shape, block=C // G)
            code = f"reshape to (N, G, C/G, H, W) = (N, {G}, {C // G}, H, W) and reduce over dim=(2, 3, 4)"
            spec = _image_spec(x, "GroupNorm", "eq. (2.11)", right, code, case, _channel_partitions(x.shape, G))
            _check_normalisation_module(
                EX, case, lambda: GroupNorm(G, C, eps=case.eps), nn.GroupNorm(G, C, eps=case.eps), x, spec, (1,),
                IMAGE_AXES, "GroupNorm's γ and β are per channel (num_channels,), not per group: the groups share "
                            "statistics, not parameters.")
    cases.finish()
    EX.passed(f"{len(GROUP_CASES)} cases (G=1, G=C, batch of 1, H≠W, small inputs, float64) match nn.GroupNorm: "
              f"outputs and gradients.")


# ---------------------------------------------------------------------------------------------- Exercise 2.7
RMS_CASES = (
    TrailingCase("(B, T, D) = (2, 5, 8), eps=None", shape=(2, 5, 8), normalized_shape=8, eps=None, scale=1.5,
                 offset=1.0),
    TrailingCase("normalized_shape=(4, 6), eps=1e-6", shape=(3, 4, 6), normalized_shape=(4, 6), eps=1e-6, scale=1.5,
                 offset=1.0),
    TrailingCase("small inputs (×1e-3), eps=None: here eps matters", shape=(2, 16), normalized_shape=16,
                 axes=("N", "D"), eps=None, scale=1e-3, offset=0.0),
    TrailingCase("float64, tiny inputs (×1e-7), eps=None (finfo(float64).eps)", torch.float64, shape=(2, 3, 5),
                 normalized_shape=5, eps=None, scale=1.5e-7, offset=1e-7),
    TrailingCase("float64, (B, T, D) = (2, 4, 6), eps=None", torch.float64, shape=(2, 4, 6), normalized_shape=6,
                 eps=None, scale=1.5, offset=1.0),
    TrailingCase("large eps=0.5, inputs with a mean", shape=(4, 6), normalized_shape=6, axes=("N", "D"), eps=0.5,
                 scale=1.5, offset=1.0),
)


@one_thread
def check_rms_norm(RMSNorm) -> None:
    """Exercise 2.7: ``RMSNorm(normalized_shape, eps=None)`` against ``nn.RMSNorm`` with a copied γ;
    ``eps=None`` means ``torch.finfo(x.dtype).eps``."""
    EX = EX_RMS
    cases = _NamedFirst()
    for case in RMS_CASES:
        with cases.case():
            x = _trailing_input(EX, case)
            eps = torch.finfo(case.dtype).eps if case.eps is None else case.eps
            eps_text = (f"torch.finfo(x.dtype).eps for {case.dtype} input, since eps=None" if case.eps is None
                        else "the eps argument")
            spec = _trailing_spec(case, "RMSNorm", "eq. (2.12)", eps, eps_text, centred=False)
            ndim = len(case.shape)
            _check_normalisation_module(
                EX, case, lambda: RMSNorm(case.normalized_shape, eps=case.eps),
                nn.RMSNorm(case.normalized_shape, eps=case.eps), x, spec, tuple(d % ndim for d in case.dims), case.axes,
                "RMSNorm has one γ per element of normalized_shape, torch.ones(self.normalized_shape), and no β.")
    cases.finish()
    EX.passed(f"{len(RMS_CASES)} cases (two-axis normalized_shape, tiny inputs where eps=None matters, float64) "
              f"match nn.RMSNorm: outputs and gradients.")


__all__ = ["check_batch_norm_backward", "check_batch_norm_function", "check_batch_norm_module", "check_layer_norm",
           "check_instance_norm", "check_group_norm", "check_rms_norm", "CheckFailure", "LearnerError"]

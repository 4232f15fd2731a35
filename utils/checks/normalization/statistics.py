"""Readings of a normalisation from its output (γ = 1, β = 0): which values share μ and σ², which moment, which ε,
and the invariance probes (a shift within a group, the other examples of the batch)."""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from utils.checks.core import Case, Exercise, name_value, product_name
from utils.checks.normalization.cases import _close, _probe_rtol
from utils.checks.normalization.partitions import Partition


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
    axes: tuple = ()  # the names of x's axes, in order: a count that is one axis' size is said as x.shape[k]
    count_symbol: str = "n"  # how the chapter writes the number of values in a group (BatchNorm's is m)
    axis_count: int = 0  # len(normalized_shape) for LayerNorm and RMSNorm: a sum divided by it divides by axes
    other_numbers: dict = field(default_factory=dict)  # the case's other arguments, name → value: an ε equal to one

    @property
    def reduce(self) -> str:
        """What to do, as an instruction: "reduce over dim=(0, 2, 3)" (GroupNorm's code says it all)."""
        return self.code if self.code.startswith("reshape") else f"reduce over {self.code}"


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


_STD_AS_VARIANCE = ("the standard deviation σ = √σ² used as the variance, √(σ + ε) (torch.std_mean returns (std, "
                    "mean), torch.var_mean (var, mean))")
# the second moments a learner might divide by, each computed over a partition of x
_MOMENTS = {
    "variance": "the biased variance (÷ n)",
    "unbiased": "the unbiased variance (÷ (n − 1), what torch.var and x.var() give by default)",
    "squared deviations": "the sum of squared deviations Σ(x − μ)², with no ÷ n",
    "mean square": "the mean square mean(x²), about 0 rather than about μ",
    "sum of squares": "the sum of squares Σx² (the squared L2 norm), with no ÷ n",
    "mean |x|": "the mean absolute value mean(|x|), an L1 average rather than a root mean square",
    "squared mean": "the square of the mean, (mean x)² — square first, then average: mean(x²)",
    "about your μ": "the mean of (x − μ)² with your μ",  # your μ came from other values: σ² follows them
    "unbiased about your μ": "the unbiased variance (÷ (n − 1), what torch.var and x.var() give by default)",
    "standard deviation": _STD_AS_VARIANCE,
    "unbiased standard deviation": _STD_AS_VARIANCE.replace("σ = ", "the unbiased σ = "),
    "root mean square": "the root mean square √mean(x²) used as the mean square, √(rms + ε) — the root taken twice",
}
# a sum divided by len(normalized_shape) = 1 is the plain sum: the count of axes taken for the count of values
_BY_AXIS_COUNT = (" — if you divided the sum by len(normalized_shape), that is 1 here, the number of axes, not the "
                  "number of values: divide by math.prod(normalized_shape) = {n}, the number of values normalised "
                  "together, or take .mean over those dims")
_EPS_ON_PRECISION = ("ε is added to the precision 1/σ² under the root, √(1/σ² + ε): add it to σ² instead, "
                     "1/√(σ² + ε)")
_CLAMPED = "σ² is clamped, σ².clamp(min=ε), where ε belongs added to it: divide by √(σ² + ε)"
# forms that differ from "no eps" only where σ² is near ε or large: a case where they coincide names them all
_EPS_BLIND = ("no eps", "clamp", "precision", "after", "outside")
# the ways of turning a second moment M into the factor a of x̂ = (x − μ)·a
_FORMS = {
    "inside": (lambda M, eps: 1 / torch.sqrt(M + eps), ""),
    "outside": (lambda M, eps: 1 / (M.sqrt() + eps), "ε is outside the square root: divide by √(σ² + ε), not "
                                                     "by σ + ε"),
    "no eps": (lambda M, eps: 1 / M.sqrt(), "ε is missing under the square root (or far too small): divide by "
                                            "√(σ² + ε)"),
    "after": (lambda M, eps: 1 / M.sqrt() + eps, "ε is added after the reciprocal square root: multiply by "
                                                 "1/√(σ² + ε), not by 1/√σ² + ε"),
    "no sqrt": (lambda M, eps: 1 / (M + eps), "the square root is missing: divide by √(σ² + ε), not by σ² + ε"),
    "precision": (lambda M, eps: torch.sqrt(1 / M + eps), _EPS_ON_PRECISION),
    "clamp": (lambda M, eps: 1 / torch.sqrt(M.clamp(min=eps)), _CLAMPED),
    "inverted": (lambda M, eps: torch.sqrt(M + eps), "you multiply by √(σ² + ε) where the equation divides by it: "
                                                     "torch.sqrt where torch.rsqrt belongs, or * where / belongs"),
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
    if kind == "squared mean":  # the mean and the square in the wrong order
        return partition.mean(x) ** 2
    if kind == "root mean square":  # RMSNorm's rms taken for mean(x²)
        return partition.mean(x * x).sqrt()
    if kind.endswith("standard deviation"):  # torch.std_mean's std taken for the variance
        variance = _moment(x, partition, "unbiased" if kind.startswith("unbiased") else "variance")
        return None if variance is None else variance.sqrt()
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
    fitting: tuple = ()  # every form that fits as well (in a case where ε is negligible, several do)


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
                best = min(errors.values())  # forms as close as the best one: the case cannot tell them apart
                return _Scale(partition, moment, min(errors, key=errors.get),
                              fitting=tuple(sorted((f for f, e in errors.items() if e <= 3 * best + 1e-12),
                                                   key=errors.get)))
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
        return wrong_count_message(count, spec, "your μ") or (
            f"your μ is {ratio.mean().item():.4g} × the mean over {spec.partition.name}: you divide the sum by "
            f"{count:.4g}, but each group has {group_count_text(spec)} values — take the mean over all of them "
            f"({spec.code})")
    return None


def count_name(count: float, sizes: dict) -> str | None:
    """``20`` → ``"N·H = N·W"``: the products of the fewest named sizes that equal a count a learner divided by
    (all of them, up to three, where sizes coincide); failing that, a product with one size taken twice, "N·H·H" (a
    typo, x.shape[2] for x.shape[3])."""
    return product_name(count, sizes) or _repeated_product_name(count, sizes)


def _repeated_product_name(count: float, sizes: dict | None) -> str | None:
    if not sizes or abs(count - round(count)) > 1e-4 * max(count, 1) or round(count) < 2:
        return None
    names = [name for name in sizes if "/" not in name and sizes[name] > 1]
    for r in (2, 3):
        for subset in itertools.combinations_with_replacement(names, r):
            if len(set(subset)) < r and math.prod(sizes[name] for name in subset) == round(count):
                return "·".join(subset)
    return None


def count_text(count: float, spec: NormSpec) -> str | None:
    """A count a learner divided by, in the case's sizes: "N = 4, the size of axis N (x.shape[0])",
    "m − 1 = 99", "1 (a sum, not a mean)"; None when it is no such count."""
    if abs(count - round(count)) > 1e-4 * max(count, 1) or round(count) < 1:
        return None
    n, size = round(count), spec.partition.size
    if n == size - 1:
        return f"{spec.count_symbol} − 1 = {n}"
    named = count_name(n, spec.sizes)
    if named is None:
        return None
    factors = named.split("·")
    twice = [name for name in factors if factors.count(name) > 1]
    if twice and " = " not in named:  # a size taken twice: name the one it stood for, from the right count
        right = (product_name(spec.partition.size, spec.sizes) or "").split(" = ")[0].split("·")
        missing = [name for name in right if name not in factors]
        instead = f" where {missing[0]} belongs" if len(missing) == 1 else ""
        shape = (f" (x.shape[{spec.axes.index(twice[0])}] for x.shape[{spec.axes.index(missing[0])}]?)"
                 if instead and twice[0] in spec.axes and missing[0] in spec.axes else "")
        return f"{named} = {n}, {twice[0]} taken twice{instead}{shape}"
    axes = [spec.axes.index(name) for name in named.split(" = ") if name in spec.axes]
    if axes:  # one axis' size (the last one, of those it may be): say which, as code
        index = max(axes)
        last = index == len(spec.axes) - 1
        return (f"{named} = {n}, the size of {'the last axis' if last else f'axis {spec.axes[index]}'} "
                f"(x.shape[{-1 if last else index}])")
    return f"{named} = {n}"


def group_count_text(spec: NormSpec) -> str:
    """"m = N·H·W = 100": the number of values in each group of the right partition."""
    named = count_name(spec.partition.size, spec.sizes)
    return f"{spec.count_symbol} = " + (f"{named} = " if named else "") + f"{spec.partition.size}"


def wrong_count_message(count: float, spec: NormSpec, what: str) -> str | None:
    """"your μ divides its sum by N = 4, … instead of m = N·H·W = 100, the values of each group (N, H, W): …" for
    ``what`` ("your μ", "the means in your dL/dx") divided by a named count; None when the count is not named."""
    if spec.axis_count > 1 and abs(count - spec.axis_count) < 1e-4 and spec.partition.size > spec.axis_count:
        return (f"{what} divides its sum by {spec.axis_count} = len(normalized_shape), the number of axes, not the "
                f"number of values in each group, {group_count_text(spec)}: divide by math.prod(normalized_shape) "
                f"(or x.numel() of the group), or take the mean ({spec.code})")
    if abs(count - 1) < 1e-4 and spec.partition.size > 1:
        return (f"{what} is a sum, not a mean: divide it by {group_count_text(spec)}, the number of values in each "
                f"group {spec.partition.name} — or take the mean ({spec.code})" +
                (_BY_AXIS_COUNT.format(n=spec.partition.size) if spec.axis_count == 1 else ""))
    n, symbol = spec.partition.size, spec.count_symbol
    if n > 1 and abs(count - n * n) < 1e-4 * n * n:  # ‖x‖/n squared: the L2 norm divided by n, not by √n
        return (f"{what} divides by {symbol}² = {n * n}, not by {symbol} = {n}: a root mean square is the L2 norm "
                f"divided by √{symbol}, ‖x‖/√{symbol} = √(mean(x²)), not ‖x‖/{symbol} ({spec.code})")
    said = count_text(count, spec)
    if said is None and len(spec.axes) > 1 and abs(count - len(spec.axes)) < 1e-4 and spec.partition.size > count:
        return (f"{what} divides its sum by {len(spec.axes)} = x.dim(), the number of axes of x, not the number of "
                f"values in each group, {group_count_text(spec)}: take the mean over them ({spec.code})")
    if said is None or round(count) == spec.partition.size:
        return None
    symbol = spec.count_symbol
    if round(count) == spec.partition.size - 1:
        fix = f"these are plain means, Σ ÷ {symbol}; only an unbiased variance divides by {symbol} − 1"
    else:
        fix = f"take the mean over all of them ({spec.code})"
    return (f"{what} divides by {said}, instead of {group_count_text(spec)}, the number of values in each group "
            f"{spec.partition.name}: {fix}")


def normalisation_problems(x: torch.Tensor, y: torch.Tensor, spec: NormSpec) -> str | None:
    """What your normalisation computes, recovered from its output ``y`` (with γ = 1, β = 0), said as what to
    change; None when it is eq. (2.10) over the right values, or when no such structure can be recovered."""
    rtol = _probe_rtol(x.dtype)
    x, y = x.detach().double(), y.detach().double()
    if not torch.isfinite(y).all() or y.norm() < 1e-12:
        return None
    precedence = _precedence_reading(x, y, spec, rtol)
    if precedence:
        return precedence
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


def _precedence_reading(x, y, spec: NormSpec, rtol: float) -> str | None:
    """x − μ/√(σ² + ε) (only μ divided) or x/√(σ² + ε) − μ (only x): the parentheses around x − μ left out, read
    from your output as x − μ·s or x·s − μ with the right μ and s."""
    if not spec.centred:
        return None
    mu = spec.partition.mean(x)
    s = 1 / torch.sqrt(_moment(x, spec.partition, "variance") + spec.eps)
    scale = y.abs().max().item()
    readings = {"only μ": (x - mu * s, "x − μ/√(σ² + ε)"), "only x": (x * s - mu, "x/√(σ² + ε) − μ")}
    for what, (value, said) in readings.items():
        if _close(y, value, rtol, scale):
            divided = "only μ is divided" if what == "only μ" else "only x is divided, μ subtracted afterwards"
            return (f"with γ = 1 and β = 0 your output is {said}: {divided} — the parentheses around x − μ are "
                    f"missing (/ binds tighter than −). Write (x − μ)/√(σ² + ε) ({spec.equation}).")
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
                        f"{right.describe()}: {spec.reduce}" + _complement_note(mean_partition, spec) +
                        _extra_axis_note(mean_partition, spec))
    else:
        if mean_partition and not mean_partition.same_as(right):
            problems.append(f"your mean μ is over {mean_partition.describe()}, but {spec.method}'s is over "
                            f"{right.describe()}: {spec.reduce}")
        if scale_partition and not scale_partition.same_as(right):
            problems.append(f"your {called} is computed over {scale_partition.describe()}, but {spec.method}'s "
                            f"is over {right.describe()}: {spec.reduce}")
    # -- the second moment and how it becomes the factor
    nested = _nested_variance(x, fit.a, spec, _probe_rtol(x.dtype)) if scale is None and spec.centred else None
    if nested:
        problems.append(nested)
    elif scale is None:
        want = 1 / torch.sqrt(_moment(x, right, "variance" if spec.centred else "mean square") + spec.eps)
        worst = ((fit.a - want).abs() / want).flatten().argmax()
        problems.append(f"the factor that multiplies {'x − μ' if spec.centred else 'x'} is not 1/√({statistic} + ε) "
                        f"over any set of values we tried (yours is {fit.a.flatten()[worst].item():.4g} where "
                        f"1/√({statistic} + ε) over {right.name} is {want.flatten()[worst].item():.4g})")
    else:
        expected_moment = "variance" if spec.centred else "mean square"
        moment = {"about your μ": "variance", "unbiased about your μ": "unbiased"}.get(scale.moment, scale.moment)
        if moment != expected_moment and scale.count is None and not spec.centred and \
                moment in ("variance", "unbiased"):
            said = (f"the standard deviation x.std(…) (the root of {_MOMENTS[scale.moment]})"
                    if scale.form == "outside" else f"{_MOMENTS[scale.moment]} (x.var(…))")
            problems.append(f"you divide by {said}, which centres x first; {spec.method} does not subtract the mean "
                            f"anywhere: divide by √(mean(x²) + ε), the mean square (x * x).mean(…)")
            scale = dataclasses.replace(scale, form="inside") if scale.form == "outside" else scale
        elif moment != expected_moment and scale.count is None:
            problems.append(f"you divide by {_MOMENTS[scale.moment]}; {spec.method} divides by "
                            f"{_MOMENTS[expected_moment]}" + (": x.var(..., unbiased=False), or ((x − μ)²).mean(...)"
                                                             if spec.centred else "") +
                            (_BY_AXIS_COUNT.format(n=spec.partition.size)
                             if spec.axis_count == 1 and scale.moment in ("sum of squares", "squared deviations")
                             else ""))
        if scale.count is not None:
            same = f" (the same numbers: your output is {math.sqrt(right.size / scale.count):.4g} × the right one)"
            problems.append((wrong_count_message(scale.count, spec, f"your {statistic}") or
                             f"your {statistic} divides its sum by {scale.count:.4g}, but each group {right.name} "
                             f"has {group_count_text(spec)} values: take the mean over all of them ({spec.code})")
                            + same)
        elif scale.eps is not None:
            named = name_value(scale.eps, _NAMED_EPS, rtol=0.02)
            other = next((k for k, v in spec.other_numbers.items() if v and abs(v - spec.eps) > 0.02 * abs(v)
                          and abs(scale.eps - v) <= 0.02 * abs(v)), None)
            problems.append(f"your ε is {scale.eps:.3g}" + (f" (= {named})" if named and not other else "") +
                            f" but should be {spec.eps:.3g} ({spec.eps_text})" +
                            (f" — your ε is the {other} ({spec.other_numbers[other]:.3g}): the {other} is passed "
                             f"where eps belongs, one argument in another's place; pass eps there" if other else ""))
        elif _eps_blind(scale):
            problems.append(_eps_candidates([f for f in scale.fitting if f in _EPS_BLIND], statistic, spec))
        elif scale.form == "no eps":
            problems.append(f"ε is missing under the square root (or far too small): divide by √({statistic} + ε) "
                            f"with ε = {spec.eps:.3g} "
                            f"({spec.eps_text})")
        elif scale.form != "inside" and scale.moment != "mean |x|":  # an L1 average: where ε sits is moot
            said = _FORMS[scale.form][1]
            problems.append(said if spec.centred else said.replace("σ²", "mean(x²)").replace("σ", "√mean(x²)") +
                            (" — divide by the RMS, √(mean(x²) + ε)" if scale.form == "inverted" else ""))
    if not problems:
        return None
    return ("with γ = 1 and β = 0, " + "; ".join(problems) + f" ({spec.equation}).")


def _extra_axis_note(partition: Partition, spec: NormSpec) -> str:
    """" — one axis too many: T …" when the values pooled are the last len(normalized_shape) axes and the one just
    before them (a range of dims that starts one axis early); "" otherwise."""
    got, right = _axis_names(partition), _axis_names(spec.partition)
    if not spec.axis_count or not right or got[1:] != right or got[0] not in spec.axes or right[0] not in spec.axes \
            or spec.axes.index(got[0]) != spec.axes.index(right[0]) - 1:
        return ""
    return (f" — one axis too many: {got[0]}, the axis just before normalized_shape, is pooled in (a range of dims "
            f"that starts one axis early, such as range(-len(normalized_shape) - 1, 0)); the last len(normalized_shape)"
            f" axes are range(-len(normalized_shape), 0)")


def _axis_names(partition: Partition) -> list[str]:
    return [name.strip() for name in partition.name.strip("()").split(",")] if partition.name.startswith("(") else []


def _complement_note(wrong: Partition, spec: NormSpec) -> str:
    """Statistics over exactly the axes that should be kept: a table reshaped to (kept, reduced), e.g.
    x.view(N·C, H·W), reduced along its other axis (dim=0 for dim=1)."""
    wrong_axes, right_axes = _axis_names(wrong), _axis_names(spec.partition)
    if not wrong_axes or not right_axes or set(wrong_axes) & set(right_axes) or \
            sorted(wrong_axes + right_axes) != sorted(spec.axes):
        return ""
    kept, reduced = "·".join(wrong_axes), "·".join(right_axes)
    return (f" — the other axes exactly: on a table x.view({kept}, {reduced}) reduce over dim=1, within each row "
            f"(each {'instance' if spec.method == 'InstanceNorm' else 'group'}'s own values), not dim=0 down the rows")


def _eps_blind(scale: _Scale) -> bool:
    """ε is negligible in this case: leaving it out fits, and so do other places for it, among them a clamp or
    the precision — the evidence does not single one out."""
    return "no eps" in scale.fitting and any(f in scale.fitting for f in ("clamp", "precision")) and \
        scale.form in _EPS_BLIND + ("after", "outside")


def _eps_candidates(forms: list, statistic: str, spec: NormSpec) -> str:
    """In a case where ε is negligible beside σ² (or beside 1/σ²), leaving it out, clamping σ² at ε and adding it to
    the precision give the same numbers: name each that fits, with the fix."""
    said = {"no eps": "ε left out, √" + statistic,
            "clamp": f"{statistic}.clamp(min=ε), which leaves any {statistic} above ε as it is",
            "precision": f"√(1/{statistic} + ε), ε added to the precision 1/{statistic}, where it is negligible",
            "after": f"1/√{statistic} + ε, ε added after the reciprocal root",
            "outside": f"1/(√{statistic} + ε), ε outside the root"}
    return (f"ε is missing under the square root (or far too small): your factor is 1/√{statistic} as if there were "
            f"no ε — in this case that is what " + "; or ".join(said[f] for f in forms) + f" all give. Divide by "
            f"√({statistic} + ε) with ε = {spec.eps:.3g} ({spec.eps_text})")


_PIECES = {"(W)": "row", "(H)": "column", "(H, W)": "channel", "(D)": "row", "(T)": "column"}  # the inner groups


def _refines(finer: Partition, coarser: Partition) -> bool:
    """Every group of ``finer`` lies inside one group of ``coarser`` (and is smaller)."""
    labels = coarser.labels.double()
    return finer.size < coarser.size and bool((finer.mean(labels) == labels).all())


def _nested_variance(x, a, spec: NormSpec, rtol: float) -> str | None:
    """Your σ² as the mean of variances over smaller groups inside each right group (x.var(-1).mean(-1): the mean
    of the per-row variances), said with the smaller groups; None when no such mean of variances fits."""
    right = spec.partition
    for inner in spec.candidates:
        if inner.size < 2 or not _refines(inner, right):
            continue
        deviation = x - inner.mean(x)
        biased = inner.mean(deviation * deviation)
        for unbiased in (False, True):
            variance = biased * inner.size / (inner.size - 1) if unbiased else biased
            if _close(a, 1 / torch.sqrt(right.mean(variance) + spec.eps), rtol):
                kind = "unbiased variances" if unbiased else "variances"
                piece = _PIECES.get(inner.name, "group")
                return (f"your σ² is the mean of the per-{piece} {kind} (each over {inner.name} alone, "
                        f"{inner.size} values) — not the variance over {right.name} at once: averaging each "
                        f"{piece}'s variance leaves out how the {piece}s' means differ. {spec.reduce[0].upper()}"
                        f"{spec.reduce[1:]} in one reduction")
    return None


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


def eps_blind_forms(x: torch.Tensor, y: torch.Tensor, spec: NormSpec) -> list[str] | None:
    """The places of ε your output fits equally well (["no eps", "clamp", "precision", …]) when everything else —
    the values, μ, the moment — is right and this input cannot tell them apart; else None."""
    rtol = _probe_rtol(x.dtype)
    x, y = x.detach().double(), y.detach().double()
    if y.shape != x.shape or not torch.isfinite(y).all():
        return None
    fit = _fit_affine(x, y, spec.partition)
    if fit.residual > 1e-4 or (fit.a.abs() < 1e-12).any():
        return None
    mu = -fit.b / fit.a
    mean = _which_mean(x, mu, spec, rtol)
    shifted_by_eps = _close(fit.b + fit.a * _centre(x, spec), torch.full_like(x, spec.eps), 0.05)
    if mean != (spec.partition if spec.centred else "zero") and not shifted_by_eps:
        return None
    if shifted_by_eps:  # the right μ, with ε added to the output: the factor is read about it
        mu = _centre(x, spec)
    scale = _which_scale(x, fit.a, spec, rtol, mu)
    if scale is None or not scale.partition.same_as(spec.partition) or not _eps_blind(scale) or \
            scale.moment != ("variance" if spec.centred else "mean square"):
        return None
    return [f for f in scale.fitting if f in _EPS_BLIND]


def spread_groups(x: torch.Tensor, spec: NormSpec, low: float) -> tuple[torch.Tensor, float, float]:
    """x with its groups rescaled so that their σ² (RMSNorm: mean(x²)) run from ``low`` to far above 1/ε: where ε
    is left out, clamped or added to the precision, the factors differ. Returns the input and the range of σ²."""
    P = spec.partition
    xd = x.detach().double()
    centred = xd - P.mean(xd) if spec.centred else xd
    unit = centred / P.mean(centred * centred).sqrt().clamp_min(1e-30)
    high = min(max(1e4, 10 / spec.eps), 1e12)  # ε beside 1/σ² shows only where σ² ≈ 1/ε
    levels = torch.logspace(math.log10(low), math.log10(high), P.groups, dtype=torch.float64)
    order = torch.randperm(P.groups, generator=torch.Generator().manual_seed(0))
    spread = unit * levels[order][P.labels].sqrt()
    return spread.to(x.dtype), low, high


def eps_forms_fitting(x2: torch.Tensor, y2, forms: list[str], spec: NormSpec) -> set[str]:
    """Which of ``forms`` (and the right one, "inside") your output on ``x2`` (see spread_groups) fits."""
    if not isinstance(y2, torch.Tensor) or y2.shape != x2.shape or not torch.isfinite(y2).all():
        return set()
    rtol = _probe_rtol(x2.dtype)  # per group: "after" differs from "no eps" by 1% where σ² = 1e4
    xd, yd = x2.detach().double(), y2.detach().double()
    fit = _fit_affine(xd, yd, spec.partition)
    if fit.residual > 1e-3:
        return set()
    M = _moment(xd, spec.partition, "variance" if spec.centred else "mean square")
    fitting = {form for form in ["inside", *forms]  # each group's factor on its own: they span many decades
               if ((fit.a - (want := _FORMS[form][0](M, spec.eps))).abs() / want.abs()).max().item() < rtol}
    shift = fit.b + fit.a * _centre(xd, spec)  # what is added after normalising: ε itself, (x − μ)/√σ² + ε?
    noise = 100 * torch.finfo(x2.dtype).eps * yd.abs().max().item()
    if spec.eps > 20 * noise and (shift - spec.eps).abs().max().item() <= max(0.05 * spec.eps, noise):
        fitting.add("shifted")
    return fitting


def eps_placement_message(form: str, spec: NormSpec, low: float, high: float) -> str:
    """The place of ε read from the spread inputs, said with its fix."""
    statistic = "σ²" if spec.centred else "mean(x²)"
    said = (f"ε is added to the output after normalising, {'(x − μ)' if spec.centred else 'x'}/√{statistic} + ε: "
            f"it belongs under the root, divide by √({statistic} + ε)" if form == "shifted" else
            f"ε is missing under the square root (or far too small): divide by √({statistic} + ε)"
            if form == "no eps" else _FORMS[form][1])
    if not spec.centred:
        said = said.replace("σ²", "mean(x²)").replace("σ", "√mean(x²)")
    return (f"with γ = 1 and β = 0, {said} — read on an input whose groups' {statistic} run from {low:.2g} to "
            f"{high:.2g}, where the places of ε give different factors; ε = {spec.eps:.3g} ({spec.eps_text}) "
            f"({spec.equation}).")

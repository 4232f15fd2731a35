"""Where γ and β act: the output fitted as A·x̂ + B per entry of γ, and A and B named."""
from __future__ import annotations

import torch

from utils.checks.normalization.cases import _close, _probe_rtol, _show, _view
from utils.checks.normalization.partitions import axes_partition
from utils.checks.normalization.statistics import _fit_affine


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

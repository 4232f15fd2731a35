"""Checking a normalisation module against PyTorch's (Exercises 2.4–2.7): parameters, the normalisation with γ = 1,
β = 0, the output with copied γ, β in training and eval mode, and the gradients."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from utils.checks.core import Case, Exercise, compare_runs, copy_parameters, run_module
from utils.checks.normalization.affine import affine_probe, initial_affine_probe
from utils.checks.normalization.cases import TrailingCase, _close, _labelled, _probe_rtol, _view, large_offset
from utils.checks.normalization.epsilon import eps_placement_probe
from utils.checks.normalization.inputs import _affine_parameters
from utils.checks.normalization.partitions import _unique, axes_partition, every_axes_partition, table_columns
from utils.checks.normalization.paths import Paths, _compare_input_gradient, _count_factors
from utils.checks.normalization.precision import exchanged_statistics, large_mean_probe
from utils.checks.normalization.source import run_learner_module
from utils.checks.normalization.statistics import (
    NormSpec,
    _moment,
    group_property_probe,
    independence_probe,
    normalisation_probe,
    shift_probe,
)


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


def _check_parameter_dtypes(EX: Exercise, module: nn.Module, case: Case) -> None:
    """Parameters created in PyTorch's default dtype, as the library's are: one made float64 turns a float32
    input's output into float64 (read before the check moves the module to the case's dtype, which would hide it)."""
    default = torch.get_default_dtype()
    for name, parameter in module.named_parameters():
        if parameter.dtype != default:
            raise EX.fail(f"your `self.{name}` is created as {parameter.dtype}, not PyTorch's default {default}: "
                          f"a {default} input would then come out {parameter.dtype}. Create parameters without a "
                          f"dtype (nn.Parameter(torch.ones(C))): model.to(...) and .double() choose it later.",
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
    _check_parameter_dtypes(EX, module, case)
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
               axes=names, probes=[large_mean_probe(EX, run, x, expected_plain, spec, case, large_offset(case)),
                                   eps_placement_probe(EX, run, x, spec, case),
                                   normalisation_probe(x, spec),
                                   initial_affine_probe(expected_plain, library.weight.shape,
                                                        getattr(library, "bias", None) is not None, param_axes,
                                                        names, spec.method, spec.equation),
                                   *([independence_probe(EX, run, x, spec, case)] if per_example else []),
                                   shift_probe(EX, run, x, spec, case), group_property_probe(x, spec)],
               mistakes=exchanged_statistics(x, spec))
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
        got = run_learner_module(EX, module, x, grad_out, case=mode_case)
        expected = run_module(EX, library, x, grad_out, case=mode_case)
        probes = [affine_probe(plain, weight, bias, param_axes, names, spec.method, spec.equation),
                  inside_probe(EX, fresh, x, weight, bias, param_axes, mode_case, spec)]
        if mode == "eval":
            probes.insert(0, _train_eval_probe(train_output, spec.method))
        EX.compare(got.output, expected.output, case=mode_case, equation=spec.equation, axes=names, probes=probes)
        train_output = got.output
        atol, rtol = (10 * t for t in case.tolerance)
        _compare_input_gradient(EX, got, expected, mode_case, paths, atol, rtol, module)
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
    columns = table_columns(right)  # a flattened table reduced along the wrong dim
    candidates = _unique(candidates + [columns]) if columns is not None else candidates
    return NormSpec(method, equation, right, f"dim={case.dims if len(case.dims) > 1 else case.dims[0]} (the last "
                    f"len(normalized_shape) axes)", tuple(candidates), eps, eps_text, centred, sizes=case.sizes,
                    axes=case.axes, axis_count=len(dims))


def _trailing_input(EX, case: TrailingCase) -> torch.Tensor:
    return EX.randn(*case.shape, key=(case.label, "x"), dtype=case.dtype) * case.scale + case.offset

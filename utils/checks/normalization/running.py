"""Exercise 2.3: BatchNorm2d with running statistics (eq. (2.9)), over three training steps and then eval mode."""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn as nn

from utils.checks.core import Exercise, compare_runs, copy_parameters, one_thread, run_module
from utils.checks.normalization.affine import affine_probe, initial_affine_probe
from utils.checks.normalization.cases import (
    EX_MODULE,
    IMAGE_AXES,
    STATISTICS,
    ModuleCase,
    _close,
    _labelled,
    _NamedFirst,
    _show,
    _view,
)
from utils.checks.normalization.inputs import _affine_parameters, _batch_norm_spec, _image_batch, _statistics
from utils.checks.normalization.modules import _check_parameters
from utils.checks.normalization.partitions import axes_partition
from utils.checks.normalization.paths import _batch_norm_paths, _compare_input_gradient
from utils.checks.normalization.source import run_learner_module
from utils.checks.normalization.statistics import (
    _FORMS,
    _fit_affine,
    count_name,
    group_property_probe,
    normalisation_probe,
)

# ============================================================================================== Exercise 2.3
MODULE_CASES = (
    ModuleCase("C=3, momentum=0.1", shape=(4, 3, 5, 5), momentum=0.1),
    ModuleCase("C=3, momentum=0.3, eps=0.5 (where ε shows in eval mode)", shape=(2, 3, 3, 4), momentum=0.3, eps=0.5),
    ModuleCase("momentum=None (cumulative average)", shape=(3, 4, 2, 2), momentum=None),
    ModuleCase("batch of 2, H=W=1 (m = 2)", shape=(2, 3, 1, 1), momentum=0.1),
    ModuleCase("momentum=0.0: the running statistics never move", shape=(2, 3, 2, 2), momentum=0.0),
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
            if case.momentum is not None and (case.momentum == 0 or step > 1):  # a number, treated as None
                named[f"1/num_batches_tracked = 1/{step}"] = 1 / step
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
                f"1/num_batches_tracked = 1/{step}": _none_taken_for(case.momentum),
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


def _none_taken_for(momentum: float) -> str:
    """A momentum that is a number, treated as None (the cumulative average): for 0.0, the falsy test."""
    if momentum == 0:
        return ("you used the cumulative average of momentum=None, but this case passes momentum=0.0, which is "
                "falsy: `self.momentum or …` and `if self.momentum:` treat 0.0 like None. Test `self.momentum is "
                "None` (with momentum=0.0 the running statistics never move)")
    return (f"you used the cumulative average of momentum=None, but this case passes momentum={momentum}: use α = "
            f"self.momentum whenever it is not None")


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
        other = ("the statistic of the other buffer: running_mean averages the batch mean x.mean(dim=(0, 2, 3)) — "
                 "a line copied from the running_var update and left half-changed?")
        candidates = {"the mean of every value of the batch": (x.mean().expand_as(right), every),
                      "the unbiased batch variance": (
                          x.var(STATISTICS, unbiased=True), other),
                      "the biased batch variance": (
                          x.var(STATISTICS, unbiased=False), other)}
        if output is not None:
            candidates["the mean of your output y (≈ β, since y is normalised)"] = (output.double().mean(STATISTICS),
                                                                                 from_x)
    else:
        right = x.var(STATISTICS, unbiased=True)
        per_example = "it leaves out how the examples differ: take the variance over (N, H, W) at once"
        candidates = {
            "the variance of every value of the batch": (x.var().expand_as(right), every),
            "the square of the batch mean, (mean x)²,": (
                x.mean(STATISTICS) ** 2, "the variance is the mean of the squared deviations from μ, not μ²: "
                                         "x.var(dim=(0, 2, 3), unbiased=True)"),
            "the mean square of the batch, mean(x²) (about 0 rather than about μ),": (
                (x * x).mean(STATISTICS), "subtract μ before squaring: x.var(dim=(0, 2, 3), unbiased=True)"),
            "the batch mean x.mean(dim=(0, 2, 3))": (
                x.mean(STATISTICS), "the statistic of the other buffer: running_var averages the unbiased batch "
                                    "variance x.var(dim=(0, 2, 3), unbiased=True) — a line copied from the "
                                    "running_mean update and left half-changed?"),
            "the unbiased variance of each example's channel over (H, W), averaged over the N examples": (
                x.var((2, 3), unbiased=True).mean(0), per_example),
            "the biased variance of each example's channel over (H, W), averaged over the N examples": (
                x.var((2, 3), unbiased=False).mean(0), per_example)}
        if output is not None:
            candidates["the variance of your output y (≈ γ², since y is normalised)"] = (
                output.double().var(STATISTICS, unbiased=True), from_x)
    wanted = ("the batch mean of the input x over (N, H, W)" if kind == "running_mean" else
              "the unbiased batch variance of the input x over (N, H, W)")
    for name, (value, advice) in candidates.items():
        if _close(used, value, rtol=1e-4):
            return f"{name} instead of {wanted}: {advice}"
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


def running_in_training_probe(x, before: dict, module, eps: float):
    """A training step normalised with the running statistics (as they were before the step, or already updated
    with it): what eval mode does, so the branches of ``if self.training:`` may be the wrong way round."""
    def probe(got):
        C = x.shape[1]
        after = {name: _buffer(module, name, C) for name in ("running_mean", "running_var")}
        inverted = " — are the two branches of `if self.training:` the wrong way round?"
        for when, buffers, tail in (("", before, inverted), (", already updated with this batch", after, "")):
            mean, var = (_view(buffers[name].double(), 4, (1,)) for name in ("running_mean", "running_var"))
            if _close(mean, x.double().mean(STATISTICS, keepdim=True), 1e-6, 1.0):
                continue  # buffers that hold this batch's own statistics (momentum 1): nothing to tell apart
            if torch.isfinite(mean).all() and (var + eps > 0).all() and \
                    _close(got.detach().double(), (x.double() - mean) / torch.sqrt(var + eps), 1e-4, 1.0):
                return (f"in training mode your output is normalised with the running statistics, the running mean "
                        f"and variance (running_mean, running_var{when}), as eval mode does: a training step "
                        f"normalises with the batch's own mean and biased variance and updates the buffers; only eval "
                        f"mode reads them{tail} (eq. (2.9)).")
        return None
    return probe


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
                if case.momentum is not None:
                    spec = dataclasses.replace(spec, other_numbers={"momentum": case.momentum})
                x_hat, inv_std = _statistics(x, case.eps)
                EX.compare(x_hat_got, x_hat, case=step_case, name="output with γ = 1, β = 0", equation="eq. (2.1)",
                           probes=[running_in_training_probe(x, plain_before, plain, case.eps),
                                   normalisation_probe(x, spec),
                                   initial_affine_probe(x_hat, (C,), True, (1,), IMAGE_AXES, "BatchNorm", "eq. (2.1)"),
                                   group_property_probe(x, spec)], axes=IMAGE_AXES)
                got, expected = run_learner_module(EX, module, x, grad_out, case=step_case), \
                    run_module(EX, library, x, grad_out, case=step_case)
                EX.compare(got.output, expected.output, case=step_case, equation="eq. (2.1)", axes=IMAGE_AXES,
                           probes=[affine_probe(x_hat_got, weight, bias, (1,), IMAGE_AXES, "BatchNorm", "eq. (2.1)")],
                           otherwise="does your BatchNormFunction pass the check of Exercise 2.2?")
                paths = _batch_norm_paths(x_hat, weight, inv_std, grad_out, case, spec=spec)
                atol, rtol = (10 * t for t in case.tolerance)
                _compare_input_gradient(EX, got, expected, step_case, paths, atol, rtol, module)
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
            got, expected = run_learner_module(EX, module, x, grad_out, case=eval_case), \
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
    EX.passed(f"{len(MODULE_CASES)} cases (momentum 0.1, 0.3, None and 0.0, batch of 2) match nn.BatchNorm2d over "
              f"{TRAINING_STEPS} training steps and in eval mode: outputs, gradients, running_mean, running_var "
              f"(unbiased) and num_batches_tracked.")

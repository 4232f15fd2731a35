"""Checks for Chapter 02, Normalization Wars.

Conventions the checks assume (the chapter states them too):
- images are batch first, (N, C, H, W); BatchNorm2d's statistics are per channel over m = N·H·W values;
- the variance that *normalises* is the biased one (divide by m), the one that enters BatchNorm's running
  estimate is the unbiased one (divide by m − 1), as in PyTorch;
- running = (1 − momentum) · running + momentum · batch, and ``momentum=None`` means a cumulative average;
- RMSNorm with ``eps=None`` uses ``torch.finfo(x.dtype).eps``, as ``nn.RMSNorm`` does.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.checks.core import CheckFailure, LearnerError, Mistake, call, diagnose, passed, seeded_randn


def _call(fn, *args, exercise: str, what: str, **kwargs):
    """``core.call`` with a hint for the broadcasting errors of normalisation code (γ on the wrong axis, …)."""
    try:
        return call(fn, *args, exercise=exercise, what=what, **kwargs)
    except LearnerError as error:
        text = str(error.__cause__)
        if "incorrect number of gradients" in text:
            raise LearnerError(f"{str(error).split(' The traceback')[0]} backward must return one gradient per "
                               f"input of forward, in order: (grad_x, grad_weight, grad_bias, None), None for "
                               f"eps. The traceback above ends at the line in your code.") from error.__cause__
        if "must match the size of tensor" in text or "shape" in text and "broadcast" in text:
            raise LearnerError(f"{str(error).split(' These shapes')[0].split(' The traceback')[0]} Two tensors "
                               f"did not broadcast: is a statistic missing keepdim=True, or γ/β lined up with the "
                               f"wrong axis? For (N, C, H, W) a per-channel γ must be viewed as (1, C, 1, 1). "
                               f"The traceback above ends at the line in your code.") from error.__cause__
        raise


def _expect_shape(got, shape, *, exercise: str, case: str, name: str, hint: str) -> None:
    if isinstance(got, torch.Tensor) and tuple(got.shape) != tuple(shape):
        raise CheckFailure(f"Exercise {exercise} ({case}), your {name}: shape {tuple(got.shape)} but expected "
                           f"{tuple(shape)}. {hint}")


def channel_view(t: torch.Tensor, ndim: int, axis: int = 1) -> torch.Tensor:
    """A (C,) tensor viewed so that it broadcasts along ``axis`` of an ``ndim``-dimensional tensor."""
    shape = [1] * ndim
    shape[axis] = -1
    return t.reshape(shape)


def normalize(x, dims, eps, *, unbiased=False, eps_outside=False, center=True):
    """(x − mean) / √(var + eps) over ``dims``; the keywords build known mistakes."""
    mean = x.mean(dim=dims, keepdim=True) if center else torch.zeros_like(x)
    var = x.var(dim=dims, keepdim=True, unbiased=unbiased) if center else (x * x).mean(dim=dims, keepdim=True)
    if eps_outside:
        return (x - mean) / (var.sqrt() + eps)
    return (x - mean) / torch.sqrt(var + eps)


# ---------------------------------------------------------------------------------------------------------------
# Exercise 2.1 — the closed-form BatchNorm backward pass
# ---------------------------------------------------------------------------------------------------------------

def _batch_norm_inputs(shape, seed, dtype=torch.float64, scale=1.0):
    N, C, H, W = shape
    x = seeded_randn(*shape, seed=seed, dtype=dtype) * scale + seeded_randn(1, C, 1, 1, seed=seed + 1, dtype=dtype)
    weight = seeded_randn(C, seed=seed + 2, dtype=dtype) + 1.5
    bias = seeded_randn(C, seed=seed + 3, dtype=dtype)
    return x, weight, bias


def _backward_mistakes(grad_out, x_hat, weight, inv_std):
    """(grad_x mistakes, grad_weight mistakes, grad_bias mistakes) for eq. (2.8) and its pieces."""
    dims = (0, 2, 3)
    g, gamma, s = grad_out, channel_view(weight, 4), channel_view(inv_std, 4)
    mean_g = g.mean(dims, keepdim=True)
    mean_gx = (g * x_hat).mean(dims, keepdim=True)
    N = g.shape[0]
    grad_x = (
        Mistake(gamma * s * (g - x_hat * mean_gx),
                "the mean path is missing: μ depends on every x, which adds −(γ/σ)·mean(g) (eq. 2.6)."),
        Mistake(gamma * s * (g - mean_g),
                "the variance path is missing: σ² depends on every x, which adds −(γ/σ)·x̂·mean(g·x̂) (eq. 2.5)."),
        Mistake(gamma * s * g, "you treated μ and σ as constants: only the direct path γ·g/σ is there. Add the "
                               "paths through the mean and the variance (eq. 2.8)."),
        Mistake(gamma * s * (g - g.mean(0, keepdim=True) - x_hat * (g * x_hat).mean(0, keepdim=True)),
                "the sums run over the wrong axes: BatchNorm2d's statistics (and so the sums Σg, Σg·x̂) are per "
                "channel over the axes (0, 2, 3), m = N·H·W values."),
        Mistake(gamma * s * (g - g.sum(dims, keepdim=True) / N - x_hat * (g * x_hat).sum(dims, keepdim=True) / N),
                "m is the number of values per channel, N·H·W, not the batch size N."),
        Mistake(s * (g - mean_g - x_hat * mean_gx), "γ is missing: dL/dx̂ = γ·g (eq. 2.4)."),
        Mistake(gamma / s * (g - mean_g - x_hat * mean_gx),
                "you multiplied by σ; inv_std is already 1/√(σ² + ε), so multiply by it."),
        Mistake(gamma * s * (g - mean_g + x_hat * mean_gx), "a sign is flipped on the variance path: "
                                                            "dL/dx = (γ/σ)(g − mean(g) − x̂·mean(g·x̂))."),
    )
    grad_weight = (
        Mistake(g.sum(dims), "dL/dγ is Σ g·x̂ (eq. 2.3): you left out x̂ (that is dL/dβ)."),
        Mistake((g * x_hat).mean(dims), "dL/dγ is a sum over the axes (0, 2, 3), not a mean."),
        Mistake((g * x_hat * gamma).sum(dims), "dL/dγ = Σ g·x̂ has no γ in it."),
    )
    grad_bias = (
        Mistake((g * x_hat).sum(dims), "dL/dβ is Σ g (eq. 2.2); Σ g·x̂ is dL/dγ. Did you swap them?"),
        Mistake(g.mean(dims), "dL/dβ is a sum over the axes (0, 2, 3), not a mean."),
    )
    return grad_x, grad_weight, grad_bias


def _reference_batch_norm_gradients(x, weight, bias, eps, grad_out):
    """PyTorch's own BatchNorm (training mode) and its autograd gradients."""
    x, weight, bias = (t.detach().clone().requires_grad_() for t in (x, weight, bias))
    y = F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
    grads = torch.autograd.grad(y, (x, weight, bias), grad_out)
    return y.detach(), grads


BACKWARD_CASES = [  # (description, shape (N, C, H, W), eps, input scale)
    ("N=4, C=3, H=W=5", (4, 3, 5, 5), 1e-5, 1.0),
    ("N=2, C=2, H=3, W=4", (2, 2, 3, 4), 1e-5, 2.0),
    ("batch of 1 (statistics over H·W only)", (1, 3, 4, 4), 1e-5, 1.0),
    ("H=W=1 (BatchNorm1d-like, m = N)", (8, 4, 1, 1), 1e-3, 1.0),
    ("large eps=0.5", (3, 2, 2, 2), 0.5, 0.3),
]


def check_batch_norm_backward(batch_norm_backward) -> None:
    """Exercise 2.1: ``batch_norm_backward(grad_out, x_hat, weight, inv_std)`` returns (dL/dx, dL/dγ, dL/dβ)."""
    for number, (case, shape, eps, scale) in enumerate(BACKWARD_CASES):
        x, weight, bias = _batch_norm_inputs(shape, seed=10 * number, scale=scale)
        grad_out = seeded_randn(*shape, seed=10 * number + 5, dtype=torch.float64)
        _, expected = _reference_batch_norm_gradients(x, weight, bias, eps, grad_out)
        var = x.var(dim=(0, 2, 3), unbiased=False)  # (C,)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - channel_view(x.mean((0, 2, 3)), 4)) * channel_view(inv_std, 4)
        got = _call(batch_norm_backward, grad_out.clone(), x_hat.clone(), weight.clone(), inv_std.clone(),
                    exercise="2.1", what="batch_norm_backward")
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise CheckFailure(f"Exercise 2.1 ({case}): return three tensors (grad_x, grad_weight, grad_bias), "
                               f"got {type(got).__name__}{'' if not isinstance(got, (tuple, list)) else len(got)}.")
        mistakes = _backward_mistakes(grad_out, x_hat, weight, inv_std)
        C = shape[1]
        for name, got_one, expected_one, wrong in zip(("grad_x", "grad_weight", "grad_bias"), got, expected,
                                                      mistakes):
            if name != "grad_x":
                _expect_shape(got_one, (C,), exercise="2.1", case=case, name=name,
                              hint="γ and β have one entry per channel: sum over the axes (0, 2, 3), "
                                   "e.g. (grad_out * x_hat).sum(dim=(0, 2, 3)).")
            diagnose(got_one, expected_one, exercise="2.1", case=case, mistakes=wrong, atol=1e-9, rtol=1e-7,
                     name=name, otherwise="Compare with eq. (2.8) term by term.")
    passed("2.1", f"{len(BACKWARD_CASES)} cases (batch of 1, H=W=1, large eps) match PyTorch's BatchNorm gradients "
                  f"(autograd of F.batch_norm, float64).")


# ---------------------------------------------------------------------------------------------------------------
# Exercise 2.2 — BatchNorm as a torch.autograd.Function (training mode)
# ---------------------------------------------------------------------------------------------------------------

def reference_batch_norm(x, weight, bias, eps, *, dims=(0, 2, 3), unbiased=False, eps_outside=False,
                         affine_axis=1, affine=True):
    """Training-mode BatchNorm by hand; the keywords build known mistakes."""
    y = normalize(x, dims, eps, unbiased=unbiased, eps_outside=eps_outside)
    if not affine:
        return y
    return y * channel_view(weight, x.dim(), affine_axis) + channel_view(bias, x.dim(), affine_axis)


FORWARD_CASES = [  # (description, shape, eps, input scale, dtype)
    ("C = W = 3, so γ on the wrong axis still broadcasts", (2, 3, 3, 3), 1e-5, 1.0, torch.float32),
    ("N=4, C=3, H=W=5", (4, 3, 5, 5), 1e-5, 1.0, torch.float32),
    ("small inputs (×0.01), where eps matters", (4, 2, 3, 3), 1e-5, 0.01, torch.float32),
    ("batch of 1", (1, 2, 4, 4), 1e-5, 1.0, torch.float32),
    ("H=W=1, N=6 (m = N)", (6, 4, 1, 1), 1e-5, 1.0, torch.float32),
    ("float64, eps=0.1", (3, 2, 4, 2), 0.1, 1.0, torch.float64),
]


def _forward_mistakes(x, weight, bias, eps):
    same = dict(x=x, weight=weight, bias=bias, eps=eps)
    mistakes = [
        Mistake(reference_batch_norm(**same, unbiased=True),
                "you normalised with the unbiased variance (÷ (m − 1)); BatchNorm normalises with the biased one "
                "(÷ m): x.var(..., unbiased=False), or ((x − μ)²).mean(...)."),
        Mistake(reference_batch_norm(**same, eps_outside=True),
                "eps is outside the square root: divide by √(σ² + ε), not by σ + ε."),
        Mistake(reference_batch_norm(**same, dims=(0,)),
                "wrong reduction axes: you averaged over the batch axis N only, giving one mean per (c, h, w); "
                "BatchNorm2d shares one mean per channel over (N, H, W): dim=(0, 2, 3)."),
        Mistake(reference_batch_norm(**same, dims=(1, 2, 3)),
                "wrong reduction axes: you averaged over (C, H, W) of each example — that is LayerNorm. "
                "BatchNorm2d averages each channel over (N, H, W): dim=(0, 2, 3)."),
        Mistake(reference_batch_norm(**same, dims=(0, 1, 2, 3)),
                "you pooled all channels into one mean and variance; BatchNorm2d has one per channel: "
                "dim=(0, 2, 3)."),
        Mistake(reference_batch_norm(**same, dims=(2, 3)),
                "wrong reduction axes: you averaged over (H, W) of each example — that is InstanceNorm. "
                "BatchNorm2d also averages over the batch: dim=(0, 2, 3)."),
        Mistake(reference_batch_norm(**same, affine=False), "γ and β are not applied: y = γ·x̂ + β."),
    ]
    if x.shape[1] == x.shape[-1]:
        mistakes.append(Mistake(reference_batch_norm(**same, affine_axis=-1),
                                "γ and β scale the last axis (W): a (C,) tensor broadcasts against the LAST axis. "
                                "View them as (1, C, 1, 1): weight[None, :, None, None]."))
    return tuple(mistakes)


def check_batch_norm_function(BatchNormFunction) -> None:
    """Exercise 2.2: ``BatchNormFunction.apply(x, weight, bias, eps)`` matches F.batch_norm (training mode) in
    its output and its gradients, and passes ``torch.autograd.gradcheck``."""
    for number, (case, shape, eps, scale, dtype) in enumerate(FORWARD_CASES):
        x, weight, bias = (t.to(dtype) for t in _batch_norm_inputs(shape, seed=50 + 10 * number, scale=scale))
        grad_out = seeded_randn(*shape, seed=55 + 10 * number, dtype=dtype)
        expected, expected_grads = _reference_batch_norm_gradients(x, weight, bias, eps, grad_out)
        leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
        got = _call(BatchNormFunction.apply, *leaves, eps, exercise="2.2", what="BatchNormFunction.forward")
        atol = 1e-9 if dtype == torch.float64 else 1e-5
        diagnose(got, expected, exercise="2.2", case=case, mistakes=_forward_mistakes(x, weight, bias, eps),
                 atol=atol, rtol=1e-4)
        if not got.requires_grad:
            raise CheckFailure("Exercise 2.2: the output does not require grad: call the Function as "
                               "BatchNormFunction.apply(x, weight, bias, eps), and return a tensor from forward.")
        grads = _call(torch.autograd.grad, got, leaves, grad_out, allow_unused=True, exercise="2.2",
                      what="BatchNormFunction.backward")
        names = ("dL/dx", "dL/dγ (weight)", "dL/dβ (bias)")
        for name, grad, expected_grad in zip(names, grads, expected_grads):
            if grad is None:
                raise CheckFailure(f"Exercise 2.2 ({case}): backward returned None for {name}; return "
                                   f"(grad_x, grad_weight, grad_bias, None): one per input of forward, None for eps.")
        swapped = (Mistake(expected_grads[2], "you returned dL/dβ where dL/dγ belongs: backward returns the "
                                              "gradients in the order forward takes its inputs (x, weight, bias, "
                                              "eps)."),
                   Mistake(expected_grads[1], "you returned dL/dγ where dL/dβ belongs: backward returns the "
                                              "gradients in the order forward takes its inputs (x, weight, bias, "
                                              "eps)."))
        for index, (name, grad, expected_grad) in enumerate(zip(names, grads, expected_grads)):
            diagnose(grad, expected_grad, exercise="2.2", case=case, name=name,
                     mistakes=() if index == 0 else (swapped[index - 1],), atol=10 * atol, rtol=1e-4,
                     otherwise="Does your batch_norm_backward pass the check of Exercise 2.1, and do you save "
                               "x̂ and 1/√(σ² + ε) of the forward pass?")
    inputs = [t.clone().requires_grad_() for t in _batch_norm_inputs((3, 2, 2, 3), seed=99)]
    ok = _call(torch.autograd.gradcheck, lambda x, w, b: BatchNormFunction.apply(x, w, b, 1e-5), inputs,
               raise_exception=False, exercise="2.2", what="BatchNormFunction (under gradcheck)")
    if not ok:
        raise CheckFailure("Exercise 2.2: torch.autograd.gradcheck disagrees with your backward in float64 (finite "
                           "differences): keep every step in the input's dtype.")
    passed("2.2", f"{len(FORWARD_CASES)} cases match F.batch_norm (training mode) in output and all three "
                  f"gradients, and gradcheck passes in float64.")


# ---------------------------------------------------------------------------------------------------------------
# Exercise 2.3 — BatchNorm2d: running statistics, momentum, eval mode
# ---------------------------------------------------------------------------------------------------------------

def simulate_running(batches, momentum, *, unbiased=True, backwards=False, cumulative_as=None):
    """(running_mean, running_var) after each training batch; the keywords build known mistakes."""
    C = batches[0].shape[1]
    running_mean, running_var = torch.zeros(C, dtype=batches[0].dtype), torch.ones(C, dtype=batches[0].dtype)
    history = []
    for step, x in enumerate(batches, start=1):
        factor = (1 / step if cumulative_as is None else cumulative_as) if momentum is None else momentum
        if backwards:
            factor = 1 - factor
        mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=unbiased)
        running_mean = (1 - factor) * running_mean + factor * mean
        running_var = (1 - factor) * running_var + factor * var
        history.append((running_mean, running_var))
    return history


def _copy_affine(module, library, seed):
    with torch.no_grad():
        library.weight.copy_(seeded_randn(*library.weight.shape, seed=seed) + 1.0)
        module.weight.copy_(library.weight)
        if getattr(library, "bias", None) is not None:
            library.bias.copy_(seeded_randn(*library.bias.shape, seed=seed + 1))
            module.bias.copy_(library.bias)


def _check_buffers(module, library, batches, momentum, *, exercise, case, eval_batch=None):
    history = simulate_running(batches, momentum)
    names = ("running_mean", "running_var")
    for name in names:
        got = getattr(module, name, None)
        if not isinstance(got, torch.Tensor):
            raise CheckFailure(f"Exercise {exercise}: keep the buffer self.{name} from the given __init__.")
        if got.requires_grad or got.grad_fn is not None:
            raise CheckFailure(f"Exercise {exercise} ({case}): self.{name} is part of the autograd graph; update "
                               f"the running statistics under torch.no_grad() (or from x.detach()).")
    index = {"running_mean": 0, "running_var": 1}
    for name in names:
        i = index[name]
        mistakes = [
            Mistake(simulate_running(batches, momentum, backwards=True)[-1][i],
                    "momentum is applied backwards: running = (1 − momentum)·running + momentum·batch, so the new "
                    "batch gets the weight momentum (0.1), not 1 − momentum."),
            Mistake(torch.zeros_like(library.running_mean) if i == 0 else torch.ones_like(library.running_var),
                    "the running statistics never changed: update them in training mode."),
        ]
        if i == 1:
            mistakes.append(Mistake(simulate_running(batches, momentum, unbiased=False)[-1][1],
                                    "the running variance must use the unbiased batch variance (÷ (m − 1)), as "
                                    "PyTorch does; only the normalisation uses the biased one."))
        if momentum is None:
            mistakes.append(Mistake(simulate_running(batches, None, cumulative_as=0.1)[-1][i],
                                    "momentum=None means a cumulative average: use the factor "
                                    "1 / num_batches_tracked, not 0.1."))
        if eval_batch is not None:
            mistakes.append(Mistake(simulate_running(batches + [eval_batch], momentum)[-1][i],
                                    "the running statistics changed in eval mode: update them only when "
                                    "self.training is True."))
        diagnose(getattr(module, name), getattr(library, name), exercise=exercise, case=case, name=name,
                 mistakes=tuple(mistakes), atol=1e-5, rtol=1e-4)
        if eval_batch is None:
            assert torch.allclose(history[-1][i], getattr(library, name), atol=1e-5), "internal: simulation"
    tracked = getattr(module, "num_batches_tracked", None)
    expected_tracked = int(library.num_batches_tracked)
    if tracked is None or int(tracked) != expected_tracked:
        raise CheckFailure(f"Exercise {exercise} ({case}): num_batches_tracked is {None if tracked is None else int(tracked)}"
                           f" but should be {expected_tracked}: add 1 at every training-mode forward (and not in "
                           f"eval mode).")


def check_batch_norm_module(BatchNorm2d) -> None:
    """Exercise 2.3: ``BatchNorm2d(C, eps, momentum)`` against ``nn.BatchNorm2d`` with the same γ, β: three
    training steps (outputs, all gradients, running statistics, num_batches_tracked), then eval mode."""
    cases = [("C=3, momentum=0.1", (4, 3, 5, 5), 0.1, 1e-5),
             ("C=2, momentum=0.3, eps=1e-3", (2, 2, 3, 4), 0.3, 1e-3),
             ("momentum=None (cumulative average)", (3, 4, 2, 2), None, 1e-5),
             ("batch of 2, H=W=1", (2, 3, 1, 1), 0.1, 1e-5)]
    for number, (case, shape, momentum, eps) in enumerate(cases):
        N, C, H, W = shape
        module = _call(BatchNorm2d, C, eps=eps, momentum=momentum, exercise="2.3", what="BatchNorm2d(...)")
        library = nn.BatchNorm2d(C, eps=eps, momentum=momentum)
        _copy_affine(module, library, seed=200 + number)
        module.train()
        batches = []
        for step in range(3):  # batches with different means and spreads, so the running statistics move
            x = seeded_randn(*shape, seed=210 + 10 * number + step) * (1 + step) + 2 * step - 1
            batches.append(x)
            grad_out = seeded_randn(*shape, seed=300 + 10 * number + step)
            step_case = f"{case}, training step {step + 1}"
            got, got_grads = _forward_backward(module, x, grad_out, exercise="2.3")
            expected, expected_grads = _forward_backward(library, x, grad_out, exercise="2.3")
            diagnose(got, expected, exercise="2.3", case=step_case, mistakes=_forward_mistakes(
                x, library.weight.detach(), library.bias.detach(), eps), atol=1e-5,
                otherwise="Does your BatchNormFunction pass the check of Exercise 2.2?")
            for name, grad, expected_grad in zip(("dL/dx", "dL/dγ", "dL/dβ"), got_grads, expected_grads):
                diagnose(grad, expected_grad, exercise="2.3", case=step_case, name=name, atol=1e-4, rtol=1e-3)
            _check_buffers(module, library, batches, momentum, exercise="2.3", case=step_case)
        module.eval()
        library.eval()
        x = seeded_randn(*shape, seed=400 + number) * 2 + 1
        grad_out = seeded_randn(*shape, seed=410 + number)
        got, got_grads = _forward_backward(module, x, grad_out, exercise="2.3")
        expected, expected_grads = _forward_backward(library, x, grad_out, exercise="2.3")
        rm, rv = library.running_mean, library.running_var
        weight, bias = library.weight.detach(), library.bias.detach()
        eval_mistakes = (
            Mistake(reference_batch_norm(x, weight, bias, eps),
                    "in eval mode BatchNorm must use the running statistics, not the statistics of the batch."),
            Mistake((x - channel_view(rm, 4)) / (channel_view(rv, 4).sqrt() + eps) * channel_view(weight, 4)
                    + channel_view(bias, 4), "eps is outside the square root in eval mode: divide by "
                                             "√(running_var + ε)."),
            Mistake(F.batch_norm(x, simulate_running(batches + [x], momentum)[-1][0],
                                 simulate_running(batches + [x], momentum)[-1][1], weight, bias, False, 0.0, eps),
                    "the running statistics changed in eval mode (updated before being used): update them only "
                    "when self.training is True."),
        )
        diagnose(got, expected, exercise="2.3", case=f"{case}, eval mode", mistakes=eval_mistakes, atol=1e-5)
        for name, grad, expected_grad in zip(("dL/dx", "dL/dγ", "dL/dβ"), got_grads, expected_grads):
            diagnose(grad, expected_grad, exercise="2.3", case=f"{case}, eval mode", name=name, atol=1e-4,
                     rtol=1e-3, otherwise="In eval mode the statistics are constants: autograd through "
                                          "(x − running_mean) / √(running_var + ε) · γ + β is all you need.")
        _check_buffers(module, library, batches, momentum, exercise="2.3", case=f"{case}, eval mode", eval_batch=x)
    passed("2.3", f"{len(cases)} cases (momentum 0.1, 0.3 and None, batch of 2) match nn.BatchNorm2d over three "
                  f"training steps and in eval mode: outputs, gradients, running_mean, running_var (unbiased) and "
                  f"num_batches_tracked.")


def _forward_backward(module, x, grad_out, *, exercise):
    x = x.clone().requires_grad_()
    for parameter in module.parameters():
        parameter.grad = None
    out = _call(module, x, exercise=exercise, what=f"{type(module).__name__}.forward")
    if not isinstance(out, torch.Tensor):
        return out, (None, None, None)
    if not out.requires_grad:
        raise CheckFailure(f"Exercise {exercise}: the output of your {type(module).__name__} is not connected to "
                           f"the autograd graph: compute it from x and the parameters, without torch.no_grad().")
    out.backward(grad_out)
    grads = [x.grad] + [getattr(module, name).grad if getattr(module, name, None) is not None else None
                        for name in ("weight", "bias")]
    return out.detach(), tuple(torch.zeros(1) if g is None else g for g in grads)


# ---------------------------------------------------------------------------------------------------------------
# Exercises 2.4–2.7 — LayerNorm, InstanceNorm2d, GroupNorm, RMSNorm against PyTorch's modules
# ---------------------------------------------------------------------------------------------------------------

def _check_parameters(module, library, *, exercise, shape_hint):
    for name, parameter in library.named_parameters():
        got = getattr(module, name, None)
        if not isinstance(got, nn.Parameter):
            raise CheckFailure(f"Exercise {exercise}: your module has no parameter `self.{name}` "
                               f"({'γ' if name == 'weight' else 'β'}): create it in __init__ with nn.Parameter.")
        if got.shape != parameter.shape:
            raise CheckFailure(f"Exercise {exercise}: self.{name} has shape {tuple(got.shape)} but "
                               f"{type(library).__name__}'s has {tuple(parameter.shape)}. {shape_hint}")
        if not torch.equal(got.detach(), parameter.detach()):
            raise CheckFailure(f"Exercise {exercise}: self.{name} should start at {'ones' if name == 'weight' else 'zeros'}"
                               f" (so that the layer starts as a pure normalisation), like PyTorch's.")
    extra = {n for n, _ in module.named_parameters()} - {n for n, _ in library.named_parameters()}
    if extra:
        raise CheckFailure(f"Exercise {exercise}: your module has parameters {sorted(extra)} that "
                           f"{type(library).__name__} does not have.")


def _check_module(exercise, module, library, x, case, mistakes, *, modes=("train", "eval")):
    for mode in modes:
        module.train(mode == "train")
        library.train(mode == "train")
        grad_out = seeded_randn(*x.shape, seed=7, dtype=x.dtype)
        got, got_grads = _forward_backward(module, x, grad_out, exercise=exercise)
        expected, expected_grads = _forward_backward(library, x, grad_out, exercise=exercise)
        atol = 1e-9 if x.dtype == torch.float64 else 1e-5
        diagnose(got, expected, exercise=exercise, case=f"{case}, {mode} mode", mistakes=mistakes(mode),
                 atol=atol, rtol=1e-4)
        for name, grad, expected_grad in zip(("dL/dx", "dL/dγ", "dL/dβ"), got_grads, expected_grads):
            if expected_grad is not None and expected_grad.numel() > 1:
                diagnose(grad, expected_grad, exercise=exercise, case=f"{case}, {mode} mode", name=name,
                         atol=100 * atol, rtol=1e-3)


def _affine(y, weight, bias, view):
    y = y * view(weight)
    return y if bias is None else y + view(bias)


def check_layer_norm(LayerNorm) -> None:
    """Exercise 2.4: ``LayerNorm(normalized_shape, eps)`` against ``nn.LayerNorm`` with copied γ, β."""
    cases = [("(B, T, D) = (2, 5, 8)", (2, 5, 8), 8, 1e-5),
             ("images (N, C, H, W), normalized_shape=(C, H, W)", (2, 3, 4, 4), (3, 4, 4), 1e-5),
             ("(N, D) = (4, 6), small inputs (×0.01)", (4, 6), 6, 1e-5),
             ("(3, 4, 5), normalized_shape=(4, 5), eps=0.1", (3, 4, 5), (4, 5), 0.1),
             ("float64, one example (1, 7)", (1, 7), 7, 1e-5)]
    for number, (case, shape, normalized_shape, eps) in enumerate(cases):
        dtype = torch.float64 if "float64" in case else torch.float32
        x = seeded_randn(*shape, seed=500 + number, dtype=dtype) * (0.01 if "small" in case else 2.0) + 0.5
        module = _call(LayerNorm, normalized_shape, eps=eps, exercise="2.4", what="LayerNorm(...)").to(dtype)
        library = nn.LayerNorm(normalized_shape, eps=eps).to(dtype)
        _check_parameters(module, library, exercise="2.4", shape_hint="LayerNorm has one γ and one β per element of "
                          "normalized_shape: torch.ones(normalized_shape).")
        _copy_affine(module, library, seed=510 + number)
        weight, bias = library.weight.detach(), library.bias.detach()
        dims = tuple(range(-library.weight.dim(), 0))

        def mistakes(mode, dims=dims, x=x, weight=weight, bias=bias, eps=eps):
            same = lambda y: _affine(y, weight, bias, lambda p: p)  # noqa: E731
            found = [
                Mistake(same(normalize(x, dims, eps, unbiased=True)),
                        "you normalised with the unbiased variance (÷ (n − 1)); use the biased one (÷ n): "
                        "var(..., unbiased=False)."),
                Mistake(same(normalize(x, dims, eps, eps_outside=True)),
                        "eps is outside the square root: divide by √(σ² + ε), not by σ + ε."),
                Mistake(same(normalize(x, (0,), eps)),
                        "wrong reduction axes: you averaged over the batch axis (that is BatchNorm); LayerNorm "
                        "averages over the last len(normalized_shape) axes of each example."),
                Mistake(normalize(x, dims, eps), "γ and β are not applied: y = γ·x̂ + β."),
            ]
            if len(dims) > 1:
                found.append(Mistake(same(normalize(x, (-1,), eps)),
                                     "you normalised over the last axis only; normalized_shape has "
                                     f"{len(dims)} axes, so average over dim={dims}."))
            return tuple(found)
        _check_module("2.4", module, library, x, case, mistakes)
    passed("2.4", f"{len(cases)} cases (images with normalized_shape=(C, H, W), small inputs, large eps, float64) "
                  f"match nn.LayerNorm, outputs and gradients.")


def check_instance_norm(InstanceNorm2d) -> None:
    """Exercise 2.5: ``InstanceNorm2d(C, eps)`` (affine, no running statistics) against
    ``nn.InstanceNorm2d(C, eps, affine=True)`` with copied γ, β, in training and eval mode."""
    cases = [("C = W = 4", (3, 4, 2, 4), 1e-5), ("N=2, C=3, H=W=5", (2, 3, 5, 5), 1e-5),
             ("batch of 1", (1, 2, 3, 3), 1e-5), ("small inputs (×0.01), eps=1e-3", (2, 2, 4, 4), 1e-3)]
    for number, (case, shape, eps) in enumerate(cases):
        x = seeded_randn(*shape, seed=600 + number) * (0.01 if "small" in case else 2.0) + 0.5
        C = shape[1]
        module = _call(InstanceNorm2d, C, eps=eps, exercise="2.5", what="InstanceNorm2d(...)")
        library = nn.InstanceNorm2d(C, eps=eps, affine=True)
        _check_parameters(module, library, exercise="2.5", shape_hint="InstanceNorm2d has one γ and one β per "
                          "channel: torch.ones(num_features).")
        _copy_affine(module, library, seed=610 + number)
        weight, bias = library.weight.detach(), library.bias.detach()

        def mistakes(mode, x=x, weight=weight, bias=bias, eps=eps):
            per_channel = lambda y: _affine(y, weight, bias, lambda p: channel_view(p, 4))  # noqa: E731
            found = [
                Mistake(per_channel(normalize(x, (2, 3), eps, unbiased=True)),
                        "you normalised with the unbiased variance (÷ (H·W − 1)); use the biased one (÷ H·W)."),
                Mistake(per_channel(normalize(x, (2, 3), eps, eps_outside=True)),
                        "eps is outside the square root: divide by √(σ² + ε), not by σ + ε."),
                Mistake(per_channel(normalize(x, (0, 2, 3), eps)),
                        "wrong reduction axes: you averaged over (N, H, W), which is BatchNorm; InstanceNorm "
                        "normalises each example's channel on its own, over (H, W): dim=(2, 3)."),
                Mistake(per_channel(normalize(x, (1, 2, 3), eps)),
                        "wrong reduction axes: you averaged over (C, H, W), which is LayerNorm; InstanceNorm "
                        "averages over (H, W) only: dim=(2, 3)."),
                Mistake(normalize(x, (2, 3), eps), "γ and β are not applied (this layer is affine=True)."),
            ]
            if mode == "eval":
                found.append(Mistake(per_channel(x / (1 + eps) ** 0.5),
                                     "in eval mode you used running statistics (mean 0, variance 1); "
                                     "InstanceNorm2d with track_running_stats=False (the default) uses each "
                                     "instance's own statistics in eval mode too."))
            if x.shape[1] == x.shape[-1]:
                found.append(Mistake(_affine(normalize(x, (2, 3), eps), weight, bias, lambda p: p),
                                     "γ and β scale the last axis (W): view them as (1, C, 1, 1)."))
            return tuple(found)
        _check_module("2.5", module, library, x, case, mistakes)
    passed("2.5", f"{len(cases)} cases (batch of 1, small inputs) match nn.InstanceNorm2d(affine=True) in training "
                  f"and eval mode, outputs and gradients.")


def reference_group_norm(x, groups, eps, weight=None, bias=None, *, interleaved=False, unbiased=False,
                         eps_outside=False, mix_batch=False):
    """GroupNorm by hand: channels are cut into ``groups`` contiguous blocks; the keywords build known mistakes."""
    N, C, H, W = x.shape  # (N, C, H, W)
    if interleaved:  # group g = channels g, g + G, g + 2G, …
        grouped = x.reshape(N, C // groups, groups, H, W).transpose(1, 2)  # (N, G, C/G, H, W)
    else:
        grouped = x.reshape(N, groups, C // groups, H, W)  # (N, G, C/G, H, W)
    dims = (0, 2, 3, 4) if mix_batch else (2, 3, 4)
    y = normalize(grouped, dims, eps, unbiased=unbiased, eps_outside=eps_outside)
    y = y.transpose(1, 2).reshape(N, C, H, W) if interleaved else y.reshape(N, C, H, W)
    return y if weight is None else _affine(y, weight, bias, lambda p: channel_view(p, 4))


def check_group_norm(GroupNorm) -> None:
    """Exercise 2.6: ``GroupNorm(num_groups, num_channels, eps)`` against ``nn.GroupNorm`` with copied γ, β."""
    cases = [("N=2, C=6, G=3", (2, 6, 4, 4), 3, 1e-5), ("N=3, C=8, G=2, H≠W", (3, 8, 3, 5), 2, 1e-5),
             ("G=1 (LayerNorm over C, H, W)", (2, 4, 3, 3), 1, 1e-5), ("G=C (InstanceNorm)", (2, 4, 3, 3), 4, 1e-5),
             ("batch of 1, C=8, G=4, eps=0.1", (1, 8, 2, 2), 4, 0.1),
             ("small inputs (×0.01)", (2, 6, 3, 3), 2, 1e-5)]
    for number, (case, shape, groups, eps) in enumerate(cases):
        x = seeded_randn(*shape, seed=700 + number) * (0.01 if "small" in case else 2.0) + channel_view(
            torch.arange(shape[1], dtype=torch.float32), 4) * (0.0 if "small" in case else 0.5)
        C = shape[1]
        module = _call(GroupNorm, groups, C, eps=eps, exercise="2.6", what="GroupNorm(...)")
        library = nn.GroupNorm(groups, C, eps=eps)
        _check_parameters(module, library, exercise="2.6", shape_hint="GroupNorm's γ and β are per channel "
                          "(num_channels,), not per group: the groups share statistics, not parameters.")
        _copy_affine(module, library, seed=710 + number)
        weight, bias = library.weight.detach(), library.bias.detach()

        def mistakes(mode, x=x, groups=groups, eps=eps, weight=weight, bias=bias):
            same = dict(x=x, groups=groups, eps=eps, weight=weight, bias=bias)
            return (
                Mistake(reference_group_norm(**same, interleaved=True),
                        "your groups are formed from the wrong axis: reshaping to (N, C/G, G, H, W) puts channels "
                        "g, g+G, g+2G, … together. Groups are contiguous blocks of channels: reshape to "
                        "(N, G, C/G, H, W)."),
                Mistake(reference_group_norm(**same, unbiased=True),
                        "you normalised with the unbiased variance (÷ (n − 1)); use the biased one (÷ n)."),
                Mistake(reference_group_norm(**same, eps_outside=True),
                        "eps is outside the square root: divide by √(σ² + ε), not by σ + ε."),
                Mistake(reference_group_norm(**same, mix_batch=True),
                        "your statistics mix the examples of the batch: GroupNorm, like LayerNorm, normalises "
                        "each example on its own (never reduce over the batch axis)."),
                Mistake(reference_group_norm(**{**same, "groups": 1}),
                        "you ignored the groups and normalised over all of (C, H, W): that is GroupNorm with G=1 "
                        "(LayerNorm)."),
                Mistake(reference_group_norm(**{**same, "groups": x.shape[1]}),
                        "you normalised each channel on its own (G = C, InstanceNorm): reshape to "
                        "(N, num_groups, C // num_groups, H, W) first."),
                Mistake(reference_group_norm(x, groups, eps), "γ and β are not applied: y = γ·x̂ + β per channel."),
            )
        _check_module("2.6", module, library, x, case, mistakes)
    passed("2.6", f"{len(cases)} cases (G=1, G=C, batch of 1, H≠W, small inputs) match nn.GroupNorm, outputs and "
                  f"gradients.")


def reference_rms_norm(x, dims, eps, weight=None, *, center=False, eps_outside=False, l2=False):
    """x / √(mean(x²) + eps) · γ over ``dims``; the keywords build known mistakes."""
    if center:
        x = x - x.mean(dims, keepdim=True)
    square_mean = (x * x).sum(dims, keepdim=True) if l2 else (x * x).mean(dims, keepdim=True)
    y = x / (square_mean.sqrt() + eps) if eps_outside else x / torch.sqrt(square_mean + eps)
    return y if weight is None else y * weight


def check_rms_norm(RMSNorm) -> None:
    """Exercise 2.7: ``RMSNorm(normalized_shape, eps=None)`` against ``nn.RMSNorm`` with a copied γ;
    ``eps=None`` means ``torch.finfo(x.dtype).eps``."""
    cases = [("(B, T, D) = (2, 5, 8), eps=None", (2, 5, 8), 8, None, torch.float32),
             ("normalized_shape=(4, 6), eps=1e-6", (3, 4, 6), (4, 6), 1e-6, torch.float32),
             ("small inputs (×1e-3), eps=None: here eps matters", (2, 16), 16, None, torch.float32),
             ("float64, eps=None (finfo(float64).eps)", (2, 3, 5), 5, None, torch.float64),
             ("large eps=0.5, inputs with a mean", (4, 6), 6, 0.5, torch.float32)]
    for number, (case, shape, normalized_shape, eps, dtype) in enumerate(cases):
        x = seeded_randn(*shape, seed=800 + number, dtype=dtype)
        x = x * 1e-3 if "small" in case else x * 1.5 + 1.0  # a nonzero mean, so subtracting it is visible
        if "float64" in case:
            x = x * 1e-7  # finfo(float64).eps ≈ 2e-16 vs finfo(float32).eps ≈ 1e-7: only tiny inputs tell them apart
        module = _call(RMSNorm, normalized_shape, eps=eps, exercise="2.7", what="RMSNorm(...)").to(dtype)
        library = nn.RMSNorm(normalized_shape, eps=eps).to(dtype)
        _check_parameters(module, library, exercise="2.7", shape_hint="RMSNorm has one γ per element of "
                          "normalized_shape, and no β.")
        _copy_affine(module, library, seed=810 + number)
        weight = library.weight.detach()
        dims = tuple(range(-weight.dim(), 0))
        used_eps = torch.finfo(dtype).eps if eps is None else eps

        def mistakes(mode, x=x, dims=dims, used_eps=used_eps, weight=weight, eps=eps):
            found = [
                Mistake(reference_rms_norm(x, dims, used_eps, weight, center=True),
                        "you subtracted the mean: RMSNorm does not centre, it divides x by √(mean(x²) + ε) "
                        "(eq. 2.12)."),
                Mistake(reference_rms_norm(x, dims, used_eps, weight, eps_outside=True),
                        "eps is outside the square root: divide by √(mean(x²) + ε), not by rms + ε."),
                Mistake(reference_rms_norm(x, dims, used_eps, weight, l2=True),
                        "you divided by the L2 norm √(Σx²); RMSNorm divides by the root of the MEAN square, "
                        "√(Σx²/n + ε)."),
                Mistake(reference_rms_norm(x, dims, used_eps), "γ is not applied: y = γ · x / rms(x)."),
            ]
            if eps is None:
                for wrong_eps, what in ((1e-5, "1e-5"), (1e-6, "1e-6"), (0.0, "0"),
                                        (torch.finfo(torch.float32).eps, "float32's machine epsilon")):
                    found.append(Mistake(reference_rms_norm(x, dims, wrong_eps, weight),
                                         f"with eps=None you used eps={what}; nn.RMSNorm then uses "
                                         f"torch.finfo(x.dtype).eps, the machine epsilon of the input's dtype."))
            if len(dims) > 1:
                found.append(Mistake(reference_rms_norm(x, (-1,), used_eps, weight),
                                     f"you averaged over the last axis only; normalized_shape has {len(dims)} axes: "
                                     f"average over dim={dims}."))
            return tuple(found)
        _check_module("2.7", module, library, x, case, mistakes, modes=("train",))
    passed("2.7", f"{len(cases)} cases (two-axis normalized_shape, tiny inputs where eps=None matters, float64) "
                  f"match nn.RMSNorm, outputs and gradients.")


__all__ = ["check_batch_norm_backward", "check_batch_norm_function", "check_batch_norm_module", "check_layer_norm",
           "check_instance_norm", "check_group_norm", "check_rms_norm", "reference_batch_norm",
           "reference_group_norm", "reference_rms_norm", "simulate_running", "normalize", "channel_view",
           "CheckFailure", "LearnerError"]

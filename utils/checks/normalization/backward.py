"""Exercises 2.1 (the BatchNorm backward in closed form) and 2.2 (BatchNormFunction, an autograd.Function)."""
from __future__ import annotations

import torch

from utils.checks.core import misplaced_results, one_thread
from utils.checks.normalization.affine import affine_probe, initial_affine_probe
from utils.checks.normalization.cases import (
    EX_BACKWARD,
    EX_FUNCTION,
    IMAGE_AXES,
    STATISTICS,
    ImageCase,
    _NamedFirst,
    _view,
    large_offset,
)
from utils.checks.normalization.epsilon import eps_placement_probe
from utils.checks.normalization.inputs import (
    _affine_parameters,
    _batch_norm_spec,
    _image_batch,
    _library_batch_norm,
    _per_channel_shape,
    _statistics,
)
from utils.checks.normalization.paths import _batch_norm_paths, _parameter_gradient_probes, paths_probe
from utils.checks.normalization.precision import exchanged_statistics, large_mean_probe
from utils.checks.normalization.source import inplace_on_saved_reading
from utils.checks.normalization.statistics import group_property_probe, normalisation_probe

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
            misplaced = misplaced_results(got, expected, ("grad_x", "grad_weight (dL/dγ)", "grad_bias (dL/dβ)"))
            if misplaced:
                raise EX.fail(misplaced, case=case)
            spec = _batch_norm_spec(x, case)
            paths = _batch_norm_paths(x_hat, weight, inv_std, grad_out, case, spec=spec)
            weight_probe, bias_probe = _parameter_gradient_probes(x_hat, grad_out, weight, inv_std, case,
                                                                  "multiply g by x̂ before summing")
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
    ImageCase("a large mean: values 100 ± 2", shape=(4, 3, 5, 5), offset=100.0),
)
_ORDER_HINT = ("backward returns the gradients in the order forward takes its inputs: (grad_x, grad_weight, "
               "grad_bias, None).")


def _closed_form_backward(grad_out, x_hat, weight, inv_std) -> torch.Tensor:
    """dL/dx of eq. (2.8), in float64, for any four tensors of the right shapes."""
    g, xh = grad_out.double(), x_hat.double()
    mean_g, mean_gx = g.mean(STATISTICS, keepdim=True), (g * xh).mean(STATISTICS, keepdim=True)
    return _view(weight.double() * inv_std.double(), 4, (1,)) * (g - mean_g - xh * mean_gx)


_ARGUMENTS = ("grad_out", "x_hat", "weight", "inv_std")


def exchanged_arguments_probe(arguments: tuple, rtol: float):
    """dL/dx that is eq. (2.8) with two same-shaped arguments of batch_norm_backward(grad_out, x_hat, weight,
    inv_std) exchanged — a call with its arguments in another order: names the two; else None. Pairs whose
    exchange gives the same dL/dx (γ and s enter only as γ·s) are not tried: they are not wrong."""
    right = _closed_form_backward(*arguments)

    def probe(got):
        if not isinstance(got, torch.Tensor) or got.shape != right.shape:
            return None
        dx = got.detach().double()
        for i in range(len(arguments)):
            for j in range(i + 1, len(arguments)):
                if arguments[i].shape != arguments[j].shape:
                    continue
                swapped = list(arguments)
                swapped[i], swapped[j] = arguments[j], arguments[i]
                other = _closed_form_backward(*swapped)
                size = max(other.abs().max().item(), 1e-12)
                if torch.allclose(other, right, rtol=rtol, atol=rtol * size) or \
                        not torch.allclose(dx, other, rtol=rtol, atol=rtol * size):
                    continue
                order = list(_ARGUMENTS)
                order[i], order[j] = order[j], order[i]
                return (f"your dL/dx is exactly what eq. (2.8) gives with {_ARGUMENTS[i]} and {_ARGUMENTS[j]} "
                        f"exchanged: the arguments reach batch_norm_backward in another order, as in "
                        f"batch_norm_backward({', '.join(order)}). Its order is batch_norm_backward("
                        f"{', '.join(_ARGUMENTS)}): pass them in that order.")
        return None
    return probe


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
                       probes=[large_mean_probe(EX, lambda t: BatchNormFunction.apply(t, ones, zeros, case.eps), x,
                                                x_hat, spec, case, large_offset(case)),
                               eps_placement_probe(EX, lambda t: BatchNormFunction.apply(t, ones, zeros, case.eps), x,
                                                   spec, case),
                               normalisation_probe(x, spec),
                               initial_affine_probe(x_hat, (C,), True, (1,), IMAGE_AXES, "BatchNorm", "eq. (2.1)"),
                               group_property_probe(x, spec)], axes=IMAGE_AXES, mistakes=exchanged_statistics(x, spec))
            # 2. with γ and β
            leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
            got = EX.call(BatchNormFunction.apply, *leaves, case.eps, what="BatchNormFunction.forward", case=case)
            EX.compare(got, expected, case=case, equation="eq. (2.1)", axes=IMAGE_AXES, atol=case.tolerance[0],
                       probes=[affine_probe(plain, weight, bias, (1,), IMAGE_AXES, "BatchNorm", "eq. (2.1)")])
            # 3. the gradients, through your backward
            grads = EX.call(torch.autograd.grad, got, leaves, grad_out, allow_unused=True,
                            what="BatchNormFunction.backward", case=case)
            names = ("dL/dx", "dL/dγ (grad_weight)", "dL/dβ (grad_bias)")
            for name, grad in zip(names, grads):
                if grad is None:
                    raise EX.fail(f"backward returned None for {name}: {_ORDER_HINT}", case=case)
            atol, rtol = (10 * t for t in case.tolerance)
            misplaced = misplaced_results(grads, expected_grads, names, order="grad_x, grad_weight, grad_bias, None",
                                          tolerances=[(atol, rtol)] * 3)
            if misplaced:
                raise EX.fail(f"{misplaced} backward returns one gradient per input of forward, in forward's order "
                              f"(x, weight, bias, eps).", case=case)
            inplace = inplace_on_saved_reading(BatchNormFunction)  # what turned the saved x̂ into y, if anything
            alternatives = {
                "x": (x, "your backward used x where eq. (2.8) has x̂: save x̂ = (x − μ)·s in forward "
                         "(ctx.save_for_backward(x_hat, weight, inv_std)) and pass it to batch_norm_backward."),
                "x − μ": (x - x.mean(STATISTICS, keepdim=True), "your backward used x − μ where eq. (2.8) has "
                                                                "x̂ = (x − μ)·s: save x̂, not the centred input."),
                "x·s": (x * _view(inv_std, 4, (1,)), "your backward used x·s where eq. (2.8) has x̂ = (x − μ)·s: save "
                                                     "the x̂ your output is made from (the mean subtracted)."),
                "y": (expected, inplace or "your backward used the output y = γ·x̂ + β where eq. (2.8) has x̂: save "
                                           "x̂ itself in forward, before γ and β are applied."),
                "γ·x̂": (x_hat * _view(weight, 4, (1,)), (inplace or "").replace("y = γ·x̂ + β", "γ·x̂") or
                         "your backward used γ·x̂ where eq. (2.8) has x̂: save x̂ itself in forward, before γ is "
                         "applied."),
            }
            paths = _batch_norm_paths(x_hat, weight, inv_std, grad_out, case, spec=spec, alternatives=alternatives,
                                      bias=bias)
            EX.compare(grads[0], expected_grads[0], case=case, name=names[0], equation="eq. (2.8)", atol=atol,
                       rtol=rtol, probes=[exchanged_arguments_probe((grad_out, x_hat, weight, inv_std), 1e-4),
                                          paths_probe(paths)], axes=IMAGE_AXES,
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
    EX.passed(f"{len(FUNCTION_CASES)} cases (C = W, small inputs, batch of 1, H=W=1, float64, a large mean) match "
              f"F.batch_norm in training mode, output and all three gradients, and gradcheck passes in float64.")

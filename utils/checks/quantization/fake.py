"""Exercise 11.2: FakeQuantize, eq. (11.1) forward and the straight-through gradient (11.5), against PyTorch's ops."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from utils.checks.core import Case, Mistake, one_thread
from utils.checks.quantization.cases import (
    EX_FAKE,
    broadcast_along,
    fake_quantize_variant,
    library_fake_quantize,
)


@dataclass(frozen=True)
class FakeCase(Case):
    shape: tuple = (4, 33)
    q_min: int = 0
    q_max: int = 255
    axis: int | None = None
    scale: float = 0.05
    zero: int = 128
    spread: float = 1.0  # the input's standard deviation: large enough that some values are clipped

    @property
    def sizes(self):
        return {f"dim{i}": n for i, n in enumerate(self.shape)}


FAKE_CASES = (
    FakeCase("per tensor, 8 bits, q ∈ [0, 255], z = 128", shape=(4, 33), scale=0.02, zero=128, spread=1.6),
    FakeCase("per tensor, 4 bits, q ∈ [0, 15], z = 3", shape=(3, 5, 7), q_min=0, q_max=15, scale=0.2, zero=3,
             spread=1.5),
    FakeCase("per tensor, signed 4 bits, q ∈ [−8, 7], z = 0", shape=(50,), q_min=-8, q_max=7, scale=0.25, zero=0,
             spread=1.4),
    FakeCase("per channel, axis 0 of a (6, 10) weight, q ∈ [−8, 7]", shape=(6, 10), q_min=-8, q_max=7, axis=0,
             scale=0.15, zero=0, spread=1.0),
    FakeCase("per channel, axis 1 of (2, 5, 7), q ∈ [0, 15]", shape=(2, 5, 7), q_min=0, q_max=15, axis=1,
             scale=0.2, zero=5, spread=1.5),
    FakeCase("per channel, axis 0 of a square (5, 5) weight, q ∈ [0, 3]", shape=(5, 5), q_min=0, q_max=3, axis=0,
             scale=0.4, zero=1, spread=1.0),
    FakeCase("per channel, the last axis of (3, 4, 5), q ∈ [−2, 1]", shape=(3, 4, 5), q_min=-2, q_max=1, axis=2,
             scale=0.5, zero=0, spread=1.0),
    FakeCase("a single value", shape=(1,), q_min=0, q_max=255, scale=0.1, zero=100, spread=3.0),
)


def _inputs(case: FakeCase):
    x = EX_FAKE.randn(*case.shape, key=(case.label, "x")) * case.spread
    if case.axis is None:
        return x, torch.tensor(case.scale), torch.tensor(case.zero, dtype=torch.int32)
    C = case.shape[case.axis]
    scale = case.scale * (0.5 + torch.arange(C, dtype=torch.float32) / C)  # distinct per channel
    zero = torch.tensor([case.zero + (i % 2) for i in range(C)], dtype=torch.int32) if case.q_min == 0 else \
        torch.zeros(C, dtype=torch.int32)
    return x, scale, zero


def _masks(x, scale, zero, case: FakeCase):
    s = broadcast_along(scale, case.axis, x.dim())
    z = broadcast_along(zero, case.axis, x.dim()).to(x.dtype)
    q = torch.round(x / s) + z
    lower, upper = s * (case.q_min - z), s * (case.q_max - z)
    return {"eq. (11.5)": (q >= case.q_min) & (q <= case.q_max),
            "strict": (q > case.q_min) & (q < case.q_max),
            "x range": (x >= lower) & (x <= upper)}


def _forward_mistakes(x, scale, zero, case: FakeCase):
    a, bounds = case.axis, (case.q_min, case.q_max)
    mistakes = [
        Mistake(fake_quantize_variant(x, scale, zero, *bounds, a, rounding=torch.floor),
                "you round with floor (toward −∞); eq. (11.1) rounds to the nearest integer: torch.round."),
        Mistake(fake_quantize_variant(x, scale, zero, *bounds, a, rounding=torch.trunc),
                "you truncate toward zero (int(), .to(int), torch.trunc); eq. (11.1) rounds to the nearest: "
                "torch.round."),
        Mistake(fake_quantize_variant(x, scale, zero, *bounds, a, rounding=torch.ceil),
                "you round with ceil; eq. (11.1) rounds to the nearest integer: torch.round."),
        Mistake(fake_quantize_variant(x, scale, zero, *bounds, a, clamp=False),
                "you never clamp: q must be clamped into [q_min, q_max] (eq. (11.1)), so values beyond the range are "
                "clipped to its ends."),
        Mistake(fake_quantize_variant(x, scale, zero, case.q_min, case.q_max + 1, a),
                "you clamp to [q_min, q_max + 1]: the top level is q_max itself (2^b − 1 for unsigned b bits, not "
                "2^b)."),
        Mistake(fake_quantize_variant(x, scale, zero, *bounds, a, dequantize=False),
                "you return the integers q; fake quantization returns the dequantized x̂ = s·(q − z) of eq. (11.1)."),
        Mistake(fake_quantize_variant(x, scale, zero, *bounds, a, subtract_zero=False),
                "you dequantize as s·q; eq. (11.1) subtracts the zero point first: x̂ = s·(q − z)."),
    ]
    if (zero != 0).any():
        mistakes.append(Mistake(fake_quantize_variant(x, scale, zero, *bounds, a, z_sign=-1),
                                "the zero point's sign is flipped: q = ⌊x/s⌉ + z (and x̂ = s·(q − z)), not "
                                "⌊x/s⌉ − z."))
    if a is not None and x.dim() >= 2:
        for other in range(x.dim()):
            if other != a and x.shape[other] == x.shape[a]:
                shaped = fake_quantize_variant(x, scale, zero, *bounds, other)
                mistakes.append(Mistake(shaped, f"your scales vary along axis {other}; the channels are axis "
                                                 f"{a} (the `axis` argument): reshape s and z to broadcast along "
                                                 f"it, e.g. shape[axis] = -1 with 1 elsewhere."))
    return mistakes


@one_thread
def check_fake_quantize(FakeQuantize) -> None:
    """Exercise 11.2: ``FakeQuantize.apply(x, scale, zero_point, q_min, q_max, axis)`` equals PyTorch's
    fake_quantize_per_tensor_affine / per_channel_affine, values and gradients."""
    EX = EX_FAKE
    for case in FAKE_CASES:
        x, scale, zero = _inputs(case)
        expected = library_fake_quantize(x, scale, zero, case.q_min, case.q_max, case.axis)
        leaf = x.clone().requires_grad_()
        got = EX.call(FakeQuantize.apply, leaf, scale.clone(), zero.clone(), case.q_min, case.q_max, case.axis,
                      what="FakeQuantize.forward", case=case)
        if not isinstance(got, torch.Tensor):
            raise EX.fail(f"forward returned a {type(got).__name__}, not a tensor.", case=case)
        EX.compare(got, expected, case=case, equation="eq. (11.1)", mistakes=_forward_mistakes(x, scale, zero, case),
                   probes=[lambda g: _grid_probe(g, x, scale, zero, case)], factors={"s": float(scale.mean())})
        if not got.requires_grad:
            raise EX.fail("the output is not connected to the autograd graph: FakeQuantize.apply must be what "
                          "returns it (don't call .detach() or work under no_grad in forward).", case=case)
        grad_out = EX.randn(*case.shape, key=(case.label, "grad"))
        EX.call(got.backward, grad_out, what="FakeQuantize.backward", case=case)
        reference = x.clone().requires_grad_()
        library_fake_quantize(reference, scale, zero, case.q_min, case.q_max, case.axis).backward(grad_out)
        _compare_gradient(EX, case, leaf.grad, reference.grad, grad_out, _masks(x, scale, zero, case))
    EX.passed(f"{len(FAKE_CASES)} cases (per tensor and per channel on axes 0, 1 and 2, 2–8 bits, z ≠ 0) match "
              f"torch.fake_quantize_per_tensor_affine / per_channel_affine: values and straight-through gradients")


def _grid_probe(got, x, scale, zero, case):
    """A property of eq. (11.1): x̂/s + z is an integer in [q_min, q_max]."""
    s = broadcast_along(scale, case.axis, x.dim())
    z = broadcast_along(zero, case.axis, x.dim()).float()
    levels = got.detach() / s + z
    off_grid = (levels - torch.round(levels)).abs() > 1e-3
    if off_grid.any():
        return (f"{int(off_grid.sum())} of your {got.numel()} values are not on the grid s·(q − z) with an integer q "
                f"(e.g. {got.flatten()[off_grid.flatten().nonzero()[0, 0]].item():.5g}): round x/s to an integer, "
                f"then dequantize with the same s and z.")
    outside = (torch.round(levels) < case.q_min) | (torch.round(levels) > case.q_max)
    if outside.any():
        return (f"some of your values lie on levels outside [q_min, q_max] = [{case.q_min}, {case.q_max}]: clamp q "
                f"(after adding z) into that range.")
    return None


def _compare_gradient(EX, case, got, expected, grad_out, masks):
    if got is None:
        raise EX.fail("x received no gradient (x.grad is None): backward must return grad_out·mask as its first "
                      "value (the straight-through estimator, eq. (11.5)).", case=case, name="dL/dx")
    if got.shape == expected.shape and torch.allclose(got, expected, atol=1e-6):
        return
    mistakes = [Mistake(grad_out.clone(), "you pass the gradient everywhere, clipped values included: eq. (11.5) "
                                           "stops it where q was clamped (compute the mask before clamping: "
                                           "(q >= q_min) & (q <= q_max))."),
                Mistake(torch.zeros_like(grad_out), "your gradient is zero everywhere: autograd through round "
                                                     "gives 0 — the straight-through estimator passes grad_out "
                                                     "where the value was not clipped."),
                Mistake(grad_out * masks["strict"],
                        "your mask uses strict inequalities: values that round exactly onto q_min or q_max are inside "
                        "the range, (q >= q_min) & (q <= q_max)." if not torch.equal(masks["strict"], masks["x range"])
                        else "your mask drops values that round onto q_min or q_max: either strict inequalities on q, "
                             "or a test of x against s·(q_min − z), s·(q_max − z) before rounding. Eq. (11.5) tests "
                             "the rounded q: (q >= q_min) & (q <= q_max)."),
                Mistake(grad_out * ~masks["eq. (11.5)"], "your mask is inverted: the gradient passes where the "
                                                         "value was NOT clipped.")]
    if not torch.equal(masks["x range"], masks["eq. (11.5)"]):
        mistakes.append(Mistake(grad_out * masks["x range"],
                                "your mask tests x against s·(q_min − z), s·(q_max − z); PyTorch (and eq. (11.5)) "
                                "tests the rounded q: a value within half a step beyond the end rounds onto it and "
                                "still gets the gradient."))
    EX.compare(got, expected, case=case, name="dL/dx", equation="eq. (11.5), grad_out where the value was not clipped",
               mistakes=mistakes, factors={"s": 1.0})

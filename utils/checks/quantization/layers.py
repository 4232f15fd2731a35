"""Exercises 11.5 (QuantLinear) and 11.6 (swap_linears)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.checks.core import Case, Mistake, one_thread
from utils.checks.quantization.cases import EX_LINEAR, EX_SWAP, fake_quantize_variant, library_fake_quantize


@dataclass(frozen=True)
class LinearCase(Case):
    in_features: int = 7
    out_features: int = 5
    bits: int = 4
    bias: bool = True
    input_quantizer: bool = False
    batch: tuple = (3,)

    @property
    def sizes(self):
        return {"in": self.in_features, "out": self.out_features}


LINEAR_CASES = (
    LinearCase("in=7, out=5, 4 bits", in_features=7, out_features=5, bits=4),
    LinearCase("square 6×6 weight, 3 bits, input (2, 4, 6)", in_features=6, out_features=6, bits=3, batch=(2, 4)),
    LinearCase("in=9, out=4, 8 bits, no bias", in_features=9, out_features=4, bits=8, bias=False),
    LinearCase("in=5, out=3, 2 bits, with an input quantizer", in_features=5, out_features=3, bits=2,
               input_quantizer=True),
)


class FixedInputQuantizer(nn.Module):
    """An activation quantizer with a fixed grid (what calibration would give): 4-bit affine, s = 0.25, z = 8."""

    def forward(self, x):
        return torch.fake_quantize_per_tensor_affine(x, 0.25, 8, 0, 15)


def _weight(case: LinearCase) -> torch.Tensor:
    weight = EX_LINEAR.randn(case.out_features, case.in_features, key=(case.label, "w"))
    return weight * (0.2 + torch.arange(case.out_features, dtype=torch.float32)[:, None])  # rows of different size


def _quantized(weight, bits, *, axis=0, per_tensor=False, q_pos=None):
    q_pos = 2 ** (bits - 1) - 1 if q_pos is None else q_pos
    if per_tensor:
        return library_fake_quantize(weight, weight.abs().max() / q_pos, torch.tensor(0), -2 ** (bits - 1),
                                     2 ** (bits - 1) - 1)
    bound = weight.abs().amax(dim=1 - axis)
    return fake_quantize_variant(weight, bound / q_pos, torch.zeros_like(bound, dtype=torch.int32),
                                 -2 ** (bits - 1), 2 ** (bits - 1) - 1, axis)


@one_thread
def check_quant_linear(QuantLinear) -> None:
    """Exercise 11.5: QuantLinear's output and gradients equal F.linear(input_quantizer(x), W_q, b), with W_q the
    per-output-channel symmetric min-max fake quantization of W (PyTorch's fake_quantize_per_channel_affine)."""
    EX = EX_LINEAR
    for case in LINEAR_CASES:
        quantizer = FixedInputQuantizer() if case.input_quantizer else None
        layer = EX.call(QuantLinear, case.in_features, case.out_features, case.bias, weight_bits=case.bits,
                        input_quantizer=quantizer, what="QuantLinear(...)", case=case)
        weight = _weight(case)
        bias = EX.randn(case.out_features, key=(case.label, "b")) if case.bias else None
        with torch.no_grad():
            layer.weight.copy_(weight)
            if case.bias:
                layer.bias.copy_(bias)
        x = EX.randn(*case.batch, case.in_features, key=(case.label, "x")) * 2
        leaf = x.clone().requires_grad_()
        got = EX.call(layer, leaf, what="QuantLinear.forward", case=case)
        inputs = quantizer(x) if quantizer else x
        bound = weight.abs().amax(dim=1)
        q_pos = 2 ** (case.bits - 1) - 1
        weight_q = library_fake_quantize(weight, bound / q_pos, torch.zeros(case.out_features, dtype=torch.int32),
                                         -q_pos - 1, q_pos, 0)
        expected = F.linear(inputs, weight_q, bias)
        mistakes = [
            Mistake(F.linear(inputs, weight, bias), "your weight is not quantized: pass it through fake_quantize "
                                                    "(per output channel, axis 0) before F.linear."),
            Mistake(F.linear(inputs, _quantized(weight, case.bits, per_tensor=True), bias),
                    "you use one scale for the whole weight (per tensor); QuantLinear quantizes per output channel: "
                    "one scale per row, max|W_i·|/(2^(b−1) − 1), axis 0."),
            Mistake(F.linear(inputs, _quantized(weight, case.bits, q_pos=2 ** (case.bits - 1)), bias),
                    "your row scale is max|W_i·|/2^(b−1); the narrow-range symmetric scale divides by 2^(b−1) − 1 "
                    "(the symmetric off-by-one)."),
            Mistake(F.linear(inputs, _quantized(weight, case.bits, q_pos=2 ** case.bits - 1), bias),
                    "your row scale is max|W_i·|/(2^b − 1), the unsigned count of steps; the symmetric scale divides "
                    "by 2^(b−1) − 1."),
        ]
        row_low, row_high = weight.amin(1).clamp(max=0), weight.amax(1).clamp(min=0)
        affine_scale = ((row_high - row_low) / (2 ** case.bits - 1)).clamp_min(1e-8)
        affine_zero = (-torch.round(row_low / affine_scale)).clamp(0, 2 ** case.bits - 1).to(torch.int32)
        mistakes.append(Mistake(F.linear(inputs, library_fake_quantize(weight, affine_scale, affine_zero, 0,
                                                                       2 ** case.bits - 1, 0), bias),
                                "you quantize each row with the affine (asymmetric) rule of eq. (11.2); QuantLinear's "
                                "weights are symmetric: z = 0, scale max|W_i·|/(2^(b−1) − 1), q ∈ [−2^(b−1), "
                                "2^(b−1) − 1]."))
        if True:  # axis 1 (per input column) broadcasts for any shape
            mistakes.append(Mistake(F.linear(inputs, _quantized(weight, case.bits, axis=1), bias),
                                    "your scales are per column (per input feature, axis 1); per-channel weight "
                                    "quantization uses one scale per output row (axis 0), the axis that factors "
                                    "out of the dot product."))
        if quantizer is not None:
            mistakes += [Mistake(F.linear(x, weight_q, bias), "the input is not passed through "
                                                              "self.input_quantizer before F.linear."),
                         Mistake(quantizer(F.linear(x, weight_q, bias)), "you apply self.input_quantizer to the "
                                                                         "output; it quantizes the layer's input.")]
        if case.bias:
            bias_q = library_fake_quantize(bias, bias.abs().max() / q_pos, torch.tensor(0), -q_pos - 1, q_pos)
            mistakes += [Mistake(F.linear(inputs, weight_q, bias_q), "you quantize the bias too; it stays in float "
                                                                     "(an integer kernel adds it at 32 bits)."),
                         Mistake(F.linear(inputs, weight_q), "the bias is missing: F.linear(x, W_q, self.bias).")]
        EX.compare(got, expected, case=case, equation="F.linear(input_quantizer(x), W_q, b)", mistakes=mistakes)
        if not got.requires_grad:
            raise EX.fail("the output is not connected to the autograd graph.", case=case)
        grad_out = EX.randn(*got.shape, key=(case.label, "g"))
        EX.call(got.backward, grad_out, what="QuantLinear (its backward pass)", case=case)
        reference_x, reference_w = x.clone().requires_grad_(), weight.clone().requires_grad_()
        reference_inputs = quantizer(reference_x) if quantizer else reference_x
        w_q = library_fake_quantize(reference_w, bound / q_pos, torch.zeros(case.out_features, dtype=torch.int32),
                                    -q_pos - 1, q_pos, 0)
        F.linear(reference_inputs, w_q, bias).backward(grad_out)
        if layer.weight.grad is None:
            raise EX.fail("the weight received no gradient: quantize self.weight inside the graph (the STE of "
                          "fake_quantize passes it), not self.weight.data or a detached copy.", case=case)
        EX.compare(leaf.grad, reference_x.grad, case=case, name="dL/dx", equation="the STE backward of eq. (11.5)")
        EX.compare(layer.weight.grad, reference_w.grad, case=case, name="dL/dW",
                   equation="the STE backward of eq. (11.5): grad of F.linear w.r.t. W_q, passed straight to W")
    EX.passed(f"{len(LINEAR_CASES)} layers (2–8 bits, square and not, with and without bias and input quantizer) "
              f"match F.linear(input_quantizer(x), per-channel fake-quantized W, b), values and gradients")


# ============================================================================================== Exercise 11.6
class _Marked(nn.Linear):
    """What the check's ``make`` returns: a Linear (so a walk that revisits it would swap it again)."""


class _Holder(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)

    def forward(self, x):
        return self.norm(self.inner(x))


def _model() -> nn.Module:
    torch.manual_seed(EX_SWAP.seed("model"))
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.ModuleList([nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4))]),
                         _Holder(), nn.Linear(4, 2))


def _forward(model, x):
    x = model[1](model[0](x))
    x = model[2][1](model[2][0](x))
    return model[4](model[3](x))


@one_thread
def check_swap_linears(swap_linears) -> None:
    """Exercise 11.6: every nn.Linear at any depth replaced by make(linear), once each; the count returned."""
    EX = EX_SWAP
    model = _model()
    originals = {name: module for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    others = {name: module for name, module in model.named_modules() if not isinstance(module, nn.Linear)}
    calls = []

    def make(linear):
        calls.append(linear)
        new = _Marked(linear.in_features, linear.out_features)
        new.load_state_dict(linear.state_dict())
        return new

    x = EX.randn(2, 3, key="x")
    with torch.no_grad():
        expected = _forward(model, x)
    count = EX.call(swap_linears, model, make, case="a model with Linears in a Sequential, a ModuleList, a nested "
                                                    "Sequential and a custom module")
    if any(isinstance(c, _Marked) for c in calls):
        raise EX.fail("make was called on a layer it had returned: you swap a new layer again (it is an nn.Linear "
                      "too). Replace each original child once, and do not walk into what make returned.")
    dotted = [name for name in vars(model).get("_modules", {}) if "." in name]
    if dotted:
        raise EX.fail(f"your model gained children named {dotted}: setattr(model, 'a.b', ...) adds a new attribute "
                      f"with a dot in its name instead of replacing the child b of a. Set it on the parent module.")
    now = dict(model.named_modules())
    missing = [name for name in originals if not isinstance(now.get(name), _Marked)]
    if missing:
        top = [n for n in missing if "." not in n]
        depth = "only the direct children were replaced: recurse into the children that are not Linears" if \
            len(top) < len(missing) and not top else "some Linears were not replaced"
        raise EX.fail(f"{depth} — still nn.Linear: {missing}.")
    if len(calls) != len(originals):
        raise EX.fail(f"make was called {len(calls)} times for {len(originals)} Linears: call it once per Linear.")
    changed = [name for name, module in others.items() if now.get(name) is not module]
    if changed:
        raise EX.fail(f"modules that are not Linears were replaced or removed: {changed}. Leave them as they are.")
    if count != len(originals):
        raise EX.fail(f"you returned {count!r}; return the number of Linears replaced, {len(originals)} here.")
    try:
        with torch.no_grad():
            got = _forward(model, x)
    except RuntimeError as error:
        raise EX.fail(f"the model no longer runs after your swap ({' '.join(str(error).split())[:120]}): each "
                      f"make(linear) must take the place of the linear it was made from.") from None
    if not torch.allclose(got, expected):
        raise EX.fail("the model computes something else after the swap: put make(linear) in the place of the "
                      "linear it was made from.")
    EX.passed(f"all {len(originals)} Linears (in a Sequential, a ModuleList, a nested Sequential and a custom module) "
              f"replaced once each, the other modules untouched, the count returned")

"""Every check of Chapter 11 passes on the reference answers and names each wrong answer in words a learner can act on.

Wrong answers are written as a learner writes them: a function, or a subclass of the solution's class whose
exercise method is replaced (the student notebook keeps the given ``__init__``). Markers: ``pytest -m ex11_2``.
"""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.checks_harness import assert_diagnoses, assert_passes, assert_stub_passes_through, exercise
from tests.solution_code import solution_namespace
from utils.checks import quantization as checks

CHAPTER = "11_quantization"
SOLVED = solution_namespace(CHAPTER)


def _scale_gradient(value, factor):  # the chapter's helpers (section 2.4), which the LSQ exercise uses
    return (value - value * factor).detach() + value * factor


def _round_ste(value):
    return (torch.round(value) - value).detach() + value


SOLVED.update(scale_gradient=_scale_gradient, round_ste=_round_ste)
params_ok, FakeQuantize, mse_ok = SOLVED["quantization_params"], SOLVED["FakeQuantize"], SOLVED["mse_range"]
LSQ, QuantLinear, swap_ok = SOLVED["LSQQuantizer"], SOLVED["QuantLinear"], SOLVED["swap_linears"]
fake_quantize, round_ste, scale_gradient = SOLVED["fake_quantize"], SOLVED["round_ste"], SOLVED["scale_gradient"]


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise 11.9: write the body")


# ================================================================================================ Exercise 11.1
def params_with(steps=None, widen=True, z_sign=1, rounding=torch.round, sym_div=None, sym_abs=True, as_int=True,
                clamp_scale=True):
    def quantization_params(low, high, bits, symmetric=False):
        if symmetric:
            div = (2 ** (bits - 1) - 1) if sym_div is None else sym_div(bits)
            top = torch.maximum(low.abs(), high.abs()) if sym_abs else torch.maximum(low, high)
            scale = top / div
            scale = scale.clamp_min(1e-8) if clamp_scale else scale
            return scale, torch.zeros_like(scale, dtype=torch.int32)
        count = 2 ** bits - 1 if steps is None else steps(bits)
        if widen:
            low, high = low.clamp(max=0), high.clamp(min=0)
        scale = (high - low) / count
        scale = scale.clamp_min(1e-8) if clamp_scale else scale
        zero = z_sign * rounding(-low / scale) if z_sign == 1 else rounding(low / scale)
        zero = zero.clamp(0, 2 ** bits - 1) if widen else zero
        return scale, (zero.to(torch.int32) if as_int else zero)
    return quantization_params


@exercise("11.1")
def test_params_reference_passes():
    assert_passes(checks.check_quantization_params, params_ok)


@exercise("11.1")
def test_params_stub():
    assert_stub_passes_through(checks.check_quantization_params, stub)


@exercise("11.1")
@pytest.mark.parametrize("wrong, words", [
    (params_with(steps=lambda b: 2 ** b), ("2^b", "2^b − 1")),
    (params_with(steps=lambda b: 2 ** b - 2), ("2^b − 2",)),
    (params_with(widen=False), ("contain 0",)),
    (params_with(z_sign=-1), ("sign",)),
    (params_with(rounding=torch.trunc), ("truncated",)),
    (params_with(rounding=torch.floor), ("re:truncated|floor",)),
    (params_with(sym_div=lambda b: 2 ** (b - 1)), ("off-by-one", "2^(b−1) − 1")),
    (params_with(sym_div=lambda b: (2 ** b - 1) / 2), ("127.5",)),
    (params_with(sym_div=lambda b: 2 ** b - 1), ("affine count",)),
    (params_with(sym_abs=False), ("max(|α|, |β|)",)),
    (params_with(as_int=False), ("int32",)),
    (params_with(clamp_scale=False), ("clamp_min",)),
])
def test_params_mistakes(wrong, words):
    assert_diagnoses(checks.check_quantization_params, wrong, *words)


@exercise("11.1")
def test_params_reduces_channels():
    def quantization_params(low, high, bits, symmetric=False):
        scale, zero = params_ok(low.min(), high.max(), bits, symmetric)
        return scale, zero
    assert_diagnoses(checks.check_quantization_params, quantization_params, "shape", "channel")


@exercise("11.1")
def test_params_returns_floats():
    def quantization_params(low, high, bits, symmetric=False):
        scale, zero = params_ok(low, high, bits, symmetric)
        return scale.tolist(), zero
    assert_diagnoses(checks.check_quantization_params, quantization_params, "tensor")


@exercise("11.1")
def test_params_returns_one_value():
    assert_diagnoses(checks.check_quantization_params, lambda low, high, bits, symmetric=False:
                     params_ok(low, high, bits, symmetric)[0], "pair")


@exercise("11.1")
def test_params_symmetric_nonzero_zero_point():
    def quantization_params(low, high, bits, symmetric=False):
        scale, zero = params_ok(low, high, bits, False)
        if symmetric:
            scale = params_ok(low, high, bits, True)[0]
        return scale, zero
    assert_diagnoses(checks.check_quantization_params, quantization_params, "z = 0")


@exercise("11.1")
def test_params_learner_error_is_theirs():
    def quantization_params(low, high, bits, symmetric=False):
        return torch.cat([low, high])
    from utils.checks import LearnerError
    assert_diagnoses(checks.check_quantization_params, quantization_params, "raised", error=LearnerError)


# ================================================================================================ Exercise 11.2
def fake_class(rounding=torch.round, z_sign=1, clamp=(0, 0), do_clamp=True, mask="q", dequant=True, sub_z=True,
               axis_override=None, grad_scale=1.0):
    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, scale, zero_point, q_min, q_max, axis=None):
            use_axis = axis if axis_override is None or axis is None else axis_override(axis, x)
            if use_axis is not None:
                shape = [1] * x.dim()
                shape[use_axis] = -1
                scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
            q = rounding(x / scale) + z_sign * zero_point
            masks = {"q": (q >= q_min) & (q <= q_max), "none": torch.ones_like(q, dtype=torch.bool),
                     "strict": (q > q_min) & (q < q_max),
                     "x": (x >= scale * (q_min - zero_point)) & (x <= scale * (q_max - zero_point))}
            qc = q.clamp(q_min + clamp[0], q_max + clamp[1]) if do_clamp else q
            if mask == "after":
                masks["after"] = (qc >= q_min) & (qc <= q_max)
            ctx.save_for_backward(masks[mask])
            if not dequant:
                return qc
            return (qc - z_sign * zero_point) * scale if sub_z else qc * scale

        @staticmethod
        def backward(ctx, grad_out):
            (inside,) = ctx.saved_tensors
            return grad_out * inside * grad_scale, None, None, None, None, None
    return Wrong


@exercise("11.2")
def test_fake_reference_passes():
    assert_passes(checks.check_fake_quantize, FakeQuantize)


@exercise("11.2")
def test_fake_stub():
    class Stub(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *args):
            raise NotImplementedError("Exercise 11.2: write forward")
    assert_stub_passes_through(checks.check_fake_quantize, Stub)


@exercise("11.2")
@pytest.mark.parametrize("wrong, words", [
    (fake_class(rounding=torch.floor), ("floor",)),
    (fake_class(rounding=torch.trunc), ("trunc",)),
    (fake_class(rounding=torch.ceil), ("ceil",)),
    (fake_class(z_sign=-1), ("zero point's sign",)),
    (fake_class(clamp=(0, 1)), ("q_max + 1",)),
    (fake_class(do_clamp=False), ("never clamp",)),
    (fake_class(dequant=False), ("integers q",)),
    (fake_class(sub_z=False), ("subtracts the zero point",)),
    (fake_class(mask="none"), ("clipped values included",)),
    (fake_class(mask="after"), ("clipped values included",)),
    (fake_class(mask="strict"), ("strict",)),
    (fake_class(mask="x"), ("rounded q", "q_max")),
    (fake_class(axis_override=lambda axis, x: x.dim() - 1 - axis if x.dim() == 2 else axis), ("axis",)),
    (fake_class(grad_scale=2.0), ("2",)),
])
def test_fake_mistakes(wrong, words):
    assert_diagnoses(checks.check_fake_quantize, wrong, *words)


@exercise("11.2")
def test_fake_plain_autograd_through_round_gives_zero_gradient():
    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, scale, zero_point, q_min, q_max, axis=None):
            return FakeQuantize.forward(ctx, x, scale, zero_point, q_min, q_max, axis)

        @staticmethod
        def backward(ctx, grad_out):
            return torch.zeros_like(grad_out), None, None, None, None, None
    assert_diagnoses(checks.check_fake_quantize, Wrong, "zero everywhere")


@exercise("11.2")
def test_fake_ignores_axis_gets_a_shape_error_read():
    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, scale, zero_point, q_min, q_max, axis=None):
            q = torch.round(x / scale) + zero_point
            ctx.save_for_backward((q >= q_min) & (q <= q_max))
            return (q.clamp(q_min, q_max) - zero_point) * scale

        @staticmethod
        def backward(ctx, grad_out):
            (inside,) = ctx.saved_tensors
            return grad_out * inside, None, None, None, None, None
    assert_diagnoses(checks.check_fake_quantize, Wrong, "re:axis|raised")


# ================================================================================================ Exercise 11.3
def mse_with(**changes):
    from utils.checks.quantization.cases import reference_mse_range

    def mse_range(values, bits, grid=100):
        return reference_mse_range(values, bits, grid, **changes)
    return mse_range


@exercise("11.3")
def test_mse_reference_passes():
    assert_passes(checks.check_mse_range, mse_ok)


@exercise("11.3")
def test_mse_stub():
    assert_stub_passes_through(checks.check_mse_range, stub)


@exercise("11.3")
@pytest.mark.parametrize("wrong, words", [
    (lambda values, bits, grid=100: values.abs().amax(dim=1), ("min-max",)),
    (mse_with(squared=False), ("absolute",)),
    (mse_with(clip=False), ("never clips",)),
    (mse_with(per_row_max=False), ("whole tensor",)),
    (mse_with(joint=True), ("one k for all rows",)),
])
def test_mse_mistakes(wrong, words):
    assert_diagnoses(checks.check_mse_range, wrong, *words)


@exercise("11.3")
def test_mse_symmetric_off_by_one():
    def mse_range(values, bits, grid=100):
        from utils.checks.quantization.cases import reference_mse_range
        return reference_mse_range(values, bits, grid, q_pos=2 ** (bits - 1))
    assert_diagnoses(checks.check_mse_range, mse_range, "off-by-one")


@exercise("11.3")
def test_mse_linspace_candidates():
    def mse_range(values, bits, grid=100):
        q_pos = 2 ** (bits - 1) - 1
        max_abs = values.abs().amax(dim=1)
        fractions = torch.linspace(0.01, 1, grid - 1)
        errors = []
        for f in fractions:
            scale = (max_abs * f / q_pos).clamp_min(1e-8)[:, None]
            errors.append(((torch.round(values / scale).clamp(-q_pos - 1, q_pos) * scale - values) ** 2).mean(1))
        return max_abs * fractions[torch.stack(errors).argmin(0)]
    assert_diagnoses(checks.check_mse_range, mse_range, "re:not an integer|candidates|α")


@exercise("11.3")
def test_mse_scalar_instead_of_rows():
    assert_diagnoses(checks.check_mse_range, lambda values, bits, grid=100: mse_ok(values, bits, grid).max(),
                     "shape")


# ================================================================================================ Exercise 11.4
def lsq_class(init=None, bounds=None, g_count=None, ste=True, detach_inside=False):
    class Wrong(LSQ):
        def forward(self, x):
            if not self.initialized:
                with torch.no_grad():
                    value = init(self, x) if init else (
                        2 * (x.abs().mean() if self.step.dim() == 0 else x.abs().mean(1, keepdim=True))
                        / math.sqrt(self.q_pos))
                    self.step.copy_(value.expand_as(self.step))
                    self.initialized.fill_(True)
            count = g_count(self, x) if g_count else x.numel() // self.step.numel()
            g = 1 / math.sqrt(count * self.q_pos) if count else 1.0
            step = scale_gradient(self.step, g)
            low, high = bounds(self) if bounds else (-self.q_neg, self.q_pos)
            u = torch.clamp(x / (step.detach() if detach_inside else step), low, high)
            return (round_ste(u) if ste else torch.round(u)) * step
    return Wrong


@exercise("11.4")
def test_lsq_reference_passes():
    assert_passes(checks.check_lsq_quantizer, LSQ)


@exercise("11.4")
def test_lsq_stub():
    class Stub(LSQ):
        def forward(self, x):
            raise NotImplementedError("Exercise 11.4: write forward")
    assert_stub_passes_through(checks.check_lsq_quantizer, Stub)


@exercise("11.4")
@pytest.mark.parametrize("wrong, words", [
    (lsq_class(g_count=lambda self, x: 0), ("g = 1/√(N·Q_P)",)),
    (lsq_class(g_count=lambda self, x: x.numel()), ("N = all values",)),
    (lsq_class(bounds=lambda self: (-self.q_pos, self.q_pos)), ("[−Q_P, Q_P]",)),
    (lsq_class(bounds=lambda self: (-self.q_neg, self.q_neg)), ("[−Q_N, Q_N]",)),
    (lsq_class(bounds=lambda self: (0, 2 ** self.bits - 1)), ("unsigned",)),
    (lsq_class(ste=False), ("re:no gradient|zero",)),
    (lsq_class(detach_inside=True), ("−u",)),
    (lsq_class(init=lambda self, x: x.abs().mean() / math.sqrt(self.q_pos)), ("factor 2",)),
    (lsq_class(init=lambda self, x: 2 * x.abs().mean() / self.q_pos), ("Q_P where √Q_P",)),
    (lsq_class(init=lambda self, x: 2 * x.abs().max() / math.sqrt(self.q_pos)), ("max|x|",)),
    (lsq_class(init=lambda self, x: 2 * x.mean() / math.sqrt(self.q_pos)), ("mean of x",)),
])
def test_lsq_mistakes(wrong, words):
    assert_diagnoses(checks.check_lsq_quantizer, wrong, *words)


@exercise("11.4")
def test_lsq_forgets_initialized_flag():
    class Wrong(LSQ):
        def forward(self, x):
            out = LSQ.forward(self, x)
            self.initialized.fill_(False)
            return out
    assert_diagnoses(checks.check_lsq_quantizer, Wrong, "initialized")


@exercise("11.4")
def test_lsq_per_tensor_mean_for_channels():
    wrong = lsq_class(init=lambda self, x: 2 * x.abs().mean() / math.sqrt(self.q_pos))
    assert_diagnoses(checks.check_lsq_quantizer, wrong, "re:factor|mean")


# ================================================================================================ Exercise 11.5
def linear_class(forward=None, weight=None):
    class Wrong(QuantLinear):
        def quantized_weight(self):
            if self.weight_quantizer is not None:
                return self.weight_quantizer(self.weight)
            return weight(self) if weight else QuantLinear.quantized_weight(self)

        def forward(self, x):
            return forward(self, x) if forward else QuantLinear.forward(self, x)
    return Wrong


def symmetric_weight(self, axis=0, q_pos=None, per_tensor=False):
    q_pos = 2 ** (self.weight_bits - 1) - 1 if q_pos is None else q_pos
    w = self.weight
    if per_tensor:
        scale = (w.detach().abs().max() / q_pos)
        return fake_quantize(w, scale, torch.zeros((), dtype=torch.int32), -2 ** (self.weight_bits - 1),
                             2 ** (self.weight_bits - 1) - 1)
    bound = w.detach().abs().amax(dim=1 - axis)
    return fake_quantize(w, bound / q_pos, torch.zeros_like(bound, dtype=torch.int32), -2 ** (self.weight_bits - 1),
                         2 ** (self.weight_bits - 1) - 1, axis)


@exercise("11.5")
def test_linear_reference_passes():
    assert_passes(checks.check_quant_linear, QuantLinear)


@exercise("11.5")
def test_linear_stub():
    assert_stub_passes_through(checks.check_quant_linear, linear_class(forward=stub))


@exercise("11.5")
@pytest.mark.parametrize("wrong, words", [
    (linear_class(weight=lambda self: self.weight), ("not quantized",)),
    (linear_class(weight=lambda self: symmetric_weight(self, per_tensor=True)), ("per tensor",)),
    (linear_class(weight=lambda self: symmetric_weight(self, q_pos=2 ** (self.weight_bits - 1))), ("off-by-one",)),
    (linear_class(weight=lambda self: symmetric_weight(self, q_pos=2 ** self.weight_bits - 1)), ("unsigned",)),
    (linear_class(forward=lambda self, x: F.linear(x, self.quantized_weight(), self.bias)), ("input_quantizer",)),
    (linear_class(forward=lambda self, x: self.input_quantizer(F.linear(x, self.quantized_weight(), self.bias))),
     ("to the output",)),
    (linear_class(forward=lambda self, x: F.linear(self.input_quantizer(x), self.quantized_weight())),
     ("bias is missing",)),
    (linear_class(weight=lambda self: self.weight.data * 1.0), ("re:not quantized|no gradient",)),
])
def test_linear_mistakes(wrong, words):
    assert_diagnoses(checks.check_quant_linear, wrong, *words)


@exercise("11.5")
def test_linear_columns_axis():
    assert_diagnoses(checks.check_quant_linear, linear_class(weight=lambda self: symmetric_weight(self, axis=1)),
                     "per column", "axis 0")


@exercise("11.5")
def test_linear_quantized_bias():
    def forward(self, x):
        q_pos = 2 ** (self.weight_bits - 1) - 1
        bias = self.bias
        if bias is not None:
            bias = fake_quantize(bias, bias.detach().abs().max() / q_pos, torch.zeros((), dtype=torch.int32),
                                 -q_pos - 1, q_pos)
        return F.linear(self.input_quantizer(x), self.quantized_weight(), bias)
    assert_diagnoses(checks.check_quant_linear, linear_class(forward=forward), "bias too")


# ================================================================================================ Exercise 11.6
@exercise("11.6")
def test_swap_reference_passes():
    assert_passes(checks.check_swap_linears, swap_ok)


@exercise("11.6")
def test_swap_stub():
    assert_stub_passes_through(checks.check_swap_linears, stub)


def swap_top_level(model, make):
    count = 0
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            setattr(model, name, make(child))
            count += 1
    return count


def swap_dotted(model, make):
    count = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear):
            setattr(model, name, make(module))
            count += 1
    return count


def swap_twice(model, make):
    count = 0
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            setattr(model, name, make(child))
            count += 1
        count += swap_twice(getattr(model, name), make) if not isinstance(child, nn.Linear) else 0
    for name, child in list(model.named_children()):  # a second pass "to be sure"
        if isinstance(child, nn.Linear) and name == "0":
            setattr(model, name, make(child))
    return count


def swap_no_count(model, make):
    swap_ok(model, make)


def swap_counts_modules(model, make):
    swap_ok(model, make)
    return len(list(model.modules()))


def swap_replaces_relu(model, make):
    count = swap_ok(model, make)
    model[1] = nn.ReLU()
    return count


def swap_wrong_place(model, make):
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    count = swap_ok(model, lambda linear: make(linears[(linears.index(linear) + 1) % len(linears)]))
    return count


@exercise("11.6")
@pytest.mark.parametrize("wrong, words", [
    (swap_top_level, ("direct children",)),
    (swap_dotted, ("dot",)),
    (swap_twice, ("again",)),
    (swap_no_count, ("return the number",)),
    (swap_counts_modules, ("return the number",)),
    (swap_replaces_relu, ("not Linears were replaced",)),
    (swap_wrong_place, ("place of the linear",)),
])
def test_swap_mistakes(wrong, words):
    assert_diagnoses(checks.check_swap_linears, wrong, *words)

"""Ten fresh wrong answers, written after Chapter 11's checks were done, then run once without tuning the checks.

Untuned: 9 of 10 rejected, 5 named (symmetric bound from β only, clamping before adding z, dividing by s to
dequantize, max over the wrong axis, a recursion that overwrites its count); 4 rejected with a vague or misleading
message (rounding α' before dividing, returning the index k, g without Q_P, affine per-row weights) and one not
caught (scales shaped (−1, 1) whatever the axis: right on every case but the last axis of a 3-d tensor). After
them: a case on the last axis, the LSQ step gradient's factor read on a single step, and three readings added.
"""
import torch
import torch.nn as nn

from tests.checks_harness import assert_diagnoses, exercise
from tests.test_checks_quantization import SOLVED, FakeQuantize, QuantLinear, fake_quantize
from utils.checks import quantization as checks

CHAPTER = "11_quantization"
params_ok = SOLVED["quantization_params"]


@exercise("11.1")
def test_fresh_symmetric_ignores_low():
    def quantization_params(low, high, bits, symmetric=False):
        if symmetric:
            scale = (high.abs() / (2 ** (bits - 1) - 1)).clamp_min(1e-8)
            return scale, torch.zeros_like(scale, dtype=torch.int32)
        return params_ok(low, high, bits)
    print(assert_diagnoses(checks.check_quantization_params, quantization_params, "scale"))


@exercise("11.1")
def test_fresh_round_before_dividing():
    def quantization_params(low, high, bits, symmetric=False):
        scale, _ = params_ok(low, high, bits, symmetric)
        if symmetric:
            return params_ok(low, high, bits, symmetric)
        zero = (torch.round(-low.clamp(max=0)) / scale).clamp(0, 2 ** bits - 1).to(torch.int32)
        return scale, zero
    print(assert_diagnoses(checks.check_quantization_params, quantization_params, "round α' before dividing"))


@exercise("11.2")
def test_fresh_view_minus_one_one():
    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, scale, zero_point, q_min, q_max, axis=None):
            if axis is not None:
                scale, zero_point = scale.view(-1, 1), zero_point.view(-1, 1)
            q = torch.round(x / scale) + zero_point
            ctx.save_for_backward((q >= q_min) & (q <= q_max))
            return (q.clamp(q_min, q_max) - zero_point) * scale

        @staticmethod
        def backward(ctx, grad_out):
            (inside,) = ctx.saved_tensors
            return grad_out * inside, None, None, None, None, None
    print(assert_diagnoses(checks.check_fake_quantize, Wrong, "raised"))


@exercise("11.2")
def test_fresh_clamp_before_zero_point():
    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, scale, zero_point, q_min, q_max, axis=None):
            if axis is not None:
                shape = [1] * x.dim()
                shape[axis] = -1
                scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
            r = torch.round(x / scale)
            ctx.save_for_backward((r >= q_min) & (r <= q_max))
            return (r.clamp(q_min, q_max) + zero_point - zero_point) * scale

        @staticmethod
        def backward(ctx, grad_out):
            (inside,) = ctx.saved_tensors
            return grad_out * inside, None, None, None, None, None
    print(assert_diagnoses(checks.check_fake_quantize, Wrong, "re:clamp|range"))


@exercise("11.2")
def test_fresh_divide_to_dequantize():
    class Wrong(FakeQuantize):
        @staticmethod
        def forward(ctx, x, scale, zero_point, q_min, q_max, axis=None):
            out = FakeQuantize.forward(ctx, x, scale, zero_point, q_min, q_max, axis)
            s = scale if axis is None else scale.reshape([-1 if d == axis else 1 for d in range(x.dim())])
            return out / s / s
    print(assert_diagnoses(checks.check_fake_quantize, Wrong, "grid"))


@exercise("11.3")
def test_fresh_returns_index():
    def mse_range(values, bits, grid=100):
        alpha = SOLVED["mse_range"](values, bits, grid)
        return torch.round(alpha / values.abs().amax(1).clamp_min(1e-12) * grid)
    print(assert_diagnoses(checks.check_mse_range, mse_range, "index k"))


@exercise("11.3")
def test_fresh_max_over_columns():
    def mse_range(values, bits, grid=100):
        return SOLVED["mse_range"](values.T, bits, grid)
    print(assert_diagnoses(checks.check_mse_range, mse_range, "shape"))


@exercise("11.4")
def test_fresh_g_without_q_pos():
    import math

    class Wrong2(SOLVED["LSQQuantizer"]):
        def forward(self, x):
            if not self.initialized:
                SOLVED["LSQQuantizer"].forward(self, x)
            g = 1 / math.sqrt(x.numel() // self.step.numel())
            step = SOLVED["scale_gradient"](self.step, g)
            return SOLVED["round_ste"](torch.clamp(x / step, -self.q_neg, self.q_pos)) * step
    print(assert_diagnoses(checks.check_lsq_quantizer, Wrong2, "√Q_P"))


@exercise("11.5")
def test_fresh_affine_weights():
    class Wrong(QuantLinear):
        def quantized_weight(self):
            if self.weight_quantizer is not None:
                return self.weight_quantizer(self.weight)
            w = self.weight.detach()
            scale, zero = params_ok(w.amin(1), w.amax(1), self.weight_bits)
            return fake_quantize(self.weight, scale, zero, 0, 2 ** self.weight_bits - 1, 0)
    print(assert_diagnoses(checks.check_quant_linear, Wrong, "asymmetric"))


@exercise("11.6")
def test_fresh_count_overwritten():
    def swap_linears(model, make):
        count = 0
        for name, child in list(model.named_children()):
            if isinstance(child, nn.Linear):
                setattr(model, name, make(child))
                count += 1
            else:
                count = swap_linears(child, make)
        return count
    print(assert_diagnoses(checks.check_swap_linears, swap_linears, "return the number"))


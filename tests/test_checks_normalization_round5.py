"""Chapter 02, round 5: wrong answers of kinds no held-out set has, written before the readings they led to
(``SCRATCH``), and ten written after them (``FRESH5``). Each is written as a learner fills the cell in; the words are
what a helpful message must say."""
import math

import pytest
import torch

from tests.checks_harness import assert_diagnoses, exercise
from tests.normalization_helpers import (
    CHECKS,
    DIMS,
    SOLVED,
    Function,
    GroupNorm,
    InstanceNorm,
    LayerNorm,
    Module,
    RMSNorm,
    backward,
    per_channel,
    rms_eps,
)
from tests.normalization_helpers import trailing as rms_dims
from utils.checks import normalization as checks


# ================================================================================================ scratch
def scratch_grad_bias_times_gamma(grad_out, x_hat, weight, inv_std):
    grad_x, grad_weight, grad_bias = backward(grad_out, x_hat, weight, inv_std)
    return grad_x, grad_weight, weight * grad_out.sum(dim=DIMS)   # dL/dβ with a γ


class ScratchAugmentedOutput(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean, var = x.mean(DIMS, keepdim=True), x.var(DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        y = x_hat
        y *= per_channel(weight)   # y is x_hat: this changes the saved x̂
        y += per_channel(bias)
        return y


class ScratchOnePassLayerNorm(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dims, keepdim=True)
        var = (x ** 2).mean(dims, keepdim=True) - mean ** 2
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class ScratchColumnVariances(InstanceNorm):
    def forward(self, x):
        mean = x.mean((2, 3), keepdim=True)
        var = x.var(2, unbiased=False).mean(-1)[:, :, None, None]   # the mean of the column variances
        return (x - mean) / torch.sqrt(var + self.eps) * per_channel(self.weight) + per_channel(self.bias)


class ScratchGroupChannelVariances(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        g = x.reshape(N, self.num_groups, C // self.num_groups, H, W)
        mean = g.mean((2, 3, 4), keepdim=True)
        var = g.var((3, 4), unbiased=False, keepdim=True).mean(2, keepdim=True)   # mean of per-channel variances
        x_hat = ((g - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)


class ScratchLayerNormVarMean(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean, var = torch.var_mean(x, dim=dims, unbiased=False, keepdim=True)   # returns (var, mean)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class ScratchInstanceStdMean(InstanceNorm):
    def forward(self, x):
        mean, std = torch.std_mean(x, dim=(2, 3), unbiased=False, keepdim=True)   # returns (std, mean)
        return (x - mean) / (std + self.eps) * per_channel(self.weight) + per_channel(self.bias)


class ScratchMomentumIfElse(Module):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            a = self.momentum if self.momentum else 1 / self.num_batches_tracked.item()
            self.running_mean.mul_(1 - a).add_(a * x.mean(dim=DIMS))
            self.running_var.mul_(1 - a).add_(a * x.var(dim=DIMS, unbiased=True))
        return Function.apply(x, self.weight, self.bias, self.eps)


class ScratchRMSDetached(RMSNorm):
    def forward(self, x):
        x = x.detach()   # "to be safe"
        ms = x.pow(2).mean(rms_dims(self), keepdim=True)
        return x / torch.sqrt(ms + rms_eps(self, x)) * self.weight


class ScratchRMSStd(RMSNorm):
    def forward(self, x):
        rms = x.std(rms_dims(self), keepdim=True)   # the standard deviation as the root mean square
        return x / (rms + rms_eps(self, x)) * self.weight


class ScratchLayerNormReturnInNoGrad(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        with torch.no_grad():
            mean, var = x.mean(dims, keepdim=True), x.var(dims, unbiased=False, keepdim=True)
            return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class ScratchInstanceItem(InstanceNorm):
    def forward(self, x):
        mean = x.mean((2, 3), keepdim=True)
        var = x.var((2, 3), unbiased=False, keepdim=True)
        return (x - mean) / math.sqrt(var.item() + self.eps) * per_channel(self.weight) + per_channel(self.bias)


class ScratchGroupSplitFloat(GroupNorm):
    def forward(self, x):
        parts = []
        for part in torch.split(x, x.shape[1] / self.num_groups, dim=1):
            mean, var = part.mean((1, 2, 3), keepdim=True), part.var((1, 2, 3), unbiased=False, keepdim=True)
            parts.append((part - mean) / torch.sqrt(var + self.eps))
        return torch.cat(parts, 1) * per_channel(self.weight) + per_channel(self.bias)


class ScratchOnePassInstance(InstanceNorm):
    def forward(self, x):
        n = x.shape[2] * x.shape[3]
        s1, s2 = x.sum((2, 3), keepdim=True), (x * x).sum((2, 3), keepdim=True)
        mean, var = s1 / n, (s2 - s1 * s1 / n) / n
        return (x - mean) / torch.sqrt(var + self.eps) * per_channel(self.weight) + per_channel(self.bias)


class ScratchMomentumTruthy(Module):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            if self.momentum:
                a = self.momentum
            else:
                a = 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - a).add_(a * x.mean(dim=DIMS))
            self.running_var.mul_(1 - a).add_(a * x.var(dim=DIMS, unbiased=True))
        return Function.apply(x, self.weight, self.bias, self.eps)


class ScratchRMSInPlace(RMSNorm):
    def forward(self, x):
        ms = x.pow(2).mean(rms_dims(self), keepdim=True)
        return x.div_(torch.sqrt(ms + rms_eps(self, x))) * self.weight   # in place on the input


SCRATCH = [
    ("2.1", scratch_grad_bias_times_gamma, ["extra factor γ"]),
    ("2.2", ScratchAugmentedOutput, ["in place"]),
    ("2.4", ScratchOnePassLayerNorm, ["E[x²] − μ²"]),
    ("2.5", ScratchColumnVariances, ["mean of the per-column variances"]),
    ("2.6", ScratchGroupChannelVariances, ["mean of the per-channel variances"]),
    ("2.4", ScratchLayerNormVarMean, ["exchanged"]),
    ("2.5", ScratchInstanceStdMean, ["exchanged"]),
    ("2.3", ScratchMomentumIfElse, ["momentum=0.0"]),
    ("2.7", ScratchRMSDetached, ["detach"]),
    ("2.7", ScratchRMSStd, ["standard deviation"]),
    ("2.4", ScratchLayerNormReturnInNoGrad, ["no_grad"]),
    ("2.5", ScratchInstanceItem, ["cannot be converted"]),   # read by core (round 5, chapter 01 helper)
    ("2.6", ScratchGroupSplitFloat, ["must be tuple of ints"]),   # read by core
    ("2.5", ScratchOnePassInstance, ["E[x²] − μ²"]),
    ("2.3", ScratchMomentumTruthy, ["momentum=0.0"]),
    ("2.7", ScratchRMSInPlace, ["changed its input argument"]),
]


@pytest.mark.parametrize("exercise_id, wrong, words", [
    pytest.param(exercise_id, wrong, words, marks=exercise(exercise_id), id=getattr(wrong, "__name__", "?"))
    for exercise_id, wrong, words in SCRATCH])
def test_scratch_round5_mistakes_are_named(exercise_id, wrong, words):
    assert_diagnoses(CHECKS[exercise_id], wrong, *words)


# ================================================================================================ fresh, written after
class Fresh5OnePassSums(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        m = x.numel() // x.shape[1]
        mean = x.sum(DIMS, keepdim=True) / m
        var = x.pow(2).sum(DIMS, keepdim=True) / m - mean.pow(2)
        inv_std = torch.rsqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * per_channel(weight) + per_channel(bias)


class Fresh5GroupVarMeanUnbiased(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        g = x.view(N, self.num_groups, -1)
        mean, var = torch.var_mean(g, dim=-1, keepdim=True)
        return ((g - mean) / torch.sqrt(var + self.eps)).view(N, C, H, W) * per_channel(self.weight) \
            + per_channel(self.bias)


class Fresh5RowVariancesUnbiased(InstanceNorm):
    def forward(self, x):
        mean = x.mean(dim=(-2, -1), keepdim=True)
        var = x.var(-1).mean(-1, keepdim=True).unsqueeze(-1)
        return (x - mean) / torch.sqrt(var + self.eps) * per_channel(self.weight) + per_channel(self.bias)


class Fresh5MomentumNot(Module):
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            a = 1 / self.num_batches_tracked.item() if not self.momentum else self.momentum
            self.running_mean.lerp_(x.mean(dim=DIMS), a)
            self.running_var.lerp_(x.var(dim=DIMS), a)
        return Function.apply(x, self.weight, self.bias, self.eps)


class Fresh5DetachClone(LayerNorm):
    def forward(self, x):
        x = x.detach().clone()
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean, var = x.mean(dims, keepdim=True), x.var(dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class Fresh5RMSReturnInNoGrad(RMSNorm):
    def forward(self, x):
        with torch.no_grad():
            ms = x.pow(2).mean(rms_dims(self), keepdim=True)
            return x * torch.rsqrt(ms + rms_eps(self, x)) * self.weight


class Fresh5SliceAssignOutput(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean, var = x.mean(DIMS, keepdim=True), x.var(DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        x_hat[:] = x_hat * per_channel(weight) + per_channel(bias)
        return x_hat


class Fresh5OnePassLayerNormTorch(LayerNorm):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        var = torch.mean(x * x, dim=dims, keepdim=True) - torch.mean(x, dim=dims, keepdim=True) ** 2
        return (x - x.mean(dims, keepdim=True)) / torch.sqrt(var + self.eps) * self.weight + self.bias


class Fresh5GroupStdMean(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        g = x.reshape(N, self.num_groups, -1)
        mean, std = torch.std_mean(g, dim=2, unbiased=False, keepdim=True)
        return ((g - mean) / (std + self.eps)).reshape(N, C, H, W) * per_channel(self.weight) \
            + per_channel(self.bias)


class Fresh5StatisticsUnderNoGrad(InstanceNorm):
    def forward(self, x):
        with torch.no_grad():
            mean, var = x.mean((2, 3), keepdim=True), x.var((2, 3), unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * per_channel(self.weight) + per_channel(self.bias)


FRESH5 = [
    ("2.2", Fresh5OnePassSums, ["E[x²] − μ²"]),
    ("2.6", Fresh5GroupVarMeanUnbiased, ["torch.var_mean returns (var, mean)"]),
    ("2.5", Fresh5RowVariancesUnbiased, ["mean of the per-row unbiased variances"]),
    ("2.3", Fresh5MomentumNot, ["momentum=0.0, which is falsy"]),
    ("2.4", Fresh5DetachClone, ["out of the autograd graph"]),
    ("2.7", Fresh5RMSReturnInNoGrad, ["inside the `with torch.no_grad():` block"]),
    ("2.2", Fresh5SliceAssignOutput, ["in place"]),
    ("2.4", Fresh5OnePassLayerNormTorch, ["E[x²] − μ²"]),
    ("2.6", Fresh5GroupStdMean, ["torch.std_mean returns (std, mean)"]),
    ("2.5", Fresh5StatisticsUnderNoGrad, ["torch.no_grad()"]),
]


@pytest.mark.parametrize("exercise_id, wrong, words", [
    pytest.param(exercise_id, wrong, words, marks=exercise(exercise_id), id=wrong.__name__)
    for exercise_id, wrong, words in FRESH5])
def test_fresh_round5_mistakes_are_named(exercise_id, wrong, words):
    assert_diagnoses(CHECKS[exercise_id], wrong, *words)


@exercise("2.2")
def test_source_readings_say_nothing_without_source():
    from utils.checks.normalization.source import graph_cut_reading, inplace_on_saved_reading
    assert graph_cut_reading(len) is None and inplace_on_saved_reading(len) is None   # a builtin: no source
    assert inplace_on_saved_reading(SOLVED["BatchNormFunction"]) is None   # nothing in place after the save
    assert graph_cut_reading(SOLVED["LayerNorm"]) is None


@exercise("2.4")
def test_large_mean_probe_without_a_clean_sigma_says_precision_not_the_formula():
    from utils.checks.normalization.cases import EX_LAYER, TrailingCase
    from utils.checks.normalization.modules import _trailing_input, _trailing_spec
    from utils.checks.normalization.precision import large_mean_probe
    case = TrailingCase("large mean", shape=(2, 8), normalized_shape=8, axes=("N", "D"), offset=100.0)
    x = _trailing_input(EX_LAYER, case)
    spec = _trailing_spec(case, "LayerNorm", "eq. (2.10)", case.eps, "eps", centred=True)
    expected = torch.nn.functional.layer_norm(x, (8,), eps=case.eps)
    probe = large_mean_probe(EX_LAYER, lambda t: torch.nn.functional.layer_norm(t, (8,), eps=case.eps), x, expected,
                             spec, case, 100.0)
    noisy = expected + 0.01 * torch.sin(37 * x)   # not affine in x: no single σ² explains it
    assert "loses precision to the size of x" in probe(noisy)
    assert large_mean_probe(EX_LAYER, lambda t: t, x, expected, spec, case, 100.0)(noisy) is None   # wrong anyway
    assert large_mean_probe(EX_LAYER, lambda t: t, x, expected, spec, case, 0.0)(noisy) is None   # no large mean


class InstanceNormDoubleParameters(InstanceNorm):
    """γ and β made float64 'for precision': a float32 input comes out float64 (the check moves the module to each
    case's dtype, so the parameters' dtype is read before that)."""

    def __init__(self, num_features, eps=1e-5):
        super().__init__(num_features, eps)
        self.weight = torch.nn.Parameter(torch.ones(num_features, dtype=torch.float64))
        self.bias = torch.nn.Parameter(torch.zeros(num_features, dtype=torch.float64))


@exercise("2.5")
def test_parameters_created_in_another_dtype_are_named():
    assert_diagnoses(checks.check_instance_norm, InstanceNormDoubleParameters, "torch.float64", "default")

"""Chapter 02, round 7: wrong answers of kinds no held-out set has, written before the readings they led to
(``SCRATCH7``), and five written after them (``FRESH7``): a helper called with its arguments in another order, a
number passed in another parameter's place, a running statistic fed the other buffer's statistic, the brackets of
eq. (2.8), a sum divided by the number of axes. The words are what a helpful message must say."""
import pytest
import torch

from tests.checks_harness import assert_diagnoses, exercise
from tests.normalization_helpers import (
    CHECKS,
    DIMS,
    Function,
    GroupNorm,
    InstanceNorm,
    LayerNorm,
    Module,
    RMSNorm,
    backward,
    per_channel,
    rms_eps,
    trailing,
)


def _means(g, x_hat):
    return g.mean(DIMS, keepdim=True), (g * x_hat).mean(DIMS, keepdim=True)


# ================================================================================================ scratch
def scratch_backward_mean_term_outside(grad_out, x_hat, weight, inv_std):
    g = grad_out
    mean_g, mean_gx = _means(g, x_hat)
    grad_x = per_channel(weight * inv_std) * (g - x_hat * mean_gx) - mean_g   # the mean term left outside
    return grad_x, (g * x_hat).sum(DIMS), g.sum(DIMS)


def scratch_backward_s_bracket_early(grad_out, x_hat, weight, inv_std):
    g = grad_out
    mean_g, mean_gx = _means(g, x_hat)
    grad_x = per_channel(weight) * (per_channel(inv_std) * (g - mean_g) - x_hat * mean_gx)
    return grad_x, (g * x_hat).sum(DIMS), g.sum(DIMS)


class ScratchFunctionSavedReversed(Function):
    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        return (*backward(x_hat, grad_out, inv_std, weight), None)   # arguments read off right to left


class ScratchFunctionPositional(Function):
    @staticmethod
    def backward(ctx, grad_out):
        saved = ctx.saved_tensors
        return (*backward(saved[0], grad_out, *saved[1:]), None)


class ScratchModuleInitSwapped(Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__(num_features, eps, momentum)
        self.eps, self.momentum = momentum, eps   # unpacked in the wrong order


class ScratchModuleMeanFromVariance(Module):
    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.num_batches_tracked += 1
                alpha = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
                var = x.var(DIMS, unbiased=True)
                self.running_mean.mul_(1 - alpha).add_(alpha * var)   # copy-paste: var where the mean belongs
                self.running_var.mul_(1 - alpha).add_(alpha * var)
            return Function.apply(x, self.weight, self.bias, self.eps)
        mean, var = per_channel(self.running_mean), per_channel(self.running_var)
        return (x - mean) / torch.sqrt(var + self.eps) * per_channel(self.weight) + per_channel(self.bias)


class ScratchModuleVarFromMeanLerp(Module):
    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.num_batches_tracked += 1
                alpha = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
                mean = x.mean(DIMS)
                self.running_mean.lerp_(mean, alpha)
                self.running_var.lerp_(mean, alpha)
            return Function.apply(x, self.weight, self.bias, self.eps)
        mean, var = per_channel(self.running_mean), per_channel(self.running_var)
        return (x - mean) / torch.sqrt(var + self.eps) * per_channel(self.weight) + per_channel(self.bias)


class ScratchRMSSumOverAxisCount(RMSNorm):
    def forward(self, x):
        dims = trailing(self)
        ms = x.square().sum(dims, keepdim=True) / len(dims)
        return x * torch.rsqrt(ms + rms_eps(self, x)) * self.weight


class ScratchLayerVarOverAxisCount(LayerNorm):
    def forward(self, x):
        dims = trailing(self)
        mean = x.mean(dims, keepdim=True)
        var = ((x - mean) ** 2).sum(dims, keepdim=True) / len(self.normalized_shape)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class ScratchLayerMeanOverAxisCount(LayerNorm):
    def forward(self, x):
        dims = trailing(self)
        mean = x.sum(dims, keepdim=True) / len(dims)
        var = ((x - mean) ** 2).mean(dims, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


SCRATCH7 = [
    ("2.1", scratch_backward_mean_term_outside, ["bracket", "γ·s·(g − mean(g) − x̂·mean(g·x̂))"]),
    ("2.1", scratch_backward_s_bracket_early, ["bracket is closed too early"]),
    ("2.2", ScratchFunctionSavedReversed, ["grad_out and x_hat exchanged", "batch_norm_backward(grad_out, x_hat"]),
    ("2.2", ScratchFunctionPositional, ["grad_out and x_hat exchanged"]),
    ("2.3", ScratchModuleInitSwapped, ["your ε is the momentum", "passed where eps belongs"]),
    ("2.3", ScratchModuleMeanFromVariance,
     ["running_mean averages in the unbiased batch variance instead of the batch mean", "other buffer"]),
    ("2.3", ScratchModuleVarFromMeanLerp,
     ["running_var averages in the batch mean", "instead of the unbiased batch variance"]),
    ("2.7", ScratchRMSSumOverAxisCount, ["len(normalized_shape)", "number of axes", "math.prod(normalized_shape)"]),
    ("2.4", ScratchLayerVarOverAxisCount, ["len(normalized_shape)", "number of axes"]),
    ("2.4", ScratchLayerMeanOverAxisCount, ["len(normalized_shape)", "number of axes"]),
]


@pytest.mark.parametrize("exercise_id, wrong, words", [
    pytest.param(exercise_id, wrong, words, marks=exercise(exercise_id), id=f"{exercise_id}-{i}")
    for i, (exercise_id, wrong, words) in enumerate(SCRATCH7)])
def test_scratch_round7_mistakes_are_named(exercise_id, wrong, words):
    assert_diagnoses(CHECKS[exercise_id], wrong, *words)




class ScratchInstanceWeightOnHeight(InstanceNorm):
    def forward(self, x):
        mean, var = x.mean((2, 3), keepdim=True), x.var((2, 3), unbiased=False, keepdim=True)
        x_hat = (x - mean) * torch.rsqrt(var + self.eps)
        return x_hat * self.weight[None, None, :, None] + per_channel(self.bias)


class ScratchGroupVarMeanOnUngrouped(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        var, mean = torch.var_mean(x.view(N, self.num_groups, C // self.num_groups, H, W), dim=(2, 3, 4),
                                   unbiased=False, keepdim=True)
        x_hat = ((x - mean) * torch.rsqrt(var + self.eps)).view(N, C, H, W)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)


class ScratchGroupChunkComprehension(GroupNorm):
    def forward(self, x):
        def normalise(block):
            var, mean = torch.var_mean(block, dim=(1, 2, 3), unbiased=False, keepdim=True)
            return (block - mean) * torch.rsqrt(var + self.eps)
        x_hat = torch.cat([normalise(block) for block in x.chunk(self.num_groups)], dim=1)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)


@pytest.mark.parametrize("exercise_id, wrong, words", [
    pytest.param("2.6", ScratchGroupChunkComprehension,
                 ["N·C on axis 1", "cut along dim=0 (the first axis) by default"],
                 marks=exercise("2.6"), id="2.6-chunk-default-dim"),
    pytest.param("2.5", ScratchInstanceWeightOnHeight,
                 ["`self.weight` lies along H", "self.weight[None, :, None, None]"],
                 marks=exercise("2.5"), id="2.5-weight-on-H"),
    pytest.param("2.6", ScratchGroupVarMeanOnUngrouped, ["grouped layout", "not to the ungrouped `x`"],
                 marks=exercise("2.6"), id="2.6-grouped-statistics")])
def test_broadcast_readings_say_where_the_tensor_lies(exercise_id, wrong, words):
    assert_diagnoses(CHECKS[exercise_id], wrong, *words)


def test_new_operand_readings_stay_quiet_without_their_evidence():
    from utils.checks.operands import Operand, _joined, _lies_along, _ungrouped
    assert _joined(Operand((1, 6, 1, 1), "w"), Operand((1, 12, 4, 4), "x_hat"), {"C": 6, "H": 4}) is None  # 2 unnamed
    assert _joined(Operand((1, 6, 1, 1), "w"), Operand((2, 12, 4, 4), "x_hat"), {"C": 6, "N": 2}) is None  # none lost
    x = Operand((2, 6, 4, 4), "x")
    assert _ungrouped(Operand((2, 4, 1, 1, 1), "mean"), x, {}) is None      # 4 does not divide C = 6
    assert _ungrouped(Operand((2, 3, 1, 1), "mean"), x, {}) is None         # no axis more
    assert _lies_along(Operand((1, 1, 4, 1)), (3, 4, 2, 4), [(1,)], [2], ["N", "C", "H", "W"]) == ""  # unnamed


# ================================================================================================ fresh, after
def fresh_backward_expanded_scale(grad_out, x_hat, weight, inv_std):
    g, scale = grad_out, per_channel(weight * inv_std)
    mean_g, mean_gx = _means(g, x_hat)
    grad_x = g * scale - scale * mean_g - x_hat * mean_gx
    return grad_x, (g * x_hat).sum(DIMS), g.sum(DIMS)


class FreshFunctionKeywordsCrossed(Function):
    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grads = backward(grad_out=x_hat, x_hat=grad_out, weight=weight, inv_std=inv_std)
        return (*grads, None)


class FreshModuleVarFromSquaredMean(Module):
    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.num_batches_tracked += 1
                alpha = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
                mean = x.mean(DIMS)
                self.running_mean.lerp_(mean, alpha)
                self.running_var.lerp_(mean ** 2, alpha)
            return Function.apply(x, self.weight, self.bias, self.eps)
        mean, var = per_channel(self.running_mean), per_channel(self.running_var)
        return (x - mean) / torch.sqrt(var + self.eps) * per_channel(self.weight) + per_channel(self.bias)


class FreshLayerMeanOverDim(LayerNorm):
    def forward(self, x):
        dims = trailing(self)
        mean = x.sum(dims, keepdim=True) / x.dim()
        var = ((x - mean) ** 2).mean(dims, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class FreshGroupSplitDefaultDim(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        parts = []
        for part in torch.split(x, C // self.num_groups):
            mean = part.mean((1, 2, 3), keepdim=True)
            var = part.var((1, 2, 3), unbiased=False, keepdim=True)
            parts.append((part - mean) / torch.sqrt(var + self.eps))
        x_hat = torch.cat(parts, 1)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)


FRESH7 = [
    ("2.1", fresh_backward_expanded_scale, ["bracket"]),
    ("2.2", FreshFunctionKeywordsCrossed, ["grad_out and x_hat exchanged"]),
    ("2.3", FreshModuleVarFromSquaredMean, ["running_var", "square of the batch mean"]),
    ("2.4", FreshLayerMeanOverDim, ["x.dim()", "number of axes"]),
    ("2.6", FreshGroupSplitDefaultDim, ["(C, H, W)", "(N, G, C/G, H, W)"]),  # unnamed: the set, not the cut
]


@pytest.mark.parametrize("exercise_id, wrong, words", [
    pytest.param(exercise_id, wrong, words, marks=exercise(exercise_id), id=f"{exercise_id}-{i}")
    for i, (exercise_id, wrong, words) in enumerate(FRESH7)])
def test_fresh_round7_mistakes_are_named(exercise_id, wrong, words):
    assert_diagnoses(CHECKS[exercise_id], wrong, *words)


class ScratchLayerDimsFromNdim(LayerNorm):
    def forward(self, x):
        dims = tuple(range(x.dim() - len(self.normalized_shape) - 1, x.dim()))   # one axis early
        mean, var = x.mean(dims, keepdim=True), x.var(dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


@exercise("2.4")
def test_one_axis_too_many_is_said_only_for_the_axis_just_before():
    assert_diagnoses(CHECKS["2.4"], ScratchLayerDimsFromNdim, "one axis too many", "T, the axis just before")
    from utils.checks.normalization.cases import TrailingCase
    from utils.checks.normalization.modules import _trailing_spec
    from utils.checks.normalization.statistics import _extra_axis_note
    case = TrailingCase("edges", shape=(2, 5, 8), normalized_shape=8)
    spec = _trailing_spec(case, "LayerNorm", "eq. (2.10)", 1e-5, "eps", centred=True)
    batch = next(p for p in spec.candidates if p.name.startswith("(B)"))
    assert _extra_axis_note(batch, spec) == ""
    assert _extra_axis_note(spec.partition, spec) == ""


class ScratchRMSTimesSqrt(RMSNorm):
    def forward(self, x):
        return x * (x.pow(2).mean(trailing(self), keepdim=True) + rms_eps(self, x)).sqrt() * self.weight


@exercise("2.7")
def test_multiplying_by_the_rms_says_divide_by_the_rms():
    assert_diagnoses(CHECKS["2.7"], ScratchRMSTimesSqrt, "divide by the RMS", "torch.sqrt where torch.rsqrt belongs")

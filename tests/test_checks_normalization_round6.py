"""Chapter 02, round 6: wrong answers of kinds no held-out set has, written before the readings they led to
(``SCRATCH``), and ten written after them (``FRESH6``). Each is written as a learner fills the cell in; the words are
what a helpful message must say: WHICH expression of the chapter's symbols the learner computed."""
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
from utils.checks import normalization as checks


def backward_with_count(count):
    """The closed-form backward of eq. (2.8) with the means taken as sums ÷ ``count(N, C, H, W)``."""
    def batch_norm_backward(grad_out, x_hat, weight, inv_std):
        m = count(*grad_out.shape)
        g = grad_out
        mean_g = g.sum(DIMS, keepdim=True) / m
        mean_gx = (g * x_hat).sum(DIMS, keepdim=True) / m
        grad_x = per_channel(weight * inv_std) * (g - mean_g - x_hat * mean_gx)
        return grad_x, (g * x_hat).sum(DIMS), g.sum(DIMS)
    return batch_norm_backward


def function_with(normalise):
    """BatchNormFunction whose forward normalises with ``normalise(x, eps) -> (x_hat, inv_std)``."""
    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, bias, eps):
            x_hat, inv_std = normalise(x, eps)
            ctx.save_for_backward(x_hat, weight, inv_std.flatten())
            return x_hat * per_channel(weight) + per_channel(bias)

        @staticmethod
        def backward(ctx, grad_out):
            x_hat, weight, inv_std = ctx.saved_tensors
            return (*backward(grad_out, x_hat, weight, inv_std), None)
    return Wrong


# ================================================================================================ scratch
ScratchFunctionClampMin = function_with(
    lambda x, eps: _centred(x, torch.rsqrt(x.var(DIMS, unbiased=False, keepdim=True).clamp_min(eps))))
ScratchFunctionStdMean = function_with(
    lambda x, eps: _centred(x, 1 / torch.sqrt(torch.std_mean(x, DIMS, keepdim=True)[0] + eps)))


def _centred(x, inv_std):
    return (x - x.mean(DIMS, keepdim=True)) * inv_std, inv_std


class ScratchInstanceOnlyMeanDivided(InstanceNorm):
    def forward(self, x):
        mean, var = x.mean((2, 3), keepdim=True), x.var((2, 3), unbiased=False, keepdim=True)
        x_hat = x - mean / torch.sqrt(var + self.eps)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)


class ScratchLayerOnlyXDivided(LayerNorm):
    def forward(self, x):
        dims = trailing(self)
        mean, var = x.mean(dims, keepdim=True), x.var(dims, unbiased=False, keepdim=True)
        return (x / torch.sqrt(var + self.eps) - mean) * self.weight + self.bias


class ScratchGroupPrecision(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        g = x.reshape(N, self.num_groups, -1)
        mean, var = g.mean(-1, keepdim=True), g.var(-1, unbiased=False, keepdim=True)
        x_hat = ((g - mean) * torch.sqrt(1 / var + self.eps)).reshape(N, C, H, W)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)


class ScratchGroupClamp(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        g = x.reshape(N, self.num_groups, -1)
        mean, var = g.mean(-1, keepdim=True), g.var(-1, unbiased=False, keepdim=True)
        x_hat = ((g - mean) / torch.sqrt(torch.clamp(var, min=self.eps))).reshape(N, C, H, W)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)


class ScratchInstanceStdAsVar(InstanceNorm):
    def forward(self, x):
        mean = x.mean((2, 3), keepdim=True)
        var = x.std((2, 3), keepdim=True)   # "the spread"
        return (x - mean) / torch.sqrt(var + self.eps) * per_channel(self.weight) + per_channel(self.bias)


class ScratchRMSNormByN(RMSNorm):
    def forward(self, x):
        dims = trailing(self)
        n = 1
        for size in self.normalized_shape:
            n *= size
        rms = torch.sqrt((x * x).sum(dims, keepdim=True)) / n
        return x / (rms + rms_eps(self, x)) * self.weight


class ScratchRMSPrecision(RMSNorm):
    def forward(self, x):
        ms = x.pow(2).mean(trailing(self), keepdim=True)
        return x * torch.sqrt(1 / ms + rms_eps(self, x)) * self.weight


scratch_backward_n_w_w = backward_with_count(lambda N, C, H, W: N * W * W)
scratch_backward_c_h_w = backward_with_count(lambda N, C, H, W: C * H * W)


def scratch_backward_product_of_means(grad_out, x_hat, weight, inv_std):
    g = grad_out
    mean_g = g.mean(DIMS, keepdim=True)
    mean_gx = g.mean(DIMS, keepdim=True) * x_hat.mean(DIMS, keepdim=True)
    grad_x = per_channel(weight * inv_std) * (g - mean_g - x_hat * mean_gx)
    return grad_x, (g * x_hat).sum(DIMS), g.sum(DIMS)


class ScratchFunctionBiasAttribute(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean, var = x.mean(DIMS, keepdim=True), x.var(DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, bias, inv_std.flatten())   # the second parameter
        return x_hat * per_channel(weight) + per_channel(bias)


class ScratchTrainUsesUpdatedRunning(Module):
    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.num_batches_tracked += 1
                factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
                self.running_mean.lerp_(x.mean(DIMS), factor)
                self.running_var.lerp_(x.var(DIMS), factor)
        mean, var = per_channel(self.running_mean), per_channel(self.running_var)
        return (x - mean) / torch.sqrt(var + self.eps) * per_channel(self.weight) + per_channel(self.bias)


class ScratchEvalUpdatesTrainReads(Module):
    def forward(self, x):
        if not self.training:
            return self._batch(x)   # the training code, under the eval condition
        mean, var = per_channel(self.running_mean), per_channel(self.running_var)
        return (x - mean) / torch.sqrt(var + self.eps) * per_channel(self.weight) + per_channel(self.bias)

    def _batch(self, x):
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.lerp_(x.mean(DIMS), factor)
            self.running_var.lerp_(x.var(DIMS), factor)
        return Function.apply(x, self.weight, self.bias, self.eps)


SCRATCH = [
    ("2.2", ScratchFunctionClampMin, ["σ².clamp(min=ε)", "read on an input"]),
    ("2.2", ScratchFunctionStdMean, ["standard deviation", "std_mean"]),
    ("2.5", ScratchInstanceOnlyMeanDivided, ["only μ is divided", "parentheses"]),
    ("2.4", ScratchLayerOnlyXDivided, ["only x is divided", "parentheses"]),
    ("2.6", ScratchGroupPrecision, ["ε is added to the precision"]),
    ("2.6", ScratchGroupClamp, ["σ² is clamped"]),
    ("2.5", ScratchInstanceStdAsVar, ["standard deviation"]),
    ("2.7", ScratchRMSNormByN, ["√n"]),
    ("2.7", ScratchRMSPrecision, ["ε is added to the precision 1/mean(x²)", "read on an input"]),
    ("2.1", scratch_backward_n_w_w, ["N·W·W", "W taken twice where H belongs"]),
    ("2.1", scratch_backward_c_h_w, ["C·H·W"]),
    ("2.1", scratch_backward_product_of_means, ["mean(g)·mean(x̂)"]),
    ("2.2", ScratchFunctionBiasAttribute, ["β", "where γ"]),
    ("2.3", ScratchTrainUsesUpdatedRunning, ["running statistics", "already updated", "training mode"]),
    ("2.3", ScratchEvalUpdatesTrainReads, ["running statistics", "training mode", "wrong way round"]),
]


@pytest.mark.parametrize("exercise_id, wrong, words", [
    pytest.param(exercise_id, wrong, words, marks=exercise(exercise_id), id=f"{exercise_id}-{i}")
    for i, (exercise_id, wrong, words) in enumerate(SCRATCH)])
def test_scratch_round6_mistakes_are_named(exercise_id, wrong, words):
    assert_diagnoses(CHECKS[exercise_id], wrong, *words)


# ================================================================================================ the readings' edges
def _layer_spec(eps=1e-5, centred=True):
    from utils.checks.normalization.cases import EX_LAYER, TrailingCase
    from utils.checks.normalization.modules import _trailing_input, _trailing_spec
    case = TrailingCase("edges", shape=(6, 8), normalized_shape=8, axes=("N", "D"), scale=0.01)
    x = _trailing_input(EX_LAYER, case)
    return x, _trailing_spec(case, "LayerNorm" if centred else "RMSNorm", "eq. (2.10)", eps, "eps", centred=centred)


@exercise("2.4")
def test_eps_placement_says_nothing_it_cannot_single_out():
    from utils.checks.normalization.epsilon import eps_placement_probe
    from utils.checks.normalization.statistics import eps_blind_forms, eps_forms_fitting, spread_groups
    x, spec = _layer_spec()
    right = torch.nn.functional.layer_norm(x, (8,), eps=1e-5)
    assert eps_blind_forms(x, right, spec) is None   # nothing to tell apart in a right output
    assert eps_blind_forms(x, right[:, :4], spec) is None   # nor in a wrong shape
    spread, low, high = spread_groups(x, spec, 1e-6)
    assert low == 1e-6 and high >= 1e4
    assert eps_forms_fitting(spread, "not a tensor", ["no eps"], spec) == set()
    assert eps_forms_fitting(spread, spread[:, :4], ["no eps"], spec) == set()
    no_eps = lambda t: (t - t.mean(-1, keepdim=True)) / t.var(-1, unbiased=False, keepdim=True).sqrt()  # noqa: E731
    probe = eps_placement_probe(checks.EX_LAYER, no_eps, x, spec, "edges")
    assert "ε is missing" in probe(no_eps(x))
    hard_coded = lambda t: torch.nn.functional.layer_norm(t, (8,), eps=1e-7)  # noqa: E731 - a smaller ε: no form
    assert eps_placement_probe(checks.EX_LAYER, hard_coded, x, spec, "edges")(hard_coded(x)) is None
    assert probe(torch.zeros_like(x)) is None


@exercise("2.4")
def test_small_readings_stay_quiet_outside_their_evidence():
    from utils.checks.normalization.partitions import channel_partition
    from utils.checks.normalization.statistics import _complement_note, _precedence_reading, count_name
    x, spec = _layer_spec(centred=False)
    assert _precedence_reading(x.double(), x.double(), spec, 1e-4) is None   # RMSNorm subtracts nothing
    assert _complement_note(channel_partition((2, 4, 3, 3), block=2), spec) == ""   # not a set of axes
    assert count_name(18, {"N": 2, "C": 2, "H": 3, "W": 4}) == "N·H·H"
    assert count_name(17, {"N": 2, "H": 3}) is None and count_name(2.5, {"N": 2}) is None


# ================================================================================================ fresh (after)
class Fresh6GroupOnlyMeanDivided(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        g = x.view(N, self.num_groups, -1)
        mean, var = g.mean(-1, keepdim=True), g.var(-1, unbiased=False, keepdim=True)
        x_hat = (g - mean / (var + self.eps).sqrt()).view(N, C, H, W)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)


Fresh6FunctionClampedInverse = function_with(
    lambda x, eps: _centred(x, torch.rsqrt(x.var(DIMS, unbiased=False, keepdim=True)).clamp(max=eps ** -0.5)))


class Fresh6RMSDividedByT(RMSNorm):
    def forward(self, x):
        ms = x.pow(2).sum(-1, keepdim=True) / x.shape[-2]   # the number of positions, not of features
        return x * torch.rsqrt(ms + rms_eps(self, x)) * self.weight


fresh6_backward_counts_channels = backward_with_count(lambda N, C, H, W: N * C * H * W)


def fresh6_backward_mean_of_mean(grad_out, x_hat, weight, inv_std):
    g = grad_out
    mean_g = g.mean(DIMS, keepdim=True)
    mean_gx = (g * x_hat.mean(DIMS, keepdim=True)).mean(DIMS, keepdim=True)   # x̂ averaged first
    grad_x = per_channel(weight * inv_std) * (g - mean_g - x_hat * mean_gx)
    return grad_x, (g * x_hat).sum(DIMS), g.sum(DIMS)


class Fresh6InstanceStdMeanBiased(InstanceNorm):
    def forward(self, x):
        std, mean = torch.std_mean(x, (2, 3), unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(std + self.eps) * per_channel(self.weight) + per_channel(self.bias)


class Fresh6ModeTable(Module):
    def forward(self, x):
        mode = "inference" if self.training else "training"   # the table read the wrong way
        if mode == "inference":
            mean, var = per_channel(self.running_mean), per_channel(self.running_var)
            return (x - mean) / torch.sqrt(var + self.eps) * per_channel(self.weight) + per_channel(self.bias)
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.lerp_(x.mean(DIMS), factor)
            self.running_var.lerp_(x.var(DIMS), factor)
        return Function.apply(x, self.weight, self.bias, self.eps)


class Fresh6LayerPrecision(LayerNorm):
    def forward(self, x):
        dims = trailing(self)
        mean, var = x.mean(dims, keepdim=True), x.var(dims, unbiased=False, keepdim=True)
        return (x - mean) * (1 / var + self.eps).sqrt() * self.weight + self.bias


class Fresh6FunctionGammaFromBias(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean, var = x.mean(DIMS, keepdim=True), x.var(DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        ctx.gamma = bias   # meant weight
        return x_hat * per_channel(weight) + per_channel(bias)

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = backward(grad_out, x_hat, ctx.gamma, inv_std)
        return grad_x, grad_weight, grad_bias, None


class Fresh6GroupTableWrongDim(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        table = x.reshape(N * self.num_groups, -1)
        mean, var = table.mean(0, keepdim=True), table.var(0, unbiased=False, keepdim=True)
        x_hat = ((table - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)


FRESH6 = [
    ("2.6", Fresh6GroupOnlyMeanDivided, ["only μ is divided"]),
    ("2.2", Fresh6FunctionClampedInverse, ["clamp"]),
    ("2.7", Fresh6RMSDividedByT, ["T = "]),
    ("2.1", fresh6_backward_counts_channels, ["N·C·H·W"]),
    ("2.1", fresh6_backward_mean_of_mean, ["mean of the product"]),
    ("2.5", Fresh6InstanceStdMeanBiased, ["standard deviation"]),
    ("2.3", Fresh6ModeTable, ["running statistics", "training mode"]),
    ("2.4", Fresh6LayerPrecision, ["precision"]),
    ("2.2", Fresh6FunctionGammaFromBias, ["β", "where γ"]),
    ("2.6", Fresh6GroupTableWrongDim, ["dim=1"]),
]


@pytest.mark.parametrize("exercise_id, wrong, words", [
    pytest.param(exercise_id, wrong, words, marks=exercise(exercise_id), id=wrong.__name__)
    for exercise_id, wrong, words in FRESH6])
def test_fresh_round6_mistakes_are_named(exercise_id, wrong, words):
    assert_diagnoses(CHECKS[exercise_id], wrong, *words)


class UnbiasedInTraining(Module):
    """Normalises with the unbiased variance: where momentum=None makes the first update copy the batch's
    statistics, the buffers equal what it divides by, and no running-statistics reading may claim it."""
    def forward(self, x):
        if not self.training:
            return super().forward(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.lerp_(x.mean(DIMS), factor)
            self.running_var.lerp_(x.var(DIMS), factor)
        mean, var = x.mean(DIMS, keepdim=True), x.var(DIMS, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * per_channel(self.weight) + per_channel(self.bias)


@exercise("2.3")
def test_running_statistics_reading_needs_buffers_unlike_the_batch():
    from utils.checks.normalization.running import running_in_training_probe
    x = torch.randn(4, 3, 2, 2)
    batch = {"running_mean": x.mean(DIMS), "running_var": x.var(DIMS)}   # momentum 1: the batch's own
    module = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        module.running_mean.copy_(batch["running_mean"])
        module.running_var.copy_(batch["running_var"])
    unbiased = (x - x.mean(DIMS, keepdim=True)) / torch.sqrt(x.var(DIMS, keepdim=True) + 1e-5)
    assert running_in_training_probe(x, batch, module, 1e-5)(unbiased) is None
    message = assert_diagnoses(checks.check_batch_norm_module, UnbiasedInTraining, "unbiased")
    assert "running statistics" not in message


# ================================================================================================ after the fresh ones
def extra_backward_x_hat_squared(grad_out, x_hat, weight, inv_std):
    g = grad_out
    mean_g, mean_gx = g.mean(DIMS, keepdim=True), (g * x_hat).mean(DIMS, keepdim=True)
    return per_channel(weight * inv_std) * (g - mean_g - x_hat ** 2 * mean_gx), (g * x_hat).sum(DIMS), g.sum(DIMS)


class ExtraInstanceEpsOnOutput(InstanceNorm):
    def forward(self, x):
        mean, var = x.mean((2, 3), keepdim=True), x.var((2, 3), unbiased=False, keepdim=True)
        return ((x - mean) / var.sqrt() + self.eps) * per_channel(self.weight) + per_channel(self.bias)


class ExtraGroupEpsOnOutput(GroupNorm):
    def forward(self, x):
        N, C, H, W = x.shape
        g = x.view(N, self.num_groups, -1)
        mean, var = g.mean(-1, keepdim=True), g.var(-1, unbiased=False, keepdim=True)
        x_hat = ((g - mean) / torch.sqrt(var) + self.eps).view(N, C, H, W)
        return x_hat * per_channel(self.weight) + per_channel(self.bias)


class ExtraRMSRootTwice(RMSNorm):
    def forward(self, x):
        rms = x.pow(2).mean(trailing(self), keepdim=True).sqrt()
        return x / torch.sqrt(rms + rms_eps(self, x)) * self.weight


EXTRA = [
    ("2.1", extra_backward_x_hat_squared, ["x̂²·mean(g·x̂)", "in place of −γ·s·x̂·mean(g·x̂)"]),
    ("2.5", ExtraInstanceEpsOnOutput, ["ε is added to the output", "under the root"]),
    ("2.6", ExtraGroupEpsOnOutput, ["ε is added to the output", "under the root"]),
    ("2.7", ExtraRMSRootTwice, ["root taken twice"]),
]


@pytest.mark.parametrize("exercise_id, wrong, words", [
    pytest.param(exercise_id, wrong, words, marks=exercise(exercise_id), id=wrong.__name__)
    for exercise_id, wrong, words in EXTRA])
def test_extra_round6_mistakes_are_named(exercise_id, wrong, words):
    assert_diagnoses(CHECKS[exercise_id], wrong, *words)

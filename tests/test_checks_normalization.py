"""Every check of Chapter 02 passes on a correct answer and names each known-wrong answer.

The wrong answers are written the way a learner writes them, not built from the checker's own references,
so these tests would notice a checker whose diagnosis drifted away from real mistakes.
"""
import re

import pytest
import torch
import torch.nn as nn

from utils.checks import CheckFailure, LearnerError
from utils.checks import normalization as checks

DIMS = (0, 2, 3)


def per_channel(t):  # (C,) -> (1, C, 1, 1)
    return t[None, :, None, None]


def raises_with(check, wrong, hint, error=CheckFailure):
    with pytest.raises(error, match=re.escape(hint)):
        check(wrong)


# ----- Exercise 2.1 ------------------------------------------------------------------------------------------

def make_backward(bug=None):
    def batch_norm_backward(grad_out, x_hat, weight, inv_std):
        g = grad_out
        grad_bias = g.sum(dim=DIMS)
        grad_weight = (g * x_hat).sum(dim=DIMS)
        mean_g = g.mean(dim=DIMS, keepdim=True)
        mean_gx = (g * x_hat).mean(dim=DIMS, keepdim=True)
        scale = per_channel(weight * inv_std)
        if bug == "no mean path":
            mean_g = 0
        if bug == "no variance path":
            mean_gx = 0
        if bug == "direct only":
            mean_g, mean_gx = 0, 0
        if bug == "batch axis only":
            mean_g, mean_gx = g.mean(0, keepdim=True), (g * x_hat).mean(0, keepdim=True)
        if bug == "divide by N":
            m = g.shape[0]
            mean_g, mean_gx = g.sum(DIMS, keepdim=True) / m, (g * x_hat).sum(DIMS, keepdim=True) / m
        if bug == "no gamma":
            scale = per_channel(inv_std)
        if bug == "times std":
            scale = per_channel(weight / inv_std)
        if bug == "dgamma without x_hat":
            grad_weight = g.sum(dim=DIMS)
        if bug == "dbeta mean":
            grad_bias = g.mean(dim=DIMS)
        if bug == "keepdim weight":
            grad_weight = (g * x_hat).sum(dim=DIMS, keepdim=True)
        if bug == "swapped":
            grad_weight, grad_bias = grad_bias, grad_weight
        grad_x = scale * (g - mean_g - x_hat * mean_gx)
        if bug == "two outputs":
            return grad_x, grad_weight
        return grad_x, grad_weight, grad_bias
    return batch_norm_backward


def test_backward_reference_passes(capsys):
    checks.check_batch_norm_backward(make_backward())
    assert capsys.readouterr().out.startswith("✓ Exercise 2.1 passed")


@pytest.mark.parametrize("bug, hint", [
    ("no mean path", "the mean path is missing"),
    ("no variance path", "the variance path is missing"),
    ("direct only", "you treated μ and σ as constants"),
    ("batch axis only", "the sums run over the wrong axes"),
    ("divide by N", "not the batch size N"),
    ("no gamma", "γ is missing"),
    ("times std", "you multiplied by σ"),
    ("dgamma without x_hat", "you left out x̂"),
    ("dbeta mean", "dL/dβ is a sum over the axes (0, 2, 3), not a mean"),
    ("keepdim weight", "γ and β have one entry per channel"),
    ("swapped", "you left out x̂"),
    ("two outputs", "return three tensors"),
])
def test_backward_names_the_mistake(bug, hint):
    raises_with(checks.check_batch_norm_backward, make_backward(bug), hint)


def test_backward_stub_passes_through():
    def stub(grad_out, x_hat, weight, inv_std):
        raise NotImplementedError("Exercise 2.1: write the body of `batch_norm_backward`")
    with pytest.raises(NotImplementedError, match="Exercise 2.1"):
        checks.check_batch_norm_backward(stub)


# ----- Exercise 2.2 ------------------------------------------------------------------------------------------

def make_function(bug=None, backward=None):
    backward = backward or make_backward()

    class BatchNormFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, bias, eps):
            dims = {"batch axis only": (0,), "layer axes": (1, 2, 3), "instance axes": (2, 3)}.get(bug, DIMS)
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=bug == "unbiased", keepdim=True)
            if bug == "eps outside":
                inv_std = 1 / (var.sqrt() + eps)
            else:
                inv_std = 1 / torch.sqrt(var + eps)
            x_hat = (x - mean) * inv_std
            ctx.save_for_backward(x_hat, weight, inv_std.flatten() if dims == DIMS else inv_std)
            if bug == "gamma on last axis":
                return x_hat * weight + bias
            if bug == "no return":
                return None
            return x_hat * per_channel(weight) + per_channel(bias)

        @staticmethod
        def backward(ctx, grad_out):
            x_hat, weight, inv_std = ctx.saved_tensors
            grad_x, grad_weight, grad_bias = backward(grad_out, x_hat, weight, inv_std)
            if bug == "swapped":
                return grad_x, grad_bias, grad_weight, None
            if bug == "three gradients":
                return grad_x, grad_weight, grad_bias
            return grad_x, grad_weight, grad_bias, None
    return BatchNormFunction


def test_function_reference_passes(capsys):
    checks.check_batch_norm_function(make_function())
    assert "gradcheck passes" in capsys.readouterr().out


@pytest.mark.parametrize("bug, hint", [
    ("unbiased", "normalised with the unbiased variance"),
    ("eps outside", "eps is outside the square root"),
    ("batch axis only", "over the batch axis N only"),
    ("layer axes", "that is LayerNorm"),
    ("instance axes", "that is InstanceNorm"),
    ("gamma on last axis", "γ and β scale the last axis (W)"),
    ("swapped", "you returned dL/dβ where dL/dγ belongs"),
    ("no return", "not a torch.Tensor"),
])
def test_function_names_the_mistake(bug, hint):
    raises_with(checks.check_batch_norm_function, make_function(bug), hint)


def test_function_with_wrong_number_of_gradients_is_told_what_to_return():
    raises_with(checks.check_batch_norm_function, make_function("three gradients"),
                "one gradient per input of forward", error=LearnerError)


def test_function_points_back_to_a_wrong_backward():
    raises_with(checks.check_batch_norm_function, make_function(backward=make_backward("no mean path")),
                "Does your batch_norm_backward pass the check of Exercise 2.1")


def test_gamma_on_last_axis_that_does_not_broadcast_gets_a_hint():
    class Broken(make_function()):
        @staticmethod
        def forward(ctx, x, weight, bias, eps):
            x_hat = (x - x.mean(DIMS, keepdim=True)) / torch.sqrt(x.var(DIMS, unbiased=False, keepdim=True) + eps)
            ctx.save_for_backward(x_hat, weight, x.var(DIMS, unbiased=False))
            return x_hat * weight.view(1, 1, -1, 1) + bias  # (C,) on the H axis, then on W
    original = checks.FORWARD_CASES
    try:  # a case where C matches no axis, so broadcasting fails inside the learner's code
        checks.FORWARD_CASES = [("N=4, C=3, H=W=5", (4, 3, 5, 5), 1e-5, 1.0, torch.float32)]
        raises_with(checks.check_batch_norm_function, Broken, "did not broadcast", error=LearnerError)
    finally:
        checks.FORWARD_CASES = original


# ----- Exercise 2.3 ------------------------------------------------------------------------------------------

def make_module(bug=None):
    function = make_function()

    class BatchNorm2d(nn.Module):
        def __init__(self, num_features, eps=1e-5, momentum=0.1):
            super().__init__()
            self.eps, self.momentum = eps, momentum
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

        def update(self, x):
            if bug != "no counter":
                self.num_batches_tracked += 1
            if self.momentum is None:
                a = 0.1 if bug == "momentum None as 0.1" else 1 / self.num_batches_tracked.item()
            else:
                a = self.momentum
            if bug == "backwards":
                a = 1 - a
            unbiased = bug != "biased running var"
            self.running_mean = (1 - a) * self.running_mean + a * x.mean(DIMS)
            self.running_var = (1 - a) * self.running_var + a * x.var(DIMS, unbiased=unbiased)

        def forward(self, x):
            if self.training or bug == "update in eval":
                if bug == "graph":
                    self.update(x)
                else:
                    with torch.no_grad():
                        self.update(x)
            if self.training or bug == "batch stats in eval":
                return function.apply(x, self.weight, self.bias, self.eps)
            if bug == "eval eps outside":
                std = per_channel(self.running_var).sqrt() + self.eps
            else:
                std = torch.sqrt(per_channel(self.running_var) + self.eps)
            return (x - per_channel(self.running_mean)) / std * per_channel(self.weight) + per_channel(self.bias)
    return BatchNorm2d


def test_module_reference_passes(capsys):
    checks.check_batch_norm_module(make_module())
    assert "num_batches_tracked" in capsys.readouterr().out


@pytest.mark.parametrize("bug, hint", [
    ("backwards", "momentum is applied backwards"),
    ("biased running var", "the running variance must use the unbiased batch variance"),
    ("update in eval", "the running statistics changed in eval mode"),
    ("batch stats in eval", "in eval mode BatchNorm must use the running statistics"),
    ("eval eps outside", "eps is outside the square root in eval mode"),
    ("no counter", "num_batches_tracked is 0 but should be 1"),
    ("graph", "is part of the autograd graph"),
    ("momentum None as 0.1", "momentum=None means a cumulative average"),
])
def test_module_names_the_mistake(bug, hint):
    raises_with(checks.check_batch_norm_module, make_module(bug), hint)


def test_module_that_never_updates_is_told():
    class Frozen(make_module()):
        def update(self, x):
            self.num_batches_tracked += 1
    raises_with(checks.check_batch_norm_module, Frozen, "the running statistics never changed")


# ----- Exercise 2.4 ------------------------------------------------------------------------------------------

def make_layer_norm(bug=None):
    class LayerNorm(nn.Module):
        def __init__(self, normalized_shape, eps=1e-5):
            super().__init__()
            shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
            self.normalized_shape, self.eps = shape, eps
            param_shape = shape[-1:] if bug == "weight last axis" else shape
            self.weight = nn.Parameter(torch.ones(param_shape) * (2 if bug == "weight init" else 1))
            self.bias = nn.Parameter(torch.zeros(param_shape))

        def forward(self, x):
            dims = tuple(range(-len(self.normalized_shape), 0))
            dims = {"last axis only": (-1,), "batch axis": (0,)}.get(bug, dims)
            mean = x.mean(dims, keepdim=True)
            var = x.var(dims, keepdim=True, unbiased=bug == "unbiased")
            x_hat = (x - mean) / (var.sqrt() + self.eps if bug == "eps outside" else torch.sqrt(var + self.eps))
            return x_hat if bug == "no affine" else x_hat * self.weight + self.bias
    return LayerNorm


def test_layer_norm_reference_passes(capsys):
    checks.check_layer_norm(make_layer_norm())
    assert "✓ Exercise 2.4 passed" in capsys.readouterr().out


@pytest.mark.parametrize("bug, hint", [
    ("unbiased", "unbiased variance"),
    ("eps outside", "eps is outside the square root"),
    ("last axis only", "you normalised over the last axis only"),
    ("batch axis", "that is BatchNorm"),
    ("no affine", "γ and β are not applied"),
    ("weight last axis", "one γ and one β per element of normalized_shape"),
    ("weight init", "should start at ones"),
])
def test_layer_norm_names_the_mistake(bug, hint):
    raises_with(checks.check_layer_norm, make_layer_norm(bug), hint)


# ----- Exercise 2.5 ------------------------------------------------------------------------------------------

def make_instance_norm(bug=None):
    class InstanceNorm2d(nn.Module):
        def __init__(self, num_features, eps=1e-5):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
            if bug == "no affine parameters":
                del self.bias

        def forward(self, x):
            if bug == "running stats in eval" and not self.training:
                x_hat = x / (1 + self.eps) ** 0.5  # running_mean 0, running_var 1, never updated
            else:
                dims = {"batch axes": (0, 2, 3), "layer axes": (1, 2, 3)}.get(bug, (2, 3))
                mean = x.mean(dims, keepdim=True)
                var = x.var(dims, keepdim=True, unbiased=bug == "unbiased")
                x_hat = (x - mean) / (var.sqrt() + self.eps if bug == "eps outside" else torch.sqrt(var + self.eps))
            if bug == "no affine":
                return x_hat
            if bug == "gamma on last axis":
                return x_hat * self.weight + self.bias
            return x_hat * per_channel(self.weight) + per_channel(self.bias)
    return InstanceNorm2d


def test_instance_norm_reference_passes(capsys):
    checks.check_instance_norm(make_instance_norm())
    assert "✓ Exercise 2.5 passed" in capsys.readouterr().out


@pytest.mark.parametrize("bug, hint", [
    ("batch axes", "which is BatchNorm"),
    ("layer axes", "which is LayerNorm"),
    ("unbiased", "unbiased variance"),
    ("eps outside", "eps is outside the square root"),
    ("no affine", "γ and β are not applied"),
    ("running stats in eval", "uses each instance's own statistics in eval mode too"),
    ("gamma on last axis", "γ and β scale the last axis (W)"),
    ("no affine parameters", "no parameter `self.bias`"),
])
def test_instance_norm_names_the_mistake(bug, hint):
    raises_with(checks.check_instance_norm, make_instance_norm(bug), hint)


# ----- Exercise 2.6 ------------------------------------------------------------------------------------------

def make_group_norm(bug=None):
    class GroupNorm(nn.Module):
        def __init__(self, num_groups, num_channels, eps=1e-5):
            super().__init__()
            self.num_groups, self.eps = num_groups, eps
            shape = num_groups if bug == "per-group gamma" else num_channels
            self.weight = nn.Parameter(torch.ones(shape))
            self.bias = nn.Parameter(torch.zeros(shape))

        def forward(self, x):
            N, C, H, W = x.shape
            G = {"ignore groups": 1, "groups = channels": C}.get(bug, self.num_groups)
            if bug == "interleaved":
                grouped = x.reshape(N, C // G, G, H, W)
                dims = (1, 3, 4)
            elif bug == "mix batch":
                grouped = x.reshape(N, G, C // G, H, W)
                dims = (0, 2, 3, 4)
            else:
                grouped = x.reshape(N, G, C // G, H, W)
                dims = (2, 3, 4)
            mean = grouped.mean(dims, keepdim=True)
            var = grouped.var(dims, keepdim=True, unbiased=bug == "unbiased")
            std = var.sqrt() + self.eps if bug == "eps outside" else torch.sqrt(var + self.eps)
            x_hat = ((grouped - mean) / std).reshape(N, C, H, W)
            return x_hat if bug == "no affine" else x_hat * per_channel(self.weight) + per_channel(self.bias)
    return GroupNorm


def test_group_norm_reference_passes(capsys):
    checks.check_group_norm(make_group_norm())
    assert "✓ Exercise 2.6 passed" in capsys.readouterr().out


@pytest.mark.parametrize("bug, hint", [
    ("interleaved", "your groups are formed from the wrong axis"),
    ("unbiased", "unbiased variance"),
    ("eps outside", "eps is outside the square root"),
    ("mix batch", "your statistics mix the examples of the batch"),
    ("ignore groups", "you ignored the groups"),
    ("groups = channels", "you normalised each channel on its own"),
    ("no affine", "γ and β are not applied"),
    ("per-group gamma", "per channel (num_channels,), not per group"),
])
def test_group_norm_names_the_mistake(bug, hint):
    raises_with(checks.check_group_norm, make_group_norm(bug), hint)


# ----- Exercise 2.7 ------------------------------------------------------------------------------------------

def make_rms_norm(bug=None):
    class RMSNorm(nn.Module):
        def __init__(self, normalized_shape, eps=None):
            super().__init__()
            shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
            self.normalized_shape, self.eps = shape, eps
            if bug == "named gamma":
                self.gamma = nn.Parameter(torch.ones(shape))
            else:
                self.weight = nn.Parameter(torch.ones(shape))
            if bug == "has bias":
                self.bias = nn.Parameter(torch.zeros(shape))

        def forward(self, x):
            dims = (-1,) if bug == "last axis only" else tuple(range(-len(self.normalized_shape), 0))
            default = {"eps 1e-6": 1e-6, "eps 0": 0.0, "float32 eps": torch.finfo(torch.float32).eps}.get(
                bug, torch.finfo(x.dtype).eps)
            eps = default if self.eps is None else self.eps
            if bug == "centred":
                x = x - x.mean(dims, keepdim=True)
            square = (x * x).sum(dims, keepdim=True) if bug == "l2 norm" else (x * x).mean(dims, keepdim=True)
            y = x / (square.sqrt() + eps) if bug == "eps outside" else x / torch.sqrt(square + eps)
            return y if bug == "no gamma" else y * getattr(self, "weight", 1)
    return RMSNorm


def test_rms_norm_reference_passes(capsys):
    checks.check_rms_norm(make_rms_norm())
    assert "✓ Exercise 2.7 passed" in capsys.readouterr().out


@pytest.mark.parametrize("bug, hint", [
    ("centred", "you subtracted the mean"),
    ("eps outside", "eps is outside the square root"),
    ("l2 norm", "you divided by the L2 norm"),
    ("no gamma", "γ is not applied"),
    ("eps 1e-6", "with eps=None you used eps=1e-6"),
    ("eps 0", "with eps=None you used eps=0"),
    ("float32 eps", "float32's machine epsilon"),
    ("last axis only", "you averaged over the last axis only"),
    ("named gamma", "no parameter `self.weight`"),
    ("has bias", "parameters ['bias'] that RMSNorm does not have"),
])
def test_rms_norm_names_the_mistake(bug, hint):
    raises_with(checks.check_rms_norm, make_rms_norm(bug), hint)


def test_module_stub_in_init_passes_through():
    class Stub(nn.Module):
        def __init__(self, *args, **kwargs):
            raise NotImplementedError("Exercise 2.6: write the body of `GroupNorm.__init__`")
    with pytest.raises(NotImplementedError, match="Exercise 2.6"):
        checks.check_group_norm(Stub)


def test_nan_output_is_reported():
    class NaNs(make_layer_norm()):
        def forward(self, x):
            return super().forward(x) * float("nan")
    raises_with(checks.check_layer_norm, NaNs, "NaN")

"""Fourth blind held-out set for Chapter 02 (normalization): wrong answers written as a learner writes the cell.

Written without reading the checks or seeing any of their messages, and without repeating a mistake of the first
(``wrong_ch02.py``), second (``blind_ch02.py``) or third (``third_ch02.py``) set. The helpers a learner's cell uses
from earlier cells (``batch_norm_backward``, ``BatchNormFunction``) are the chapter's reference solutions, so each
answer holds exactly one mistake.
"""
import math

import torch
import torch.nn as nn

from tests.heldout.report import Registry, solution_namespace

REF = solution_namespace("02_normalization")
batch_norm_backward = REF["batch_norm_backward"]
BatchNormFunction = REF["BatchNormFunction"]

REGISTRY = Registry("02", {
    "2.1": ("check_batch_norm_backward", "batch_norm_backward"),
    "2.2": ("check_batch_norm_function", "BatchNormFunction"),
    "2.3": ("check_batch_norm_module", "BatchNorm2d"),
    "2.4": ("check_layer_norm", "LayerNorm"),
    "2.5": ("check_instance_norm", "InstanceNorm2d"),
    "2.6": ("check_group_norm", "GroupNorm"),
    "2.7": ("check_rms_norm", "RMSNorm"),
})
wrong = REGISTRY.wrong
DIMS = (0, 2, 3)  # the m = N·H·W values of each channel


# ----- Exercise 2.1: the BatchNorm backward pass --------------------------------------------------------------

@wrong("2.1", "dL/dβ summed over the batch axis only (grad_out.sum(dim=0)): shape (C, H, W), not (C,)",
       names=[r"\(C,\)", r"\(0, ?2, ?3\)",
              r"(dL/dβ|grad_bias|β)[^.?]{0,40}(shape|\(C, ?H, ?W\)|every pixel|spatial|H and W)",
              r"(sum\w*|reduc\w*) (also )?over[^.?]{0,30}(H and W|spatial|pixels|every pixel|all (the )?m values)",
              r"(only|just) (over )?(the )?(batch|N\b|axis 0|dim(ension)? 0)"])
def backward_bias_sum_batch_only(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(dim=0)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS, keepdim=True)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    grad_x = scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat)
    return grad_x, grad_weight, grad_bias


@wrong("2.1", "γ·s viewed as [:, None, None, None], (C, 1, 1, 1): it lines up with the batch axis N, not the channels",
       names=[r"\[None, ?:, ?None, ?None\]", r"view\(1, ?-1, ?1, ?1\)",
              r"(γ\s*·?\s*s|scale|weight \* inv_std)[^.?]{0,50}(batch axis|axis 0|first axis|\bN\b|examples)",
              r"(batch axis|axis 0|first axis)[^.?]{0,50}(γ\s*·?\s*s|scale|channels?)",
              r"(channel axis|axis 1)[^.?]{0,30}(not|instead|rather)", r"\(C, ?1, ?1, ?1\)"])
def backward_scale_on_batch_axis(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS, keepdim=True)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    scale = (weight * inv_std)[:, None, None, None]
    grad_x = scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat)
    return grad_x, grad_weight, grad_bias


@wrong("2.1", "mean(g·x̂) computed as mean(g) · mean(x̂): the product of the means (≈ 0), not the mean of the product",
       names=[r"mean of (the )?product", r"product of (the )?means",
              r"(mean|average)\w*[^.?]{0,20}(taken )?(separately|apart|each)",
              r"mean\(g\)\s*[·*×]?\s*mean\(x̂\)", r"mean\(x̂\)[^.?]{0,30}(zero|0\b)",
              r"(multiply|product)[^.?]{0,20}(before|first)[^.?]{0,20}(mean|averag)"])
def backward_product_of_means(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS, keepdim=True)
    mean_grad_x_hat = grad_out.mean(dim=DIMS, keepdim=True) * x_hat.mean(dim=DIMS, keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    grad_x = scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat)
    return grad_x, grad_weight, grad_bias


@wrong("2.1", "copy-paste: dL/dγ = Σ g, the same as dL/dβ (the factor x̂ of eq. (2.3) missing)",
       names=[r"(dL/dγ|grad_weight)[^.?]{0,50}x̂", r"x̂[^.?]{0,40}(dL/dγ|grad_weight)",
              r"Σ\s*_?i?\s*g_?i?\s*[·*]?\s*x̂", r"(same as|equal to|copy of|identical to) (dL/dβ|grad_bias)",
              r"(dL/dβ|grad_bias)[^.?]{0,30}(same as|equal to|identical to) (dL/dγ|grad_weight)",
              r"(missing|forgot\w*|without)[^.?]{0,20}(the )?(factor )?x̂"])
def backward_weight_grad_copy_paste(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = grad_out.sum(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS, keepdim=True)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    grad_x = scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat)
    return grad_x, grad_weight, grad_bias


@wrong("2.1", "dims = (0, 3) (a typo for (0, 2, 3)): every statistic misses the H axis",
       names=[r"\(0, ?2, ?3\)", r"\bH\b (axis|dimension)", r"height", r"axis 2\b",
              r"(misses|missing|left out|skipp\w*|omit\w*)[^.?]{0,30}(\bH\b|height|axis 2|rows)"])
def backward_dims_typo(grad_out, x_hat, weight, inv_std):
    dims = (0, 3)
    grad_bias = grad_out.sum(dim=dims)
    grad_weight = (grad_out * x_hat).sum(dim=dims)
    mean_grad = grad_out.mean(dim=dims, keepdim=True)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=dims, keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    grad_x = scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat)
    return grad_x, grad_weight, grad_bias


@wrong("2.1", "m computed as N · H · H (shape[2] twice, a typo for shape[3]): the means are off whenever H ≠ W",
       names=[r"shape\[3\]", r"\bH\s*[·*×]\s*H\b", r"(H|height) twice",
              r"\bW\b[^.?]{0,30}(instead of|not|in place of|rather than)[^.?]{0,10}\bH\b",
              r"\bH\b[^.?]{0,20}(instead of|in place of|rather than)[^.?]{0,10}\bW\b",
              r"non-?square", r"H\s*(≠|!=)\s*W"])
def backward_m_typo(grad_out, x_hat, weight, inv_std):
    m = grad_out.shape[0] * grad_out.shape[2] * grad_out.shape[2]
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_bias[None, :, None, None] / m
    mean_grad_x_hat = grad_weight[None, :, None, None] / m
    scale = (weight * inv_std)[None, :, None, None]
    grad_x = scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat)
    return grad_x, grad_weight, grad_bias


# ----- Exercise 2.2: BatchNormFunction ------------------------------------------------------------------------

@wrong("2.2", "normalised with 1/√(σ² + ε) but saved 1/√σ² (no ε) for the backward pass",
       names=[r"(ε|eps)[^.?]{0,60}(saved|backward|inv_std)", r"(saved|backward|inv_std)[^.?]{0,60}(ε|eps)",
              r"(same|consistent) (inv_std|s\b|1\s*/\s*√)", r"(forward|backward)[^.?]{0,40}(different|inconsistent|disagree)"])
class BatchNormFunctionSavesStdWithoutEps(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        std = var.sqrt()
        x_hat = (x - mean) / torch.sqrt(var + eps)
        ctx.save_for_backward(x_hat, weight, (1 / std).flatten())
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None]

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = batch_norm_backward(grad_out, x_hat, weight, inv_std)
        return grad_x, grad_weight, grad_bias, None


@wrong("2.2", "saved β (bias) where γ (weight) belongs: the backward pass scales by β",
       names=[r"(β|bias)[^.?]{0,40}(instead of|in place of|rather than|where)[^.?]{0,15}(γ|weight)",
              r"(γ|weight)[^.?]{0,20}(not|instead of|rather than) (β|bias)",
              r"sav\w*[^.?]{0,30}(γ|weight)\b", r"(γ|weight)\b[^.?]{0,30}sav\w*",
              r"(β|bias)[^.?]{0,30}(saved|save_for_backward)"])
class BatchNormFunctionSavesBias(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, bias, inv_std.flatten())
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None]

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = batch_norm_backward(grad_out, x_hat, weight, inv_std)
        return grad_x, grad_weight, grad_bias, None


@wrong("2.2", "inv_std = √(1/σ² + ε): ε added to the precision instead of to σ² under the root (wrong for small σ²)",
       names=[r"(ε|eps)[^.?]{0,40}(added to|inside|with) (the )?(precision|1\s*/\s*σ²|inverse)",
              r"(precision|1\s*/\s*σ²|inverse (variance|of the variance))[^.?]{0,30}(ε|eps)",
              r"1\s*/\s*\(?σ²\s*\)?\s*\+\s*ε", r"√\s*\(\s*1\s*/\s*σ²", r"invert\w*[^.?]{0,30}(after|before) (adding )?(ε|eps)",
              r"(add|\+)\s*(ε|eps)[^.?]{0,20}(before|first)[^.?]{0,20}(invert|1\s*/|divid|reciprocal)"])
class BatchNormFunctionEpsOnPrecision(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = torch.sqrt(1 / var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None]

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = batch_norm_backward(grad_out, x_hat, weight, inv_std)
        return grad_x, grad_weight, grad_bias, None


@wrong("2.2", "save_for_backward(weight, x_hat, inv_std) but unpacked as x_hat, weight, inv_std: γ and x̂ swapped",
       names=[r"(sav\w*|unpack\w*)[^.?]{0,40}order", r"order[^.?]{0,40}(sav\w*|saved_tensors|unpack\w*)",
              r"saved_tensors", r"(x̂|x_hat)[^.?]{0,30}(γ|weight)[^.?]{0,30}(swapped|exchanged|mixed up)",
              r"(swapped|exchanged|mixed up)[^.?]{0,30}(x̂|x_hat)[^.?]{0,10}(and|,) (γ|weight)"])
class BatchNormFunctionUnpackOrder(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(weight, x_hat, inv_std.flatten())
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None]

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = batch_norm_backward(grad_out, x_hat, weight, inv_std)
        return grad_x, grad_weight, grad_bias, None


# ----- Exercise 2.3: BatchNorm2d with running statistics ------------------------------------------------------

class _BatchNormBase(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def evaluate(self, x):
        inv_std = 1 / torch.sqrt(self.running_var + self.eps)
        scale = (self.weight * inv_std)[None, :, None, None]
        return (x - self.running_mean[None, :, None, None]) * scale + self.bias[None, :, None, None]


@wrong("2.3", "the moving averages assigned to local names (running_mean = ...): the buffers never change",
       names=[r"(running_mean|running_var|running (mean|var\w*|statistics|stats)|buffers?)[^.?]{0,50}"
              r"(never|not|n't) (updated|changed|modified|move[sd]?|change)",
              r"(unchanged|stay\w* (at|the same)|still (at )?(0|zero|1|their initial))", r"in[- ]place",
              r"local (variable|name)", r"rebind|rebound|reassign\w*", r"mul_|add_|copy_"])
class BatchNormLocalRebinding(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            running_mean, running_var = self.running_mean, self.running_var
            running_mean = (1 - factor) * running_mean + factor * x.mean(dim=DIMS)
            running_var = (1 - factor) * running_var + factor * x.var(dim=DIMS, unbiased=True)
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "momentum=None: 1 / num_batches_tracked taken before the increment, 1/0 = inf on the first batch",
       names=[r"increment\w*[^.?]{0,40}(before|first)", r"(before|first)[^.?]{0,40}increment",
              r"1\s*/\s*0\b", r"(division|divid\w*) by (zero|0)\b[^.?]{0,40}(first|batch|count|num_batches)",
              r"num_batches_tracked[^.?]{0,40}(is |still |was )?(0|zero)\b",
              r"(after|once) (it is |it's )?incremented"])
class BatchNormFactorBeforeIncrement(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        with torch.no_grad():
            factor = 1 / self.num_batches_tracked if self.momentum is None else self.momentum
            self.num_batches_tracked += 1
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "running_var updated with the batch standard deviation x.std(...) instead of its variance",
       names=[r"(std|standard deviation)[^.?]{0,40}(instead of|not|rather than|in place of)[^.?]{0,15}varian",
              r"varian\w*[^.?]{0,20}(not|instead of|rather than) (the |a )?(std|standard deviation)",
              r"running_var[^.?]{0,60}(std|standard deviation|square root|√|squared?)",
              r"x\.var\(", r"\bstd\(\)", r"(square|squared) (it|the std|the standard deviation)"])
class BatchNormRunningStd(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.std(dim=DIMS, unbiased=True))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "`if self.training:` where `if not self.training:` was meant: train mode uses the running statistics, "
              "eval mode updates them",
       names=[r"self\.training", r"(train\w*|eval\w*)[^.?]{0,30}(swapped|inverted|reversed|backwards|the other way)",
              r"(swapped|inverted|reversed|negated)[^.?]{0,30}(mode|train|eval|condition)",
              r"(condition|branch)[^.?]{0,30}(inverted|negated|reversed|swapped|wrong way)",
              r"\bnot self\.training\b"])
class BatchNormModesInverted(_BatchNormBase):
    def forward(self, x):
        if self.training:
            return self.evaluate(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "unbiased running variance as the biased one · N/(N − 1), with N the batch size instead of m = N·H·W",
       names=[r"(batch size|\bN\b)[^.?]{0,30}(instead of|not|rather than|in place of)[^.?]{0,15}(\bm\b|N\s*[·*×]\s*H)",
              r"\bm\b[^.?]{0,30}(not|instead of|rather than) (the batch size|N\b)",
              r"N\s*/\s*\(N\s*[−-]\s*1\)", r"values per channel", r"(count|number) of values",
              r"unbiased\s*=\s*True", r"bessel"])
class BatchNormBesselWithBatchSize(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        n = x.shape[0]
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            unbiased = x.var(dim=DIMS, unbiased=False) * n / (n - 1)
            self.running_var.mul_(1 - factor).add_(factor * unbiased)
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


# ----- Exercise 2.4: LayerNorm --------------------------------------------------------------------------------

@wrong("2.4", "γ and β registered as self.gamma and self.beta (the paper's names) instead of self.weight and self.bias",
       names=[r"self\.weight", r"self\.bias", r"weight and bias", r"(named|called) (weight|bias|gamma|beta)",
              r"(gamma|beta)[^.?]{0,30}(instead of|not|rather than) (weight|bias)",
              r"(attribute|parameter)s? (named|called)"])
class LayerNormGammaBetaNames(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(self.normalized_shape))
        self.beta = nn.Parameter(torch.zeros(self.normalized_shape))

    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.gamma + self.beta


class _LayerNormBase(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.normalized_shape))
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape))


@wrong("2.4", "x - mean / torch.sqrt(var + eps): the parentheses around x − μ missing, so only μ is divided",
       names=[r"parenthes", r"precedence", r"bracket", r"\(x\s*[−-]\s*μ\)\s*/",
              r"(divid\w*)[^.?]{0,30}only (the )?(mean|μ)\b", r"(only|just) (the )?(mean|μ) (is )?divided",
              r"(whole|entire) (difference|numerator)"])
class LayerNormPrecedence(_LayerNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean / torch.sqrt(var + self.eps)) * self.weight + self.bias


@wrong("2.4", "dims = (-1,) * len(normalized_shape): the last axis repeated, not the last len(normalized_shape) axes",
       names=[r"(last|trailing) (\w+ )?ax[ie]s", r"range\(\s*-\s*len", r"last len\(normalized_shape\)",
              r"(distinct|different) ax[ie]s", r"(repeat\w*|same) (axis|dim\w*)", r"\(-1,\)\s*\*",
              r"(-2, ?-1|−2, ?−1)"])
class LayerNormRepeatedLastAxis(_LayerNormBase):
    def forward(self, x):
        dims = (-1,) * len(self.normalized_shape)
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


@wrong("2.4", "√(var.clamp(min=eps)) 'for stability' instead of √(var + eps): wrong for nearly constant inputs",
       names=[r"clamp\w*", r"clip\w*[^.?]{0,20}(varian|σ²)", r"max\(\s*σ²", r"max\(\s*var",
              r"(instead of|rather than|not) (add\w*|\+)[^.?]{0,10}(ε|eps)",
              r"(add|plus)\w* (ε|eps)[^.?]{0,30}(instead|rather than|not) (clamp|clip|max)"])
class LayerNormClampedVariance(_LayerNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var.clamp(min=self.eps)) * self.weight + self.bias


# ----- Exercise 2.5: InstanceNorm2d ---------------------------------------------------------------------------

class _InstanceNormBase(nn.Module):
    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))


@wrong("2.5", "x viewed as an (N·C, H·W) table, statistics over dim=0: per pixel across instances, not per instance",
       names=[r"dim\s*=\s*(-1|1)\b", r"(each|per|every) instance\b",
              r"(over|across) (the )?(pixels|H\s*[·*×]\s*W|spatial)", r"(per|each|every) pixel[^.?]{0,30}(instead|not|rather)",
              r"(across|over) (the )?(instances|examples|channels|rows)[^.?]{0,30}(instead|not|rather)",
              r"wrong (axis|dimension) of the (table|\(N\s*[·*]\s*C, ?H\s*[·*]\s*W\))"])
class InstanceNormTableWrongAxis(_InstanceNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        table = x.reshape(N * C, H * W)
        mean = table.mean(dim=0, keepdim=True)
        var = table.var(dim=0, unbiased=False, keepdim=True)
        x_hat = ((table - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.5", "eval mode returns the input unchanged ('no running statistics, so nothing to do at inference')",
       names=[r"(eval|inference)\w*[^.?]{0,40}(unchanged|identity|input itself|as it is|nothing|not normali[sz]ed)",
              r"(same|identical) (thing |computation |output )?in (train\w* and eval|both modes|eval)",
              r"(train\w* and eval|both modes)", r"self\.training",
              r"(does not|doesn't|must not|should not) depend on (the )?mode"])
class InstanceNormIdentityInEval(_InstanceNormBase):
    def forward(self, x):
        if not self.training:
            return x
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.5", "var, mean = torch.std_mean(...): the first output is the standard deviation, used as the variance",
       names=[r"std_mean", r"var_mean",
              r"(std|standard deviation)[^.?]{0,30}(instead of|not|as|in place of|rather than) (the )?varian",
              r"varian\w*[^.?]{0,30}(not|instead of|rather than) (the )?(std|standard deviation)",
              r"(square root|√|sqrt)[^.?]{0,20}(twice|of (the )?(std|standard deviation))", r"\bσ\b[^.?]{0,20}(not|instead of) σ²"])
class InstanceNormStdMean(_InstanceNormBase):
    def forward(self, x):
        var, mean = torch.std_mean(x, dim=(2, 3), unbiased=False, keepdim=True)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.5", "γ and β created in float64 'for precision': float32 inputs come out float64",
       names=[r"(γ|weight|β|bias|parameters?)[^.?]{0,40}(float64|double|dtype)",
              r"(float64|double)[^.?]{0,40}(γ|weight|β|bias|parameters?)",
              r"(output|result)[^.?]{0,30}(float64|double)[^.?]{0,30}(float32|input)",
              r"(input'?s?|x'?s?) dtype[^.?]{0,30}(output|return|parameters?)"])
class InstanceNormFloat64Parameters(nn.Module):
    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features, dtype=torch.float64))
        self.bias = nn.Parameter(torch.zeros(num_features, dtype=torch.float64))

    def forward(self, x):
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


# ----- Exercise 2.6: GroupNorm --------------------------------------------------------------------------------

class _GroupNormBase(nn.Module):
    def __init__(self, num_groups, num_channels, eps=1e-5):
        super().__init__()
        assert num_channels % num_groups == 0, f"{num_channels} channels do not split into {num_groups} groups"
        self.num_groups, self.eps = num_groups, eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))


@wrong("2.6", "statistics over (2, 3) of the (N, G, C/G, H, W) tensor: the W axis (4) left out",
       names=[r"\(2, ?3, ?4\)", r"\bW\b (axis|dimension)", r"width", r"axis 4\b", r"dim(ension)? 4\b",
              r"last three ax[ie]s", r"(misses|missing|left out|skipp\w*|omit\w*)[^.?]{0,30}(\bW\b|width|axis 4|columns)"])
class GroupNormMissesWidth(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, C // self.num_groups, H, W)
        mean = grouped.mean(dim=(2, 3), keepdim=True)
        var = grouped.var(dim=(2, 3), unbiased=False, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.6", "x.reshape(G, -1) without N: the flattened batch cut into G pieces, so groups span examples",
       names=[r"(each|every|per|single) (example|sample|image|item)", r"\(N, ?G\b", r"batch (ax[ie]s|dim\w*)",
              r"(mix\w*|across|span\w*|straddl\w*|cross\w*)[^.?]{0,20}(examples|samples|images|the batch)",
              r"(keep|include)[^.?]{0,20}(the )?(batch|\bN\b)"])
class GroupNormWithoutBatchAxis(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(self.num_groups, -1)
        mean = grouped.mean(dim=1, keepdim=True)
        var = grouped.var(dim=1, unbiased=False, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.6", "reshape(N, G, C/G, H·W) and statistics over the last axis only: per channel (InstanceNorm), not per group",
       names=[r"instance ?norm", r"(within|whole|entire|all (the )?channels of) (each|the|a) group",
              r"(C\s*/\s*G|all the) channels (of|in) (the|each|a) group",
              r"(per|each) channel[^.?]{0,30}(instead|not|rather)", r"(over|across) (the )?(group|C\s*/\s*G)"])
class GroupNormPerChannelStatistics(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, C // self.num_groups, H * W)
        mean = grouped.mean(dim=-1, keepdim=True)
        var = grouped.var(dim=-1, unbiased=False, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.6", "reshaped back to (N, C, W, H), H and W typed the wrong way round: the wrong shape when H ≠ W",
       names=[r"(H|height) and (W|width)[^.?]{0,30}(swapped|exchanged|order|wrong way)",
              r"(swapped|exchanged|transposed)[^.?]{0,30}(H|height) and (W|width)",
              r"\(N, ?C, ?W, ?H\)", r"non-?square", r"H\s*(≠|!=)\s*W",
              r"(shape|same shape) as (the |its |your )?input"])
class GroupNormReshapeBackHW(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, C // self.num_groups, H, W)
        mean = grouped.mean(dim=(2, 3, 4), keepdim=True)
        var = grouped.var(dim=(2, 3, 4), unbiased=False, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, W, H)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


# ----- Exercise 2.7: RMSNorm ----------------------------------------------------------------------------------

class _RMSNormBase(nn.Module):
    def __init__(self, normalized_shape, eps=None):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.normalized_shape))


@wrong("2.7", "eps=None mapped to torch.finfo(x.dtype).tiny (the smallest normal number) instead of .eps",
       names=[r"finfo\([^)]*\)\.eps", r"machine epsilon", r"\btiny\b", r"smallest (normal|positive|representable)",
              r"\.eps\b[^.?]{0,20}(not|instead|rather)"])
class RMSNormFinfoTiny(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).tiny if self.eps is None else self.eps
        return x / torch.sqrt((x * x).mean(dim=dims, keepdim=True) + eps) * self.weight


@wrong("2.7", "dim=self.normalized_shape: the sizes passed as the axes to reduce over",
       names=[r"(sizes?|lengths?)[^.?]{0,30}(as|for|instead of|not|rather than) (the )?(ax[ie]s|dim\w*|indices)",
              r"ax[ie]s,? not (the |their )?sizes?", r"last len\(normalized_shape\)",
              r"(last|trailing) (\w+ )?ax[ie]s", r"range\(\s*-\s*len"])
class RMSNormSizesAsDims(_RMSNormBase):
    def forward(self, x):
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        mean_square = (x * x).mean(dim=self.normalized_shape, keepdim=True)
        return x / torch.sqrt(mean_square + eps) * self.weight


@wrong("2.7", "rms as torch.linalg.vector_norm(x) / n: the L2 norm divided by n instead of by √n",
       names=[r"√\s*n\b", r"sqrt\(\s*n\s*\)", r"\bn\b[^.?]{0,30}(instead of|not|rather than)[^.?]{0,10}(√|sqrt)",
              r"(√|sqrt)\s*n[^.?]{0,20}(too (small|large)|times)", r"vector_norm", r"\bnorm\b[^.?]{0,30}(divid|over)"])
class RMSNormNormOverN(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        n = math.prod(self.normalized_shape)
        rms = torch.linalg.vector_norm(x, dim=dims, keepdim=True) / n
        return x / torch.sqrt(rms ** 2 + eps) * self.weight


@wrong("2.7", "x.mean(dims) ** 2: the square of the mean instead of the mean of the squares",
       names=[r"mean of (the )?squares", r"square of (the )?mean", r"(squar\w*)[^.?]{0,20}(before|first|then)[^.?]{0,20}(mean|averag)",
              r"(mean|average)\w*[^.?]{0,20}(after|then) squar", r"(x²|x\s*\*\s*x|x\s*\*\*\s*2)[^.?]{0,10}(mean|average)",
              r"(mean|average) (of|over) x²"])
class RMSNormSquareOfMean(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        mean_square = x.mean(dim=dims, keepdim=True) ** 2
        return x / torch.sqrt(mean_square + eps) * self.weight

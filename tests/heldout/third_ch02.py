"""Third blind held-out set for Chapter 02 (normalization): wrong answers written as a learner writes the cell.

Written without reading the checks or seeing any of their messages, and without repeating a mistake of the first
(``wrong_ch02.py``) or the second (``blind_ch02.py``) set. The helpers a learner's cell uses from earlier cells
(``batch_norm_backward``, ``BatchNormFunction``) are the chapter's reference solutions, so each answer holds exactly
one mistake.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

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

@wrong("2.1", "dL/dγ = Σ γ g x̂: an extra factor γ (eq. (2.4)'s dL/dx̂ used in place of dL/dy)",
       names=[r"(extra|spurious|additional|superfluous) (factor )?(of )?(γ|weight)",
              r"(dL/dγ|grad_weight)[^.?]{0,40}(multipl\w*|times|scaled) by (γ|weight)",
              r"(dL/dγ|grad_weight)[^.?]{0,50}\b(no|without|not)\b[^.?]{0,20}(γ|weight)\b",
              r"(factor|times) (γ|weight) (too many|twice)", r"(does not|doesn't) (contain|involve|include) (γ|weight)",
              r"dL/dx̂[^.?]{0,30}(instead of|not|rather than|in place of)[^.?]{0,10}(dL/dy|\bg\b)"])
def backward_weight_grad_times_gamma(grad_out, x_hat, weight, inv_std):
    dims = (0, 2, 3)
    grad_bias = grad_out.sum(dim=dims)
    grad_weight = (weight[None, :, None, None] * grad_out * x_hat).sum(dim=dims)
    mean_grad = grad_out.mean(dim=dims, keepdim=True)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=dims, keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    grad_x = scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat)
    return grad_x, grad_weight, grad_bias


@wrong("2.1", "read inv_std as the standard deviation: γ / s, i.e. multiplied by √(σ² + ε) instead of dividing",
       names=[r"(multipl\w*|times) by (the )?(σ\b|std|standard deviation|√\s*\(?σ)",
              r"inv_std[^.?]{0,40}(already|is) (the )?(1\s*/|inverse|reciprocal|\bs\b)",
              r"(divid\w*|÷) by (inv_std|\bs\b)", r"(inverse|reciprocal)[^.?]{0,30}(std|standard deviation|σ)",
              r"inv_std[^.?]{0,20}(not|instead of|rather than)", r"1\s*/\s*s\b"])
def backward_divides_by_inv_std(grad_out, x_hat, weight, inv_std):
    dims = (0, 2, 3)
    grad_bias = grad_out.sum(dim=dims)
    grad_weight = (grad_out * x_hat).sum(dim=dims)
    mean_grad = grad_out.mean(dim=dims, keepdim=True)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=dims, keepdim=True)
    scale = (weight / inv_std)[None, :, None, None]
    grad_x = scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat)
    return grad_x, grad_weight, grad_bias


@wrong("2.1", "the two means of eq. (2.8) taken over (2, 3), per example, instead of over (0, 2, 3)",
       names=[r"\(0, ?2, ?3\)", r"(batch|\bN) ax[ie]s", r"(over|across|include\w*) (the )?(batch|every example|all (the )?examples|\bN\b)",
              r"(means?|averages?)[^.?]{0,30}per[- ](example|instance|image|sample)", r"(each|every) example[^.?]{0,30}(separately|own|alone)",
              r"(examples|batch)[^.?]{0,30}(couple|share|together)"])
def backward_means_per_example(grad_out, x_hat, weight, inv_std):
    dims = (0, 2, 3)
    grad_bias = grad_out.sum(dim=dims)
    grad_weight = (grad_out * x_hat).sum(dim=dims)
    mean_grad = grad_out.mean(dim=(2, 3), keepdim=True)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=(2, 3), keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    grad_x = scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat)
    return grad_x, grad_weight, grad_bias


@wrong("2.1", "keepdim=True on every reduction: dL/dγ and dL/dβ come back (1, C, 1, 1), not (C,)",
       names=[r"\(C,\)", r"shape of (γ|β|weight|bias|the parameters)",
              r"(flatten|squeeze)\w*", r"keepdim\s*=\s*True[^.?]{0,40}(grad_weight|grad_bias|dL/dγ|dL/dβ)",
              r"(grad_weight|grad_bias|dL/dγ|dL/dβ)[^.?]{0,40}(without|no) keepdim",
              r"(grad_weight|grad_bias|dL/dγ|dL/dβ)[^.?]{0,40}(shape|4-?D|four)"])
def backward_parameter_grads_keepdim(grad_out, x_hat, weight, inv_std):
    dims = (0, 2, 3)
    grad_bias = grad_out.sum(dim=dims, keepdim=True)
    grad_weight = (grad_out * x_hat).sum(dim=dims, keepdim=True)
    mean_grad = grad_out.mean(dim=dims, keepdim=True)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=dims, keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    grad_x = scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat)
    return grad_x, grad_weight, grad_bias


@wrong("2.1", "the variance term with Σ g x̂ (a sum) where eq. (2.8) has the mean over the m values",
       names=[r"1\s*/\s*m\b", r"(mean|average),? not (a |the )?sum", r"sum[^.?]{0,30}(instead of|not|rather than)[^.?]{0,15}mean",
              r"(divid\w*|÷) by m\b", r"(missing|forgot\w*|without)[^.?]{0,20}(factor |division )?(1\s*/\s*m|by m\b)",
              r"\bm (times|×) too (large|big)"])
def backward_variance_term_sum(grad_out, x_hat, weight, inv_std):
    dims = (0, 2, 3)
    grad_bias = grad_out.sum(dim=dims)
    grad_weight = (grad_out * x_hat).sum(dim=dims)
    mean_grad = grad_out.mean(dim=dims, keepdim=True)
    sum_grad_x_hat = (grad_out * x_hat).sum(dim=dims, keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    grad_x = scale * (grad_out - mean_grad - x_hat * sum_grad_x_hat)
    return grad_x, grad_weight, grad_bias


# ----- Exercise 2.2: BatchNormFunction ------------------------------------------------------------------------

@wrong("2.2", "statistics over (0, 1, 2), as for a channels-last (N, H, W, C) tensor: per W column, not per channel",
       names=[r"channels?[- ]last", r"\(0, ?2, ?3\)", r"NHWC", r"(channel )?ax(is|es) 1\b[^.?]{0,30}channel",
              r"channels?[^.?]{0,20}(are|is|on|at) (the )?(axis|dim\w*) 1",
              r"(each|every) channel'?s? (own )?(mean|variance|statistics)"])
class BatchNormFunctionChannelsLast(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        dims = (0, 1, 2)
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None]

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = batch_norm_backward(grad_out, x_hat, weight, inv_std)
        return grad_x, grad_weight, grad_bias, None


@wrong("2.2", "the output computed in place on the saved x̂ (x_hat.mul_(γ).add_(β)): backward reads a modified x̂",
       names=[r"in[- ]?place", r"(saved|x_hat|x̂)[^.?]{0,40}(modified|changed|overwritten|mutated)",
              r"(modif\w*|overwr\w*|mutat\w*)[^.?]{0,30}(saved|x_hat|x̂)", r"mul_|add_", r"version"])
class BatchNormFunctionInPlaceOutput(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat.mul_(weight[None, :, None, None]).add_(bias[None, :, None, None])

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = batch_norm_backward(grad_out, x_hat, weight, inv_std)
        return grad_x, grad_weight, grad_bias, None


@wrong("2.2", "variance as E[x²] − μ²: right on paper, catastrophic cancellation for a large mean",
       names=[r"cancel\w*", r"E\[x²\]\s*[−-]\s*(μ²|E\[x\]²)", r"numerical\w*[^.?]{0,20}(unstable|instabilit|precision)",
              r"(large|big) (mean|offset|shift)", r"(subtract|centr)\w*[^.?]{0,30}before squaring",
              r"mean of (the )?squared deviations"])
class BatchNormFunctionOnePassVariance(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = (x * x).mean(dim=DIMS, keepdim=True) - mean * mean
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None]

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = batch_norm_backward(grad_out, x_hat, weight, inv_std)
        return grad_x, grad_weight, grad_bias, None


@wrong("2.2", "x.var(dim=(0, 2, 3), keepdim=True) with torch's default unbiased=True in the normalisation",
       names=[r"unbiased\s*=\s*(True|False)", r"(not|instead of|rather than|should be|must be|use) (the )?biased",
              r"unbiased[^.?]{0,30}(instead of|not|rather than)", r"bessel", r"\bm\s*[−-]\s*1\b",
              r"(divid\w*|÷) by m\b[^.?]{0,20}(not|instead)"])
class BatchNormFunctionUnbiasedNormalisation(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
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


@wrong("2.3", "buffers updated without torch.no_grad(): the running statistics join the autograd graph",
       names=[r"(updat\w*|buffers?|running (mean|var\w*|statistics|stats))[^.?]{0,40}no_grad",
              r"no_grad[^.?]{0,40}(updat\w*|buffers?|running (mean|var\w*|statistics|stats))",
              r"(buffers?|running (mean|var\w*|statistics|stats))[^.?]{0,40}(requires?[_ ]grad|grad_fn|graph|detach)",
              r"(record|track)\w*[^.?]{0,30}(update|buffers?|running)",
              r"(graph|autograd)[^.?]{0,30}(buffers?|running (mean|var\w*|statistics|stats))"])
class BatchNormUpdateRecordsGraph(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        self.num_batches_tracked += 1
        factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
        self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "factor = self.momentum or 1 / num_batches_tracked: momentum=0.0 is falsy, so it averages instead",
       names=[r"momentum\s*=\s*0(\.0)?\b", r"(zero|0\.0) momentum", r"momentum (of )?(zero|0)\b",
              r"\bor\b[^.?]{0,30}(None|momentum)", r"is None\b", r"\bfalsy\b"])
class BatchNormMomentumOr(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = self.momentum or 1 / self.num_batches_tracked.item()
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "the return indented inside `with torch.no_grad():`: the training output carries no gradient",
       names=[r"(return|output)[^.?]{0,40}(inside|within|under|outside|out of)[^.?]{0,20}(no_grad|with\b|block)",
              r"no_grad[^.?]{0,40}(return|output)", r"(output|result)[^.?]{0,40}(no|without|does not have a|lacks a) (gradient|grad_fn)",
              r"(output|result)[^.?]{0,30}(does not|doesn't|not) requires?[_ ]grad",
              r"(no|without) gradients?[^.?]{0,30}(\bx\b|input|γ|β|weight|bias|parameters)",
              r"(graph|autograd)[^.?]{0,30}(not|never|cut|detached|disabled|off)"])
class BatchNormReturnInsideNoGrad(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True))
            return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "the buffers updated on every call, eval mode included (then eval normalises with them)",
       names=[r"eval\w*[^.?]{0,60}(buffers?|running (mean|var\w*|statistics|stats))[^.?]{0,40}(chang|updat|mov|modif)",
              r"(chang|updat|mov|modif)\w*[^.?]{0,40}(buffers?|running (mean|var\w*|statistics|stats))[^.?]{0,40}(eval|inference)",
              r"(buffers?|running (mean|var\w*|statistics|stats))[^.?]{0,40}(chang|updat|mov|modif)\w*[^.?]{0,30}(eval|inference)",
              r"(leave|left|keep)[^.?]{0,20}(the )?buffers", r"(only|just) (in )?train(ing)?( mode)?[^.?]{0,30}(updat|buffers)",
              r"(buffers?|running (mean|var\w*|statistics|stats))[^.?]{0,30}(must not|should not|shouldn't) (change|move)"])
class BatchNormUpdatesInEval(_BatchNormBase):
    def forward(self, x):
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True))
        if not self.training:
            return self.evaluate(x)
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


# ----- Exercise 2.4: LayerNorm --------------------------------------------------------------------------------

class _LayerNormBase(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.normalized_shape))
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape))


@wrong("2.4", "dims = range(len(normalized_shape)): the first axes (batch…) instead of the last ones",
       names=[r"last len\(normalized_shape\)", r"(last|trailing) (\w+ )?ax[ie]s", r"leading ax[ie]s",
              r"from the (end|back|right)", r"(first|leading) (\w+ )?ax[ie]s[^.?]{0,30}(instead|not|rather)",
              r"range\(\s*-\s*len"])
class LayerNormLeadingAxes(_LayerNormBase):
    def forward(self, x):
        dims = tuple(range(len(self.normalized_shape)))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


@wrong("2.4", "F.normalize over the last axis (an L2 unit vector) taken for the standardisation",
       names=[r"F\.normalize", r"\bL2\b", r"unit (norm|length|vector)", r"(subtract|centr)\w*[^.?]{0,20}mean",
              r"(divid\w*|÷) by (the )?(standard deviation|std|σ)", r"(Euclidean|vector) norm"])
class LayerNormL2Normalize(_LayerNormBase):
    def forward(self, x):
        return F.normalize(x, dim=-1, eps=self.eps) * self.weight + self.bias


@wrong("2.4", "x = x.data at the top of forward (to 'avoid autograd trouble'): no gradient reaches the input",
       names=[r"\.data\b", r"detach\w*", r"(no|without|missing|zero) gradients?[^.?]{0,30}(\bx\b|input)",
              r"(input|\bx\b)[^.?]{0,30}(no|None|zero|missing) gradient", r"(graph|autograd)[^.?]{0,30}(cut|broken|bypass\w*|detached)",
              r"dL/dx[^.?]{0,30}(None|missing|zero|absent)"])
class LayerNormInputData(_LayerNormBase):
    def forward(self, x):
        x = x.data
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


@wrong("2.4", "mean and variance over the whole tensor (x.mean(), x.var()): one pair of statistics for the batch",
       names=[r"(each|every|per) (example|sample|token|position|item|input)", r"whole (batch|tensor)",
              r"(batch|leading) ax[ie]s[^.?]{0,30}(includ|mix|pool|shar)",
              r"(mix\w*|shar\w*|depend\w*)[^.?]{0,30}(examples|batch|other (rows|tokens|items|examples))",
              r"last len\(normalized_shape\)"])
class LayerNormGlobalStatistics(_LayerNormBase):
    def forward(self, x):
        mean = x.mean()
        var = x.var(unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


# ----- Exercise 2.5: InstanceNorm2d ---------------------------------------------------------------------------

class _InstanceNormBase(nn.Module):
    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))


@wrong("2.5", "statistics over dims (1, 2), the spatial axes of a channels-last (N, H, W, C) tensor",
       names=[r"channels?[- ]last", r"\(2, ?3\)", r"\bH and W\b", r"spatial ax[ie]s", r"NHWC",
              r"ax(is|es) 1[^.?]{0,20}channel"])
class InstanceNormChannelsLastDims(_InstanceNormBase):
    def forward(self, x):
        mean = x.mean(dim=(1, 2), keepdim=True)
        var = x.var(dim=(1, 2), unbiased=False, keepdim=True)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.5", "added BatchNorm-style running statistics and used them in eval mode (track_running_stats=True)",
       names=[r"running (statistics|stats|mean|var\w*|buffers?)", r"track_running_stats",
              r"(same|identical)[^.?]{0,30}(train\w*|eval)[^.?]{0,20}(and|as) (in )?(eval|train)",
              r"eval (mode)?[^.?]{0,40}(differ|chang|different|other)", r"(own|instance'?s?|input'?s?) statistics[^.?]{0,30}eval",
              r"(extra|unexpected|additional) buffers?"])
class InstanceNormRunningStatistics(_InstanceNormBase):
    def __init__(self, num_features, eps=1e-5):
        super().__init__(num_features, eps)
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):
        if self.training:
            mean = x.mean(dim=(2, 3), keepdim=True)
            var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
            with torch.no_grad():
                self.running_mean.mul_(0.9).add_(0.1 * mean.mean(dim=(0, 2, 3)))
                self.running_var.mul_(0.9).add_(0.1 * var.mean(dim=(0, 2, 3)))
        else:
            mean = self.running_mean[None, :, None, None]
            var = self.running_var[None, :, None, None]
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.5", "γ and β initialised with torch.randn, like a Linear layer, instead of ones and zeros",
       names=[r"initiali[sz]", r"(init|start)\w*[^.?]{0,30}\b(ones|zeros)\b", r"\b(ones|zeros) (and|/) (zeros|ones)\b",
              r"random(ly)? (init\w*|values|γ|β|weight|bias)", r"randn", r"fresh (layer|module)"])
class InstanceNormRandomInit(nn.Module):
    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.randn(num_features))
        self.bias = nn.Parameter(torch.randn(num_features))

    def forward(self, x):
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.5", "variance reduced in two steps, x.var(-1).mean(-1): the mean of the row variances, not over H·W",
       names=[r"(mean|average) of (the )?(row|per-row|column)", r"(row|per-row)[- ](wise )?variances?",
              r"variance (over|of) (both|\(H, ?W\)|H and W|all|every)", r"(between|across)[- ]rows?",
              r"(total|overall) variance", r"\(2, ?3\)"])
class InstanceNormTwoStepVariance(_InstanceNormBase):
    def forward(self, x):
        mean = x.mean(dim=-1).mean(dim=-1)[:, :, None, None]
        var = x.var(dim=-1, unbiased=False).mean(dim=-1)[:, :, None, None]
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


@wrong("2.6", "x.reshape(N, G, -1), statistics over dim=1: across the groups instead of within each group",
       names=[r"(within|inside|over) (each|a|one|the same) group", r"(across|over) (the |all )?groups",
              r"group ax[ie]s", r"dim\s*=\s*-1", r"\(2, ?3, ?4\)",
              r"(members|channels|values) of (each|a|one|the same) group"])
class GroupNormAcrossGroups(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, -1)
        mean = grouped.mean(dim=1, keepdim=True)
        var = grouped.var(dim=1, unbiased=False, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.6", "statistics over (0, 2, 3, 4): the batch axis pooled in, so an example depends on its batch",
       names=[r"(each|every|per|single) (example|sample|image|item)", r"batch (ax[ie]s|dim\w*)",
              r"(include\w*|pool\w*|mix\w*|across)[^.?]{0,30}(the batch|examples|other (images|examples|items))",
              r"depend\w* on (the )?(batch|other)", r"\(2, ?3, ?4\)", r"\bN\b[^.?]{0,20}(axis|included|too)"])
class GroupNormPoolsBatch(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, C // self.num_groups, H, W)
        mean = grouped.mean(dim=(0, 2, 3, 4), keepdim=True)
        var = grouped.var(dim=(0, 2, 3, 4), unbiased=False, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.6", "mean, var = torch.var_mean(...): it returns (var, mean), so the two statistics are swapped",
       names=[r"var_mean", r"\(var, ?mean\)", r"(mean|variance)s?\b[^.?]{0,30}(swapped|exchanged|other way|reversed|mixed up)",
              r"(swapped|exchanged|mixed up|confused)[^.?]{0,30}(mean|variance)", r"order[^.?]{0,30}(var|mean)\b"])
class GroupNormVarMeanOrder(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, C // self.num_groups, H, W)
        mean, var = torch.var_mean(grouped, dim=(2, 3, 4), unbiased=False, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.6", "group size C / G with true division: a float in the shape, reshape raises TypeError",
       names=[r"//", r"integer division", r"float (division|size|number|shape|in the shape)",
              r"(must be|need\w*|not) (an )?int(eger)?s?\b", r"\bint\(", r"floor division"])
class GroupNormTrueDivision(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, C / self.num_groups, H, W)
        mean = grouped.mean(dim=(2, 3, 4), keepdim=True)
        var = grouped.var(dim=(2, 3, 4), unbiased=False, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


# ----- Exercise 2.7: RMSNorm ----------------------------------------------------------------------------------

class _RMSNormBase(nn.Module):
    def __init__(self, normalized_shape, eps=None):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.normalized_shape))


@wrong("2.7", "a learned β (self.bias, zeros) added too, as in LayerNorm: RMSNorm has no shift",
       names=[r"\b(no|without|must not have|should not have|shouldn't have|drop|remove)\b[^.?]{0,10}(β|bias)\b",
              r"(β|bias)\b[^.?]{0,40}(extra|unexpected|not expected|shouldn't|should not|does not have|has no)",
              r"(extra|unexpected|additional|second) (parameter|key|β|bias)", r"only (γ|weight|one parameter)",
              r"state_dict", r"(one|1) parameter"])
class RMSNormWithBias(_RMSNormBase):
    def __init__(self, normalized_shape, eps=None):
        super().__init__(normalized_shape, eps)
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape))

    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        mean_square = (x * x).mean(dim=dims, keepdim=True)
        return x / torch.sqrt(mean_square + eps) * self.weight + self.bias


@wrong("2.7", "the sum of squares instead of their mean (an L2 norm): the output is 1/√n of the right one",
       names=[r"√\s*n\b", r"(mean|average),? not (a |the )?sum", r"sum[^.?]{0,30}(instead of|not|rather than)[^.?]{0,15}mean",
              r"1\s*/\s*n\b", r"(divid\w*|÷)[^.?]{0,20}\bby n\b", r"\b(L2|Euclidean)[- ]norm"])
class RMSNormSumOfSquares(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        sum_square = (x * x).sum(dim=dims, keepdim=True)
        return x / torch.sqrt(sum_square + eps) * self.weight


@wrong("2.7", "x.var(...) used as the mean square: the denominator is centred (the numerator is not)",
       names=[r"var\w*[^.?]{0,30}(instead of|not|rather than)[^.?]{0,20}mean (of (the )?)?squares?",
              r"\.var\(", r"(not|never|without|no|don't|do not) (subtract|centr)", r"\bcentr(e|ed|es|ing)\b",
              r"variance[^.?]{0,30}(instead of|not|rather than)", r"(instead of|not|rather than)[^.?]{0,10}(the )?variance"])
class RMSNormVariance(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        mean_square = x.var(dim=dims, unbiased=False, keepdim=True)
        return x / torch.sqrt(mean_square + eps) * self.weight


@wrong("2.7", "math.sqrt on the mean-square tensor: fails for more than one row (math works on numbers only)",
       names=[r"math\.sqrt", r"torch\.sqrt", r"\.sqrt\(\)", r"element-?wise",
              r"(python|math) (function|module)[^.?]{0,30}tensor", r"(python )?(number|float|scalar)s? only"])
class RMSNormMathSqrt(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        mean_square = (x * x).mean(dim=dims, keepdim=True)
        return x / math.sqrt(mean_square + eps) * self.weight

"""Sixth blind held-out set for Chapter 02 (normalization): wrong answers written as a learner writes the cell.

Written without reading the checks or seeing any of their messages. It aims at the mistakes learners make most
often, so some are kin to those of earlier sets, but each is written anew, in another form where one exists. The
helpers a learner's cell uses from earlier cells (``batch_norm_backward``, ``BatchNormFunction``) are the chapter's
reference solutions, so each answer holds exactly one mistake.
"""
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

@wrong("2.1", "mean(g) taken without keepdim: the (C,) mean broadcasts along the width W instead of the channels",
       names=[r"(mean\(g\)|mean_grad|mean of (the )?(upstream )?gradient)[^.?]{0,50}(keepdim|\(C,\)|shape|broadcast)",
              r"keepdim\s*=\s*True[^.?]{0,40}(mean\(g\)|mean_grad|first mean)",
              r"\(C,\)[^.?]{0,40}(along|against|with) (the )?(W|width|last)", r"(width|W) ax[ie]s[^.?]{0,30}(instead|not|rather)"])
def backward_mean_grad_without_keepdim(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    scale = (weight * inv_std).view(1, -1, 1, 1)
    return scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat), grad_weight, grad_bias


@wrong("2.1", "dL/dx scaled by γ only: the factor s = 1/√(σ² + ε) of eq. (2.8) dropped",
       names=[r"(factor|multipl\w*|scal\w*)[^.?]{0,30}\b(s|inv_std)\b", r"\b(s|inv_std)\b[^.?]{0,30}(missing|forgot\w*|dropped|left out)",
              r"1\s*/\s*√\s*\(?σ²\s*\+\s*ε\)?[^.?]{0,30}(missing|forgot|dropped|left out)",
              r"(missing|forgot\w*|without|dropped)[^.?]{0,30}(1\s*/\s*√|inverse (standard deviation|std)|inv_std|\bs\b)",
              r"γ\s*·?\s*s\b[^.?]{0,30}(not|instead|rather)"])
def backward_without_inv_std(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS, keepdim=True)
    mean_gx = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    return weight[None, :, None, None] * (grad_out - mean_grad - x_hat * mean_gx), grad_weight, grad_bias


@wrong("2.1", "dL/dβ as grad_out.mean(dim=(0, 2, 3)): eq. (2.2) sums over the m values, it does not average",
       names=[r"(dL/dβ|grad_bias|dβ)[^.?]{0,40}(sum,? not|not (a |the )?mean|instead of (a |the )?(mean|average)|is a sum|(should|must) (be )?sum)", r"(sum|Σ)[^.?]{0,20}(not|instead of|rather than)[^.?]{0,10}(mean|average)",
              r"(mean|average)[^.?]{0,20}(instead of|not|rather than)[^.?]{0,10}(sum|Σ)", r"\bm\s*(times|×)\s*too small",
              r"(divid\w*|÷) by m\b[^.?]{0,30}(dβ|bias|should not|not)"])
def backward_bias_mean(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.mean(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS, keepdim=True)
    mean_gx = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    return scale * (grad_out - mean_grad - x_hat * mean_gx), grad_weight, grad_bias


@wrong("2.1", "the third term of eq. (2.8) written mean(g x̂) without the factor x̂: the same shift for every value",
       names=[r"x_hat\s*\*\s*mean",
              r"(factor|multipl\w*)[^.?]{0,20}(by )?(x̂|x_hat)\b", r"(x̂|x_hat)[^.?]{0,30}(missing|forgot\w*|dropped|left out)",
              r"(third|variance|last) term[^.?]{0,40}(x̂|x_hat|factor)"])
def backward_third_term_without_x_hat(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS, keepdim=True)
    mean_gx = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    return scale * (grad_out - mean_grad - mean_gx), grad_weight, grad_bias


# ----- Exercise 2.2: BatchNorm as an autograd Function ----------------------------------------------------------

@wrong("2.2", "mean = x.mean(dim=(0, 2, 3)) without keepdim: x − μ lines the (C,) means up with the width W",
       names=[r"(mean|μ)\b[^.?]{0,40}(keepdim|\(C,\)|broadcast)", r"keepdim\s*=\s*True[^.?]{0,30}(mean|μ)",
              r"\(C,\)[^.?]{0,40}(along|against|with) (the )?(W|width|last)", r"(width|W) ax[ie]s[^.?]{0,30}(instead|not|rather)"])
class BatchNormFunctionMeanWithoutKeepdim(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None]

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        return (*batch_norm_backward(grad_out, x_hat, weight, inv_std), None)


@wrong("2.2", "γ x̂ + β with the (C,) weight and bias not viewed as (1, C, 1, 1): they broadcast along W",
       names=[r"\[None, ?:, ?None, ?None\]", r"view\(1, ?-1, ?1, ?1\)", r"(γ|weight|β|bias)[^.?]{0,40}(channel ax|along (the )?(W|width|last))",
              r"(γ|weight|β|bias)[^.?]{0,40}(not )?(viewed|reshaped|broadcast)\w*[^.?]{0,30}(channel|W\b|width)"])
class BatchNormFunctionAffineNotViewed(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return weight * x_hat + bias

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        return (*batch_norm_backward(grad_out, x_hat, weight, inv_std), None)


@wrong("2.2", "σ from x.std(dim=(0, 2, 3)): torch's std is unbiased (÷ m − 1); eq. (2.1) uses the biased σ² (÷ m)",
       names=[r"unbiased", r"biased", r"correction\s*=\s*0", r"m\s*[−-]\s*1\b", r"Bessel", r"(divid\w*|÷) by m\b",
              r"population (variance|std)"])
class BatchNormFunctionUnbiasedStd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        std = x.std(dim=DIMS, keepdim=True)
        inv_std = 1 / torch.sqrt(std ** 2 + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None]

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        return (*batch_norm_backward(grad_out, x_hat, weight, inv_std), None)


@wrong("2.2", "1e-5 written into forward instead of the eps argument: eps=0.1 (or any other) has no effect",
       names=[r"eps (argument|parameter|given|passed)", r"hard[- ]?cod\w*", r"(given|passed|requested) (ε|eps)",
              r"(ε|eps)[^.?]{0,30}(ignored|no effect|not used|unused)", r"1e-0?5[^.?]{0,30}(instead|not|rather)"])
class BatchNormFunctionHardCodedEps(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = torch.rsqrt(var + 1e-5)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None]

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        return (*batch_norm_backward(grad_out, x_hat, weight, inv_std), None)


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

    def update(self, x):
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True))


@wrong("2.3", "eval mode divides by √running_var without ε: inf/NaN for a channel whose running variance is 0",
       names=[r"(ε|eps)\b[^.?]{0,40}(missing|forgot\w*|left out|dropped|eval)", r"(missing|forgot\w*|without|no)\s+(the )?(ε|eps)\b",
              r"√\s*\(?\s*(σ̂²|running_var|running variance)\s*\+\s*(ε|eps)", r"running_var\s*\+\s*(self\.)?eps"])
class BatchNorm2dEvalWithoutEps(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            x_hat = (x - self.running_mean[None, :, None, None]) / self.running_var.sqrt()[None, :, None, None]
            return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        self.update(x)
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "num_batches_tracked never incremented: momentum=None then divides by 0 (and the counter stays 0)",
       names=[r"num_batches_tracked[^.?]{0,50}(increment\w*|never|not|stays|count|\+=)", r"increment\w*",
              r"(count|counter)[^.?]{0,30}(batch|never|stays|not)"])
class BatchNorm2dCounterNeverIncremented(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            inv_std = 1 / torch.sqrt(self.running_var + self.eps)
            return ((x - self.running_mean[None, :, None, None]) * (self.weight * inv_std)[None, :, None, None]
                    + self.bias[None, :, None, None])
        with torch.no_grad():
            n = self.num_batches_tracked.item()
            factor = self.momentum if self.momentum is not None else 1.0 / n
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "training mode normalises with the freshly updated running statistics instead of the batch's own",
       names=[r"batch('s)? (own )?statistics", r"(statistics|mean|variance) of the (current )?batch",
              r"(train\w*)[^.?]{0,50}running (statistics|mean|var)", r"running (statistics|mean|var\w*)[^.?]{0,50}(train\w*|eval\w* only|only in eval)",
              r"BatchNormFunction"])
class BatchNorm2dTrainWithRunningStats(_BatchNormBase):
    def forward(self, x):
        if self.training:
            self.update(x)
        inv_std = 1 / torch.sqrt(self.running_var + self.eps)
        return ((x - self.running_mean[None, :, None, None]) * (self.weight * inv_std)[None, :, None, None]
                + self.bias[None, :, None, None])


@wrong("2.3", "eval mode divides by σ̂² + ε, the running variance, without the square root",
       names=[r"(square root|sqrt|√)[^.?]{0,30}(missing|forgot\w*|dropped|left out)", r"(missing|forgot\w*|without|no) (the )?(square root|sqrt|√)",
              r"(standard deviation|std)[^.?]{0,30}(not|instead of|rather than)[^.?]{0,10}variance",
              r"variance[^.?]{0,20}(instead of|in place of|not|rather than)[^.?]{0,20}(standard deviation|std|its (square )?root)"])
class BatchNorm2dEvalVarianceNoSqrt(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            scale = (self.weight / (self.running_var + self.eps))[None, :, None, None]
            return (x - self.running_mean[None, :, None, None]) * scale + self.bias[None, :, None, None]
        self.update(x)
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


# ----- Exercise 2.4: LayerNorm --------------------------------------------------------------------------------

class _LayerNormBase(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.normalized_shape))
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape))


@wrong("2.4", "torch.var(x, dims, keepdim=True) with the default unbiased=True: divides by n − 1 instead of n",
       names=[r"unbiased", r"biased", r"correction\s*=\s*0", r"n\s*[−-]\s*1\b", r"Bessel", r"(divid\w*|÷) by n\b",
              r"population variance"])
class LayerNormUnbiasedVariance(_LayerNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = torch.mean(x, dims, keepdim=True)
        var = torch.var(x, dims, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


@wrong("2.4", "dims = range(len(normalized_shape)): the first axes (the batch) instead of the last ones",
       names=[r"last (len\(normalized_shape\)|\w+ )?ax[ie]s", r"range\(-len", r"(first|leading|batch) ax[ie]s",
              r"(trailing|last) (dimensions|dims)", r"(each|every|per) (token|example|position|sample)",
              r"(normali[sz]\w*|statistics)[^.?]{0,30}(over|across) (the )?(batch|examples)"])
class LayerNormLeadingDims(_LayerNormBase):
    def forward(self, x):
        dims = tuple(range(len(self.normalized_shape)))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


@wrong("2.4", "β added before γ multiplies: (x̂ + β) · γ instead of γ x̂ + β",
       names=[r"γ\s*(·|\*)?\s*x̂\s*\+\s*β", r"(order|before|after)[^.?]{0,30}(γ|β|weight|bias|scale|shift)",
              r"(β|bias|shift)[^.?]{0,30}(scaled|multiplied) (by|with) (γ|weight)", r"(scale|multipl\w*)[^.?]{0,20}(first|then)",
              r"parenthes|bracket"])
class LayerNormShiftBeforeScale(_LayerNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
        return ((x - mean) / torch.sqrt(var + self.eps) + self.bias) * self.weight


# ----- Exercise 2.5: InstanceNorm -----------------------------------------------------------------------------

class _InstanceNormBase(nn.Module):
    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))


@wrong("2.5", "statistics over (0, 2, 3), pasted from BatchNorm: pooled over the batch instead of per example",
       names=[r"\(2, ?3\)", r"(each|every|per|single) (example|instance|image|sample)", r"batch ax[ie]s", r"BatchNorm",
              r"(pool\w*|mix\w*|across|over) (the )?(batch|examples)", r"dim\s*=\s*0"])
class InstanceNormBatchStatistics(_InstanceNormBase):
    def forward(self, x):
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.5", "statistics x.mean(dim=(-2, -1)) without keepdim: (N, C) lines up with (H, W), not (N, C, 1, 1)",
       names=[r"(mean|var\w*|statistics|μ|σ²)[^.?]{0,40}(without|no|missing|forgot\w*) keepdim", r"keepdim\s*=\s*True[^.?]{0,40}(mean|var|statistic)",
              r"\(N, ?C\)[^.?]{0,40}(H, ?W|spatial|last two)", r"\(N, ?C, ?1, ?1\)"])
class InstanceNormWithoutKeepdim(_InstanceNormBase):
    def forward(self, x):
        mean = x.mean(dim=(-2, -1))
        var = x.var(dim=(-2, -1), unbiased=False)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.5", "x̂ * self.weight + self.bias with (C,) parameters: they broadcast along the width W, not the channels",
       names=[r"\[None, ?:, ?None, ?None\]", r"view\(1, ?-1, ?1, ?1\)", r"(γ|weight|β|bias)[^.?]{0,40}(channel ax|along (the )?(W|width|last))",
              r"(γ|weight|β|bias)[^.?]{0,40}(not )?(viewed|reshaped|broadcast)\w*[^.?]{0,30}(channel|W\b|width)"])
class InstanceNormAffineNotViewed(_InstanceNormBase):
    def forward(self, x):
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


# ----- Exercise 2.6: GroupNorm --------------------------------------------------------------------------------

class _GroupNormBase(nn.Module):
    def __init__(self, num_groups, num_channels, eps=1e-5):
        super().__init__()
        assert num_channels % num_groups == 0
        self.num_groups, self.eps = num_groups, eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))


@wrong("2.6", "group variance with torch's default unbiased=True: ÷ (C/G·H·W − 1) instead of ÷ C/G·H·W",
       names=[r"unbiased", r"biased", r"correction\s*=\s*0", r"[−-]\s*1\b[^.?]{0,20}(denominator|divis|count)", r"Bessel",
              r"population variance"])
class GroupNormUnbiasedVariance(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        g = x.reshape(N, self.num_groups, -1)
        mean = g.mean(dim=-1, keepdim=True)
        var = g.var(dim=-1, keepdim=True)
        x_hat = ((g - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.6", "group statistics over (2, 3, 4) without keepdim: the (N, G) result cannot broadcast against the groups",
       names=[r"(mean|var\w*|statistics|μ|σ²)[^.?]{0,40}(without|no|missing|forgot\w*) keepdim", r"keepdim\s*=\s*True[^.?]{0,40}(mean|var|statistic)",
              r"\(N, ?G\)[^.?]{0,40}(broadcast|line|align|shape)", r"\(N, ?G, ?1, ?1, ?1\)"])
class GroupNormWithoutKeepdim(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, C // self.num_groups, H, W)
        mean = grouped.mean(dim=(2, 3, 4))
        var = grouped.var(dim=(2, 3, 4), unbiased=False)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.6", "ε left out: (x − μ)/√σ², inf/NaN for a constant group and too large for a tiny variance",
       names=[r"(ε|eps)\b[^.?]{0,40}(missing|forgot\w*|left out|dropped|not (added|used))",
              r"(missing|forgot\w*|without|no)\s+(the )?(ε|eps)\b", r"var\s*\+\s*(self\.)?eps",
              r"(add|include)\w*[^.?]{0,20}(ε|eps)"])
class GroupNormWithoutEps(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.view(N, self.num_groups, -1)
        mean = grouped.mean(-1, keepdim=True)
        std = grouped.var(-1, unbiased=False, keepdim=True).sqrt()
        x_hat = ((grouped - mean) / std).view(N, C, H, W)
        return x_hat * self.weight.view(1, C, 1, 1) + self.bias.view(1, C, 1, 1)


# ----- Exercise 2.7: RMSNorm ----------------------------------------------------------------------------------

class _RMSNormBase(nn.Module):
    def __init__(self, normalized_shape, eps=None):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.normalized_shape))


@wrong("2.7", "eps=None not handled: mean_square + self.eps adds None to a tensor (TypeError with the default)",
       names=[r"eps\s*(=|is)\s*None", r"None\b[^.?]{0,40}(eps|ε|default)", r"finfo", r"machine epsilon",
              r"(default|no) (ε|eps)[^.?]{0,30}(handl|given|passed|case)"])
class RMSNormEpsNoneUnhandled(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean_square = x.pow(2).mean(dim=dims, keepdim=True)
        return x / torch.sqrt(mean_square + self.eps) * self.weight


@wrong("2.7", "x / (√mean(x²) + ε): ε added to the RMS outside the square root instead of to mean(x²) under it",
       names=[r"(inside|under|within) the (square )?root", r"(outside|after)[^.?]{0,20}(the )?(square )?root",
              r"(ε|eps)[^.?]{0,30}(added|adds)[^.?]{0,30}(RMS|root|sqrt)",
              r"mean_square\s*\+\s*eps|ms\s*\+\s*eps"])
class RMSNormEpsOutsideRoot(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        rms = x.square().mean(dim=dims, keepdim=True).sqrt()
        return self.weight * x / (rms + eps)


@wrong("2.7", "mean of squares over dim=-1 only: right for a 1-D normalized_shape, not for (T, D)",
       names=[r"last (len\(normalized_shape\)|\w+ )?ax[ie]s", r"range\(-len", r"(all|every|each of) (the )?normali[sz]ed (ax[ie]s|dimensions)",
              r"(only|just) (the )?last (ax[ie]s|dim)", r"dim\s*=\s*-1\b[^.?]{0,30}(only|instead|not)",
              r"(multi|several|more than one)[- ]?(ax|dim)\w*[^.?]{0,30}normali[sz]ed_shape"])
class RMSNormLastAxisOnly(_RMSNormBase):
    def forward(self, x):
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * self.weight


@wrong("2.7", "mean(x²) without keepdim: the (..., T) mean square lines up with the last axis instead of the rows",
       names=[r"(mean|mean_square|mean of (the )?squares?|rms|RMS)[^.?]{0,40}(without|no|missing|forgot\w*) keepdim",
              r"keepdim\s*=\s*True[^.?]{0,40}(mean|rms|square)", r"(one|a) (value|number|rms) per (row|vector|token)[^.?]{0,30}(broadcast|align)"])
class RMSNormWithoutKeepdim(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        mean_square = (x * x).mean(dim=dims)
        return x / torch.sqrt(mean_square + eps) * self.weight

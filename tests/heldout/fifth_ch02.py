"""Fifth blind held-out set for Chapter 02 (normalization): wrong answers written as a learner writes the cell.

Written without reading the checks or seeing any of their messages, and without repeating a mistake of the first
(``wrong_ch02.py``), second (``blind_ch02.py``), third (``third_ch02.py``) or fourth (``fourth_ch02.py``) set. The
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

@wrong("2.1", "dL/dβ as grad_out.sum(0).sum(2).sum(3): after the first sum the axes are renumbered, so dim 3 is gone",
       names=[r"(ax[ie]s|dim\w*)[^.?]{0,30}(shift|renumber|move|are removed|disappear)",
              r"(after|once) (the )?(first|each|every) (reduction|sum)[^.?]{0,40}(ax|dim)",
              r"(one|a single) (call|reduction|sum)\b", r"sum\(dim\s*=\s*\(0, ?2, ?3\)\)",
              r"(chain\w*|successive|consecutive) (sums|reductions)"])
def backward_chained_sums(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(0).sum(2).sum(3)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS, keepdim=True)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    grad_x = scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat)
    return grad_x, grad_weight, grad_bias


@wrong("2.1", "γ·s as weight * inv_std[None, :, None, None]: only s viewed, so (C,) × (1, C, 1, 1) gives (1, C, 1, C)",
       names=[r"\(1, ?C, ?1, ?C\)", r"(γ|weight)\b[^.?]{0,30}(not|never|isn't|wasn't) (viewed|reshaped|unsqueezed)",
              r"(only|just) (s|inv_std)\b[^.?]{0,30}(viewed|reshaped|unsqueezed)",
              r"(view|reshape)\w*[^.?]{0,20}(the )?product", r"\(weight \* inv_std\)",
              r"(both|each of) (γ|weight) and (s|inv_std)"])
def backward_only_inv_std_viewed(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS, keepdim=True)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    scale = weight * inv_std[None, :, None, None]
    grad_x = scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat)
    return grad_x, grad_weight, grad_bias


@wrong("2.1", "γ·s · g − mean(g) − x̂ · mean(g x̂) without the brackets: γ·s multiplies the first term only",
       names=[r"parenthes", r"precedence", r"bracket",
              r"(γ\s*·?\s*s|scale|factor)[^.?]{0,40}(whole|entire|all three|every term|each term|both other terms)",
              r"(multipl\w*|scal\w*)[^.?]{0,30}(only|just) (the )?(first|g) term",
              r"(mean|other|second and third) terms?[^.?]{0,30}(not|never|un)(scaled| multiplied)"])
def backward_scale_first_term_only(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS, keepdim=True)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    grad_x = scale * grad_out - mean_grad - x_hat * mean_grad_x_hat
    return grad_x, grad_weight, grad_bias


@wrong("2.1", "scale γ · s² (inv_std ** 2, the inverse variance) instead of γ · s",
       names=[r"\bs\s*(²|\^2|\*\*\s*2)", r"(square|squared)[^.?]{0,30}(\bs\b|inv_std|1\s*/\s*√)",
              r"(inv_std|\bs\b)[^.?]{0,30}(squared|twice|two factors)",
              r"inverse variance[^.?]{0,30}(instead|not|rather)",
              r"(one|a single) factor (of )?(s|inv_std)\b", r"extra factor (of )?(s|inv_std)\b"])
def backward_inv_std_squared(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS, keepdim=True)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    scale = (weight * inv_std ** 2)[None, :, None, None]
    grad_x = scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat)
    return grad_x, grad_weight, grad_bias


@wrong("2.1", "γ·s · (g − mean(g)) − x̂ · mean(g x̂): the bracket closed early, the variance term left unscaled",
       names=[r"parenthes", r"bracket", r"precedence",
              r"(variance|x̂|third|last) term[^.?]{0,40}(γ\s*·?\s*s|scale|factor|multipl\w*|unscaled|outside)",
              r"(γ\s*·?\s*s|scale|factor)[^.?]{0,40}(also|too|whole|entire|all three|every term)"])
def backward_bracket_closed_early(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS, keepdim=True)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    grad_x = scale * (grad_out - mean_grad) - x_hat * mean_grad_x_hat
    return grad_x, grad_weight, grad_bias


# ----- Exercise 2.2: BatchNormFunction ------------------------------------------------------------------------

@wrong("2.2", "inv_std = torch.rsqrt(var) + eps: ε added after the inverse square root instead of to σ² inside it",
       names=[r"(ε|eps)[^.?]{0,40}(inside|under|within) (the )?(square root|√|sqrt|rsqrt)",
              r"(ε|eps)[^.?]{0,30}(added )?(after|outside) (the )?(inverse|rsqrt|square root|√|sqrt)",
              r"rsqrt\(\s*var\s*\+\s*eps",
              r"(add\w*|\+)\s*(ε|eps)\b[^.?]{0,20}(to|inside) (the )?(variance|σ²)\b[^.?]{0,20}(first|before)"])
class BatchNormFunctionEpsAfterRsqrt(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = torch.rsqrt(var) + eps
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None]

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = batch_norm_backward(grad_out, x_hat, weight, inv_std)
        return grad_x, grad_weight, grad_bias, None


@wrong("2.2", "return batch_norm_backward(...), None: a pair (the 3-tuple, None) instead of four gradients",
       names=[r"unpack\w*", r"\*batch_norm_backward", r"(nested|inner) tuple", r"tuple (of|inside|within) (a )?tuple",
              r"(three|3) gradients[^.?]{0,40}(separately|unpacked|individually|one by one)",
              r"flat(ten\w*)? (tuple|list|return)"])
class BatchNormFunctionNestedReturn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None]

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        return batch_norm_backward(grad_out, x_hat, weight, inv_std), None


@wrong("2.2", "batch_norm_backward(x_hat, grad_out, weight, inv_std): the upstream gradient and x̂ passed in swapped "
              "order",
       names=[r"(grad_out|\bg\b|upstream gradient|dL/dy)[^.?]{0,30}(x̂|x_hat)[^.?]{0,30}(swapped|exchanged|order|mixed)",
              r"(swapped|exchanged|reversed|mixed up)[^.?]{0,30}(grad_out|\bg\b|gradient)[^.?]{0,20}(and|,) (x̂|x_hat)",
              r"(x̂|x_hat)[^.?]{0,30}(passed )?(as|in place of|where) (the )?(grad_out|gradient|\bg\b)",
              r"(first|second) argument", r"argument order"])
class BatchNormFunctionBackwardArgumentsSwapped(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None]

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = batch_norm_backward(x_hat, grad_out, weight, inv_std)
        return grad_x, grad_weight, grad_bias, None


@wrong("2.2", "forward returns x̂: the affine step γ x̂ + β of eq. (2.1) left out",
       names=[r"γ\s*(·|\*)?\s*x̂\s*\+\s*β", r"weight\s*\*\s*x_hat|x_hat\s*\*\s*weight",
              r"(affine|γ and β|weight and bias)[^.?]{0,40}(missing|not applied|forgot\w*|left out|ignored)",
              r"(missing|forgot\w*|without|left out)\s+(the )?(affine (step|map)|γ and β|weight and bias)",
              r"(γ|weight|β|bias)[^.?]{0,30}(no effect|ignored|unused|not used)"])
class BatchNormFunctionWithoutAffine(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat

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


@wrong("2.3", "`if self.eval:` tests the bound method eval (always truthy): every call takes the eval branch",
       names=[r"self\.training", r"(method|function)[^.?]{0,30}(always|truthy|true)\b",
              r"(always|truthy)[^.?]{0,40}(method|eval\b)", r"eval\b[^.?]{0,20}(is a|bound) method",
              r"train\w* mode[^.?]{0,40}(running (statistics|stats|mean|var)|buffers? (never|not|unchanged))"])
class BatchNormEvalMethodTruthy(_BatchNormBase):
    def forward(self, x):
        if self.eval:
            return self.evaluate(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "BatchNormFunction.apply(x, self.weight, self.bias, self.momentum): momentum passed where eps belongs",
       names=[r"momentum[^.?]{0,40}(as|for|in place of|instead of|where) (the )?(eps|ε)",
              r"(eps|ε)\b[^.?]{0,30}(momentum|self\.eps)", r"self\.eps"])
class BatchNormMomentumAsEps(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.momentum)


@wrong("2.3", "buffer update with x.mean(dim=(0, 2, 3), keepdim=True): (1, C, 1, 1) cannot be added in place to (C,)",
       names=[r"\(C,\)", r"keepdim\s*=\s*False", r"(without|no|drop\w*|remove\w*)[^.?]{0,20}keepdim",
              r"\.flatten\(\)", r"(buffer|running_mean|running_var)s?[^.?]{0,40}(shape|\(C,\))"])
class BatchNormKeepdimInBufferUpdate(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS, keepdim=True))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True, keepdim=True))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "copy-paste: running_var updated with the batch mean instead of the batch variance",
       names=[r"running_var[^.?]{0,50}(batch )?mean\b",
              r"(mean|μ)\b[^.?]{0,30}(instead of|in place of|rather than)[^.?]{0,20}(variance|σ²|var\b)",
              r"(variance|x\.var)[^.?]{0,30}(not|instead of|rather than) (the )?mean", r"copy[- ]?paste"])
class BatchNormRunningVarFromMean(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "momentum=None replaced by the default 0.1 instead of the cumulative factor 1/num_batches_tracked",
       names=[r"1\s*/\s*num_batches_tracked", r"1\s*/\s*(n|N|the (number|count) of batches)\b",
              r"num_batches_tracked[^.?]{0,40}(factor|weight|divid|1\s*/)",
              r"(equal|same) weight (to|for) (every|each|all) batch",
              r"(not|instead of|rather than) (the default )?0\.1\b", r"0\.1\b[^.?]{0,30}(instead of|not|rather than)"])
class BatchNormMomentumNoneAsDefault(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 0.1 if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


# ----- Exercise 2.4: LayerNorm --------------------------------------------------------------------------------

class _LayerNormBase(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.normalized_shape))
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape))


@wrong("2.4", "dims = tuple(-d for d in range(len(normalized_shape))): −0 is 0, so axis 0 (the batch) is normalised",
       names=[r"[−-]\s*0\b[^.?]{0,20}(is|==|=|equals)\s*0\b", r"range\(\s*-\s*len", r"range\(1, ?len",
              r"(over|across) the (last|trailing) (len\(normalized_shape\) |\w+ )?ax[ie]s",
              r"(batch|first|leading) ax[ie]s[^.?]{0,30}(instead|not|rather|included|normali[sz]ed|pooled)",
              r"\baxis 0\b[^.?]{0,30}(included|normali[sz]ed|instead|pooled)", r"(-1, ?-2|−1, ?−2|-2, ?-1|−2, ?−1)"])
class LayerNormNegatedRangeIncludesZero(_LayerNormBase):
    def forward(self, x):
        dims = tuple(-d for d in range(len(self.normalized_shape)))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


@wrong("2.4", "divided by √(std + ε) with std = x.std(...): the square root of the standard deviation, σ^½",
       names=[r"(square root|√|sqrt)[^.?]{0,20}of (the )?(std|standard deviation)",
              r"(std|standard deviation)[^.?]{0,40}(instead of|not|rather than|in place of)[^.?]{0,15}varian",
              r"varian\w*[^.?]{0,30}(instead of|not|rather than) (the )?(std|standard deviation)",
              r"x\.var\(", r"σ\s*\^?\s*(1/2|½|0\.5)", r"√\s*σ\b"])
class LayerNormSqrtOfStd(_LayerNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        std = x.std(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(std + self.eps) * self.weight + self.bias


@wrong("2.4", "dims = range(-len(normalized_shape) - 1, 0): one axis too many, the axis before normalized_shape "
              "pooled in",
       names=[r"one (ax[ie]s|dimension) too many", r"(extra|additional) (ax[ie]s|dimension)",
              r"(batch|leading|first|preceding) ax[ie]s[^.?]{0,40}(included|pooled|normali[sz]ed|mixed|statistics)",
              r"(across|over) (the )?(batch|examples|tokens|sequence)\b", r"off[- ]by[- ]one",
              r"(depends?|depending) on (the )?(other|batch|neighbou?r)"])
class LayerNormOneAxisTooMany(_LayerNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape) - 1, 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


@wrong("2.4", "mean over the last axis only (dim=-1), variance over all the normalised axes",
       names=[r"(mean|μ)\b[^.?]{0,40}(same|all|every|each of the) (normali[sz]ed )?ax[ie]s",
              r"(mean|μ)\b[^.?]{0,30}(last|one) ax[ie]s (only|instead)", r"(mean|μ)\b[^.?]{0,30}only (over )?the last",
              r"(both|the two) statistics[^.?]{0,30}(same|over)",
              r"(same|identical) (ax[ie]s|dims)[^.?]{0,30}(for|as) (the )?(mean|variance)"])
class LayerNormMeanLastAxisOnly(_LayerNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


# ----- Exercise 2.5: InstanceNorm2d ---------------------------------------------------------------------------

class _InstanceNormBase(nn.Module):
    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))


@wrong("2.5", "statistics of x.flatten(2) with keepdim: (N, C, 1), which lines up with (C, H, W) of the 4-D x",
       names=[r"\(N, ?C, ?1\)", r"\(N, ?C, ?1, ?1\)", r"\[\.\.\., ?None\]", r"unsqueeze\(-1\)",
              r"(unflatten|view|reshape)\w*[^.?]{0,40}(back|four|4-?D|\(N, ?C, ?1, ?1\))",
              r"(flatten\w*|H\s*[·*×]\s*W)[^.?]{0,40}(4-?D|four[- ]dimensional|original (x|shape|input))",
              r"(three|3) ax[ie]s[^.?]{0,30}(four|4)"])
class InstanceNormFlattenedStatistics(_InstanceNormBase):
    def forward(self, x):
        flat = x.flatten(2)
        mean = flat.mean(dim=-1, keepdim=True)
        var = flat.var(dim=-1, unbiased=False, keepdim=True)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.5", "x̂ · β + γ: weight and bias exchanged in the affine step",
       names=[r"(γ|weight)[^.?]{0,30}(β|bias)[^.?]{0,30}(swapped|exchanged|mixed|reversed|other way)",
              r"(swapped|exchanged|mixed up|reversed)[^.?]{0,30}(γ|weight|β|bias)",
              r"(multipl\w*|scal\w*) by (γ|the weight|self\.weight)", r"(add|shift)\w* (by )?(β|the bias|self\.bias)",
              r"γ\s*(·|\*)?\s*x̂\s*\+\s*β"])
class InstanceNormAffineSwapped(_InstanceNormBase):
    def forward(self, x):
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.bias[None, :, None, None] + self.weight[None, :, None, None]


@wrong("2.5", "γ and β created as (1, C, 1, 1) 'to broadcast': the right output, but not the (C,) parameters of "
              "nn.InstanceNorm2d (state_dict and shapes differ)",
       names=[r"(γ|weight|β|bias|parameters?)[^.?]{0,40}shape[^.?]{0,30}\(C,?\)", r"\(num_features,\)",
              r"\(1, ?C, ?1, ?1\)[^.?]{0,40}(instead|not|rather|parameter|stored|shape)",
              r"(store|create|keep|make)\w*[^.?]{0,30}\(C,\)",
              r"(view|reshape|unsqueez)\w*[^.?]{0,30}(in|inside) forward",
              r"state_?dict"])
class InstanceNormParametersPreviewed(nn.Module):
    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, num_features, 1, 1))

    def forward(self, x):
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


@wrong("2.5", "typo self.bias[None, None, :, None]: β viewed along H instead of the channels",
       names=[r"\[None, ?:, ?None, ?None\]", r"view\(1, ?-1, ?1, ?1\)",
              r"(β|bias)\b[^.?]{0,40}\b(H|height|axis 2|third axis|rows)\b", r"typo"])
class InstanceNormBiasOnHeight(_InstanceNormBase):
    def forward(self, x):
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, None, :, None]


# ----- Exercise 2.6: GroupNorm --------------------------------------------------------------------------------

class _GroupNormBase(nn.Module):
    def __init__(self, num_groups, num_channels, eps=1e-5):
        super().__init__()
        assert num_channels % num_groups == 0, f"{num_channels} channels do not split into {num_groups} groups"
        self.num_groups, self.eps = num_groups, eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))


@wrong("2.6", "groups from torch.chunk(x, G): chunk cuts along dim 0 (the batch) by default, not the channels",
       names=[r"dim\s*=\s*1\b", r"(channel|second) ax[ie]s[^.?]{0,30}(chunk|split|cut)",
              r"(chunk|split)\w*[^.?]{0,40}(batch|first ax|default|dim(ension)? 0)",
              r"(batch|examples)[^.?]{0,30}(instead of|not|rather than)[^.?]{0,15}channels",
              r"default\w*[^.?]{0,20}(dim|axis)"])
class GroupNormChunkDefaultDim(_GroupNormBase):
    def forward(self, x):
        pieces = []
        for group in torch.chunk(x, self.num_groups):
            mean = group.mean(dim=(1, 2, 3), keepdim=True)
            var = group.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
            pieces.append((group - mean) / torch.sqrt(var + self.eps))
        x_hat = torch.cat(pieces, dim=1)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.6", "group statistics (N, G, 1, 1, 1) applied to the ungrouped (N, C, H, W) x instead of the grouped tensor",
       names=[r"grouped\b[^.?]{0,30}(tensor|view|x)[^.?]{0,30}(not|instead|rather|before)",
              r"(subtract\w*|normali[sz]\w*|appl\w*)[^.?]{0,40}(grouped|5-?D|\(N, ?G, ?C\s*/\s*G)",
              r"(grouped|5-?D|\(N, ?G, ?C\s*/\s*G)[^.?]{0,40}(before|then) (reshap|view)",
              r"reshap\w* back[^.?]{0,40}(after|once)",
              r"\(N, ?G, ?1, ?1, ?1\)[^.?]{0,40}(\(N, ?C, ?H, ?W\)|ungrouped|x\b)"])
class GroupNormStatisticsOnUngrouped(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, C // self.num_groups, H, W)
        mean = grouped.mean(dim=(2, 3, 4), keepdim=True)
        var = grouped.var(dim=(2, 3, 4), unbiased=False, keepdim=True)
        x_hat = ((x - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.6", "x.reshape(N, G, -1), statistics over dim=(1, 2): the whole example pooled (G = 1, LayerNorm)",
       names=[r"dim\s*=\s*-1\b", r"dim\s*=\s*2\b", r"(within|inside|per|each) (each |one )?group",
              r"(whole|entire) (example|sample|image)", r"\bG\s*=\s*1\b", r"\blayer ?norm\b",
              r"(group|G) ax[ie]s[^.?]{0,30}(reduc\w*|pool\w*|averag\w*|included)",
              r"num_groups[^.?]{0,30}(no effect|ignored|unused)"])
class GroupNormWholeExample(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, -1)
        mean = grouped.mean(dim=(1, 2), keepdim=True)
        var = grouped.var(dim=(1, 2), unbiased=False, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.6", "γ and β of shape (C // G,), one per channel of a group, instead of one per channel (C,)",
       names=[r"\(C,\)", r"\(num_channels,\)", r"(one )?per channel\b", r"(each|every) channel\b[^.?]{0,30}(own|its)",
              r"(γ|weight|β|bias)[^.?]{0,40}(C\s*/\s*G|C\s*//\s*G|group size|num_channels\s*//)",
              r"(shape|size)[^.?]{0,20}\b(num_channels)\b"])
class GroupNormParametersPerGroupMember(_GroupNormBase):
    def __init__(self, num_groups, num_channels, eps=1e-5):
        super().__init__(num_groups, num_channels, eps)
        self.weight = nn.Parameter(torch.ones(num_channels // num_groups))
        self.bias = nn.Parameter(torch.zeros(num_channels // num_groups))

    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, C // self.num_groups, H, W)
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


@wrong("2.7", "eps = torch.finfo(x).eps: finfo takes a dtype, not a tensor (TypeError whenever eps is None)",
       names=[r"finfo\(\s*x\.dtype\s*\)", r"x\.dtype",
              r"(pass|give|use)\w*[^.?]{0,20}(its|the|x'?s|the input'?s) dtype",
              r"finfo\b[^.?]{0,30}(dtype|data type)[^.?]{0,20}(not|rather than|instead of) (the |a )?(tensor|x\b)"])
class RMSNormFinfoOfTensor(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x).eps if self.eps is None else self.eps
        mean_square = (x * x).mean(dim=dims, keepdim=True)
        return x / torch.sqrt(mean_square + eps) * self.weight


@wrong("2.7", "mean square as the sum over dims divided by len(normalized_shape), the number of axes, not of values",
       names=[r"math\.prod", r"numel", r"(number|count) of (normali[sz]ed )?(elements|values)\b",
              r"\bn\b\s*(=|is|should be)[^.?]{0,30}(product|prod|numel|number of (elements|values))",
              r"(number of (axes|dimensions)|len\((self\.)?normalized_shape\))[^.?]{0,30}(instead|not|rather)",
              r"\.mean\(", r"mean of (the )?squares"])
class RMSNormDividedByAxisCount(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        mean_square = (x * x).sum(dim=dims, keepdim=True) / len(self.normalized_shape)
        return x / torch.sqrt(mean_square + eps) * self.weight


@wrong("2.7", "output times self.weight.data: the right values, but γ is cut out of the graph and gets no gradient",
       names=[r"\.data\b", r"(γ|weight)[^.?]{0,40}(no|zero|none|missing|without) grad",
              r"grad\w*[^.?]{0,30}(γ|weight)[^.?]{0,30}(none|missing|zero|not|never)",
              r"detach\w*", r"(γ|weight)[^.?]{0,30}(graph|autograd)"])
class RMSNormWeightData(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        mean_square = (x * x).mean(dim=dims, keepdim=True)
        return x / torch.sqrt(mean_square + eps) * self.weight.data


@wrong("2.7", "x * √(mean(x²) + ε): multiplied by the RMS instead of divided (rsqrt confused with sqrt)",
       names=[r"divid\w*[^.?]{0,20}(by )?(the )?(rms|root mean square)\b",
              r"multipl\w*[^.?]{0,30}(instead of|rather than|not) divid",
              r"(instead of|rather than|not) divid\w*", r"rsqrt",
              r"(inverse|reciprocal)[^.?]{0,20}(rms|root|square root)",
              r"rms\s*(²|\^2|squared)"])
class RMSNormMultipliesByRms(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        mean_square = (x * x).mean(dim=dims, keepdim=True)
        return x * torch.sqrt(mean_square + eps) * self.weight

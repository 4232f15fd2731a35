"""Held-out wrong answers for Chapter 02 (normalization), each written as a learner writes the exercise cell.

The helpers a learner's cell uses from earlier cells (``batch_norm_backward``, ``BatchNormFunction``) are the
chapter's reference solutions, so each answer holds exactly one mistake.
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

@wrong("2.1", "γ·s left as a (C,) vector: it broadcasts along the last axis W instead of the channels",
       names=[
              r"(γ\s*·?\s*s|weight \* inv_std|\bscale\b)[^.?]{0,60}(\(1, ?C, ?1, ?1\)|\[None, ?:, ?None, ?None\])",
              r"(γ\s*·?\s*s|weight \* inv_std|\bscale\b)[^.?]{0,60}(last axis|\bW axis|width)",
              r"(last axis|\bW axis|width)[^.?]{0,60}(γ\s*·?\s*s|\bscale\b)"])
def backward_scale_on_last_axis(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS, keepdim=True)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    scale = weight * inv_std  # (C,)
    grad_x = scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat)
    return grad_x, grad_weight, grad_bias


@wrong("2.1", "the means of eq. (2.8) divide by grad_out.numel() = N·C·H·W instead of m = N·H·W",
       names=[r"numel", r"N\s*·\s*C\s*·\s*H\s*·\s*W", r"factor (of )?(1\s*/\s*)?C\b", r"1\s*/\s*C\b",
              r"channels? too",
              r"(divid\w*|÷) by[^.]{0,20}(N·C·H·W|numel|all (the )?(values|entries))"])
def backward_divide_by_numel(grad_out, x_hat, weight, inv_std):
    m = grad_out.numel()
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.sum(dim=DIMS, keepdim=True) / m
    mean_grad_x_hat = (grad_out * x_hat).sum(dim=DIMS, keepdim=True) / m
    scale = (weight * inv_std)[None, :, None, None]
    return scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat), grad_weight, grad_bias


@wrong("2.1", "the sign of the variance term: g − ḡ + x̂ · mean(g x̂)",
       names=[r"\bsign\b", r"\+\s*x̂", r"variance (term|path).{0,40}(sign|flip|added)"])
def backward_variance_term_plus(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS, keepdim=True)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    return scale * (grad_out - mean_grad + x_hat * mean_grad_x_hat), grad_weight, grad_bias


@wrong("2.1", "dL/dγ as a mean over (0, 2, 3) instead of a sum (eq. (2.3))",
       names=[r"dL/dγ.{0,60}(sum|mean)", r"(sum|mean).{0,60}dL/dγ", r"sum,? not a mean", r"not a mean",
              r"factor (of )?m\b", r"grad_weight.{0,40}(sum|mean)"])
def backward_grad_weight_mean(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).mean(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS, keepdim=True)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    return scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat), grad_weight, grad_bias


@wrong("2.1", "the variance term uses x̂ · mean(g) instead of x̂ · mean(g x̂)",
       names=[r"mean\(g\)[^.]{0,30}(in place of|instead of)[^.]{0,10}mean\(g\s*·?\s*x̂\)",
              r"x̂\s*·?\s*mean\(g\)", r"x̂\s*·?\s*ḡ",
              r"(missing|forgot\w*|without)[^.]{0,20}x̂ (in|inside) the (second )?mean"])
def backward_variance_term_without_x_hat(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS, keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    return scale * (grad_out - mean_grad - x_hat * mean_grad), grad_weight, grad_bias


@wrong("2.1", "centred grad_out in place (grad_out -= mean) before summing it for dL/dβ: dL/dβ = 0, input changed",
       names=[r"in[- ]place", r"overwr\w*", r"modifi\w*", r"mutat\w*", r"dL/dβ.{0,40}(zero|\b0\b)",
              r"grad_bias.{0,40}zero"],
       late=True)
def backward_in_place_centring(grad_out, x_hat, weight, inv_std):
    grad_out -= grad_out.mean(dim=DIMS, keepdim=True)  # saves a temporary
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    return scale * (grad_out - x_hat * mean_grad_x_hat), grad_weight, grad_bias


# ----- Exercise 2.2: BatchNormFunction ------------------------------------------------------------------------

@wrong("2.2", "saved inv_std as (1, C, 1, 1) (not flattened) for a batch_norm_backward that expects (C,)",
       names=[r"flatten", r"inv_std.{0,60}\(C,\)", r"\(C,\).{0,60}inv_std", r"inv_std.{0,40}shape",
              r"saved?.{0,40}shape"])
class BatchNormFunctionUnflattenedInvStd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)  # (1, C, 1, 1)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std)
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None]

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = batch_norm_backward(grad_out, x_hat, weight, inv_std)
        return grad_x, grad_weight, grad_bias, None


@wrong("2.2", "left eps out: 1/√σ² (infinite for a constant channel, wrong for small variances)",
       names=[r"(ε|eps)( is)? missing", r"(ε|eps).{0,30}(left out|forgot)",
              r"(missing|without|forgot\w*).{0,30}(eps|ε)", r"sqrt\(var\s*\+\s*eps"])
class BatchNormFunctionNoEps(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None]

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = batch_norm_backward(grad_out, x_hat, weight, inv_std)
        return grad_x, grad_weight, grad_bias, None


@wrong("2.2", "variance without keepdim: (C,) broadcasts along W when normalising",
       names=[r"(var\w*|σ²)[^.?]{0,40}(without|no|missing) keepdim",
              r"(without|no|missing) keepdim[^.?]{0,40}(var|σ²)",
              r"(var\w*|σ²|inv_std|1/√)[^.?]{0,60}(last axis|\bW axis|width)"])
class BatchNormFunctionVarNoKeepdim(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, unbiased=False)  # (C,)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std)
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None]

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = batch_norm_backward(grad_out, x_hat, weight, inv_std)
        return grad_x, grad_weight, grad_bias, None


@wrong("2.2", "backward returns a zero tensor, not None, as the 'gradient' of eps (a float)",
       names=[r"None for eps", r"eps.{0,40}None", r"None.{0,40}eps", r"different than None at position 4",
              r"eps.{0,40}gradient", r"gradient.{0,40}eps", r"not a tensor"])
class BatchNormFunctionZeroForEps(torch.autograd.Function):
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
        grad_x, grad_weight, grad_bias = batch_norm_backward(grad_out, x_hat, weight, inv_std)
        return grad_x, grad_weight, grad_bias, torch.zeros(())


@wrong("2.2", "statistics computed in float32 (x.float()) and cast back: float32 precision for float64 input",
       names=[r"float32", r"precision", r"single[- ]precision"])
class BatchNormFunctionFloat32Statistics(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        x32 = x.float()
        mean = x32.mean(dim=DIMS, keepdim=True)
        var = x32.var(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = ((x32 - mean) * inv_std).to(x.dtype)
        ctx.save_for_backward(x_hat, weight, inv_std.flatten().to(x.dtype))
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None]

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = batch_norm_backward(grad_out, x_hat, weight, inv_std)
        return grad_x, grad_weight, grad_bias, None


@wrong("2.2", "centred the input in place (x -= mean) inside forward: the caller's x is overwritten",
       names=[r"in[- ]place", r"overwr\w*", r"modifi\w*", r"mutat\w*", r"mark_dirty"],
       late=True)
class BatchNormFunctionInPlace(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        x -= x.mean(dim=DIMS, keepdim=True)  # no autograd in here, so why not save memory
        var = (x * x).mean(dim=DIMS, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = x * inv_std
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


@wrong("2.3", "momentum=None: factor 1/(num_batches_tracked + 1) after incrementing (1/2 on the first batch)",
       names=[r"off[- ]by[- ]one", r"1\s*/\s*\(\s*(n|num_batches_tracked)\s*\+\s*1\)",
              r"(increment|add 1)[^.]{0,40}(before|first)"])
class BatchNormCumulativeOffByOne(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / (self.num_batches_tracked.item() + 1) if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "eval mode normalises with the running statistics but forgets γ and β",
       names=[r"(forgot\w*|without|not appl\w*|apply|missing)( the)? (γ|β|affine|weight and bias)\b",
              r"(γ|β|affine)( and β)?[^.?]{0,20}(missing|not applied|forgot\w*)", r"self\.weight"])
class BatchNormEvalWithoutAffine(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return ((x - self.running_mean[None, :, None, None])
                    / torch.sqrt(self.running_var[None, :, None, None] + self.eps))
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "running statistics updated with x.mean() / x.var() over all axes: one number for every channel",
       names=[r"one (number|value) for (every|all) channels?", r"whole (batch|tensor)", r"single number",
              r"per[- ]channel (mean|statistic|running)", r"(mean|var)\(\) over (all|every)",
              r"(all|every) (the )?channels"])
class BatchNormRunningStatsAllAxes(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean())
            self.running_var.mul_(1 - factor).add_(factor * x.var())
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "num_batches_tracked incremented in eval mode too (the running statistics themselves stay put)",
       names=[r"num_batches_tracked.{0,80}eval", r"eval.{0,80}num_batches_tracked", r"counter"])
class BatchNormCountsInEval(_BatchNormBase):
    def forward(self, x):
        self.num_batches_tracked += 1
        if not self.training:
            return self.evaluate(x)
        with torch.no_grad():
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "training mode updates the buffers, then normalises with the running statistics, not the batch's",
       names=[r"batch statistics", r"batch's own", r"training mode.{0,60}running",
              r"running.{0,60}training mode", r"statistics of the (current )?batch"])
class BatchNormTrainsOnRunningStats(_BatchNormBase):
    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.num_batches_tracked += 1
                factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
                self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True))
        return self.evaluate(x)


@wrong("2.3", "eval mode subtracts the (C,) running_mean without a view: it broadcasts along W",
       names=[
              r"running_mean[^.?]{0,60}(\(1, ?C, ?1, ?1\)|\[None, ?:, ?None, ?None\]|last axis|\bW axis|width|view)",
              r"(last axis|\bW axis|width)[^.?]{0,60}running_mean"])
class BatchNormEvalMeanOnLastAxis(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            inv_std = 1 / torch.sqrt(self.running_var + self.eps)
            scale = (self.weight * inv_std)[None, :, None, None]
            return (x - self.running_mean) * scale + self.bias[None, :, None, None]
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "Bessel's correction applied twice: x.var(unbiased=True) * m / (m − 1)",
       names=[r"m\s*/\s*\(m\s*[−-]\s*1\)", r"bessel", r"(unbiased|correct\w*)[^.]{0,30}twice",
              r"twice[^.]{0,30}(unbiased|bessel|correct)"])
class BatchNormBesselTwice(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        m = x.numel() // x.shape[1]
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True) * m / (m - 1))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


# ----- Exercise 2.4: LayerNorm --------------------------------------------------------------------------------

class _LayerNormBase(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.normalized_shape))
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape))


@wrong("2.4", "dims = range(-len(normalized_shape), -1): one axis short (empty for a 1-D shape: all axes)",
       names=[r"last len\(normalized_shape\)", r"over all (the )?ax[ie]s[^.]{0,30}(instead|not|but)",
              r"off[- ]by[- ]one", r"whole (tensor|input|batch)",
              r"(normali[sz]ed|reduced?|computed) over[^.]{0,40}(but|instead of|not)",
              r"one axis short"])
class LayerNormAxisShort(_LayerNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), -1))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


@wrong("2.4", "hard-coded eps = 1e-5 in forward instead of self.eps",
       names=[r"self\.eps", r"hard[- ]?cod", r"eps argument", r"given eps", r"ignor\w* (the )?eps"])
class LayerNormHardCodedEps(_LayerNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + 1e-5) * self.weight + self.bias


@wrong("2.4", "variance as the mean of squares E[x²], not centred: E[(x − μ)²]",
       names=[r"E\[x²\]", r"mean of (the )?squares", r"mean\s*square", r"second moment", r"μ²",
              r"subtract\w* the mean.{0,40}varian", r"not centred"])
class LayerNormUncentredVariance(_LayerNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = (x * x).mean(dim=dims, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


@wrong("2.4", "variance without keepdim: it broadcasts against the wrong axes (or fails)",
       names=[r"(var\w*|σ²)[^.?]{0,40}(without|no|missing) keepdim",
              r"(without|no|missing) keepdim[^.?]{0,40}(var|σ²)"])
class LayerNormVarNoKeepdim(_LayerNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


@wrong("2.4", "γ and β stored as plain tensors, not nn.Parameter: not learned, no gradients, not in the state_dict",
       names=[r"nn\.Parameter", r"requires_grad", r"state_dict", r"not learn", r"plain tensor"])
class LayerNormPlainTensors(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = torch.ones(self.normalized_shape)
        self.bias = torch.zeros(self.normalized_shape)

    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


@wrong("2.4", "detached the mean (mean.detach()): right output, wrong gradient dL/dx",
       names=[r"detach", r"no gradient", r"path through μ[^.]{0,30}missing", r"(cut|detached) from the graph"])
class LayerNormDetachedMean(_LayerNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True).detach()
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


# ----- Exercise 2.5: InstanceNorm2d ---------------------------------------------------------------------------

class _InstanceNormBase(nn.Module):
    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))


@wrong("2.5", "statistics over dim=2 (H) only instead of over (H, W)",
       names=[r"\(2, ?3\)", r"both spatial", r"H and W", r"\(H, ?W\)", r"only (over )?H\b", r"height"])
class InstanceNormHeightOnly(_InstanceNormBase):
    def forward(self, x):
        mean = x.mean(dim=2, keepdim=True)
        var = x.var(dim=2, unbiased=False, keepdim=True)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.5", "mean per instance, but the variance over (0, 2, 3), pasted from BatchNorm: it mixes the examples",
       names=[r"varian\w*.{0,60}(batch|\(0, ?2, ?3\)|examples)", r"(batch|examples).{0,60}varian",
              r"mix\w* (the )?examples"])
class InstanceNormBatchVariance(_InstanceNormBase):
    def forward(self, x):
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.5", "divided by the variance, not the standard deviation: (x − μ)/(σ² + ε)",
       names=[r"square root (is )?missing", r"(missing|forgot\w*|without) (the )?(square root|√|sqrt)",
              r"standard deviation", r"variance,? not (the )?(standard deviation|√)",
              r"not by σ²\s*\+\s*ε"])
class InstanceNormDivideByVariance(_InstanceNormBase):
    def forward(self, x):
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
        x_hat = (x - mean) / (var + self.eps)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.5", "centred the input in place (x -= mean): overwrites the caller's x, fails on a leaf that needs grad",
       names=[r"in[- ]place", r"overwr\w*", r"modifi\w*", r"mutat\w*", r"\bleaf\b"],
       late=True)
class InstanceNormInPlace(_InstanceNormBase):
    def forward(self, x):
        x -= x.mean(dim=(2, 3), keepdim=True)
        var = (x * x).mean(dim=(2, 3), keepdim=True)
        x_hat = x / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


# ----- Exercise 2.6: GroupNorm --------------------------------------------------------------------------------

class _GroupNormBase(nn.Module):
    def __init__(self, num_groups, num_channels, eps=1e-5):
        super().__init__()
        assert num_channels % num_groups == 0, f"{num_channels} channels do not split into {num_groups} groups"
        self.num_groups, self.eps = num_groups, eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))


@wrong("2.6", "applied γ, β to the grouped (N, G, C/G, H, W) tensor before reshaping back (fails unless G = 1)",
       names=[r"before[^.]{0,40}reshap", r"reshap\w*[^.]{0,40}(back|before|first)",
              r"(grouped|\(N, ?G, ?C ?/ ?G, ?H, ?W\))[^.?]{0,60}(γ|weight)",
              r"(γ|weight)[^.?]{0,60}grouped"])
class GroupNormAffineBeforeReshape(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, C // self.num_groups, H, W)
        mean = grouped.mean(dim=(2, 3, 4), keepdim=True)
        var = grouped.var(dim=(2, 3, 4), unbiased=False, keepdim=True)
        y = (grouped - mean) / torch.sqrt(var + self.eps) * self.weight[None, :, None, None] \
            + self.bias[None, :, None, None]
        return y.reshape(N, C, H, W)


@wrong("2.6", "reshape(N, C // G, G, H, W) with statistics over (2, 3, 4): C/G groups of G channels",
       names=[r"num_groups", r"group size", r"number of groups", r"(num_groups|groups?)[^.]{0,30}swap",
              r"swap\w*[^.]{0,30}(groups?|group size)",
              r"blocks? of \d+ (consecutive )?channels[^.]{0,80}(but|instead)"])
class GroupNormGroupsAndSizeSwapped(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, C // self.num_groups, self.num_groups, H, W)
        mean = grouped.mean(dim=(2, 3, 4), keepdim=True)
        var = grouped.var(dim=(2, 3, 4), unbiased=False, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.6", "applied γ, β through .view(1, G, C // G, 1, 1) and returned the grouped 5-D tensor, never reshaped back",
       names=[r"reshap\w*.{0,40}back", r"\(N, ?G, ?C ?/ ?G, ?H, ?W\)", r"5-?D", r"five ax", r"\bndim\b",
              r"reshape\w* (it )?(back )?to \(N, ?C, ?H, ?W\)"])
class GroupNormForgotReshapeBack(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        G = self.num_groups
        grouped = x.reshape(N, G, C // G, H, W)
        mean = grouped.mean(dim=(2, 3, 4), keepdim=True)
        var = grouped.var(dim=(2, 3, 4), unbiased=False, keepdim=True)
        x_hat = (grouped - mean) / torch.sqrt(var + self.eps)  # (N, G, C/G, H, W)
        return x_hat * self.weight.view(1, G, C // G, 1, 1) + self.bias.view(1, G, C // G, 1, 1)


@wrong("2.6", "mean per group but variance per channel (grouped.var(dim=(3, 4)))",
       names=[r"varian\w*.{0,60}(per[- ]channel|each channel|group)",
              r"(per[- ]channel|each channel).{0,60}varian", r"\(2, ?3, ?4\)"])
class GroupNormVariancePerChannel(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, C // self.num_groups, H, W)
        mean = grouped.mean(dim=(2, 3, 4), keepdim=True)
        var = ((grouped - mean) ** 2).mean(dim=(3, 4), keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.6", "statistics computed under torch.no_grad() 'for speed': right output, wrong gradient",
       names=[r"no_grad", r"detach", r"no gradient", r"(cut|detached) from the graph",
              r"treated μ and σ² as constants", r"path\w* through μ[^.]{0,40}(missing|add)"])
class GroupNormStatisticsWithoutGrad(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, self.num_groups, C // self.num_groups, H, W)
        with torch.no_grad():
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


@wrong("2.7", "mean of squares over every axis but the first (range(1, x.ndim)), not the last len(normalized_shape)",
       names=[r"last len\(normalized_shape\)", r"trailing",
              r"(normali[sz]ed|reduced?|computed) over[^.]{0,40}(but|instead of|not)",
              r"(all|every) ax[ie]s (but|except) the (first|batch)", r"last (one|two|three|\d) ax"])
class RMSNormAllButBatch(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(1, x.dim()))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return x / torch.sqrt((x * x).mean(dim=dims, keepdim=True) + eps) * self.weight


@wrong("2.7", "no square root: divided by the mean square instead of the root mean square",
       names=[r"square root (is )?missing", r"(missing|forgot\w*|without|no) (the )?(square root|√|sqrt|root)",
              r"mean square,? not (the )?root"])
class RMSNormNoSqrt(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return x / ((x * x).mean(dim=dims, keepdim=True) + eps) * self.weight


@wrong("2.7", "scaled by γ first, then normalised: γx / rms(γx) instead of γ · x / rms(x)",
       names=[r"γ.{0,40}(after|before|first)", r"(after|before|first).{0,40}γ", r"rms\(γ",
              r"weight.{0,40}(after|before|first)", r"scal\w* (by γ )?before normali"])
class RMSNormGammaFirst(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        x = x * self.weight
        return x / torch.sqrt((x * x).mean(dim=dims, keepdim=True) + eps)


@wrong("2.7", "always eps = torch.finfo(x.dtype).eps, ignoring an eps given to the constructor",
       names=[r"self\.eps", r"given eps", r"ignor\w* (the )?eps", r"eps.{0,40}(ignored|passed|given)",
              r"eps argument"])
class RMSNormIgnoresEps(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps
        return x / torch.sqrt((x * x).mean(dim=dims, keepdim=True) + eps) * self.weight


@wrong("2.7", "mean of |x| instead of the root mean square",
       names=[r"\.abs\(\)", r"absolute", r"\|x\|", r"\bL1\b"])
class RMSNormMeanAbs(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return x / (x.abs().mean(dim=dims, keepdim=True) + eps) * self.weight


@wrong("2.7", "mean square computed in float32 (x.float()): float32 precision for float64 input",
       names=[r"float32", r"precision", r"single[- ]precision"])
class RMSNormFloat32MeanSquare(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        mean_square = x.float().pow(2).mean(dim=dims, keepdim=True)
        return x / torch.sqrt(mean_square + eps) * self.weight

"""Second blind held-out set for Chapter 02 (normalization): wrong answers written as a learner writes the cell.

Written without reading the checks, and without repeating a mistake of the first set (``wrong_ch02.py``). The
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

@wrong("2.1", "returned (grad_x, grad_bias, grad_weight): dL/dγ and dL/dβ in each other's places",
       names=[r"(dL/dγ|grad_weight|γ)[^.?]{0,40}(dL/dβ|grad_bias|β)[^.?]{0,30}(swapped|exchanged|order|places)",
              r"(swapped|exchanged)[^.?]{0,40}(γ|β|grad_weight|grad_bias)",
              r"order \(?grad_x, grad_weight, grad_bias\)?",
              r"(dL/dγ|grad_weight) (where|in place of|instead of) (dL/dβ|grad_bias)",
              r"(dL/dβ|grad_bias) (where|in place of|instead of) (dL/dγ|grad_weight)"])
def backward_parameter_gradients_swapped(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS, keepdim=True)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    grad_x = scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat)
    return grad_x, grad_bias, grad_weight


@wrong("2.1", "dL/dx scaled by s only: the factor γ of eq. (2.4) is missing",
       names=[r"factor (of )?γ\b",
              r"(missing|forgot\w*|without|omit\w*|lacks?) (the )?(factor (of )?)?(γ|weight)\b(?!\s*/)",
              r"(γ|weight)\b (is )?(missing|left out|forgotten)", r"times γ\b", r"(multipl\w*|scal\w*) by γ\b"])
def backward_without_gamma(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.mean(dim=DIMS, keepdim=True)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    scale = inv_std[None, :, None, None]
    grad_x = scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat)
    return grad_x, grad_weight, grad_bias


@wrong("2.1", "m = grad_out.shape[0] (the batch size N) instead of N·H·W in the means",
       names=[r"(divid\w*|÷) by N\b", r"(only|just) (the )?(batch size|N\b)", r"shape\[0\]",
              r"(not|instead of|rather than) (by )?N\b", r"H\s*·\s*W (times|×) too",
              r"factor (of )?H\s*·?\s*W\b"])
def backward_count_is_batch_size(grad_out, x_hat, weight, inv_std):
    m = grad_out.shape[0]
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.sum(dim=DIMS, keepdim=True) / m
    mean_grad_x_hat = (grad_out * x_hat).sum(dim=DIMS, keepdim=True) / m
    scale = (weight * inv_std)[None, :, None, None]
    return scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat), grad_weight, grad_bias


@wrong("2.1", "the means of eq. (2.8) divide by m − 1 (as for an unbiased variance) instead of m",
       names=[r"m\s*[−-]\s*1\b[^.]{0,30}(instead of|not|rather than)[^.]{0,10}\bm\b", r"(divid\w*|÷) by m\s*[−-]\s*1",
              r"(not|instead of|rather than) m\s*[−-]\s*1", r"(means?|averages?)[^.]{0,30}(bessel|unbiased)",
              r"1\s*/\s*m\b[^.]{0,20}(not|instead of)", r"(divid\w*|÷) by m\b"])
def backward_divide_by_m_minus_one(grad_out, x_hat, weight, inv_std):
    m = grad_out.numel() // grad_out.shape[1]
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad = grad_out.sum(dim=DIMS, keepdim=True) / (m - 1)
    mean_grad_x_hat = (grad_out * x_hat).sum(dim=DIMS, keepdim=True) / (m - 1)
    scale = (weight * inv_std)[None, :, None, None]
    return scale * (grad_out - mean_grad - x_hat * mean_grad_x_hat), grad_weight, grad_bias


@wrong("2.1", "dropped the mean term: γ s (g − x̂ · mean(g x̂)), without − mean(g)",
       names=[r"(missing|forgot\w*|without|drop\w*|omit\w*)[^.]{0,30}(mean\(g\)|ḡ|mean term|the mean of g)",
              r"(mean\(g\)|ḡ|mean of g|mean term)[^.]{0,30}(missing|left out|not subtracted|dropped)",
              r"(does not|doesn't|don't|must) sum to (zero|0)", r"Σ\s*dL/dx\s*(=|≠)\s*0"])
def backward_without_mean_term(grad_out, x_hat, weight, inv_std):
    grad_bias = grad_out.sum(dim=DIMS)
    grad_weight = (grad_out * x_hat).sum(dim=DIMS)
    mean_grad_x_hat = (grad_out * x_hat).mean(dim=DIMS, keepdim=True)
    scale = (weight * inv_std)[None, :, None, None]
    return scale * (grad_out - x_hat * mean_grad_x_hat), grad_weight, grad_bias


# ----- Exercise 2.2: BatchNormFunction ------------------------------------------------------------------------

@wrong("2.2", "saved the raw input x instead of x̂ and passed it to batch_norm_backward as x_hat",
       names=[r"x_hat", r"normali[sz]ed input", r"(raw|un-?normali[sz]ed|original) (input|x\b)",
              r"\bx\b (instead of|in place of|not) x̂", r"saved?\b[^.]{0,30}\bx\b[^.]{0,20}(instead of|not)"])
class BatchNormFunctionSavesInput(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x, weight, inv_std.flatten())
        return x_hat * weight[None, :, None, None] + bias[None, :, None, None]

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = batch_norm_backward(grad_out, x, weight, inv_std)
        return grad_x, grad_weight, grad_bias, None


@wrong("2.2", "backward returns batch_norm_backward's three gradients only, nothing for eps",
       names=[r"(four|4) (values|gradients|outputs)", r"one (gradient |value )?(per|for each) input",
              r"(incorrect|wrong) number of gradients", r"expected 4", r"None for eps",
              r"(eps|ε)[^.]{0,40}(needs|gets|must (get|have)|also) (a )?None"])
class BatchNormFunctionThreeGradients(torch.autograd.Function):
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
        return batch_norm_backward(grad_out, x_hat, weight, inv_std)


@wrong("2.2", "shift before scale: (x̂ + β) · γ instead of γ x̂ + β",
       names=[r"β[^.]{0,40}(after|before|then)[^.]{0,20}(γ|scal)", r"(γ|scal\w*)[^.]{0,40}(after|before)[^.]{0,20}β",
              r"order of (γ|β|the affine|scale and shift)", r"\(x̂\s*\+\s*β\)",
              r"(shift\w*|add\w* β)[^.]{0,20}(first|before)"])
class BatchNormFunctionShiftThenScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return (x_hat + bias[None, :, None, None]) * weight[None, :, None, None]

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, inv_std = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = batch_norm_backward(grad_out, x_hat, weight, inv_std)
        return grad_x, grad_weight, grad_bias, None


@wrong("2.2", "γ and β as weight[:, None] (C, 1): they line up with H, not with the channels (fails unless C = H)",
       names=[r"(γ|weight|β|bias)[^.?]{0,40}(\bH axis|height|axis 2|rows)", r"\[:, ?None\]",
              r"(lin\w* up|aligned?) with (the )?(H|height)\b", r"\(C, ?1\)"])
class BatchNormFunctionAffineOnHeight(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        mean = x.mean(dim=DIMS, keepdim=True)
        var = x.var(dim=DIMS, unbiased=False, keepdim=True)
        inv_std = 1 / torch.sqrt(var + eps)
        x_hat = (x - mean) * inv_std
        ctx.save_for_backward(x_hat, weight, inv_std.flatten())
        return x_hat * weight[:, None] + bias[:, None]

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


@wrong("2.3", "optimizer-style momentum: running ← momentum · running + (1 − momentum) · batch",
       names=[r"(opposite|optimi[sz]er)[^.]{0,40}(convention|momentum)",
              r"(new|current) batch[^.]{0,40}(weight|gets|counts)[^.]{0,20}(momentum|0\.1|α)",
              r"momentum[^.]{0,40}(weight|applies|goes) (of |to )?(the )?(new|current) batch",
              r"0\.9[^.]{0,40}(new|batch)", r"(weights?|momentum)[^.]{0,30}(swapped|reversed|inverted)"])
class BatchNormMomentumInverted(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(factor).add_((1 - factor) * x.mean(dim=DIMS))
            self.running_var.mul_(factor).add_((1 - factor) * x.var(dim=DIMS, unbiased=True))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "running_var updated with the biased batch variance (unbiased=False), without m/(m − 1)",
       names=[r"(use|take|need|should|must)\w*[^.]{0,30}(the )?unbiased", r"unbiased=True",
              r"(biased|unbiased=False)[^.]{0,40}(instead of|not|rather than)", r"bessel",
              r"(missing|forgot\w*|without)[^.]{0,30}m\s*/\s*\(m\s*[−-]\s*1\)", r"(divid\w*|÷) by m\s*[−-]\s*1"])
class BatchNormRunningVarBiased(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=False))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "no eval branch: eval mode still normalises with the batch's own statistics",
       names=[r"(eval|inference)[^.]{0,40}(use|normali[sz]\w*|should)[^.]{0,20}(with )?(the )?running",
              r"(batch|current|own) statistics[^.]{0,40}(eval|inference)",
              r"(eval|inference)[^.]{0,40}(batch|current|its own) statistics",
              r"ignor\w*[^.]{0,20}running (statistics|stats|mean)",
              r"running (statistics|stats|mean|var\w*) (are |were )?(not used|unused|ignored|never used)"])
class BatchNormNoEvalBranch(_BatchNormBase):
    def forward(self, x):
        if self.training:
            with torch.no_grad():
                self.num_batches_tracked += 1
                factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
                self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "momentum=None not supported: factor = self.momentum, so 1 − None raises TypeError",
       names=[r"(support|handle)\w*[^.]{0,20}momentum\s*=\s*None",
              r"momentum\s*=\s*None[^.)]{0,40}(not (supported|handled)|unsupported|TypeError|crash|fail|raise)",
              r"1\s*/\s*num_batches_tracked",
              r"(None|no) momentum[^.]{0,30}(means|is|=)[^.]{0,20}(cumulative|1\s*/)"])
class BatchNormNoCumulativeAverage(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "num_batches_tracked incremented only when momentum is None: it stays 0 with momentum=0.1",
       names=[r"num_batches_tracked[^.]{0,60}(\b0\b|zero|not (incremented|updated|counted)|never|stays|every)",
              r"(increment|count|updat)\w*[^.]{0,40}num_batches_tracked", r"counter",
              r"count\w* (the |every )?(training )?batch"])
class BatchNormCountsOnlyForCumulative(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        with torch.no_grad():
            if self.momentum is None:
                self.num_batches_tracked += 1
                factor = 1 / self.num_batches_tracked.item()
            else:
                factor = self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * x.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * x.var(dim=DIMS, unbiased=True))
        return BatchNormFunction.apply(x, self.weight, self.bias, self.eps)


@wrong("2.3", "running statistics taken from the normalised output y instead of the input x",
       names=[r"(statistics|mean|var\w*) of (the )?(input|x\b)",
              r"(output|normali[sz]ed|\by\b)[^.]{0,40}(instead of|not|rather than)[^.]{0,20}(input|x\b)",
              r"running (mean|var\w*|statistics)[^.]{0,40}(β|γ|(the )?output)",
              r"from (the )?(layer's )?output"])
class BatchNormRunningStatsOfOutput(_BatchNormBase):
    def forward(self, x):
        if not self.training:
            return self.evaluate(x)
        y = BatchNormFunction.apply(x, self.weight, self.bias, self.eps)
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(factor * y.mean(dim=DIMS))
            self.running_var.mul_(1 - factor).add_(factor * y.var(dim=DIMS, unbiased=True))
        return y


# ----- Exercise 2.4: LayerNorm --------------------------------------------------------------------------------

@wrong("2.4", "γ and β created with shape normalized_shape[-1] only: wrong for a multi-axis normalized_shape",
       names=[r"(γ|weight|β|bias|parameters?)\b[^.?]{0,40}\b(shape|shaped)\b",
              r"\b(shape|shaped)\b[^.?]{0,40}(γ|weight|β|bias)\b",
              r"normalized_shape\[-1\]", r"(whole|full|entire) normalized_shape"])
class LayerNormLastAxisParameters(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.normalized_shape[-1]))
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape[-1]))

    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


@wrong("2.4", "initialised γ to zeros and β to ones (swapped): a fresh layer outputs 1 everywhere",
       names=[r"initiali[sz]", r"ones and zeros", r"zeros and ones", r"(γ|weight|β|bias)[^.]{0,20}(init|start)\w*",
              r"fresh (layer|module)"])
class LayerNormInitSwapped(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(self.normalized_shape))
        self.bias = nn.Parameter(torch.ones(self.normalized_shape))

    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class _LayerNormBase(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.normalized_shape))
        self.bias = nn.Parameter(torch.zeros(self.normalized_shape))


@wrong("2.4", "eps added to the standard deviation, (x − μ)/(σ + ε), instead of inside the square root",
       names=[r"(inside|outside|under) (the )?(square root|√|sqrt)", r"σ\s*\+\s*ε", r"std\w*\s*\+\s*(eps|ε)",
              r"(ε|eps)[^.]{0,30}(to|with) the (standard deviation|std)"])
class LayerNormEpsOnStd(_LayerNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean = x.mean(dim=dims, keepdim=True)
        std = x.std(dim=dims, unbiased=False, keepdim=True)
        return (x - mean) / (std + self.eps) * self.weight + self.bias


@wrong("2.4", "statistics over the last axis only (dim=-1): right for a 1-D normalized_shape, wrong for (T, D)",
       names=[r"last len\(normalized_shape\)", r"(last|trailing) (\w+ )?ax[ie]s\b[^.]{0,30}(not|instead|only|but)",
              r"(only|just) (over |along )?the last ax", r"dim\s*=\s*-1\b[^.]{0,30}(only|instead|not)",
              r"(every|all) (the )?(normali[sz]ed|trailing) ax[ie]s",
              r"(normali[sz]ed|reduced?|computed) over[^.]{0,40}(but|instead of|not)"])
class LayerNormLastAxisOnly(_LayerNormBase):
    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


# ----- Exercise 2.5: InstanceNorm2d ---------------------------------------------------------------------------

class _InstanceNormBase(nn.Module):
    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))


@wrong("2.5", "statistics over (1, 2, 3): every channel of an example together (that is LayerNorm)",
       names=[r"each channel", r"per[- ]channel (statistic|mean|variance)", r"\(2, ?3\)",
              r"(channels?|C axis)[^.]{0,30}(too|as well|included|pooled|mixed)", r"mix\w* (the )?channels",
              r"layer ?norm"])
class InstanceNormOverChannelsToo(_InstanceNormBase):
    def forward(self, x):
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        var = x.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.5", "x.var(dim=(2, 3)) with the default unbiased=True: divides by H·W − 1",
       names=[r"unbiased=(True|False)", r"(not|instead of|rather than|should be|must be|use) (the )?biased",
              r"unbiased[^.]{0,30}(instead of|not|rather than)", r"bessel", r"H\s*·?\s*W\s*[−-]\s*1",
              r"\bn\s*[−-]\s*1\b"])
class InstanceNormUnbiasedVariance(_InstanceNormBase):
    def forward(self, x):
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(2, 3), keepdim=True)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.5", "flattened to (N, C, H·W) for the statistics and returned that shape, never viewed back",
       names=[r"(reshape|view)\w*[^.]{0,30}back", r"\(N, ?C, ?H\s*[·*]\s*W\)", r"3-?D",
              r"(flatten\w*|H\s*·\s*W)[^.]{0,40}(spatial|back|restore)", r"(restore|keep)[^.]{0,20}(input's )?shape"])
class InstanceNormFlattenedOutput(_InstanceNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        flat = x.reshape(N, C, H * W)
        mean = flat.mean(dim=-1, keepdim=True)
        var = flat.var(dim=-1, unbiased=False, keepdim=True)
        x_hat = (flat - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None] + self.bias[None, :, None]


@wrong("2.5", "forgot β: returns γ x̂ with no shift",
       names=[r"(missing|forgot\w*|without|never (add|appl)\w*|no) (the )?(β|bias|shift)\b",
              r"(β|bias|shift)\b[^.?]{0,30}(missing|not added|never added|ignored|not applied|left out)",
              r"add\w* (the )?(β|bias)\b"])
class InstanceNormNoShift(_InstanceNormBase):
    def forward(self, x):
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None, None]


# ----- Exercise 2.6: GroupNorm --------------------------------------------------------------------------------

class _GroupNormBase(nn.Module):
    def __init__(self, num_groups, num_channels, eps=1e-5):
        super().__init__()
        assert num_channels % num_groups == 0, f"{num_channels} channels do not split into {num_groups} groups"
        self.num_groups, self.eps = num_groups, eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))


@wrong("2.6", "reshape(N, C // G, G, H, W), statistics over (1, 3, 4): group g holds channels g, g + G, … (strided)",
       names=[r"consecutive", r"every \w+ channel", r"c\s*(%|mod)\s*G", r"strided", r"interleav",
              r"(contiguous|adjacent|neighbou?ring) channels"])
class GroupNormStridedGroups(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        G = self.num_groups
        grouped = x.reshape(N, C // G, G, H, W)  # group g: channels g, g + G, ...
        mean = grouped.mean(dim=(1, 3, 4), keepdim=True)
        var = grouped.var(dim=(1, 3, 4), unbiased=False, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.6", "one γ and one β per group, shape (G,), instead of per channel (C,)",
       names=[r"(γ|weight|β|bias|parameters?)[^.?]{0,40}(per|for each|one per|of) (every |each )?channel",
              r"\(C,\)", r"num_channels", r"per[- ]group (γ|weight|β|bias|parameters?|affine)", r"\(G,\)",
              r"(not|rather than|instead of) per group"])
class GroupNormPerGroupAffine(nn.Module):
    def __init__(self, num_groups, num_channels, eps=1e-5):
        super().__init__()
        assert num_channels % num_groups == 0, f"{num_channels} channels do not split into {num_groups} groups"
        self.num_groups, self.eps = num_groups, eps
        self.weight = nn.Parameter(torch.ones(num_groups))
        self.bias = nn.Parameter(torch.zeros(num_groups))

    def forward(self, x):
        N, C, H, W = x.shape
        G = self.num_groups
        grouped = x.reshape(N, G, C // G, H, W)
        mean = grouped.mean(dim=(2, 3, 4), keepdim=True)
        var = grouped.var(dim=(2, 3, 4), unbiased=False, keepdim=True)
        y = (grouped - mean) / torch.sqrt(var + self.eps) * self.weight.view(1, G, 1, 1, 1) \
            + self.bias.view(1, G, 1, 1, 1)
        return y.reshape(N, C, H, W)


@wrong("2.6", "hard-coded 32 groups (GroupNorm's usual default) in the reshape instead of self.num_groups",
       names=[r"hard[- ]?cod", r"self\.num_groups", r"num_groups (argument|given|passed)",
              r"ignor\w* (the )?num_groups", r"num_groups[^.]{0,30}(ignored|not used|unused)"])
class GroupNormThirtyTwoGroups(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        grouped = x.reshape(N, 32, C // 32, H, W)
        mean = grouped.mean(dim=(2, 3, 4), keepdim=True)
        var = grouped.var(dim=(2, 3, 4), unbiased=False, keepdim=True)
        x_hat = ((grouped - mean) / torch.sqrt(var + self.eps)).reshape(N, C, H, W)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


@wrong("2.6", "(N, G) statistics spread to channels with .repeat(1, C // G): g0, g1, g0, g1 … not g0, g0, g1, g1",
       names=[r"repeat_interleave", r"\.repeat\b", r"\btil(e|ed|es|ing)\b",
              r"(statistics|mean|variance)[^.]{0,40}(wrong|other|another) (group|channels)", r"consecutive"])
class GroupNormRepeatedStatistics(_GroupNormBase):
    def forward(self, x):
        N, C, H, W = x.shape
        G = self.num_groups
        grouped = x.reshape(N, G, C // G * H * W)
        mean = grouped.mean(dim=-1)  # (N, G)
        var = grouped.var(dim=-1, unbiased=False)
        mean = mean.repeat(1, C // G)[:, :, None, None]  # (N, C, 1, 1)
        var = var.repeat(1, C // G)[:, :, None, None]
        x_hat = (x - mean) / torch.sqrt(var + self.eps)
        return x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]


# ----- Exercise 2.7: RMSNorm ----------------------------------------------------------------------------------

class _RMSNormBase(nn.Module):
    def __init__(self, normalized_shape, eps=None):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.normalized_shape))


@wrong("2.7", "subtracted the mean first (LayerNorm habit): RMSNorm does not centre",
       names=[r"(no|not|without|don't|do not|never|must not|should not) (subtract|centr|re-?centr)",
              r"\bcentr(e|ed|es|ing)\b", r"subtract\w*[^.]{0,20}(the )?mean", r"mean[^.]{0,20}subtract\w*",
              r"re-?centr"])
class RMSNormCentred(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        x = x - x.mean(dim=dims, keepdim=True)
        return x / torch.sqrt((x * x).mean(dim=dims, keepdim=True) + eps) * self.weight


@wrong("2.7", "eps=None mapped to torch.finfo(torch.float32).eps whatever the input's dtype",
       names=[r"finfo\(x\.dtype\)", r"(machine )?epsilon of (the )?(input|x\b)",
              r"(eps|ε)[^.,)]{0,40}(for|of) (a |the )?(float64|double)", r"(float64|double)[^.]{0,40}(eps|ε)\b",
              r"float32[^.]{0,30}(eps|epsilon)", r"2\.2\d*\s*e-16"])
class RMSNormFloat32Eps(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(torch.float32).eps if self.eps is None else self.eps
        return x / torch.sqrt((x * x).mean(dim=dims, keepdim=True) + eps) * self.weight


@wrong("2.7", "mean square as the sum divided by x.shape[-1]: n is wrong for a multi-axis normalized_shape",
       names=[r"x\.shape\[-1\]", r"\bn\b[^.]{0,30}(number of|all) (the )?(normali[sz]ed )?(elements|values|entries)",
              r"(divid\w*|÷) by[^.]{0,30}(last (axis|dimension)|size of the last)", r"numel",
              r"product of (the )?normalized_shape"])
class RMSNormDividesByLastAxis(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        mean_square = (x * x).sum(dim=dims, keepdim=True) / x.shape[-1]
        return x / torch.sqrt(mean_square + eps) * self.weight


@wrong("2.7", "eps = self.eps or 1e-6 (LLaMA's value) instead of the machine epsilon when eps is None",
       names=[r"1e-0?6", r"finfo", r"machine epsilon", r"eps\s*=\s*None[^.]{0,40}(means|machine|finfo)"])
class RMSNormDefaultEpsOneMicro(_RMSNormBase):
    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = self.eps or 1e-6
        return x / torch.sqrt((x * x).mean(dim=dims, keepdim=True) + eps) * self.weight

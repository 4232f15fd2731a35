"""Every check of Chapter 09 passes on the reference answers and names each wrong answer in words a learner can act on.

The wrong answers are written the way a learner writes them — a function, or a class that keeps the given
``__init__`` and fills in ``forward`` — never built from the checks' own references. Each test carries its
exercise's marker: ``pytest -m ex9_4``.
"""
import itertools
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.checks_harness import assert_diagnoses, assert_passes, assert_stub_passes_through, exercise
from tests.solution_code import solution_namespace
from utils.checks import CheckFailure, LearnerError
from utils.checks import minimalist as checks

CHAPTER = "09_minimalist"
SOLVED = solution_namespace(CHAPTER)
ALLOWED_NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)


# ================================================================================================ Exercise 9.1
def mapping_stub(weight):
    raise NotImplementedError("Exercise 9.1: write the body of `strided_to_pointwise`, then run the check cell below.")


def mapping_i_j_c(weight):  # channels ordered (i, j, c): a channels-last habit
    C_out, C, k, _ = weight.shape
    return weight.permute(0, 2, 3, 1).reshape(C_out, C * k * k, 1, 1)


def mapping_transposed_kernel(weight):
    C_out, C, k, _ = weight.shape
    return weight.transpose(2, 3).reshape(C_out, C * k * k, 1, 1)


def mapping_j_i_c(weight):
    C_out, C, k, _ = weight.shape
    return weight.permute(0, 3, 2, 1).reshape(C_out, C * k * k, 1, 1)


def mapping_transposed_weight(weight):  # (C·k², C_out, 1, 1): in and out exchanged
    C_out, C, k, _ = weight.shape
    return weight.reshape(C_out, -1).t()[:, :, None, None]


def mapping_matrix(weight):  # forgot the 1×1 axes
    C_out, C, k, _ = weight.shape
    return weight.reshape(C_out, C * k * k)


def mapping_flipped(weight):  # a convolution textbook's flip
    C_out, C, k, _ = weight.shape
    return weight.flip(2, 3).reshape(C_out, C * k * k, 1, 1)


def mapping_averaged(weight):  # divides by the k² pixels of a block
    C_out, C, k, _ = weight.shape
    return weight.reshape(C_out, C * k * k, 1, 1) / (k * k)


def mapping_hard_coded_k(weight):
    C_out, C = weight.shape[:2]
    return weight.reshape(C_out, C * 4, 1, 1)


def mapping_float32(weight):
    C_out, C, k, _ = weight.shape
    return weight.float().reshape(C_out, C * k * k, 1, 1)


def mapping_unchanged(weight):
    return weight


def mapping_in_place(weight):
    C_out, C, k, _ = weight.shape
    weight.transpose_(2, 3)
    return weight.transpose(2, 3).reshape(C_out, C * k * k, 1, 1)


def mapping_summed_kernel(weight):
    return weight.sum(dim=(2, 3), keepdim=True)


def mapping_out_in_mixed(weight):  # permute(1, 0, …) then a reshape to the right shape
    C_out, C, k, _ = weight.shape
    return weight.permute(1, 0, 2, 3).reshape(C_out, C * k * k, 1, 1)


@exercise("9.1")
def test_mapping_reference_passes():
    assert_passes(checks.check_strided_to_pointwise, SOLVED["strided_to_pointwise"])


@exercise("9.1")
def test_mapping_stub_passes_through():
    assert_stub_passes_through(checks.check_strided_to_pointwise, mapping_stub)


@exercise("9.1")
@pytest.mark.parametrize("wrong, words", [
    (mapping_i_j_c, ["(i, j, c)", "c·k² + i·k + j"]),
    (mapping_j_i_c, ["(j, i, c)", "no permute"]),
    (mapping_transposed_kernel, ["rows and columns", "transpose"]),
    (mapping_transposed_weight, ["transpose", "(out_channels, in_channels"]),
    (mapping_matrix, ["matrix", "(C_out, C·k², 1, 1)"]),
    (mapping_flipped, ["flipped", "cross-correlation"]),
    (mapping_averaged, ["0.25", "k²"]),
    (mapping_hard_coded_k, ["re:shape|reshape"]),
    (mapping_float32, ["float32"]),
    (mapping_unchanged, ["shape"]),
    (mapping_in_place, ["in place"]),
    (mapping_summed_kernel, ["shape"]),
    (mapping_out_in_mixed, ["V[o]", "rows"]),
])
def test_mapping_mistakes_named(wrong, words):
    assert_diagnoses(checks.check_strided_to_pointwise, wrong, *words)


# ================================================================================================ Exercise 9.2
def cost_stub(c_in, c_out, height, width, bias=True):
    raise NotImplementedError("Exercise 9.2: write the body of `pointwise_cost`, then run the check cell below.")


def cost_macs(c_in, c_out, height, width, bias=True):
    return c_in * c_out + (c_out if bias else 0), c_in * c_out * height * width


def cost_no_spatial(c_in, c_out, height, width, bias=True):
    return c_in * c_out + (c_out if bias else 0), 2 * c_in * c_out


def cost_bias_per_input(c_in, c_out, height, width, bias=True):
    return c_in * c_out + (c_in if bias else 0), 2 * c_in * c_out * height * width


def cost_bias_always(c_in, c_out, height, width, bias=True):
    return c_in * c_out + c_out, 2 * c_in * c_out * height * width


def cost_bias_never(c_in, c_out, height, width, bias=True):
    return c_in * c_out, 2 * c_in * c_out * height * width


def cost_bias_inverted(c_in, c_out, height, width, bias=True):
    return c_in * c_out + (0 if bias else c_out), 2 * c_in * c_out * height * width


def cost_bias_adds(c_in, c_out, height, width, bias=True):
    flops = 2 * c_in * c_out * height * width + (c_out * height * width if bias else 0)
    return c_in * c_out + (c_out if bias else 0), flops


def cost_bias_adds_always(c_in, c_out, height, width, bias=True):
    return c_in * c_out + (c_out if bias else 0), (2 * c_in * c_out + c_out) * height * width


def cost_swapped(c_in, c_out, height, width, bias=True):
    return 2 * c_in * c_out * height * width, c_in * c_out + (c_out if bias else 0)


def cost_dict(c_in, c_out, height, width, bias=True):
    return {"parameters": c_in * c_out + (c_out if bias else 0), "flops": 2 * c_in * c_out * height * width}


def cost_parameters_per_pixel(c_in, c_out, height, width, bias=True):
    return (c_in * c_out + (c_out if bias else 0)) * height * width, 2 * c_in * c_out * height * width


def cost_height_only(c_in, c_out, height, width, bias=True):
    return c_in * c_out + (c_out if bias else 0), 2 * c_in * c_out * height


def cost_four_per_mac(c_in, c_out, height, width, bias=True):
    return c_in * c_out + (c_out if bias else 0), 4 * c_in * c_out * height * width


def cost_exact_additions(c_in, c_out, height, width, bias=True):  # C_in − 1 adds without bias, C_in with
    return c_in * c_out + (c_out if bias else 0), (2 * c_in - (0 if bias else 1)) * c_out * height * width


def cost_flops_only(c_in, c_out, height, width, bias=True):
    return 2 * c_in * c_out * height * width


def cost_float_half(c_in, c_out, height, width, bias=True):
    return c_in * c_out + (c_out if bias else 0), c_in * c_out * height * width / 2.5


def cost_bias_doubled(c_in, c_out, height, width, bias=True):  # bias counted with BatchNorm's two
    return c_in * c_out + (2 * c_out if bias else 0), 2 * c_in * c_out * height * width


@exercise("9.2")
def test_cost_reference_passes():
    assert_passes(checks.check_pointwise_cost, SOLVED["pointwise_cost"])


@exercise("9.2")
def test_cost_stub_passes_through():
    assert_stub_passes_through(checks.check_pointwise_cost, cost_stub)


@exercise("9.2")
@pytest.mark.parametrize("wrong, words", [
    (cost_macs, ["multiply-accumulates", "2 FLOPs"]),
    (cost_no_spatial, ["without the spatial size"]),
    (cost_bias_per_input, ["C_in entries", "OUTPUT"]),
    (cost_bias_always, ["even when bias=False"]),
    (cost_bias_never, ["leave out the bias"]),
    (cost_bias_inverted, ["inverted"]),
    (cost_bias_adds, ["bias additions"]),
    (cost_bias_adds_always, ["bias additions"]),
    (cost_swapped, ["(flops, parameters)"]),
    (cost_dict, ["pair"]),
    (cost_parameters_per_pixel, ["grows with the image"]),
    (cost_height_only, ["only the height"]),
    (cost_four_per_mac, ["4 FLOPs"]),
    (cost_exact_additions, ["exact count", "2 FLOPs per multiply-accumulate", "2·C_in − 1"]),
    (cost_flops_only, ["pair"]),
    (cost_float_half, ["whole number"]),
    (cost_bias_doubled, ["2·C_out", "C_out entries"]),
])
def test_cost_mistakes_named(wrong, words):
    assert_diagnoses(checks.check_pointwise_cost, wrong, *words)


# ================================================================================================ Exercise 9.3
def field_stub(layers):
    raise NotImplementedError("Exercise 9.3: write the body of `receptive_field`, then run the check cell below.")


def field_own_stride(layers):
    side, jump = 1, 1
    for kernel, stride in layers:
        jump *= stride
        side += (kernel - 1) * jump
    return side


def field_no_strides(layers):
    return 1 + sum(kernel - 1 for kernel, _ in layers)


def field_kernel_not_minus_one(layers):
    side, jump = 1, 1
    for kernel, stride in layers:
        side += kernel * jump
        jump *= stride
    return side


def field_starts_at_zero(layers):
    side, jump = 0, 1
    for kernel, stride in layers:
        side += (kernel - 1) * jump
        jump *= stride
    return side


def field_pairs_swapped(layers):
    side, jump = 1, 1
    for stride, kernel in layers:
        side += (kernel - 1) * jump
        jump *= stride
    return side


def field_jump_by_kernel(layers):
    side, jump = 1, 1
    for kernel, stride in layers:
        side += (kernel - 1) * jump
        jump *= kernel
    return side


def field_product_of_kernels(layers):
    return math.prod(kernel for kernel, _ in layers)


def field_sum_of_kernels(layers):
    return sum(kernel for kernel, _ in layers)


def field_first_layer(layers):
    side, jump = layers[0][0], layers[0][1]
    for kernel, stride in layers[1:]:
        side += (kernel - 1) * jump
        jump *= stride
    return side


def field_no_return(layers):
    side, jump = 1, 1
    for kernel, stride in layers:
        side += (kernel - 1) * jump
        jump *= stride


def field_reversed(layers):
    side, jump = 1, 1
    for kernel, stride in reversed(layers):
        side += (kernel - 1) * jump
        jump *= stride
    return side


@exercise("9.3")
def test_field_reference_passes():
    assert_passes(checks.check_receptive_field, SOLVED["receptive_field"])


@exercise("9.3")
def test_field_stub_passes_through():
    assert_stub_passes_through(checks.check_receptive_field, field_stub)


@exercise("9.3")
@pytest.mark.parametrize("wrong, words", [
    (field_own_stride, ["OWN stride"]),
    (field_no_strides, ["ignore the strides"]),
    (field_kernel_not_minus_one, ["not k_l"]),
    (field_starts_at_zero, ["starts at 1"]),
    (field_pairs_swapped, ["(stride, kernel)"]),
    (field_jump_by_kernel, ["multiplies by its stride", "product of the kernel sizes"]),
    (field_product_of_kernels, ["product of the kernel sizes"]),
    (field_sum_of_kernels, ["add the kernel sizes"]),
    (field_first_layer, ["IndexError"]),
    (field_no_return, ["None", "integer"]),
    (field_reversed, ["single layers are right", "combine"]),
])
def test_field_mistakes_named(wrong, words):
    assert_diagnoses(checks.check_receptive_field, wrong, *words)


@exercise("9.3")
def test_field_as_a_float_is_named():
    """A numpy float side (np.prod of no strides is 1.0) has the right value but is not a pixel count."""
    import numpy as np

    def field_numpy_product(layers):
        side = 1
        for index, (kernel, _) in enumerate(layers):
            side += (kernel - 1) * np.prod([stride for _, stride in layers[:index]])
        return side

    assert_diagnoses(checks.check_receptive_field, field_numpy_product, "float", "np.prod", "int")


# ================================================================================================ Exercise 9.4
Block = SOLVED["PointwiseBlock"]


class BlockStub(Block):
    def forward(self, x):
        raise NotImplementedError("Exercise 9.4: write the body of `forward`, then run the check cell below.")


def _s2d(x, k, order):
    B, C, H, W = x.shape
    blocks = x.reshape(B, C, H // k, k, W // k, k).permute(0, 1, 3, 5, 2, 4)  # (B, C, i, j, h, w)
    return blocks.permute(0, *[1 + a for a in order], 4, 5).reshape(B, C * k * k, H // k, W // k)


class BlockReluFirst(Block):
    def forward(self, x):
        if self.factor > 1:
            x = F.pixel_unshuffle(x, self.factor)
        return self.norm(F.relu(self.conv(x)))


class BlockNoRelu(Block):
    def forward(self, x):
        if self.factor > 1:
            x = F.pixel_unshuffle(x, self.factor)
        return self.norm(self.conv(x))


class BlockNoNorm(Block):
    def forward(self, x):
        if self.factor > 1:
            x = F.pixel_unshuffle(x, self.factor)
        return F.relu(self.conv(x))


class BlockNormEval(Block):
    def forward(self, x):
        if self.factor > 1:
            x = F.pixel_unshuffle(x, self.factor)
        self.norm.eval()
        return F.relu(self.norm(self.conv(x)))


class BlockOwnS2dIJC(Block):
    def forward(self, x):
        k = self.factor
        B, C, H, W = x.shape
        x = x.reshape(B, C, H // k, k, W // k, k).permute(0, 3, 5, 1, 2, 4).reshape(B, C * k * k, H // k, W // k)
        return F.relu(self.norm(self.conv(x)))


class BlockOwnS2dCJI(Block):
    def forward(self, x):
        return F.relu(self.norm(self.conv(_s2d(x, self.factor, (0, 2, 1)))))


class BlockPixelShuffle(Block):
    def forward(self, x):
        if self.factor > 1:
            x = F.pixel_shuffle(x, self.factor)
        return F.relu(self.norm(self.conv(x)))


class BlockAvgPool(Block):
    def forward(self, x):
        if self.factor > 1:
            x = F.avg_pool2d(x, self.factor)
        return F.relu(self.norm(self.conv(x)))


class BlockConvFirst(Block):
    def forward(self, x):
        x = self.conv(x)
        if self.factor > 1:
            x = F.pixel_unshuffle(x, self.factor)
        return F.relu(self.norm(x))


class BlockSigmoid(Block):
    def forward(self, x):
        if self.factor > 1:
            x = F.pixel_unshuffle(x, self.factor)
        return torch.sigmoid(self.norm(self.conv(x)))


class BlockLeaky(Block):
    def forward(self, x):
        if self.factor > 1:
            x = F.pixel_unshuffle(x, self.factor)
        return F.leaky_relu(self.norm(self.conv(x)), 0.1)


class BlockDetached(Block):
    def forward(self, x):
        if self.factor > 1:
            x = F.pixel_unshuffle(x, self.factor)
        return F.relu(self.norm(self.conv(x))).detach()


class BlockTuple(Block):
    def forward(self, x):
        if self.factor > 1:
            x = F.pixel_unshuffle(x, self.factor)
        return F.relu(self.norm(self.conv(x))), x


class BlockOwnNormalisation(Block):  # normalises with the unbiased variance, by hand
    def forward(self, x):
        if self.factor > 1:
            x = F.pixel_unshuffle(x, self.factor)
        y = self.conv(x)
        mean, var = y.mean((0, 2, 3), keepdim=True), y.var((0, 2, 3), keepdim=True)
        y = (y - mean) / torch.sqrt(var + self.norm.eps)
        return F.relu(y * self.norm.weight[None, :, None, None] + self.norm.bias[None, :, None, None])


class BlockRenamed(nn.Module):  # rewrote __init__ with other names
    def __init__(self, c_in, c_out, factor=2):
        super().__init__()
        self.factor = factor
        self.mix = nn.Conv2d(c_in * factor * factor, c_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        return F.relu(self.bn(self.mix(F.pixel_unshuffle(x, self.factor) if self.factor > 1 else x)))


@exercise("9.4")
def test_block_reference_passes():
    assert_passes(checks.check_pointwise_block, Block)


@exercise("9.4")
def test_block_stub_passes_through():
    assert_stub_passes_through(checks.check_pointwise_block, BlockStub)


@exercise("9.4")
@pytest.mark.parametrize("wrong, words", [
    (BlockReluFirst, ["ReLU before BatchNorm"]),
    (BlockNoRelu, ["no ReLU"]),
    (BlockNoNorm, ["BatchNorm is not applied"]),
    (BlockNormEval, ["running statistics", "eval"]),
    (BlockOwnS2dIJC, ["(i, j, c)", "pixel_unshuffle"]),
    (BlockOwnS2dCJI, ["(c, j, i)", "c·k² + i·k + j"]),
    (BlockPixelShuffle, ["pixel_shuffle"]),
    (BlockAvgPool, ["re:channel"]),
    (BlockConvFirst, ["re:channel"]),
    (BlockSigmoid, ["sigmoid"]),
    (BlockLeaky, ["negative values", "ReLU"]),
    (BlockDetached, ["autograd graph"]),
    (BlockTuple, ["tuple"]),
    (BlockRenamed, ["no parameter `conv.weight`"]),
])
def test_block_mistakes_named(wrong, words):
    assert_diagnoses(checks.check_pointwise_block, wrong, *words)


@exercise("9.4")
def test_block_unbiased_variance_rejected():
    with pytest.raises((CheckFailure, LearnerError)):
        checks.check_pointwise_block(BlockOwnNormalisation)


# ================================================================================================ Exercise 9.5
Head = SOLVED["PointwiseHead"]


class HeadStub(Head):
    def forward(self, x):
        raise NotImplementedError("Exercise 9.5: write the body of `forward`, then run the check cell below.")


class HeadSum(Head):
    def forward(self, x):
        return self.conv(x).sum(dim=(2, 3))


class HeadMax(Head):
    def forward(self, x):
        return self.conv(x).amax(dim=(2, 3))


class HeadKeepdim(Head):
    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3), keepdim=True)


class HeadAdaptivePool(Head):  # nn.AdaptiveAvgPool2d(1) without the flatten
    def forward(self, x):
        return F.adaptive_avg_pool2d(self.conv(x), 1)


class HeadSoftmax(Head):
    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3)).softmax(dim=1)


class HeadLogSoftmax(Head):
    def forward(self, x):
        return F.log_softmax(self.conv(x).mean(dim=(2, 3)), dim=-1)


class HeadRelu(Head):
    def forward(self, x):
        return F.relu(self.conv(x)).mean(dim=(2, 3))


class HeadChannelMean(Head):
    def forward(self, x):
        return self.conv(x).mean(dim=1)


class HeadFlatten(Head):
    def forward(self, x):
        return self.conv(x).flatten(1)


class HeadOneAxis(Head):
    def forward(self, x):
        return self.conv(x).mean(dim=2)


class HeadDetached(Head):
    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3)).detach()


class HeadPoolFirst(Head):  # the average and the 1×1 conv commute: right
    def forward(self, x):
        return self.conv(x.mean(dim=(2, 3), keepdim=True)).flatten(1)


@exercise("9.5")
def test_head_reference_passes():
    assert_passes(checks.check_pointwise_head, Head)


@exercise("9.5")
def test_head_pool_first_is_also_right():
    assert_passes(checks.check_pointwise_head, HeadPoolFirst)


@exercise("9.5")
def test_head_stub_passes_through():
    assert_stub_passes_through(checks.check_pointwise_head, HeadStub)


@exercise("9.5")
@pytest.mark.parametrize("wrong, words", [
    (HeadSum, ["sum over", "AVERAGES"]),
    (HeadMax, ["maximum"]),
    (HeadKeepdim, ["kept", "(B, n_classes)"]),
    (HeadAdaptivePool, ["kept"]),
    (HeadSoftmax, ["probabilities", "logits"]),
    (HeadLogSoftmax, ["log-probabilities"]),
    (HeadRelu, ["ReLU"]),
    (HeadChannelMean, ["shape"]),
    (HeadFlatten, ["shape"]),
    (HeadOneAxis, ["shape"]),
    (HeadDetached, ["autograd graph"]),
])
def test_head_mistakes_named(wrong, words):
    assert_diagnoses(checks.check_pointwise_head, wrong, *words)


# ================================================================================================ Exercise 9.6
def rule_stub(model):
    raise NotImplementedError("Exercise 9.6: write the body of `rule_violations`, then run the check cell below.")


def _has_own(module):
    return any(True for _ in module.parameters(recurse=False))


def rule_children_only(model):
    found = []
    for name, module in model.named_children():
        if isinstance(module, nn.Conv2d) and module.kernel_size != (1, 1):
            found.append(f"{name} has a {module.kernel_size} kernel")
        elif not isinstance(module, (nn.Conv2d, *ALLOWED_NORMS)) and _has_own(module):
            found.append(f"{name} ({type(module).__name__}) is not allowed")
    return found


def rule_first_kernel_axis(model):
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.kernel_size[0] != 1:
                found.append(f"{name}: kernel {module.kernel_size}")
        elif not isinstance(module, ALLOWED_NORMS) and _has_own(module):
            found.append(f"{name}: {type(module).__name__}")
    return found


def rule_integer_kernel(model):
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.kernel_size != 1:
                found.append(f"{name}: kernel {module.kernel_size}")
        elif not isinstance(module, ALLOWED_NORMS) and _has_own(module):
            found.append(f"{name}: {type(module).__name__}")
    return found


def rule_rejects_norms(model):
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.kernel_size != (1, 1):
                found.append(f"{name}: kernel {module.kernel_size}")
        elif _has_own(module):
            found.append(f"{name}: {type(module).__name__}")
    return found


def rule_convs_only(model):
    return [f"{name}: kernel {module.kernel_size}" for name, module in model.named_modules()
            if isinstance(module, nn.Conv2d) and module.kernel_size != (1, 1)]


def rule_convs_and_linear(model):
    return [f"{name} ({type(module).__name__})" for name, module in model.named_modules()
            if (isinstance(module, nn.Conv2d) and module.kernel_size != (1, 1)) or isinstance(module, nn.Linear)]


def rule_recursive_parameters(model):
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.kernel_size != (1, 1):
                found.append(f"{name}: kernel {module.kernel_size}")
        elif not isinstance(module, ALLOWED_NORMS) and any(True for _ in module.parameters()):
            found.append(f"{name}: {type(module).__name__}")
    return found


def rule_type_names_only(model):
    found = []
    for _, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.kernel_size != (1, 1):
                found.append(f"{type(module).__name__} with kernel {module.kernel_size}")
        elif not isinstance(module, ALLOWED_NORMS) and _has_own(module):
            found.append(f"{type(module).__name__} is not allowed")
    return found


def rule_boolean(model):
    return all(not isinstance(m, nn.Conv2d) or m.kernel_size == (1, 1) for m in model.modules())


def rule_raises(model):
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.kernel_size != (1, 1):
            raise ValueError(f"{name} breaks the rule")
    return []


def rule_modules_not_messages(model):
    return [module for module in model.modules() if isinstance(module, nn.Conv2d) and module.kernel_size != (1, 1)]


def rule_all_convs(model):  # any _ConvNd with every kernel axis 1 is allowed: Conv1d(kernel 1) slips through
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            if any(k != 1 for k in module.kernel_size):
                found.append(f"{name}: kernel {module.kernel_size}")
        elif not isinstance(module, ALLOWED_NORMS) and _has_own(module):
            found.append(f"{name}: {type(module).__name__}")
    return found


def rule_twice(model):
    found = rule_children_only(model)
    return found + SOLVED["rule_violations"](model)


def rule_batchnorm_only(model):
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.kernel_size != (1, 1):
                found.append(f"{name}: kernel {module.kernel_size}")
        elif not isinstance(module, nn.BatchNorm2d) and _has_own(module):
            found.append(f"{name}: {type(module).__name__}")
    return found


@exercise("9.6")
def test_rule_reference_passes():
    assert_passes(checks.check_rule_violations, SOLVED["rule_violations"])


@exercise("9.6")
def test_rule_stub_passes_through():
    assert_stub_passes_through(checks.check_rule_violations, rule_stub)


@exercise("9.6")
@pytest.mark.parametrize("wrong, words", [
    (rule_children_only, ["missed", "levels deep", "named_modules"]),
    (rule_first_kernel_axis, ["missed `body.stage.wide`", "whole tuple"]),
    (rule_integer_kernel, ["rejected", "not with the integer 1"]),
    (rule_rejects_norms, ["rejected", "allowed normalisation"]),
    (rule_convs_only, ["missed", "dense"]),
    (rule_convs_and_linear, ["missed `mixer`", "parameters of its own"]),
    (rule_recursive_parameters, ["rejected", "recurse=False"]),
    (rule_type_names_only, ["does not name the layer"]),
    (rule_boolean, ["list of strings"]),
    (rule_raises, ["ValueError"]),
    (rule_modules_not_messages, ["holds a Conv2d"]),
    (rule_all_convs, ["missed `along`", "Conv1d"]),
    (rule_twice, ["more than once"]),
    (rule_batchnorm_only, ["rejected", "GroupNorm", "allowed normalisation"]),
])
def test_rule_mistakes_named(wrong, words):
    assert_diagnoses(checks.check_rule_violations, wrong, *words)


def test_rule_models_are_what_they_say():
    """The check's models: the reference names exactly the listed offenders in each."""
    for label, model, offending in checks.rule_models():
        messages = SOLVED["rule_violations"](model)
        assert len(messages) == len(offending), label
        for name in offending:
            assert any(name in message for message in messages), (label, name)


def test_all_orders_of_space_to_depth():
    """The block check's hand-made space-to-depth is pixel_unshuffle exactly for the order (c, i, j)."""
    from utils.checks.minimalist.modules import _space_to_depth
    x = torch.randn(2, 3, 6, 4)
    for order in itertools.permutations(range(3)):
        same = torch.equal(_space_to_depth(x, 2, order), F.pixel_unshuffle(x, 2))
        assert same == (order == (0, 1, 2))


# ================================================================================================ fresh answers
# Ten wrong answers written after the checks were done. Before any tuning, 5 were named (fresh_i_j_c_by_cat,
# fresh_transposed_view, fresh_rule_batchnorm_family, fresh_rule_weight_shape, and fresh_field_backward_recursion
# with a directional message); the other five got a generic or misleading message and led to the readings tested
# here: a bias counted as 1, the bias as an extra input channel, a space-to-depth that mixes blocks (read from the
# locality of the output in eval mode), untracked running statistics, and the sum divided by one side only.
def fresh_i_j_c_by_cat(weight):
    C_out, C, k, _ = weight.shape
    return torch.cat([weight[:, :, i, j] for i in range(k) for j in range(k)], dim=1)[..., None, None]


def fresh_transposed_view(weight):
    return weight.view(weight.shape[0], -1, 1, 1).contiguous().transpose(0, 1)


def fresh_bias_as_one(c_in, c_out, height, width, bias=True):
    return c_in * c_out + int(bias), 2 * c_in * c_out * height * width


def fresh_bias_as_input_channel(c_in, c_out, height, width, bias=True):
    return c_in * c_out + (c_out if bias else 0), 2 * (c_in + int(bias)) * c_out * height * width


def fresh_field_backward_recursion(layers):  # the output-to-input recursion, run from the input
    side = 1
    for kernel, stride in layers:
        side = side * stride + (kernel - stride)
    return side


class FreshUnfoldNoPermute(Block):
    def forward(self, x):
        k = self.factor
        B, C, H, W = x.shape
        if k > 1:
            x = x.unfold(2, k, k).unfold(3, k, k).reshape(B, C * k * k, H // k, W // k)
        return F.relu(self.norm(self.conv(x)))


class FreshFunctionalBatchNorm(Block):
    def forward(self, x):
        if self.factor > 1:
            x = F.pixel_unshuffle(x, self.factor)
        return F.relu(F.batch_norm(self.conv(x), None, None, self.norm.weight, self.norm.bias, training=True))


class FreshSumOverHeight(Head):
    def forward(self, x):
        return self.conv(x).sum((2, 3)) / x.shape[2]


def fresh_rule_batchnorm_family(model):
    found = []
    for name, module in model.named_modules():
        if type(module) is nn.Conv2d:
            if module.kernel_size != (1, 1):
                found.append(f"{name}: {module.kernel_size} kernel")
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            continue
        elif list(module.parameters(recurse=False)):
            found.append(f"{name}: {type(module).__name__}")
    return found


def fresh_rule_weight_shape(model):
    return [f"{name} has a spatial kernel" for name, module in model.named_modules()
            if isinstance(getattr(module, "weight", None), torch.Tensor) and module.weight.dim() == 4
            and tuple(module.weight.shape[-2:]) != (1, 1)]


@pytest.mark.parametrize("check, wrong, words", [
    (checks.check_strided_to_pointwise, fresh_i_j_c_by_cat, ["(i, j, c)"]),
    (checks.check_strided_to_pointwise, fresh_transposed_view, ["the transpose"]),
    (checks.check_pointwise_cost, fresh_bias_as_one, ["bias as 1 parameter"]),
    (checks.check_pointwise_cost, fresh_bias_as_input_channel, ["one more input channel"]),
    (checks.check_receptive_field, fresh_field_backward_recursion, ["how layers combine"]),
    (checks.check_pointwise_block, FreshUnfoldNoPermute, ["mixes pixels of different blocks", "permute"]),
    (checks.check_pointwise_block, FreshFunctionalBatchNorm, ["never updated", "self.norm"]),
    (checks.check_pointwise_head, FreshSumOverHeight, ["divided by H alone", "H·W"]),
    (checks.check_rule_violations, fresh_rule_batchnorm_family, ["rejected", "GroupNorm"]),
    (checks.check_rule_violations, fresh_rule_weight_shape, ["missed `classifier`", "dense"]),
])
def test_fresh_mistakes_named(check, wrong, words):
    assert_diagnoses(check, wrong, *words)


def test_passing_checks_are_fast():
    import time
    for check, answer in ((checks.check_strided_to_pointwise, SOLVED["strided_to_pointwise"]),
                          (checks.check_pointwise_cost, SOLVED["pointwise_cost"]),
                          (checks.check_receptive_field, SOLVED["receptive_field"]),
                          (checks.check_pointwise_block, Block), (checks.check_pointwise_head, Head),
                          (checks.check_rule_violations, SOLVED["rule_violations"])):
        start = time.perf_counter()
        assert_passes(check, answer)
        assert time.perf_counter() - start < 1.0, check.__name__


# ================================================================================================ non-finite, dtype
def mapping_divides_by_zero(weight):
    C_out, C, k, _ = weight.shape
    return (weight / (weight - weight)).reshape(C_out, C * k * k, 1, 1)


class HeadDividesByZero(Head):
    def forward(self, x):
        maps = self.conv(x)
        return maps.sum((2, 3)) / (maps.shape[2] * maps.shape[3] - x.shape[2] * x.shape[3])


class BlockInDouble(Block):
    def forward(self, x):
        if self.factor > 1:
            x = F.pixel_unshuffle(x, self.factor)
        return F.relu(self.norm(self.conv(x))).double()


@pytest.mark.parametrize("check, wrong, words", [
    (checks.check_strided_to_pointwise, mapping_divides_by_zero, ["inf", "division by zero"]),
    (checks.check_pointwise_head, HeadDividesByZero, ["inf", "division by zero"]),
    (checks.check_pointwise_block, BlockInDouble, ["float64"]),
])
def test_nonfinite_and_dtype_named(check, wrong, words):
    assert_diagnoses(check, wrong, *words)

"""Seventh blind held-out set, Chapter 09 (the minimalist model): wrong answers written as a learner writes the cell.

Written without reading the checks or seeing any of their messages, from the student notebook's prompts, stubs and
check calls and from the reference solutions only. It aims at the mistakes learners make most often in this chapter:
the channel order of space-to-depth (eq. (9.3)) and its weight mapping (eq. (9.4)), the factor 2 and the bias in the
cost of eq. (9.5), the order of the updates in the receptive-field recursion (eq. (9.6)), the block's order of
operations, the head's pooling (eq. (9.2)), and the module walk of the rule check. Each answer holds one mistake.
"""
import numpy as np
import torch.nn as nn
import torch.nn.functional as F

from tests.heldout.report import Registry, solution_namespace

REF = solution_namespace("09_minimalist")

REGISTRY = Registry("09", {
    "9.1": ("check_strided_to_pointwise", "strided_to_pointwise"),
    "9.2": ("check_pointwise_cost", "pointwise_cost"),
    "9.3": ("check_receptive_field", "receptive_field"),
    "9.4": ("check_pointwise_block", "PointwiseBlock"),
    "9.5": ("check_pointwise_head", "PointwiseHead"),
    "9.6": ("check_rule_violations", "rule_violations"),
})
wrong = REGISTRY.wrong

ALLOWED_NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)  # as the learner's exercise cell 9.6 defines it


# ----- Exercise 9.1: a strided convolution as space-to-depth + 1×1 (eq. (9.4)) ----------------------------------

@wrong("9.1", "permute(0, 2, 3, 1) before the reshape: channels numbered (i, j, c), i·k·C + j·C + c, "
              "not c·k² + i·k + j",
       names=[r"\(i, ?j, ?c\)", r"(channel|\bc\b)[^.?]{0,40}(slowest|outermost|vary slowest|comes? first)",
              r"(no|without( a)?|needs? no|not need\w*( a)?|unnecessary|extra) permut", r"permut\w*[^.?]{0,40}(not needed|unnecessary|no permut|wrong order|\(c, ?i, ?j\))",
              r"c\s*[·*]?\s*k²\s*\+\s*i\s*[·*]?\s*k\s*\+\s*j[^.?]{0,30}(not|instead|rather)",
              r"i\s*[·*]?\s*k\s*[·*]?\s*C\s*\+\s*j\s*[·*]?\s*C\s*\+\s*c"])
def strided_to_pointwise_channels_last(weight):
    C_out, C, k, _ = weight.shape
    return weight.permute(0, 2, 3, 1).reshape(C_out, C * k * k, 1, 1)


@wrong("9.1", "transpose(2, 3) before the reshape: the block read column by column, channel c·k² + j·k + i",
       names=[r"(rows?|\bi\b)[^.?]{0,30}(and|with|/)\s*(the )?(columns?|\bj\b)[^.?]{0,30}(swap|transpos|exchang|revers|interchang)",
              r"(swap|exchang|transpos|interchang)\w*[^.?]{0,30}(rows? and columns?|i and j|height and width|H and W|\(i, ?j\))",
              r"transpos\w*[^.?]{0,30}(kernel|block|spatial|k\s*[×x]\s*k|window)", r"j\s*[·*]?\s*k\s*\+\s*i\b",
              r"(column|\bj\b)[^.?]{0,30}(fastest|innermost)[^.?]{0,30}(not|instead|rather)|column[- ]major"])
def strided_to_pointwise_transposed_block(weight):
    C_out, C, k, _ = weight.shape
    return weight.transpose(2, 3).reshape(C_out, C * k * k, 1, 1)


@wrong("9.1", "weight.flatten(1): the matrix A of shape (C_out, C·k²), without the two 1×1 kernel axes of a "
              "conv weight",
       names=[r"(two|2|trailing|last) (singleton |kernel |spatial |1\s*[×x]\s*1 )?(axes|dims|dimensions)",
              r"(four|4)[- ]?(D\b|dimensional|axes|dims)", r"(missing|forgot\w*|without|drop\w*|lacks?)[^.?]{0,30}(1\s*[×x,]\s*1|kernel (axes|dims|dimensions)|singleton)",
              r"(2|two)[- ]?(D\b|dimensional)[^.?]{0,30}(instead|not|rather|matrix)",
              r"\(C_out, ?C\s*[·*]?\s*k(²|\*\*\s*2|\s*[·*]\s*k), ?1, ?1\)[^.?]{0,30}(not|instead|rather|expected|needs?)"])
def strided_to_pointwise_flat_matrix(weight):
    return weight.flatten(1)


@wrong("9.1", "k hard-coded to 2 (C * 4 input channels): right for 2×2 kernels, a reshape error for any other k",
       names=[r"hard[- ]?cod", r"(assum|fixed)\w*[^.?]{0,30}(k\s*=\s*2|2\s*[×x]\s*2|factor( of)? 2|kernel size 2)",
              r"k\s*=\s*2\b[^.?]{0,40}(only|assum|fixed|always)", r"(read|take|get)\w* k from[^.?]{0,20}(the )?(weight|shape)",
              r"(any|other|every) (k\b|kernel size)[^.?]{0,30}(not only|than 2|fails?)"])
def strided_to_pointwise_k_is_two(weight):
    C_out, C = weight.shape[:2]
    return weight.reshape(C_out, C * 4, 1, 1)


# ----- Exercise 9.2: parameters and FLOPs of a 1×1 convolution (eq. (9.5)) --------------------------------------

@wrong("9.2", "bias counted per input channel: c_in·c_out + c_in instead of + c_out",
       names=[r"bias[^.?]{0,40}(one |a )?(per|each|for every) (output|out)\b", r"bias[^.?]{0,30}\bc_out\b", r"\bc_out\b[^.?]{0,20}bias",
              r"\bc_in\b[^.?]{0,30}(instead of|not|rather than)[^.?]{0,10}\bc_out\b",
              r"bias[^.?]{0,30}(c_in|input channels?)\b[^.?]{0,20}(instead|not|rather)"])
def pointwise_cost_bias_per_input(c_in, c_out, height, width, bias=True):
    parameters = c_in * c_out + (c_in if bias else 0)
    flops = 2 * c_in * c_out * height * width
    return parameters, flops


@wrong("9.2", "FLOPs = c_in·c_out·H·W: multiply-accumulates counted, not 2 FLOPs per MAC",
       names=[r"(factor|times) (of )?(2|two)\b", r"\b(2|two) FLOPs", r"\b(twice|half) (the|as many)[^.?]{0,20}(FLOPs|MACs|count)",
              r"multiply[- ]accumulates?[^.?]{0,40}(not|instead|rather|=|is|are|each)", r"\bMACs?\b[^.?]{0,30}(not|instead|rather|FLOPs)",
              r"multipl\w* and (an )?add"])
def pointwise_cost_macs(c_in, c_out, height, width, bias=True):
    parameters = c_in * c_out + (c_out if bias else 0)
    flops = c_in * c_out * height * width
    return parameters, flops


@wrong("9.2", "FLOPs add c_out·H·W for the bias additions, which eq. (9.5) and FlopCounterMode do not count",
       names=[r"bias[^.?]{0,40}(no|not|zero|nothing|free|n't)[^.?]{0,20}(FLOP|count)",
              r"(FLOP|count)\w*[^.?]{0,40}(no|not|nothing|zero)[^.?]{0,20}(for|from|of) (the )?bias",
              r"(don't|do not|never|doesn't|does not) count[^.?]{0,30}bias", r"FlopCounterMode[^.?]{0,60}bias|bias[^.?]{0,60}FlopCounterMode",
              r"c_out\s*[·*]\s*(H|height)\s*[·*]?\s*(W|width)"])
def pointwise_cost_bias_flops(c_in, c_out, height, width, bias=True):
    parameters = c_in * c_out + (c_out if bias else 0)
    flops = 2 * c_in * c_out * height * width
    if bias:
        flops += c_out * height * width
    return parameters, flops


@wrong("9.2", "FLOPs with height ** 2: the image assumed square, width never used",
       names=[r"square (image|input|picture)|assum\w*[^.?]{0,20}square|H\s*=\s*W\b|height\s*(\*\*\s*2|²)", r"\bwidth\b[^.?]{0,30}(ignored|unused|never|missing|instead|not used)",
              r"height\s*(\*\*\s*2|²|\s*[·*]\s*height)", r"(H|height)\s*(≠|!=|differs from)\s*(W|width)",
              r"(H|height) (and|by|×|x) (W|width)[^.?]{0,30}(differ|not equal|unequal)"])
def pointwise_cost_square_image(c_in, c_out, height, width, bias=True):
    parameters = c_in * c_out + (c_out if bias else 0)
    flops = 2 * c_in * c_out * height ** 2
    return parameters, flops


# ----- Exercise 9.3: the receptive field of a stack (eq. (9.6)) -------------------------------------------------

@wrong("9.3", "jump multiplied by the layer's stride before its own (k − 1) is added: ∏ over m ≤ l, not m < l",
       names=[r"(own|layer's|this layer's|its) stride[^.?]{0,40}(after|later|next|only|not|should not|must not|too early)",
              r"(includ\w*|count\w*|multipl\w*|appl\w*)[^.?]{0,40}(its|the layer's|layer l's|the same layer's) own stride",
              r"strides? (of|from) (the )?(layers? )?(before|earlier|previous|preceding)", r"\bm\s*(<|≤|<=)\s*l\b",
              r"(one|an extra) stride too (many|early|far)", r"(update|multipl)\w*[^.?]{0,30}(jump|stride)[^.?]{0,30}(before|first|too early)",
              r"(before|after) (adding|updating) (the )?(side|\(k\s*[−-]\s*1\))"])
def receptive_field_stride_first(layers):
    side, jump = 1, 1
    for kernel, stride in layers:
        jump *= stride
        side += (kernel - 1) * jump
    return side


@wrong("9.3", "side starts at 0: every field one pixel short, and an empty stack sees 0 pixels",
       names=[r"off[- ]by[- ]one", r"(start|begin)\w*[^.?]{0,30}(at|with|from) (1|one)\b",
              r"(empty stack|no layers?)[^.?]{0,30}(sees|is|=|should be|must be)[^.?]{0,10}(one|1|single) pixel",
              r"(one|1) (pixel )?(too small|short|less|fewer)", r"(missing|forgot\w*)[^.?]{0,20}(the )?(\+\s*1|1\s*\+|leading 1)"])
def receptive_field_starts_at_zero(layers):
    side, jump = 0, 1
    for kernel, stride in layers:
        side += (kernel - 1) * jump
        jump *= stride
    return side


@wrong("9.3", "1 + Σ (k_l − 1): the product of the earlier strides (the jump) left out",
       names=[r"(stride|jump)s?[^.?]{0,40}(ignored|missing|forgot\w*|never|not (used|multipl\w*|account\w*|taken))",
              r"(ignor|forg[eo]t|without|miss|omit|leav|left)\w*[^.?]{0,30}(stride|jump)",
              r"(product|∏)[^.?]{0,30}(of )?(the )?(earlier |previous |preceding )?strides?", r"input pixels? per step",
              r"(after|behind) a stride"])
def receptive_field_no_strides(layers):
    return 1 + sum(kernel - 1 for kernel, _ in layers)


@wrong("9.3", "np.prod of an empty list is the float 1.0, so the side is a numpy float64, not an int",
       names=[r"(return|be|is|as|an?)\s+(an? )?int(eger)?s?\b", r"\bfloat\b[^.?]{0,40}(not|instead|rather)[^.?]{0,20}\bint", r"numpy|np\."])
def receptive_field_numpy_float(layers):
    strides = [stride for _, stride in layers]
    return 1 + sum((kernel - 1) * np.prod(strides[:index]) for index, (kernel, _) in enumerate(layers))


# ----- Exercise 9.4: a 1×1-only block (eqs. (9.3), (9.1)) -------------------------------------------------------

@wrong("9.4", "ReLU before BatchNorm: conv → ReLU → BN instead of conv → BN → ReLU",
       names=[r"(ReLU|relu|activation)[^.?]{0,40}(before|after|ahead of)[^.?]{0,20}(BatchNorm|norm|BN)",
              r"(BatchNorm|norm\w*|BN)[^.?]{0,40}(before|after|ahead of)[^.?]{0,20}(ReLU|relu|activation)",
              r"order of (the )?(ReLU|norm|BN|BatchNorm|activation)", r"(ReLU|norm|BN|BatchNorm)[^.?]{0,30}\border\b",
              r"(swap|switch|revers|exchang)\w*[^.?]{0,30}(ReLU|norm|BN|BatchNorm)"])
class PointwiseBlockReluFirst(nn.Module):
    """s2d_k → 1×1 conv (no bias) → BatchNorm → ReLU: a k×k stride-k conv stage with 1×1 kernels only."""

    def __init__(self, c_in, c_out, factor=2):
        super().__init__()
        self.factor = factor
        self.conv = nn.Conv2d(c_in * factor * factor, c_out, kernel_size=1, bias=False)  # BatchNorm has the bias
        self.norm = nn.BatchNorm2d(c_out)

    def forward(self, x):
        if self.factor > 1:
            x = F.pixel_unshuffle(x, self.factor)
        return self.norm(F.relu(self.conv(x)))


@wrong("9.4", "F.pixel_shuffle (depth-to-space) instead of F.pixel_unshuffle (space-to-depth)",
       names=[r"pixel_unshuffle[^.?]{0,20}(not|instead of|rather than)[^.?]{0,10}pixel_shuffle",
              r"pixel_shuffle\b[^.?]{0,40}(instead|not|rather|invers|upsampl|other way|depth[- ]to[- ]space|opposite)",
              r"depth[- ]to[- ]space", r"(upsampl|enlarg|grow)\w*[^.?]{0,30}(instead|not|rather)[^.?]{0,20}(downsampl|shrink|reduc)",
              r"(inverse|opposite) (of|operation|direction)"])
class PointwiseBlockPixelShuffle(nn.Module):
    """s2d_k → 1×1 conv (no bias) → BatchNorm → ReLU: a k×k stride-k conv stage with 1×1 kernels only."""

    def __init__(self, c_in, c_out, factor=2):
        super().__init__()
        self.factor = factor
        self.conv = nn.Conv2d(c_in * factor * factor, c_out, kernel_size=1, bias=False)  # BatchNorm has the bias
        self.norm = nn.BatchNorm2d(c_out)

    def forward(self, x):
        if self.factor > 1:
            x = F.pixel_shuffle(x, self.factor)
        return F.relu(self.norm(self.conv(x)))


@wrong("9.4", "space-to-depth as a bare reshape(B, C·k², H/k, W/k), no permute: the channels are not k×k blocks",
       names=[r"(reshape|view)\w*[^.?]{0,40}(alone|only|without|not|isn't|is not|cannot)[^.?]{0,30}(space[- ]to[- ]depth|s2d|permut|block|pixel_unshuffle)",
              r"permut\w*[^.?]{0,30}(missing|forgot\w*|needed|required|necessary)", r"(missing|forgot\w*|without|no)[^.?]{0,15}permut",
              r"(block|k\s*[×x]\s*k|neighbou?r)[^.?]{0,40}(not|scrambl\w*|wrong|mix\w*|torn)", r"(contiguous|consecutive|adjacent) (rows|pixels|memory)",
              r"(not|isn't|is not)[^.?]{0,20}(the )?(space[- ]to[- ]depth|pixel_unshuffle)\b"])
class PointwiseBlockReshape(nn.Module):
    """s2d_k → 1×1 conv (no bias) → BatchNorm → ReLU: a k×k stride-k conv stage with 1×1 kernels only."""

    def __init__(self, c_in, c_out, factor=2):
        super().__init__()
        self.factor = factor
        self.conv = nn.Conv2d(c_in * factor * factor, c_out, kernel_size=1, bias=False)  # BatchNorm has the bias
        self.norm = nn.BatchNorm2d(c_out)

    def forward(self, x):
        if self.factor > 1:
            B, C, H, W = x.shape
            k = self.factor
            x = x.reshape(B, C * k * k, H // k, W // k)
        return F.relu(self.norm(self.conv(x)))


@wrong("9.4", "F.pixel_unshuffle(x, 2): the factor hard-coded to the default 2, self.factor ignored",
       names=[r"hard[- ]?cod", r"self\.factor\b[^.?]{0,30}(ignored|not used|unused|instead|never)", r"(use|ignor)\w*[^.?]{0,20}self\.factor",
              r"(always|fixed)[^.?]{0,20}(factor|k)\s*(=|of)?\s*2\b", r"(factor|k)\s*(=|of)\s*(4|1)\b[^.?]{0,40}(fail|wrong|break|differ|error)",
              r"(factor|k)\s*(=|of)\s*2\b[^.?]{0,40}(instead|rather|regardless|whatever|not)"])
class PointwiseBlockFactorTwo(nn.Module):
    """s2d_k → 1×1 conv (no bias) → BatchNorm → ReLU: a k×k stride-k conv stage with 1×1 kernels only."""

    def __init__(self, c_in, c_out, factor=2):
        super().__init__()
        self.factor = factor
        self.conv = nn.Conv2d(c_in * factor * factor, c_out, kernel_size=1, bias=False)  # BatchNorm has the bias
        self.norm = nn.BatchNorm2d(c_out)

    def forward(self, x):
        if self.factor > 1:
            x = F.pixel_unshuffle(x, 2)
        return F.relu(self.norm(self.conv(x)))


# ----- Exercise 9.5: the head, 1×1 to the classes then the global average (eq. (9.2)) ---------------------------

@wrong("9.5", "sum over the pixels instead of the mean: logits H·W times too large",
       names=[r"\bsum\w*[^.?]{0,40}(instead of|not|rather than)[^.?]{0,20}(mean|averag)", r"(mean|averag)\w*[^.?]{0,30}(instead of|not|rather than)[^.?]{0,20}sum",
              r"(H\s*[·*×x]?\s*W|HW|height\s*[·*×x]\s*width|number of pixels)[^.?]{0,30}(too large|times|factor)",
              r"(divid\w*|÷)[^.?]{0,20}(by )?(H\s*[·*]?\s*W|HW|the number of pixels)", r"grows? with (the )?(image|size|pixels|resolution)",
              r"1\s*/\s*\(?\s*H\s*[·*]?\s*W"])
class PointwiseHeadSum(nn.Module):
    """Network in Network's classifier: 1×1 conv to n_classes channels, then the global average over pixels."""

    def __init__(self, c_in, n_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(c_in, n_classes, kernel_size=1)

    def forward(self, x):
        return self.conv(x).sum(dim=(2, 3))


@wrong("9.5", "softmax over the classes applied to the logits: the head must return raw logits",
       names=[r"softmax[^.?]{0,40}(remove|drop|don't|do not|no\b|not|applied|already|loss|twice)", r"probabilit",
              r"(raw|unnormali[sz]ed) logits", r"(sum|add) (up )?to (one|1)\b", r"cross[- ]entropy[^.?]{0,30}(softmax|applies|already)"])
class PointwiseHeadSoftmax(nn.Module):
    """Network in Network's classifier: 1×1 conv to n_classes channels, then the global average over pixels."""

    def __init__(self, c_in, n_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(c_in, n_classes, kernel_size=1)

    def forward(self, x):
        return F.softmax(self.conv(x).mean(dim=(2, 3)), dim=1)


@wrong("9.5", "global max pooling (amax over the pixels) instead of the global average of eq. (9.2)",
       names=[r"\bmax\w*[^.?]{0,40}(instead of|not|rather than)[^.?]{0,20}(mean|averag)", r"(mean|averag)\w*[^.?]{0,30}(instead of|not|rather than)[^.?]{0,20}max",
              r"one pixel'?s? (vote|value)", r"(global )?max[- ]?pool", r"(largest|maximum|strongest) (pixel|value|response)"])
class PointwiseHeadMax(nn.Module):
    """Network in Network's classifier: 1×1 conv to n_classes channels, then the global average over pixels."""

    def __init__(self, c_in, n_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(c_in, n_classes, kernel_size=1)

    def forward(self, x):
        return self.conv(x).amax(dim=(2, 3))


@wrong("9.5", "adaptive_avg_pool2d(…, 1).squeeze(): the batch axis is squeezed away too when B = 1",
       names=[r"squeez\w*[^.?]{0,40}(batch|B\s*=\s*1|every (size-1|singleton)|all (size-1|singleton))",
              r"batch (axis|dimension|dim)[^.?]{0,30}(removed|dropped|squeezed|lost|gone|missing|disappear)",
              r"(drop|remov|squeez|lost|los)\w*[^.?]{0,30}batch (axis|dimension|dim)", r"\(n_classes,?\)[^.?]{0,30}(instead|not|rather)",
              r"flatten\(1\)|squeeze\(\s*(-1|\(2,\s*3\)|dim\s*=)|\[:,\s*:,\s*0,\s*0\]"])
class PointwiseHeadSqueeze(nn.Module):
    """Network in Network's classifier: 1×1 conv to n_classes channels, then the global average over pixels."""

    def __init__(self, c_in, n_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(c_in, n_classes, kernel_size=1)

    def forward(self, x):
        return F.adaptive_avg_pool2d(self.conv(x), 1).squeeze()


# ----- Exercise 9.6: a rule check that names the offending layer ------------------------------------------------

@wrong("9.6", "model.named_children(): one level only, so a 3×3 conv or Linear nested in a sub-block is never seen",
       names=[r"named_children|children\(\)", r"(one|single|first|top)[- ]level", r"nested",
              r"(descend\w*|recurs\w*)[^.?]{0,30}(submodule|module|layer|block)s?",
              r"named_modules\(\)[^.?]{0,30}(not|instead|rather)|(not|instead of|rather than)[^.?]{0,10}named_children",
              r"(inside|within|in) (a |the )?(sub-?block|submodule|inner|Sequential)"])
def rule_violations_children_only(model):
    found = []
    for name, module in model.named_children():
        if isinstance(module, nn.Conv2d):
            if tuple(module.kernel_size) != (1, 1):
                found.append(f"{name} ({type(module).__name__}) has a {module.kernel_size} kernel, not 1×1")
        elif isinstance(module, ALLOWED_NORMS):
            continue
        elif any(True for _ in module.parameters(recurse=False)):
            found.append(f"{name} ({type(module).__name__}) learns parameters but is not a 1×1 convolution")
    return found


@wrong("9.6", "module.kernel_size != 1: a tuple never equals the int 1, so every Conv2d, 1×1 included, is flagged",
       names=[r"kernel_size[^.?]{0,40}tuple", r"tuple[^.?]{0,30}(not|never|rather than)[^.?]{0,10}(an? )?(int|integer|1\b)",
              r"\(1, ?1\)[^.?]{0,40}(not|never|rather than|instead)[^.?]{0,10}(the )?(int|integer|1\b)", r"(int|integer) 1\b",
              r"(every|all|each|any) (1\s*[×x]\s*1 )?conv\w*[^.?]{0,30}(flagged|reported|rejected|violat)",
              r"1\s*[×x]\s*1 (conv\w* )?(is |was |are |were |gets? )?(wrongly )?(flagged|reported|rejected|listed)"])
def rule_violations_kernel_int(model):
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.kernel_size != 1:
                found.append(f"{name} ({type(module).__name__}) has a {module.kernel_size} kernel, not 1×1")
        elif isinstance(module, ALLOWED_NORMS):
            continue
        elif any(True for _ in module.parameters(recurse=False)):
            found.append(f"{name} ({type(module).__name__}) learns parameters but is not a 1×1 convolution")
    return found


@wrong("9.6", "parameters tested before the class: BatchNorm (γ, β) is reported although normalisation is allowed",
       names=[r"(BatchNorm|GroupNorm|LayerNorm|norm\w*( layers?)?)[^.?]{0,40}(flagged|reported|rejected|listed|counted)[^.?]{0,30}(but|though|allowed|should|not|wrongly)",
              r"(flag|report|reject|list)\w*[^.?]{0,20}(a |the |an? allowed )?(BatchNorm|GroupNorm|LayerNorm|normali[sz]ation)",
              r"ALLOWED_NORMS[^.?]{0,30}(not|never|ignored|unused|forgot)", r"(class|isinstance|type)[^.?]{0,30}before[^.?]{0,30}param",
              r"false (positive|violation)s?[^.?]{0,40}(BatchNorm|norm)", r"(BatchNorm|norm\w*)[^.?]{0,20}(is|are) allowed[^.?]{0,30}(but|yet)"])
def rule_violations_norm_flagged(model):
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if tuple(module.kernel_size) != (1, 1):
                found.append(f"{name} ({type(module).__name__}) has a {module.kernel_size} kernel, not 1×1")
        elif any(True for _ in module.parameters(recurse=False)):
            found.append(f"{name} ({type(module).__name__}) learns parameters but is not a 1×1 convolution")
    return found


@wrong("9.6", "module.parameters() without recurse=False: containers (and the model itself) reported for their "
              "children's parameters",
       names=[r"recurse\s*=\s*False", r"(its|their) own[^.?]{0,40}(not|rather|instead|only|children|descendants)",
              r"(container|Sequential|parent|root|whole model|the model itself|top[- ]level)[^.?]{0,40}(flagged|reported|rejected|listed|children'?s? param)",
              r"(children|submodules?|descendants?|child modules?)'?s? parameters", r"empty name|name \"\"|''"])
def rule_violations_recursive_parameters(model):
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if tuple(module.kernel_size) != (1, 1):
                found.append(f"{name} ({type(module).__name__}) has a {module.kernel_size} kernel, not 1×1")
        elif isinstance(module, ALLOWED_NORMS):
            continue
        elif any(True for _ in module.parameters()):
            found.append(f"{name} ({type(module).__name__}) learns parameters but is not a 1×1 convolution")
    return found


@wrong("9.6", "a list of forbidden types (Linear, non-1×1 Conv2d): Conv1d, Embedding, custom nn.Parameter layers pass",
       names=[r"(Conv1d|Embedding|custom|nn\.Parameter)[^.?]{0,40}(missed|not (flagged|reported|caught|detected|listed)|passed|slipped|allowed|accepted)",
              r"(any|every|other) (module|layer)[^.?]{0,30}(with|holding|that holds|owning) (its own )?parameters",
              r"(list|set) of (forbidden|banned) (types|classes|layers)|blacklist|hard[- ]?cod\w* (types|classes)",
              r"(missed|not (flagged|reported|caught|detected))[^.?]{0,40}(Conv1d|Embedding|custom|parameter)",
              r"(returned|gave|found|reported) (\[\]|nothing|no violations?)[^.?]{0,60}(Conv1d|Embedding|custom|nn\.Parameter|parameter)"])
def rule_violations_type_list(model):
    found = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and tuple(module.kernel_size) != (1, 1):
            found.append(f"{name} ({type(module).__name__}) has a {module.kernel_size} kernel, not 1×1")
        elif isinstance(module, nn.Linear):
            found.append(f"{name} (Linear) is a dense layer")
    return found

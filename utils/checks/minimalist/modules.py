"""Exercises 9.4 and 9.5: the block (s2d → 1×1 → BatchNorm → ReLU) and the head (1×1 → global average).

The learner's module gets the reference's parameters (seeded, BatchNorm's γ and β too), then both run forward and
backward in training mode and their outputs, gradients and running statistics are compared. Before the numbers,
the classic wrong orders are built from the same parameters and named when they match exactly: ReLU before
BatchNorm, no ReLU, no BatchNorm, BatchNorm with its running statistics, a hand-made space-to-depth with its
channels in another order (eq. (9.3)); for the head a sum or a max over pixels, a softmax, a kept 1×1."""
from __future__ import annotations

import copy
import itertools

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.checks.core import (
    Mistake,
    compare_runs,
    constant_factor,
    copy_parameters,
    fit_temperature,
    one_thread,
    run_module,
)
from utils.checks.minimalist.cases import EX_BLOCK, EX_HEAD, BlockCase, order_name

BLOCK_CASES = [BlockCase("B=4, c_in=3, c_out=5, k=2, 4×4", batch=4, c_in=3, c_out=5, factor=2, height=4, width=4),
               BlockCase("B=3, c_in=1, c_out=6, k=4, 8×8 (the first block)", batch=3, c_in=1, c_out=6, factor=4,
                         height=8, width=8),
               BlockCase("B=2, c_in=2, c_out=3, k=3, 6×9", batch=2, c_in=2, c_out=3, factor=3, height=6, width=9),
               BlockCase("B=5, c_in=4, c_out=3, k=1 (no space-to-depth), 3×5", batch=5, c_in=4, c_out=3, factor=1,
                         height=3, width=5),
               BlockCase("B=1, c_in=3, c_out=4, k=2, 4×6 (one image)", batch=1, c_in=3, c_out=4, factor=2, height=4,
                         width=6),
               BlockCase("B=3, c_in=2, c_out=4, k=2, 4×4, float64", dtype=torch.float64, batch=3, c_in=2, c_out=4,
                         factor=2, height=4, width=4)]
BLOCK_EQUATION = "the block: ReLU(BatchNorm(conv1×1(s2d_k(x)))), eqs. (9.3) and (9.1)"
IMAGE_AXES = ("B", "C", "H", "W")


class ReferenceBlock(nn.Module):
    def __init__(self, c_in, c_out, factor=2):
        super().__init__()
        self.factor = factor
        self.conv = nn.Conv2d(c_in * factor * factor, c_out, kernel_size=1, bias=False)
        self.norm = nn.BatchNorm2d(c_out)

    def forward(self, x):
        if self.factor > 1:
            x = F.pixel_unshuffle(x, self.factor)
        return F.relu(self.norm(self.conv(x)))


def _seed_parameters(module: nn.Module, exercise, case) -> None:
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            parameter.copy_(exercise.randn(*parameter.shape, key=(case.label, name), dtype=parameter.dtype))


def _space_to_depth(x: torch.Tensor, k: int, order: tuple[int, int, int]) -> torch.Tensor:
    """s2d_k with the channel axes (c, i, j) in ``order`` (0, 1, 2) is F.pixel_unshuffle."""
    B, C, H, W = x.shape
    blocks = x.reshape(B, C, H // k, k, W // k, k).permute(0, 1, 3, 5, 2, 4)  # (B, C, i, j, h, w)
    axes = [1 + a for a in order]
    return blocks.permute(0, *axes, 4, 5).reshape(B, C * k * k, H // k, W // k)


def block_mistakes(reference: ReferenceBlock, x: torch.Tensor, case: BlockCase) -> list[Mistake]:
    k = reference.factor
    weight, norm = reference.conv.weight, reference.norm

    def batch_norm(t, training=True):
        mean = torch.zeros(t.shape[1], dtype=t.dtype) if not training else None
        var = torch.ones(t.shape[1], dtype=t.dtype) if not training else None
        return F.batch_norm(t, mean, var, norm.weight, norm.bias, training=training, eps=norm.eps)

    s2d = F.pixel_unshuffle(x, k) if k > 1 else x
    conv = F.conv2d(s2d, weight)
    mistakes = [Mistake(batch_norm(F.relu(conv)), "you apply the ReLU before BatchNorm: the block is conv → "
                        "BatchNorm → ReLU, so the ReLU cuts the normalised values (and the output is ≥ 0)."),
                Mistake(batch_norm(conv), "there is no ReLU at the end: return F.relu(self.norm(self.conv(x)))."),
                Mistake(F.relu(conv), "BatchNorm is not applied: self.norm goes between the convolution and the "
                        "ReLU."),
                Mistake(F.relu(batch_norm(conv, training=False)), "BatchNorm uses its running statistics (eval "
                        "mode) during training: call self.norm(x) and let the module's own mode decide; do not call "
                        "self.norm.eval() or F.batch_norm(..., training=False)."),
                Mistake(torch.sigmoid(batch_norm(conv)), "you end with a sigmoid; the block ends with a ReLU."),
                Mistake(torch.tanh(batch_norm(conv)), "you end with tanh; the block ends with a ReLU.")]
    if k > 1:
        for order in itertools.permutations(range(3)):
            if order == (0, 1, 2):
                continue
            other = F.relu(batch_norm(F.conv2d(_space_to_depth(x, k, order), weight)))
            mistakes.append(Mistake(other, f"your space-to-depth orders the channels {order_name(order)}; eq. "
                                    f"(9.3) — F.pixel_unshuffle — orders them (c, i, j): channel c·k² + i·k + j "
                                    f"holds pixel (h·k + i, w·k + j) of channel c. Use F.pixel_unshuffle(x, k), "
                                    f"or permute the axes of the view (B, C, H/k, k, W/k, k) to (B, C, k, k, H/k, "
                                    f"W/k)."))
    return mistakes


@one_thread
def check_pointwise_block(PointwiseBlock) -> None:
    """Exercise 9.4: outputs, gradients and BatchNorm's running statistics against the reference block."""
    for case in BLOCK_CASES:
        reference = ReferenceBlock(case.c_in, case.c_out, case.factor).to(case.dtype)
        _seed_parameters(reference, EX_BLOCK, case)
        block = EX_BLOCK.call(PointwiseBlock, case.c_in, case.c_out, case.factor, what="PointwiseBlock(...)",
                              case=case)
        block = block.to(case.dtype)
        copy_parameters(reference, block, EX_BLOCK)
        block.train()
        x = EX_BLOCK.randn(case.batch, case.c_in, case.height, case.width, key=(case.label, "x"), dtype=case.dtype)
        got = run_module(EX_BLOCK, block, x, case=case)
        expected = run_module(EX_BLOCK, reference, x, grad_out=None, case=case)
        with torch.no_grad():
            mistakes = block_mistakes(reference, x, case)
        _untracked_statistics(got, expected, case)
        compare_runs(EX_BLOCK, got, expected, case=case, equation=BLOCK_EQUATION, output_mistakes=mistakes,
                     buffers=("norm.running_mean", "norm.running_var"), axes=IMAGE_AXES,
                     output_probes=[_nonnegative_probe, lambda out, block=block, x=x: _locality_probe(block, x, case)])
    EX_BLOCK.passed(f"{len(BLOCK_CASES)} blocks (k = 1 to 4, one image, float64): output, gradients and running "
                    f"statistics match s2d → 1×1 conv → BatchNorm → ReLU.")


def _untracked_statistics(got, expected, case: BlockCase) -> None:
    """Right output, but BatchNorm's running statistics still at their initial values: they were never tracked."""
    mean, var = got.buffers.get("norm.running_mean"), got.buffers.get("norm.running_var")
    if mean is None or var is None or got.output.shape != expected.output.shape or \
            got.output.dtype != expected.output.dtype or \
            not torch.allclose(got.output, expected.output, atol=1e-4, rtol=1e-3):
        return
    if torch.all(mean == 0) and torch.all(var == 1) and not torch.all(expected.buffers["norm.running_mean"] == 0):
        raise EX_BLOCK.fail("your output is right but BatchNorm's running statistics were never updated (still 0 "
                            "and 1): F.batch_norm(y, None, None, ...) computes the batch statistics without tracking "
                            "them, so eval mode would normalise with the wrong ones. Call self.norm(y).", case=case)


def _locality_probe(block: nn.Module, x: torch.Tensor, case: BlockCase) -> str | None:
    """In eval mode (BatchNorm a fixed affine map) output cell (h, w) of a right block depends on the k×k input
    block (h, w) alone. A space-to-depth that mixes blocks (a reshape without its permute) shows here."""
    k = case.factor
    if k == 1 or x.shape[2] // k < 2:
        return None
    probe = copy.deepcopy(block).eval()
    with torch.no_grad():
        try:
            before = probe(x)
            moved = x.clone()
            moved[:, :, k, 0] += 1.0  # a pixel of block (1, 0)
            changed = (probe(moved) - before).abs().sum(dim=(0, 1)) > 1e-6  # (H/k, W/k)
        except Exception:  # noqa: BLE001 - a probe never crashes; the comparison reports the learner's error
            return None
    if changed.dim() != 2 or not changed.any():
        return None
    cells = [tuple(cell) for cell in changed.nonzero().tolist()]
    if cells != [(1, 0)]:
        return (f"a pixel of the k×k input block (1, 0) changes your output at grid cells {cells[:4]}"
                + ("…" if len(cells) > 4 else "") + ", not at (1, 0) alone: your space-to-depth mixes pixels of "
                "different blocks. A reshape of x.unfold(…) or of a view (B, C, H/k, k, W/k, k) needs the permute "
                "to (B, C, k, k, H/k, W/k) first; F.pixel_unshuffle(x, k) does it right (eq. (9.3)).")
    return None


def _nonnegative_probe(got: torch.Tensor) -> str | None:
    if (got < 0).any():
        return ("your output has negative values, which a block ending in ReLU never has: apply F.relu (or "
                "torch.relu) last.")
    return None


# ============================================================================================== 9.5
HEAD_CASES = [BlockCase("B=3, c_in=6, 10 classes, 7×5", batch=3, c_in=6, c_out=10, factor=1, height=7, width=5),
              BlockCase("B=4, c_in=8, 10 classes, 4×4", batch=4, c_in=8, c_out=10, factor=1, height=4, width=4),
              BlockCase("B=2, c_in=3, 5 classes, 1×1 (the grid of the last block)", batch=2, c_in=3, c_out=5,
                        factor=1, height=1, width=1),
              BlockCase("B=1, c_in=4, 10 classes, 2×3 (one image)", batch=1, c_in=4, c_out=10, factor=1, height=2,
                        width=3),
              BlockCase("B=2, c_in=5, 3 classes, 3×3, float64", dtype=torch.float64, batch=2, c_in=5, c_out=3,
                        factor=1, height=3, width=3)]
HEAD_EQUATION = "the head: the average over pixels of conv1×1(x), (B, n_classes), eq. (9.2)"


class ReferenceHead(nn.Module):
    def __init__(self, c_in, n_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(c_in, n_classes, kernel_size=1)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


def head_mistakes(reference: ReferenceHead, x: torch.Tensor, case: BlockCase) -> list[Mistake]:
    maps = reference.conv(x)  # (B, n, H, W)
    if case.height * case.width == 1:
        return []  # one pixel: sum, mean and max agree
    return [Mistake(maps.sum(dim=(2, 3)), f"you sum over the H·W = {case.height * case.width} pixels; the head "
                    "AVERAGES them (global average pooling): .mean(dim=(2, 3)), so the logits do not grow with the "
                    "image."),
            Mistake(maps.amax(dim=(2, 3)), "you take the maximum over pixels; the head AVERAGES them (global "
                    "average pooling): .mean(dim=(2, 3))."),
            Mistake(F.relu(maps).mean(dim=(2, 3)), "you apply a ReLU to the class maps: the logits are the plain "
                    "average of the 1×1 convolution's output, and may be negative."),
            Mistake(maps.mean(dim=(2, 3)).softmax(-1), "you return probabilities (a softmax): return the logits; "
                    "F.cross_entropy applies the softmax itself."),
            Mistake(maps.mean(dim=(2, 3)).log_softmax(-1), "you return log-probabilities (log_softmax): return "
                    "the logits; F.cross_entropy applies the softmax itself.")]


@one_thread
def check_pointwise_head(PointwiseHead) -> None:
    """Exercise 9.5: logits (B, n_classes) and gradients against the reference head."""
    for case in HEAD_CASES:
        reference = ReferenceHead(case.c_in, case.c_out).to(case.dtype)
        _seed_parameters(reference, EX_HEAD, case)
        head = EX_HEAD.call(PointwiseHead, case.c_in, case.c_out, what="PointwiseHead(...)", case=case)
        head = head.to(case.dtype)
        copy_parameters(reference, head, EX_HEAD)
        x = EX_HEAD.randn(case.batch, case.c_in, case.height, case.width, key=(case.label, "x"), dtype=case.dtype)
        got = run_module(EX_HEAD, head, x, case=case)
        expected = run_module(EX_HEAD, reference, x, case=case)
        with torch.no_grad():
            mistakes = head_mistakes(reference, x, case)
            logits = expected.output
        if got.output.shape == (case.batch, case.c_out, 1, 1):
            raise EX_HEAD.fail(f"your logits have shape {tuple(got.output.shape)}: the pooled 1×1 axes are kept. "
                               f"Return (B, n_classes): .mean(dim=(2, 3)) without keepdim (or .flatten(1)).",
                               case=case)
        probes = [lambda out, logits=logits: _softmax_probe(out, logits),
                  lambda out, logits=logits: _count_probe(out, logits, case)]
        compare_runs(EX_HEAD, got, expected, case=case, equation=HEAD_EQUATION, output_mistakes=mistakes,
                     output_probes=probes, axes=("B", "n_classes"))
    EX_HEAD.passed(f"{len(HEAD_CASES)} heads (1×1 grids, one image, float64): logits = the pixel average of the "
                   f"1×1 convolution, (B, n_classes), and their gradients.")


def _count_probe(got: torch.Tensor, logits: torch.Tensor, case: BlockCase) -> str | None:
    """Logits a constant multiple of the average: the sum divided by the wrong count of pixels."""
    if got.shape != logits.shape or case.height == case.width:
        return None
    factor = constant_factor(got.detach().double(), logits.double())
    if factor is None:
        return None
    H, W = case.height, case.width
    readings = {H * W: "the sum over pixels, not divided", W: "the sum divided by H alone",
                H: "the sum divided by W alone", 1 / H: "the average divided by H once more",
                1 / W: "the average divided by W once more"}
    for value, what in readings.items():
        if abs(factor - value) < 1e-3 * abs(value):
            return (f"your logits are {factor:.4g} × the average over pixels — {what}: divide the sum by H·W = "
                    f"{H * W}, or use .mean(dim=(2, 3)).")
    return None


def _softmax_probe(got: torch.Tensor, logits: torch.Tensor) -> str | None:
    if got.shape != logits.shape or not ((got > 0).all() and torch.allclose(got.sum(-1), torch.ones_like(got[:, 0]))):
        return None
    temperature = fit_temperature(got, logits)
    return ("your outputs are probabilities (each row sums to 1" +
            (f", a softmax of {temperature:.3g} × the logits" if temperature else "") +
            "): return the logits; F.cross_entropy applies the softmax itself.")

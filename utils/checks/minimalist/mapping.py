"""Exercise 9.1: the weight of a k×k stride-k convolution rewritten for space-to-depth + 1×1 (eq. (9.4)).

Beyond comparing with the reshape, the check *reads* the learner's mapping: the entries of V are distinct, so each
entry of the returned weight is traced back to the (o, c, i, j) of V it holds, and the channel index n is fitted
as n = a·c + b·i + d·j. A permuted order of (c, i, j), a transposed or flipped kernel, a transposed weight or a
lost trailing 1×1 is then said in the terms of eq. (9.3)."""
from __future__ import annotations

import itertools

import torch

from utils.checks.core import one_thread
from utils.checks.minimalist.cases import EX_MAPPING, WeightCase, order_name

CASES = [WeightCase("C_out=4, C=3, k=2", c_out=4, c=3, k=2),
         WeightCase("C_out=3, C=4, k=2 (C = k²)", c_out=3, c=4, k=2),
         WeightCase("C_out=2, C=2, k=3", c_out=2, c=2, k=3),
         WeightCase("C_out=5, C=1, k=4 (one input channel)", c_out=5, c=1, k=4),
         WeightCase("C_out=3, C=2, k=1 (no space-to-depth)", c_out=3, c=2, k=1),
         WeightCase("C_out=2, C=3, k=2, float64", dtype=torch.float64, c_out=2, c=3, k=2)]
EQUATION = "eq. (9.4): A[o, c·k² + i·k + j] = V[o, c, i, j]"


def reference(weight: torch.Tensor) -> torch.Tensor:
    C_out, C, k, _ = weight.shape
    return weight.reshape(C_out, C * k * k, 1, 1)


def _sources(got: torch.Tensor, weight: torch.Tensor) -> torch.Tensor | None:
    """For each entry of ``got``, the flat index of the entry of ``weight`` it equals; None when some entry is not
    an entry of ``weight`` (computed, scaled, mixed)."""
    flat = weight.detach().flatten()
    diff = (got.detach().flatten()[:, None].to(flat.dtype) - flat[None, :]).abs()
    best = diff.min(dim=1)
    if not bool((best.values <= 1e-6 * flat.abs().max()).all()):
        return None
    return best.indices


def mapping_reading(got: torch.Tensor, weight: torch.Tensor, case: WeightCase) -> str | None:
    """What the learner's channel n holds, read from the values: a named order, or the fitted formula."""
    C_out, C, k = case.c_out, case.c, case.k
    sources = _sources(got, weight)
    if sources is None:
        return None
    o, rest = sources // (C * k * k), sources % (C * k * k)
    c, i, j = rest // (k * k), (rest // k) % k, rest % k
    if got.numel() == C_out * C * k * k and got.dim() >= 2 and got.shape[0] == C * k * k and got.shape[1] == C_out \
            and C_out != C * k * k:
        return (f"your weight has shape {tuple(got.shape)}: (C·k², C_out), the transpose. PyTorch stores a "
                f"convolution's weight as (out_channels, in_channels, kH, kW), so A is (C_out, C·k², 1, 1) "
                f"({EQUATION}).")
    if got.shape[0] != C_out or got.numel() != C_out * C * k * k:
        return None
    rows = torch.arange(C_out).repeat_interleave(got.numel() // C_out)
    n = torch.arange(got.numel() // C_out).repeat(C_out)
    if not torch.equal(o, rows):
        if torch.equal(o.view(C_out, -1), o.view(C_out, -1)[:, :1].expand(C_out, got.numel() // C_out)):
            return None
        return (f"your output channel o does not hold V[o] alone: the entries of V's output channels are mixed "
                f"across rows (a transpose or a reshape before a permute). Row o of A must hold V[o, :, :, :] "
                f"({EQUATION}).")
    if k == 1:
        return None
    for order in itertools.permutations(range(3)):
        sizes = [(C, k, k)[a] for a in order]
        coords = [(c, i, j)[a] for a in order]
        index = (coords[0] * sizes[1] + coords[1]) * sizes[2] + coords[2]
        if torch.equal(index, n) and order != (0, 1, 2):
            if order == (0, 2, 1):
                return (f"your channel c·k² + j·k + i holds V[o, c, i, j]: the kernel's rows and columns are "
                        f"exchanged (a transposed kernel, V.transpose(2, 3)). pixel_unshuffle puts the row i before "
                        f"the column j: channel c·k² + i·k + j, eq. (9.3). Reshape V as it is ({EQUATION}).")
            return (f"your channels follow the order {order_name(order)}: channel "
                    f"{_formula(order, C, k)} holds V[o, c, i, j]. pixel_unshuffle orders its channels (c, i, j) — "
                    f"c·k² + i·k + j, the channel slowest (eq. (9.3)) — which is the order V already has: "
                    f"weight.reshape(C_out, C·k², 1, 1), no permute ({EQUATION}).")
    flipped = (c * k * k + (k - 1 - i) * k + (k - 1 - j))
    if torch.equal(flipped, n):
        return (f"your kernel is flipped (channel c·k² + (k−1−i)·k + (k−1−j) holds V[o, c, i, j]): PyTorch's conv2d "
                f"is a cross-correlation, with no flip, and so is the strided convolution here ({EQUATION}).")
    return None


def _formula(order, C, k) -> str:
    sizes = {"c": C, "i": k, "j": k}
    names = [("c", "i", "j")[a] for a in order]
    return f"{names[0]}·{sizes[names[1]] * sizes[names[2]]} + {names[1]}·{sizes[names[2]]} + {names[2]}"


@one_thread
def check_strided_to_pointwise(strided_to_pointwise) -> None:
    """Exercise 9.1: the learner's weight mapping against the reshape of eq. (9.4), on weights of several sizes."""
    for case in CASES:
        weight = EX_MAPPING.randn(case.c_out, case.c, case.k, case.k, key=case.label, dtype=case.dtype)
        got = EX_MAPPING.call(strided_to_pointwise, weight, case=case)
        expected = reference(weight)
        if not isinstance(got, torch.Tensor):
            raise EX_MAPPING.fail(f"returned a {type(got).__name__}, not a tensor: return the 1×1 convolution's "
                                  f"weight, shape (C_out, C·k², 1, 1) = {tuple(expected.shape)}.", case=case)
        if got.shape == expected.shape[:2] and torch.allclose(got.detach().to(expected.dtype), expected[..., 0, 0]):
            raise EX_MAPPING.fail(f"your numbers are right but your weight is {tuple(got.shape)}, a matrix: an "
                                  f"nn.Conv2d weight has the kernel's two axes too, (C_out, C·k², 1, 1) — add "
                                  f"[..., None, None] or reshape to 4 axes.", case=case)
        reading = mapping_reading(got, weight, case) if got.shape != expected.shape or \
            not torch.allclose(got.detach().to(expected.dtype), expected) else None
        if reading:
            raise EX_MAPPING.fail(reading, case=case, name="weight")
        EX_MAPPING.compare(got, expected, case=case, equation=EQUATION, name="weight",
                           factors={"k²": case.k ** 2, "k": case.k, "C": case.c, "C·k²": case.c * case.k ** 2},
                           axes=("C_out", "C·k²", "1", "1"))
    EX_MAPPING.passed(f"{len(CASES)} weights (k = 1 to 4, C = 1 to 4, float32 and float64): space-to-depth + your "
                      f"1×1 weight equals the k×k stride-k convolution, eq. (9.4).")

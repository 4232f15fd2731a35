"""Exercise 1.4's cases, its reference (with the classic mistakes as options) and the module's structure."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from einops import rearrange

from utils.checks.attention.common import EX_HEADS, SHIFT, ChapterCase, broadcast_sizes
from utils.checks.attention.quantities import HEADS, HEADS_PRODUCTS
from utils.checks.attention.roles import Roles
from utils.checks.core import (
    named_sizes_in,
)


@dataclass(frozen=True)
class HeadsCase(ChapterCase):
    B: int = 1
    T: int = 1
    D: int = 8
    H: int = 1
    causal: bool = False
    padded: int = 0  # the last `padded` keys of the second sequence are padding
    score_shift: float = 0.0  # added to every score of every head (through q's and k's first feature of each head)

    @property
    def layout(self) -> str:
        return "x (B, T, D)"

    @property
    def roles(self) -> Roles:
        return Roles(HEADS, HEADS_PRODUCTS, self.sizes)

    @property
    def sizes(self) -> dict[str, int]:
        return {"B": self.B, "T": self.T, "D": self.D, "H": self.H, "Dh": self.D // self.H}

    def own_reading(self, error: BaseException, line: str) -> str | None:
        if broadcast_sizes(error) and "mask" in line:
            return ("The scores are (B, H, T, T). key_padding_mask is (B, T), True for a padded key: to hide keys "
                    "(the last axis) view it as key_padding_mask[:, None, None, :], (B, 1, 1, T); the causal mask "
                    "(T, T) broadcasts as it is." + named_sizes_in(str(error), self.sizes))
        product = re.search(r"\((\d+)x(\d+) and (\d+)x(\d+)\)", str(error))
        Dh = self.D // self.H
        if product and [int(n) for n in product.groups()] == [self.B * self.H * self.T, Dh, self.D, self.D] \
                and Dh != self.D:
            return (f"self.out, a Linear layer D → D, got the heads before they were merged, (B, H, T, Dh) "
                    f"({self.B}, {self.H}, {self.T}, {Dh}): W_O mixes the concatenated heads (eq. (1.10)). Merge them "
                    f"first, rearrange(heads, 'B H T Dh -> B T (H Dh)'), then apply self.out once.")
        return None

    def key_padding_mask(self) -> torch.Tensor | None:
        if not self.padded:
            return None
        padding = torch.zeros(self.B, self.T, dtype=torch.bool)
        padding[1, self.T - self.padded:] = True  # True = padding, nn.MultiheadAttention's convention
        return padding


HEADS_CASES = [
    HeadsCase("B=2, T=5, D=24, H=3 (Dh=8)", B=2, T=5, D=24, H=3),
    HeadsCase("causal, B=2, T=6, D=24, H=3", B=2, T=6, D=24, H=3, causal=True),
    HeadsCase("key padding (2 padded keys), B=2, T=5, D=24, H=3", B=2, T=5, D=24, H=3, padded=2),
    HeadsCase("causal + key padding, B=2, T=6, D=24, H=3", B=2, T=6, D=24, H=3, causal=True, padded=2),
    HeadsCase("T=1, D=8, H=2", B=1, T=1, D=8, H=2, causal=True),
    HeadsCase("one head, B=1, T=4, D=8", B=1, T=4, D=8, H=1),
    HeadsCase("causal, D=16, H=4 (Dh=4=√D)", B=2, T=4, D=16, H=4, causal=True),
    HeadsCase("causal, D=12, H=3, T=6", B=2, T=6, D=12, H=3, causal=True),
    HeadsCase("float64, causal + key padding, every score ≈ −2·10⁴", torch.float64, B=2, T=5, D=24, H=3,
              causal=True, padded=2, score_shift=SHIFT),
]


def shift_every_head(module, case: HeadsCase) -> None:
    """Set q's and k's first feature of every head to ±α whatever the token, so that every score of every head
    gains α·(−α)/√Dh = score_shift: the right output does not change (a softmax ignores a shift of its row)."""
    D, Dh = case.D, case.D // case.H
    alpha = math.sqrt(abs(case.score_shift) * math.sqrt(Dh))
    with torch.no_grad():
        for h in range(case.H):
            for row, value in ((h * Dh, alpha), (D + h * Dh, math.copysign(alpha, case.score_shift))):
                module.qkv.weight[row] = 0.0
                module.qkv.bias[row] = value


def reference_multi_head(x, qkv: torch.nn.Linear, out: torch.nn.Linear, n_heads: int, causal=False,
                         key_padding_mask=None, *, split="B T (H Dh) -> B H T Dh",
                         merge="B H T Dh -> B T (H Dh)", scale_by="head", project=True, order=(0, 1, 2),
                         causal_diagonal=0, causal_upper=False, pad_queries=False, invert_padding=False,
                         masks_or=False):
    """Multi-head self-attention; the keyword arguments build the classic mistakes the check recognises."""
    B, T, D = x.shape
    parts = qkv(x).chunk(3, dim=-1)  # 3 × (B, T, D)
    if split == "reshape":  # (B, T, D) reshaped straight to (B, H, T, Dh), no axis moved: a classic mistake
        q, k, v = (parts[i].reshape(B, n_heads, T, D // n_heads) for i in order)
    else:
        q, k, v = (rearrange(parts[i], split, H=n_heads) for i in order)  # (B, H, T, Dh)
    d = {"model": D, "head": D // n_heads, "none": 1}[scale_by]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (B, H, T, T)
    allowed = allowed_mask(B, T, causal, key_padding_mask, causal_diagonal=causal_diagonal, causal_upper=causal_upper,
                       pad_queries=pad_queries, invert_padding=invert_padding, masks_or=masks_or)
    weights = scores.masked_fill(~allowed, -math.inf).softmax(dim=-1)
    heads = (weights @ v).reshape(B, T, D) if merge == "reshape" else rearrange(weights @ v, merge)  # (B, T, D)
    return out(heads) if project else heads


def allowed_mask(B, T, causal, key_padding_mask, *, causal_diagonal=0, causal_upper=False, pad_queries=False,
             invert_padding=False, masks_or=False) -> torch.Tensor:
    """(B, 1, T, T) bool, True = may attend, from the causal flag and nn.MultiheadAttention's key_padding_mask."""
    allowed = torch.ones(T, T, dtype=torch.bool)
    if causal:
        allowed = allowed.triu(1 - causal_diagonal) if causal_upper else allowed.tril(causal_diagonal)
    allowed = allowed.expand(B, 1, T, T)
    if key_padding_mask is not None:
        keep = key_padding_mask if invert_padding else ~key_padding_mask  # (B, T): True = a real token
        keep = keep[:, None, :, None] if pad_queries else keep[:, None, None, :]
        allowed = (allowed | keep) if masks_or else (allowed & keep)  # masks_or: a key either one allows
    return allowed


def copy_to_library(module, n_heads: int) -> torch.nn.MultiheadAttention:
    """nn.MultiheadAttention with the learner's weights: qkv packs [W_Q; W_K; W_V] like in_proj_weight."""
    d_model = module.qkv.in_features
    library = torch.nn.MultiheadAttention(d_model, n_heads, batch_first=True).to(module.qkv.weight.dtype)
    with torch.no_grad():
        library.in_proj_weight.copy_(module.qkv.weight)  # rows: [W_q; W_k; W_v]
        library.in_proj_bias.copy_(module.qkv.bias)
        library.out_proj.weight.copy_(module.out.weight)
        library.out_proj.bias.copy_(module.out.bias)
    return library.eval()


def structure_of_module(module, case: HeadsCase) -> None:
    """The check copies weights through `qkv` and `out`: they must be the given Linear layers."""
    qkv, out = getattr(module, "qkv", None), getattr(module, "out", None)
    if not isinstance(qkv, torch.nn.Linear) or not isinstance(out, torch.nn.Linear) or qkv.bias is None \
            or out.bias is None:
        raise EX_HEADS.fail("keep the given __init__: the check copies weights through `self.qkv` (nn.Linear D → 3D) "
                            "and `self.out` (nn.Linear D → D).", case=case)
    D = case.D
    if tuple(qkv.weight.shape) != (3 * D, D) or tuple(out.weight.shape) != (D, D):
        raise EX_HEADS.fail(f"self.qkv must map D → 3D and self.out D → D (D = {D}): yours have weights of shape "
                            f"{tuple(qkv.weight.shape)} and {tuple(out.weight.shape)}; keep the given __init__.",
                            case=case)

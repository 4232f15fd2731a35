"""Exercise 1.4 — which tokens each output depends on, read as the mask the learner's module really applies."""
from __future__ import annotations

import itertools
from typing import Callable

import torch

from utils.checks.attention.common import EX_HEADS, overflow_text
from utils.checks.attention.heads import HeadsCase, allowed_mask


def token_dependence(module, x, kwargs) -> torch.Tensor | None:
    """(B, T, B, T): how much the output of token t of sequence b moves when token s of sequence b' is nudged,
    relative to the output's size; None when the module cannot be run again."""
    B, T, D = x.shape
    nudge = EX_HEADS.randn(D, key="nudge", dtype=x.dtype)
    try:
        with torch.no_grad():
            base = module(x.clone(), **kwargs)
            if not isinstance(base, torch.Tensor) or base.shape != x.shape or not torch.isfinite(base).all():
                return None
            size = base.abs().max().clamp_min(1e-12)
            strength = torch.zeros(B, T, B, T, dtype=torch.float64)
            for b in range(B):
                for s in range(T):
                    moved = x.clone()
                    moved[b, s] += nudge
                    out = module(moved, **kwargs)
                    if not isinstance(out, torch.Tensor) or out.shape != base.shape:
                        return None
                    strength[:, :, b, s] = ((out - base).abs().amax(-1) / size).double()
    except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
        return None
    return strength


def mask_candidates(case: HeadsCase, pad) -> dict[tuple[str, str, str], torch.Tensor]:
    """(B, T, T) "may attend" patterns made of the case's masks, right and wrong, keyed by (causal part, padding
    part, how they are combined)."""
    B, T = case.B, case.T
    ones = torch.ones(B, T, T, dtype=torch.bool)
    causal = {"none": ones, "tril": ones.tril(), "triu": ones.triu(), "tril(-1)": ones.tril(-1),
              "triu(1)": ones.triu(1), "tril(1)": ones.tril(1)}
    padding = {"none": ones}
    if pad is not None:
        padding.update({"keys": ~pad[:, None, :].expand(B, T, T), "inverted": pad[:, None, :].expand(B, T, T),
                        "queries": ~pad[:, :, None].expand(B, T, T)})
    found = {}
    for (c_name, c_mask), (p_name, p_mask) in itertools.product(causal.items(), padding.items()):
        found[(c_name, p_name, "&")] = c_mask & p_mask
        if c_name != "none" and p_name != "none":
            found[(c_name, p_name, "|")] = c_mask | p_mask
    return found


def _wrong_parts(parts: tuple[str, str, str], case: HeadsCase) -> int:
    """How many of a candidate's parts differ from the right ones."""
    right = ("tril" if case.causal else "none", "keys" if case.padded else "none", "&")
    unasked = (not case.causal and parts[0] != "none") + (not case.padded and parts[1] != "none")
    return sum(a != b for a, b in zip(parts, right)) + unasked  # a mask nobody asked for is the less likely


def _matching_mask(matches: Callable[[torch.Tensor], bool], case: HeadsCase, pad, *,
                   diagonal: bool = True) -> str | None:
    """The reading of the candidate mask that ``matches`` (fewest wrong parts), or None when none matches, or
    when candidates with as few wrong parts say different things. ``diagonal=False``: leave out the causal masks
    that differ from others only on the diagonal (what token dependence cannot see: a token always depends on
    itself)."""
    found = [(parts, _wrong_parts(parts, case)) for parts, mask in mask_candidates(case, pad).items()
             if (diagonal or parts[0] not in ("triu(1)", "tril(-1)")) and matches(mask)]
    found = [(parts, n) for parts, n in found if n > 0]
    if not found:
        return None
    fewest = min(n for _, n in found)
    messages = {mask_parts_message(parts, case) for parts, n in found if n == fewest}
    return messages.pop() if len(messages) == 1 else None


def mask_parts_message(parts: tuple[str, str, str], case: HeadsCase) -> str:
    """What is wrong with a (causal part, padding part, combination) against the right one."""
    causal_part, padding_part, combination = parts
    said = []
    if case.causal and causal_part == "none":
        said.append("the causal mask is missing: with causal=True token i must not see later tokens (j > i)")
    if not case.causal and causal_part != "none":
        said.append("you applied a causal mask although causal=False: every token may attend to every other")
    if causal_part == "triu":
        said.append("your causal mask is the upper triangle (triu): token i attends to j ≥ i, itself and the "
                    "future, and not to the past. 'May attend' is the lower triangle, "
                    "torch.ones(T, T, dtype=torch.bool).tril() (key j ≤ query i)")
    if causal_part == "triu(1)":
        said.append("your causal mask is inverted: it is True on the future (triu(1), the pairs to forbid), but "
                    "the mask means 'may attend': its complement, torch.ones(T, T, dtype=torch.bool).tril()")
    if causal_part == "tril(-1)":
        said.append("your causal mask hides the diagonal too: a token may attend to itself, torch.tril with "
                    "diagonal=0")
    if causal_part == "tril(1)":
        said.append("your causal mask lets each token see the next one too (tril(1)): a token may attend to "
                    "itself and earlier tokens, tril() with diagonal=0")
    if case.padded and padding_part == "none":
        said.append("padded keys are attended: key_padding_mask was not applied")
    if padding_part == "inverted":
        said.append("key_padding_mask is inverted: it is True for a padded key to ignore (nn.MultiheadAttention's "
                    "convention), so the keys that may be attended are ~key_padding_mask")
    if padding_part == "queries":
        said.append("you masked padded *queries* (rows) instead of padded *keys* (columns): "
                    "~key_padding_mask[:, None, None, :] hides keys, the last axis of the (B, H, T, T) scores")
    if combination == "|":
        said.append("you combined the two masks with | (or): a key may be attended only if both masks allow it, "
                    "causal & ~key_padding_mask")
    return "; ".join(said) + " (eq. (1.2))."


def dependence_message(strength: torch.Tensor, case: HeadsCase, pad, *, fallback: bool = False) -> str | None:
    """Compare which tokens each output depends on with what the masks allow (a token always depends on itself,
    through its query). First (``fallback=False``) only what the pattern says for sure: sequences that mix,
    tokens that do not mix at all, or a pattern that is exactly a known wrong mask; then (``fallback=True``) the
    first pair that depends where it must not, or does not where it may."""
    B, T = case.B, case.T
    allowed = allowed_mask(B, T, case.causal, pad)[:, 0]  # (B, T, T)
    eye = torch.eye(T, dtype=torch.bool)
    index = torch.arange(B)
    within = strength[index, :, index, :]  # (B, T, T): sequence b's outputs against its own tokens
    felt = within > 1e-6
    expected = allowed | eye
    others = strength.clone()
    others[index, :, index, :] = 0
    if not fallback and (others > 1e-6).any():
        b, t, b2, s = (int(i) for i in (others > 1e-6).nonzero()[0])
        return (f"the output of token {t} of sequence {b} changes when token {s} of sequence {b2} changes: "
                f"sequences of a batch must not mix. A reshape or rearrange moved the batch axis B into the "
                f"tokens or the heads: split with rearrange(t, 'B T (H Dh) -> B H T Dh') and merge with "
                f"'B H T Dh -> B T (H Dh)' (eq. (1.10)).")
    if torch.equal(felt, expected):
        return None
    reference = within[expected & ~eye]
    strong = within > 1e-3 * reference.median() if reference.numel() else felt
    if not fallback:
        if (felt & ~strong).any():
            return None  # some dependence is weak (a finite fill?): no known mask explains it, the fallback says so
        if torch.equal(felt, eye.expand_as(felt)):
            return ("each token's output depends only on that token's own input: your attention does not mix "
                    "tokens. The scores of each head must be (B, H, T, T), query tokens against key tokens: move the "
                    "heads next to the batch axis, rearrange(t, 'B T (H Dh) -> B H T Dh') (not 'B T H Dh', which "
                    "attends over the heads), and take the softmax over the keys, the last axis (eq. (1.10)).")
        return _matching_mask(lambda mask: torch.equal(felt, mask | eye), case, pad, diagonal=False)
    leaky = felt & ~expected & ~strong
    if leaky.any() and torch.equal(felt & strong | eye, expected):
        b, t, s = (int(i) for i in leaky.nonzero()[0])
        return (f"token {t} of sequence {b} depends, weakly, on token {s}, which it must not see "
                f"({why_forbidden((b, t, s), case, pad)}): your masked scores keep a small weight. Set them to −∞ "
                f"(eq. (1.2)): a finite fill or an added penalty only shrinks the weight.")
    extra, missing = felt & ~expected, expected & ~felt
    if extra.any():
        b, t, s = (int(i) for i in extra.nonzero()[0])
        return (f"the output of token {t} of sequence {b} depends on token {s}, which it must not see "
                f"({why_forbidden((b, t, s), case, pad)}): set the forbidden scores to −∞ before the softmax "
                f"(eq. (1.2)); {int(extra.sum())} such pairs in all.")
    b, t, s = (int(i) for i in missing.nonzero()[0])
    return (f"the output of token {t} of sequence {b} does not depend on token {s}, which it may attend to: your "
            f"mask hides {int(missing.sum())} allowed (query, key) pairs. Hide only what the causal mask (key j > "
            f"query i) and key_padding_mask (True = padding) forbid (eq. (1.2)).")


def heads_nonfinite(case: HeadsCase, pad):
    """NaN outputs in 1.4: rows of scores that are all −∞ (0/0), read against the masks that leave exactly those
    rows without a key."""
    def reading(got):
        bad = ~torch.isfinite(got).all(-1)  # (B, T): tokens whose output is NaN/inf
        if case.score_shift:
            return overflow_text(case, "outputs")
        structure = _matching_mask(lambda mask: torch.equal(~mask.any(-1), bad), case, pad)
        where = "; ".join(f"sequence {b}: token {', '.join(str(t) for t in bad[b].nonzero().flatten().tolist())}"
                          for b in range(case.B) if bad[b].any())
        if structure:
            return (f"NaN at the outputs of {where}: every key of those rows was hidden (the softmax of a row of −∞ "
                    f"is 0/0), which is what this mask does: {structure}")
        return (f"NaN at the outputs of {where}: a row of scores that is all −∞ gives 0/0 after the softmax, yet "
                f"the masks of this case leave every token at least one key (itself): your mask hides too much "
                f"there (eq. (1.2)).")
    return reading


def support_reading(support: torch.Tensor, case: HeadsCase, pad) -> str | None:
    """The mask that recovered weights (B, H, T, T) show, when every head shows the same one."""
    if not torch.equal(support.all(1), support.any(1)):
        return None
    return _matching_mask(lambda mask: torch.equal(mask, support[:, 0]), case, pad)


def why_forbidden(index, case: HeadsCase, pad) -> str:
    b, i, j = int(index[0]), int(index[-2]), int(index[-1])
    reasons = []
    if case.causal and j > i:
        reasons.append(f"key {j} comes after query {i} (causal)")
    if pad is not None and bool(pad[b, j]):
        reasons.append(f"key {j} of sequence {b} is padding (key_padding_mask is True)")
    return " and ".join(reasons) or "the masks forbid it"

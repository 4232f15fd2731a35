"""Exercise 1.5 — tiled attention with an online softmax (FlashAttention's idea), eq. (1.11)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from utils.bench import peak_memory
from utils.checks.attention.common import (
    BATCH_AXES,
    EX_TILED,
    SHIFT,
    ChapterCase,
    broadcast_sizes,
    compare_answer,
    matmul_inner_sizes,
    once,
    reference_attention_weights,
    run_learner,
    shift_scores,
)
from utils.checks.attention.quantities import TILED, TILED_PRODUCTS
from utils.checks.attention.roles import Roles
from utils.checks.attention.scale import Size, scale_law, scale_law_message
from utils.checks.attention.weights import scale_message, softmax_temperature, weights_facts, weights_problem
from utils.checks.core import (
    named_size,
    one_thread,
    reassigned_in_loop,
    return_in_loop,
)


@dataclass(frozen=True)
class TiledCase(ChapterCase):
    batch: tuple = (1,)
    Tq: int = 1
    Tk: int = 1
    d: int = 8
    d_v: int = 8
    block: int = 16
    input_scale: float = 1.0  # q and k × this: e^s overflows unless the running max is subtracted
    score_shift: float = 0.0  # added to every score: with m starting at 0, e^(s − m) underflows for every key

    @property
    def layout(self) -> str:
        return "q (..., Tq, d_k), k (..., Tk, d_k), v (..., Tk, d_v)"

    @property
    def roles(self) -> Roles:
        return Roles(TILED, TILED_PRODUCTS, self.sizes, flexible=("block_size",))

    @property
    def sizes(self) -> dict[str, int]:
        return {**dict(zip(BATCH_AXES, self.batch)), "Tq": self.Tq, "Tk": self.Tk, "d_k": self.d, "d_v": self.d_v,
                "block_size": self.block}

    def own_reading(self, error: BaseException, line: str) -> str | None:
        if broadcast_sizes(error) == {self.block, self.d_v} and self.block != self.d_v and \
                self.block not in (self.Tq, self.Tk):
            return (f"One tensor has a {named_size(self.block, self.sizes)} axis where the other has "
                    f"{named_size(self.d_v, self.sizes)}: the running maximum m, the sum ℓ and the factor "
                    f"e^(m − m') are one number per query, (…, Tq, 1) — the maximum and the sum of a block's "
                    f"scores (…, Tq, block_size) run over its keys, dim=-1 with keepdim=True, not over the "
                    f"queries — and a block reaches a only through e^(s − m') @ v_block (eq. (1.11)).")
        if matmul_inner_sizes(error) == (self.Tk, self.block) and self.Tk != self.block:
            return (f"Scores over all {named_size(self.Tk, self.sizes)} keys met a block of "
                    f"{named_size(self.block, self.sizes)} values: your block of k kept every key. Slice the keys, "
                    f"the second-to-last axis, k[..., start:start + block_size, :] (k[..., start:stop] slices the "
                    f"features), so that a block's scores are (…, Tq, block_size) (eq. (1.11)).")
        if broadcast_sizes(error) == {self.d, self.d_v}:
            return (f"One tensor has {named_size(self.d, self.sizes)} entries where the other has "
                    f"{named_size(self.d_v, self.sizes)}: the accumulated output a holds one row of the values' width "
                    f"per query, (..., Tq, d_v) = q.shape[:-1] + v.shape[-1:] (eq. (1.11)), not q's width "
                    f"(torch.zeros_like(q) is (..., Tq, d_k)).")
        return None

    def inputs(self):
        q = EX_TILED.randn(*self.batch, self.Tq, self.d, key=(self.label, "q"), dtype=self.dtype) * self.input_scale
        k = EX_TILED.randn(*self.batch, self.Tk, self.d, key=(self.label, "k"), dtype=self.dtype) * self.input_scale
        v = EX_TILED.randn(*self.batch, self.Tk, self.d_v, key=(self.label, "v"), dtype=self.dtype)
        if self.score_shift:
            q, k = shift_scores(q, k, self.score_shift)
        return q, k, v


TILED_CASES = [
    TiledCase("Tq=12 queries, Tk=40 keys (a shorter last block), d_k=8, d_v=6, block 16", batch=(1, 2), Tq=12,
              Tk=40, d=8, d_v=6, block=16),
    TiledCase("T=64, block 16 (4 full blocks)", batch=(1, 2), Tq=64, Tk=64, d=16, d_v=16, block=16),
    TiledCase("block larger than T (10 < 32)", Tq=10, Tk=10, d=8, d_v=8, block=32),
    TiledCase("T=1", Tq=1, Tk=1, d=8, d_v=8, block=4),
    TiledCase("large scores (q and k × 12)", batch=(1, 2), Tq=40, Tk=40, d=16, d_v=16, block=8, input_scale=12.0),
    TiledCase("float64, T=33, block 8", torch.float64, Tq=33, Tk=33, d=4, d_v=4, block=8),
    TiledCase("float64, every score ≈ −2·10⁴, T=20, block 8", torch.float64, batch=(2,), Tq=20, Tk=20, d=4, d_v=5,
              block=8, score_shift=SHIFT),
]


def _tiled_nonfinite(case: TiledCase) -> str:
    if case.score_shift:
        return (f"NaN/inf where every score of a query is about {case.score_shift:.0e}; adding one number to every "
                f"score changes no softmax, so the right output is finite. Here e^(s − m) underflowed to 0 for every "
                f"key, so ℓ = 0 and a/ℓ = 0/0. m must start at −∞ (eq. (1.11): m = −∞, ℓ = 0, a = 0) and be the "
                f"largest score seen so far: starting it at 0, or at any number above every score, lets every "
                f"e^(s − m) underflow.")
    if case.input_scale > 1:
        return ("NaN/inf on large scores: e^s overflowed (above s ≈ 88 in float32), or underflowed to 0 for every "
                "key of a query (ℓ = 0, then 0/0). Subtract each query's own running maximum: m' = max(m, "
                "max_j s_j) per query, shape (..., Tq, 1), and exponentiate s − m' (eq. (1.11)).")
    return ("NaN/inf on ordinary scores: in eq. (1.11) every factor is e^(something ≤ 0) — e^(m − m') ≤ 1 and "
            "e^(s_j − m') ≤ 1 — so nothing can overflow. An inf × 0 or 0/0 comes from a factor the wrong way round "
            "(e^(m' − m) is e^(+∞) at the start, where m = −∞), from m, ℓ or a starting at other values than −∞, 0 "
            "and 0, or from dividing by ℓ before it is positive.")


def tiled_nonfinite_reading(tiled_attention, case: TiledCase):
    """NaN/inf on ordinary scores: run the learner's function again on ordinary inputs, with one block of keys and
    with several, to say which step of eq. (1.11) makes it."""
    def effective_weights(Tq, Tk, block):
        q = EX_TILED.randn(2, Tq, 6, key=("nan", "q", Tq, Tk))
        k = EX_TILED.randn(2, Tk, 6, key=("nan", "k", Tq, Tk))
        try:
            w = tiled_attention(q, k, torch.eye(Tk).expand(2, Tk, Tk).contiguous(), block_size=block)
        except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
            return None
        return w if isinstance(w, torch.Tensor) and w.shape == (2, Tq, Tk) else None

    def reading(got):
        if case.score_shift or case.input_scale > 1:
            return _tiled_nonfinite(case)
        one, several = effective_weights(3, 10, 10), effective_weights(3, 10, 4)
        if one is not None and not torch.isfinite(one).all():
            return ("NaN/inf even with a single block of keys (block_size = Tk = 10, ordinary scores): at the first "
                    "block m = −∞, so an exponent that subtracts the old maximum — e^(s_j − m), or e^(m' − m), the "
                    "factor the wrong way round — is e^(+∞). Every exponent of eq. (1.11) subtracts the new maximum "
                    "m' = max(m, max_j s_j): e^(m − m') and e^(s_j − m'), both ≤ 1.")
        if one is not None and several is not None and not torch.isfinite(several).all():
            return ("NaN/inf only when the keys come in several blocks (finite with one block of 10 keys, not with "
                    "blocks of 4): the step from one block to the next is wrong. Keep m, ℓ and a from block to block, "
                    "rescale ℓ and a by e^(m − m') ≤ 1, and set m = m' after each block (eq. (1.11)).")
        if one is not None and several is not None and not torch.isfinite(got).any():
            return (f"NaN/inf in every entry for Tk = {case.Tk} keys in blocks of {case.block}, but finite for 10 "
                    f"keys: with these sizes no key entered the running sums (ℓ = 0, so a/ℓ = 0/0). Does your loop "
                    f"run over every block of keys, range(0, Tk, block_size) — including a first block larger than "
                    f"Tk (eq. (1.11))?")
        return _tiled_nonfinite(case)
    return reading


_TILED_SIZES = (Size("d_k", "q.shape[-1]", 6, 10, "the width of q and k"),
                Size("Tk", "k.shape[-2]", 10, 13, "the number of keys"),
                Size("Tq", "q.shape[-2]", 6, 7, "the number of queries"),
                Size("block_size", "block_size", 4, 5, "the number of keys in a block"),
                Size("B", "q.shape[0]", 2, 3, "the batch size"))


def _tiled_law(tiled_attention, who: str):
    """Which sizes the scale inside ``tiled_attention`` follows: its effective weights (V = I) fitted as a softmax
    of a · QKᵀ at other sizes, one changed at a time."""
    def fit_at(sizes):
        q = EX_TILED.randn(sizes["B"], sizes["Tq"], sizes["d_k"], key=("law", "q", *sizes.values()))
        k = EX_TILED.randn(sizes["B"], sizes["Tk"], sizes["d_k"], key=("law", "k", *sizes.values()))
        identity = torch.eye(sizes["Tk"]).expand(sizes["B"], -1, -1).contiguous()
        try:
            w = tiled_attention(q, k, identity, block_size=sizes["block_size"])
        except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
            return None
        if not isinstance(w, torch.Tensor) or w.shape != (sizes["B"], sizes["Tq"], sizes["Tk"]):
            return None
        return softmax_temperature(w, q @ k.transpose(-2, -1))

    return once(lambda: scale_law_message(scale_law(fit_at, _TILED_SIZES), _TILED_SIZES, "d_k", who=who,
                                           equation="eq. (1.1)"))


LOOP_ENDS = {"Tq": "q.shape[-2]", "d_k": "k.shape[-1]", "d_v": "v.shape[-1]", "block_size": "block_size"}


def _tiled_probes(tiled_attention, q, k, v, case: TiledCase):
    """Recover the learner's effective weights by running it with V = I (its output is then W itself) and read
    them: skipped or repeated keys, a wrong ℓ, a missing rescaling of a, per-block normalisation, the scale."""
    Tk, block = case.Tk, case.block
    expected_weights = reference_attention_weights(q.double(), k.double())  # (..., Tq, Tk)
    cache = {}

    def effective_weights():
        if "w" not in cache:
            cache["w"] = None
            identity = torch.eye(Tk, dtype=q.dtype).expand(*case.batch, Tk, Tk).contiguous()  # V = I: O = W
            try:
                w = tiled_attention(q.clone(), k.clone(), identity, block_size=block)
                if isinstance(w, torch.Tensor) and w.shape == expected_weights.shape and torch.isfinite(w).all():
                    cache["w"] = w.detach().double()
            except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
                pass
        return cache["w"]

    def keys(got):
        w = effective_weights()
        if w is None:
            return None
        used = w.abs().flatten(0, -2).amax(0) > 0  # (Tk,): does key j get any weight?
        if used.all():
            return None
        unused = (~used).nonzero().flatten().tolist()
        span = f"{unused[0]}–{unused[-1]}" if unused == list(range(unused[0], unused[-1] + 1)) else \
            ", ".join(map(str, unused[:8]))
        if unused == list(range(min(block, Tk))):
            return (f"keys {span}, the first block, get no weight: their terms are multiplied by 0. With m = −∞ at "
                    f"the start, the first e^(m − m') is 0: it rescales what was accumulated before (a and ℓ), not "
                    f"the new block's terms — ℓ' = e^(m − m') ℓ + Σ_j e^(s_j − m') (eq. (1.11)).")
        last = (Tk - 1) // block * block  # where the last block starts
        if Tk > block and unused == list(range(last)):
            return (f"only the last block's keys ({last}–{Tk - 1}) get weight: what a and ℓ accumulated before is "
                    f"wiped at every block, multiplied by e^(m − m') = 0. Is m updated after each block (m = m')? "
                    f"With m stuck at −∞ that factor is always 0 (eq. (1.11)). Or are a and ℓ set to 0 inside the "
                    f"loop?")
        hint = ""
        if unused[0] == Tk - Tk % block and unused[-1] == Tk - 1 and Tk % block:
            hint = ": the last, shorter block. range(0, Tk, block_size) with slicing includes it."
        else:
            ends = [f"{name} = {size} ({LOOP_ENDS[name]})" for name, size in case.sizes.items()
                    if name in LOOP_ENDS and size != Tk and math.ceil(size / block) * block == unused[0]]
            if ends:  # the sizes a loop could have stopped at to skip exactly these keys: name them all
                hint = (f": your loop stops at {' or '.join(ends)}, not at Tk = {Tk}. Loop over the keys, "
                        f"range(0, k.shape[-2], block_size).")
        return (f"keys {span} (of Tk = {Tk}) get no weight: your loop skips them{hint or '.'} Every key must enter "
                f"the running sums of eq. (1.11) once.")

    def multiplicity(got):
        """How many times each key counts: the weights divided by the right ones, per row, relative to the row's
        median, are the same integers in every row when blocks overlap (or skip)."""
        w = effective_weights()
        if w is None:
            return None
        ratio = w / expected_weights.clamp_min(1e-300)  # (..., Tq, Tk)
        usable = expected_weights > 1e-12
        if not usable.all():
            return None
        per_row = ratio / ratio.median(-1, keepdim=True).values
        counts = per_row.flatten(0, -2).mean(0)  # (Tk,)
        if ((per_row - counts).abs() < 1e-3).all() and ((counts - counts.round()).abs() < 1e-3).all() and \
                (counts.round() > 1).any():
            heavy = (counts.round() > 1).nonzero().flatten().tolist()
            return (f"keys {', '.join(map(str, heavy[:8]))}{', …' if len(heavy) > 8 else ''} count "
                    f"{int(counts.max().round())} times: your blocks overlap. Step the loop by block_size, "
                    f"range(0, Tk, block_size), and slice k[..., start:start + block_size, :] (eq. (1.11) adds each "
                    f"key once).")
        return None

    def normalisation(got):
        w = effective_weights()
        if w is None:
            return None
        sums = w.sum(-1)  # (..., Tq)
        if ((sums - 1).abs() < 1e-4).all():
            return None
        n_blocks = math.ceil(Tk / block)
        scores = q.double() @ k.double().transpose(-2, -1) / math.sqrt(case.d)  # (..., Tq, Tk)
        final_sum = (scores - scores.amax(-1, keepdim=True)).exp().sum(-1)  # ℓ after the last block  (..., Tq)
        if torch.allclose(sums, final_sum, rtol=1e-4, atol=1e-6):
            return ("your output is a, not a/ℓ: the weights of each query sum to ℓ, the running sum. Divide by ℓ "
                    "once, after the last block: o = a/ℓ (eq. (1.11)).")
        if n_blocks > 1 and ((sums - n_blocks).abs() < 1e-3).all():
            return (f"each query's weights sum to {n_blocks}, the number of blocks: you normalised each block by its "
                    f"own sum and added the blocks. Keep the unnormalised sums a and ℓ across blocks and divide once, "
                    f"o = a/ℓ, after the last block (eq. (1.11)).")
        ratio = w / expected_weights.clamp_min(1e-300)  # (..., Tq, Tk): how much too heavy each weight is
        usable = expected_weights > 1e-12
        spread = ratio.masked_fill(~usable, math.nan)
        if ((spread.nan_to_num(1).amax(-1) - spread.nan_to_num(1).amin(-1)) < 1e-4 * spread.nan_to_num(1).amax(-1)
                ).all():
            return (f"each query's weights are right up to one factor of its own (they sum to {sums.min():.4g}"
                    f"…{sums.max():.4g}, not 1): the numerators are right and ℓ is not. When m grows, ℓ must be "
                    f"multiplied by e^(m − m') too (eq. (1.11): ℓ' = e^(m − m') ℓ + Σ_j e^(s_j − m')), and o = a/ℓ "
                    f"once at the end.")
        blocks = ratio[..., :Tk - Tk % block].unflatten(-1, (-1, block)) if Tk >= block else None
        if blocks is not None and blocks.shape[-2] > 1 and \
                ((blocks.amax(-1) - blocks.amin(-1)) < 1e-4 * blocks.amax(-1)).all():
            earlier = blocks[..., 0, 0].mean().item()
            head = (f"the weights of a whole block of keys are off by one factor (block 0: {earlier:.3g}×, the last "
                    f"block right): ")
            if earlier < 1:
                return head + ("what a accumulated in earlier blocks shrinks too much: multiply a by e^(m − m') once "
                               "per block, the same factor as ℓ — not twice, nor by a smaller one (eq. (1.11)).")
            return head + ("what was accumulated in a before the running max grew was not rescaled. When m grows, "
                           "multiply a by e^(m − m') as well as ℓ (eq. (1.11)).")
        return (f"each query's weights must sum to 1 (yours sum to {sums.min():.4g}…{sums.max():.4g}): o = a/ℓ with "
                f"a and ℓ rescaled by e^(m − m') whenever m grows (eq. (1.11)).")

    def scale(got):
        w = effective_weights()
        if w is None:
            return None
        who = "your effective weights (what multiplies each value row)"
        facts = weights_facts(q, k, None, who=who, law=_tiled_law(tiled_attention, who))
        return weights_problem(w, facts)

    def between_blocks(got):
        """Log-ratios within one block do not see the factors e^(m − m') between blocks: fit the temperature
        there, then say whether the blocks are right inside and wrong against each other."""
        w = effective_weights()
        full = Tk - Tk % block
        if w is None or full < 2 * block or block < 2:
            return None
        by_block = w[..., :full].unflatten(-1, (-1, block))  # (..., Tq, n_blocks, block)
        raw = (q.double() @ k.double().transpose(-2, -1))[..., :full].unflatten(-1, (-1, block))
        a = softmax_temperature(by_block, raw)
        if a is None:
            return None
        facts = weights_facts(q, k, None, who="within each block, your weights")
        return scale_message(a, facts) or (
            "within each block your weights are right relative to each other, but the blocks are weighted wrongly "
            "against each other: what was accumulated in a and ℓ must be multiplied by e^(m − m') (the same factor "
            "for both, m the old and m' the new running maximum) whenever m grows (eq. (1.11)).")

    def reassigned(got):
        """Right with one block, wrong with several, and an argument the loop reassigns from itself: each block
        changes it again (q = q * scale inside the loop)."""
        changed = reassigned_in_loop(tiled_attention)
        if Tk <= block or not changed:
            return None
        try:
            one = tiled_attention(q.clone(), k.clone(), v.clone(), block_size=Tk)
        except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
            return None
        expected_one = reference_attention_weights(q, k) @ v
        if not isinstance(one, torch.Tensor) or one.shape != expected_one.shape or \
                not torch.allclose(one, expected_one, atol=1e-5, rtol=1e-4):
            return None
        name, line = changed[0]
        return (f"with one block (block_size = Tk = {Tk}) your output is right, with blocks of {block} it is not: "
                f"the mistake is in what passes from one block to the next. Your loop reassigns the argument "
                f"`{name}` from itself (`{line}`), so every block changes it again: block b sees it changed b times. "
                f"Do that once, before the loop (or into a new variable).")

    def returned_early(got):
        line = return_in_loop(tiled_attention)
        if line is None:
            return None
        return (f"`{line}` is indented inside the loop over the blocks of keys, so your function returns after the "
                f"first block and the later blocks never enter the running sums. Move the return after the loop "
                f"(one level out), once every block has updated m, ℓ and a (eq. (1.11)).")

    return [reassigned, returned_early, keys, multiplicity, normalisation, scale, between_blocks]


@one_thread
def check_tiled_attention(tiled_attention) -> None:
    """Exercise 1.5: ``tiled_attention(q, k, v, block_size)`` equals naive attention to 1e-5, with peak memory
    that grows linearly (not quadratically) with the sequence length."""
    for case in TILED_CASES:
        q, k, v = case.inputs()
        got = run_learner(EX_TILED, tiled_attention, q.clone(), k.clone(), v.clone(), block_size=case.block, case=case)
        expected = reference_attention_weights(q, k) @ v
        compare_answer(EX_TILED, got, expected, case, equation="eq. (1.11)",
                       axes=(*BATCH_AXES[:len(case.batch)], "Tq", "d_v"),
                       nonfinite=tiled_nonfinite_reading(tiled_attention, case),
                       probes=_tiled_probes(tiled_attention, q, k, v, case),
                       factors={"√d_k": math.sqrt(case.d)})
    short, long = 512, 1024
    memory = []
    for t in (short, long):
        q = EX_TILED.randn(1, 1, t, 32, key=("memory", t))
        memory.append(run_learner(EX_TILED, peak_memory, lambda q: tiled_attention(q, q, q, block_size=64), q,
                                    case=f"memory, T={t}, block 64"))
    growth = memory[1] / max(memory[0], 1)
    if growth > 3:
        raise EX_TILED.fail(f"your peak memory grew {growth:.1f}× when T doubled ({short} → {long}): something of size "
                            f"Tq × Tk is materialised (the full score matrix?). Compute the scores one block of keys "
                            f"at a time (eq. (1.11)); memory should grow about 2×.")
    EX_TILED.passed(f"{len(TILED_CASES)} cases match naive attention (Tq ≠ Tk, d_v ≠ d_k, a shorter last block, T=1, "
                    f"large and all-negative scores), and peak memory grew {growth:.2f}× when T doubled "
                    f"({memory[0] / 2**20:.2f} → {memory[1] / 2**20:.2f} MiB): linear.")

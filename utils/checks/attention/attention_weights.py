"""Exercise 1.1 — attention weights, eqs. (1.1), (1.2)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from utils.checks.attention.common import (
    BATCH_AXES,
    EX_WEIGHTS,
    SHIFT,
    ChapterCase,
    broadcast_sizes,
    causal_mask,
    compare_answer,
    once,
    overflow_text,
    reference_attention_weights,
    run_learner,
    shift_scores,
)
from utils.checks.attention.quantities import ATTENTION, ATTENTION_PRODUCTS
from utils.checks.attention.roles import Roles
from utils.checks.attention.scale import Size, scale_law, scale_law_message
from utils.checks.attention.weights import softmax_temperature, weights_facts, weights_problem
from utils.checks.core import (
    Exercise,
    named_sizes_in,
    one_thread,
)


@dataclass(frozen=True)
class WeightsCase(ChapterCase):
    q_shape: tuple = ()  # (..., Tq, d_k)
    k_shape: tuple = ()  # (..., Tk, d_k)
    mask: str | None = None  # None, "causal" (T, T), "padding" (B, 1, 1, Tk) or "random" (B, 1, Tq, Tk)
    input_scale: float = 1.0  # q and k × this: scores large enough that e^S overflows without the row max
    score_shift: float = 0.0  # added to every score (through a shared first feature): the softmax must ignore it

    @property
    def layout(self) -> str:
        return "q (..., Tq, d_k), k (..., Tk, d_k)"

    @property
    def roles(self) -> Roles:
        return Roles(ATTENTION, ATTENTION_PRODUCTS, self.sizes)

    @property
    def sizes(self) -> dict[str, int]:
        batch = dict(zip(BATCH_AXES, self.q_shape[:-2]))
        return {**batch, "Tq": self.q_shape[-2], "Tk": self.k_shape[-2], "d_k": self.q_shape[-1]}

    def own_reading(self, error: BaseException, line: str) -> str | None:
        if broadcast_sizes(error) and "mask" in line:
            return ("The mask comes broadcastable to the scores (..., Tq, Tk), True where attending is allowed: use "
                    "it as it is, scores.masked_fill(~mask, float('-inf')) (eq. (1.2)), without adding or moving "
                    "its axes." + named_sizes_in(str(error), self.sizes))
        return None

    def inputs(self, exercise: Exercise = EX_WEIGHTS):
        q = exercise.randn(*self.q_shape, key=(self.label, "q"), dtype=self.dtype) * self.input_scale
        k = exercise.randn(*self.k_shape, key=(self.label, "k"), dtype=self.dtype) * self.input_scale
        if self.score_shift:
            q, k = shift_scores(q, k, self.score_shift)
        return q, k, self.build_mask(exercise)

    def build_mask(self, exercise: Exercise) -> torch.Tensor | None:
        Tq, Tk = self.q_shape[-2], self.k_shape[-2]
        if self.mask == "causal":
            return causal_mask(Tq)
        if self.mask == "padding":
            padding = torch.ones(self.q_shape[0], 1, 1, Tk, dtype=torch.bool)
            padding[1, ..., Tk - 2:] = False  # the second sequence has 2 padded keys
            return padding
        if self.mask == "random":
            random = exercise.randn(self.q_shape[0], 1, Tq, Tk, key=(self.label, "mask")) > -0.3
            random[..., 0] = True  # every query keeps at least one key
            return random
        return None


WEIGHTS_CASES = [
    WeightsCase("cross-attention, B=2, H=3, Tq=5, Tk=7, d_k=8", q_shape=(2, 3, 5, 8), k_shape=(2, 3, 7, 8)),
    WeightsCase("self-attention, B=2, H=3, T=6, d_k=8", q_shape=(2, 3, 6, 8), k_shape=(2, 3, 6, 8)),
    WeightsCase("causal mask (T, T), T=6", q_shape=(2, 2, 6, 8), k_shape=(2, 2, 6, 8), mask="causal"),
    WeightsCase("padding mask (B, 1, 1, Tk), 2 padded keys", q_shape=(2, 1, 5, 8), k_shape=(2, 1, 5, 8),
                mask="padding"),
    WeightsCase("random mask (B, 1, Tq, Tk), Tq=4, Tk=6", q_shape=(2, 3, 4, 8), k_shape=(2, 3, 6, 8),
                mask="random"),
    WeightsCase("T=1 (a single token)", q_shape=(1, 1, 1, 4), k_shape=(1, 1, 1, 4)),
    WeightsCase("large scores (q and k × 10)", q_shape=(2, 2, 5, 8), k_shape=(2, 2, 6, 8), input_scale=10.0),
    WeightsCase("large scores and a causal mask (q and k × 10)", q_shape=(2, 2, 6, 8), k_shape=(2, 2, 6, 8),
                mask="causal", input_scale=10.0),
    WeightsCase("float64, no batch axes, Tq=3, Tk=5, d_k=6", torch.float64, q_shape=(3, 6), k_shape=(5, 6)),
    WeightsCase("float64, causal mask, every score ≈ −2·10⁴", torch.float64, q_shape=(2, 6, 4), k_shape=(2, 6, 4),
                mask="causal", score_shift=SHIFT),
]


def _nan_rows_text(mask: torch.Tensor | None, case: WeightsCase):
    """NaN rows of weights are rows whose scores were all −∞: compare them with the rows the mask leaves open."""
    def reading(got):
        bad_rows = ~torch.isfinite(got).all(-1)  # (..., Tq)
        if mask is None or not bad_rows.any():
            return None
        full_rows = mask.expand(got.shape).all(-1)  # rows where every key is allowed
        if torch.equal(bad_rows, full_rows):
            return ("NaN exactly in the rows where the mask allows every key: there your code hid every key, so "
                    "the softmax of a row of −∞ is 0/0. The mask is inverted: True means 'may attend' (as in "
                    "F.scaled_dot_product_attention), so fill the scores where the mask is False, "
                    "scores.masked_fill(~mask, float('-inf')) (eq. (1.2)).")
        some_hidden = ~mask.expand(got.shape).all(-1)  # rows where the mask hides at least one key
        if torch.equal(bad_rows, some_hidden):
            return ("NaN exactly in the rows where the mask hides a key, and only there: the hidden scores were "
                    "filled with +∞ instead of −∞ (float('inf') for float('-inf')), so the row's maximum is +∞ and "
                    "e^(∞ − ∞) is NaN. Fill with −∞, scores.masked_fill(~mask, float('-inf')) (eq. (1.2)): e^(−∞) "
                    "= 0 is what gives a hidden key no weight.")
        first = [int(i) for i in bad_rows.nonzero()[0]]
        return (f"NaN in {int(bad_rows.sum())} rows (the first is query {first[-1]}): a row whose scores are all −∞ "
                f"gives 0/0 after the softmax, yet the mask leaves every query at least one key. Fill only where the "
                f"mask is False (eq. (1.2)).")
    return reading


_WEIGHTS_SIZES = (Size("d_k", "q.shape[-1]", 6, 10, "the width of q and k"),
                  Size("Tk", "k.shape[-2]", 7, 11, "the number of keys"),
                  Size("Tq", "q.shape[-2]", 5, 9, "the number of queries"),
                  Size("B", "q.shape[0]", 2, 3, "the batch size"), Size("H", "q.shape[1]", 3, 4, "the number of heads"))


def _weights_law(attention_weights, who: str = "your weights"):
    """Which sizes the scale inside ``attention_weights`` follows: its temperature fitted on unmasked inputs of
    other sizes (one changed at a time)."""
    def fit_at(sizes):
        q = EX_WEIGHTS.randn(sizes["B"], sizes["H"], sizes["Tq"], sizes["d_k"], key=("law", "q", *sizes.values()))
        k = EX_WEIGHTS.randn(sizes["B"], sizes["H"], sizes["Tk"], sizes["d_k"], key=("law", "k", *sizes.values()))
        try:
            w = attention_weights(q, k, None)
        except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
            return None
        if not isinstance(w, torch.Tensor) or w.shape != (*q.shape[:-1], k.shape[-2]):
            return None
        return softmax_temperature(w, q @ k.transpose(-2, -1))

    return once(lambda: scale_law_message(scale_law(fit_at, _WEIGHTS_SIZES), _WEIGHTS_SIZES, "d_k", who=who,
                                           equation="eq. (1.1)"))


KEYS_BY_QUERIES = ("one row per key: the scores K Qᵀ (k @ q.transpose(-2, -1), or q and k in each other's places, "
                   "attention_weights(k, q)). Eq. (1.1) has S = Q Kᵀ/√d_k, (…, Tq, Tk): one row per query, whose "
                   "softmax runs over the keys, dim=-1 — q @ k.transpose(-2, -1).")


@one_thread
def check_attention_weights(attention_weights) -> None:
    """Exercise 1.1: ``attention_weights(q, k, mask=None)`` returns softmax(Q Kᵀ / √d_k) with the mask applied."""
    for case in WEIGHTS_CASES:
        q, k, mask = case.inputs()
        got = run_learner(EX_WEIGHTS, attention_weights, q.clone(), k.clone(),
                          None if mask is None else mask.clone(), case=case)
        expected = reference_attention_weights(q, k, mask)
        facts = weights_facts(q, k, mask, law=_weights_law(attention_weights))
        axes = ("B", "H", "Tq", "Tk")[-q.dim():]
        compare_answer(EX_WEIGHTS, got, expected, case, name="weights", equation="eqs. (1.1) and (1.2)", axes=axes,
                       nonfinite=overflow_text(case, "weights") or _nan_rows_text(mask, case),
                       probes=[lambda w: weights_problem(w, facts)], factors={"√d_k": math.sqrt(q.shape[-1])},
                       transposed=KEYS_BY_QUERIES)
    EX_WEIGHTS.passed(f"{len(WEIGHTS_CASES)} cases (cross-attention, causal, padding and random masks, T=1, large "
                      f"scores with and without a mask, shifted scores, float64 to 1e-9) match softmax(QKᵀ/√d_k) "
                      f"with -inf at masked scores.")

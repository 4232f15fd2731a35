"""Exercise 1.4 — multi-head self-attention with einops, eq. (1.10)."""
from __future__ import annotations

import copy
import math

import torch
from einops import rearrange

from utils.checks.attention.common import (
    EX_HEADS,
    causal_mask,
    compare_answer,
    once,
    reference_attention_weights,
    run_learner,
)
from utils.checks.attention.heads import (
    HEADS_CASES,
    HeadsCase,
    allowed_mask,
    copy_to_library,
    reference_multi_head,
    shift_every_head,
    structure_of_module,
)
from utils.checks.attention.masks import (
    dependence_message,
    heads_nonfinite,
    support_reading,
    token_dependence,
    why_forbidden,
)
from utils.checks.attention.scale import Size, scale_law, scale_law_message
from utils.checks.attention.weights import (
    WeightsFacts,
    recover_weights,
    softmax_temperature,
    weights_advice,
    weights_problem,
)
from utils.checks.core import (
    Mistake,
    one_thread,
)


def _value_source_message(head_out: torch.Tensor, h: int, qkv_out: torch.Tensor, x: torch.Tensor,
                          case: HeadsCase, others: str) -> str | None:
    """Head h's output is a weighted average of the rows of some Dh features: find which ones (a slice of q, k or
    v of some head, or of x itself) when they are not V_h's."""
    D, H = case.D, case.H
    Dh = D // H
    candidates = {}
    for c, part in enumerate("qkv"):
        for g in range(H):
            candidates[f"{part}'s head-{g} features, qkv(x)[..., {c * D + g * Dh}:{c * D + (g + 1) * Dh}]"] = \
                qkv_out[..., c * D + g * Dh:c * D + (g + 1) * Dh]
            candidates[f"every H-th feature of {part} from {g}, qkv(x)[..., {c * D + g}:{(c + 1) * D}:{H}] (a "
                       f"(Dh H) split)"] = qkv_out[..., c * D + g:(c + 1) * D:H]
        for g in range(3 * H):
            candidates.setdefault(f"features {g * Dh}–{(g + 1) * Dh - 1} of qkv(x)", qkv_out[..., g * Dh:(g + 1) * Dh])
    for g in range(H):
        candidates[f"x itself (features {g * Dh}–{(g + 1) * Dh - 1} of the input, not projected)"] = \
            x[..., g * Dh:(g + 1) * Dh]
    right = f"v's head-{h} features, qkv(x)[..., {2 * D + h * Dh}:{2 * D + (h + 1) * Dh}]"
    for name, values in candidates.items():
        if name == right:
            continue
        if recover_weights(head_out, values) is not None:
            return (f"head {h}'s output{others} is a weighted average of the rows of {name}; O_h = P_h V_h (eq. "
                    f"(1.10)) averages the values of head {h}: {right}. Split q, k, v = self.qkv(x).chunk(3, dim=-1) "
                    f"first, then each with rearrange(t, 'B T (H Dh) -> B H T Dh', H=n_heads).")
    return None


_HEADS_SIZES = (Size("Dh", "D // n_heads, q.shape[-1] after the split", 6, 10, "the width of one head"),
                Size("H", "n_heads", 2, 3, "the number of heads"),
                Size("T", "x.shape[1]", 4, 5, "the number of tokens"),
                Size("B", "x.shape[0]", 1, 2, "the batch size"))


_MODEL_WIDTH = (Size("D", "x.shape[-1]", 0, 0, "the model width, D = H · Dh"), ("Dh", "H"))


def _heads_law(MultiHeadSelfAttention, who: str):
    """Which sizes the scale inside the learner's heads follows: head 0's weights, recovered from its output
    (float64, W_O = I, no mask), fitted as softmax(a · q kᵀ) at other sizes, one changed at a time."""
    def fit_at(sizes):
        Dh, H, T, B = sizes["Dh"], sizes["H"], sizes["T"], sizes["B"]
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(EX_HEADS.seed("law", *sizes.values()))
                module = MultiHeadSelfAttention(H * Dh, H).double()
                module.out.weight.copy_(torch.eye(H * Dh, dtype=torch.float64))
                module.out.bias.zero_()
                x = EX_HEADS.randn(B, T, H * Dh, key=("law", *sizes.values()), dtype=torch.float64)
                heads = module(x)
                q, k, v = (t[..., :Dh] for t in module.qkv(x).chunk(3, dim=-1))  # head 0: (B, T, Dh) each
        except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
            return None
        if not isinstance(heads, torch.Tensor) or heads.shape != x.shape:
            return None
        weights = recover_weights(heads[..., :Dh], v)
        return None if weights is None else softmax_temperature(weights, q @ k.transpose(-2, -1))

    return once(lambda: scale_law_message(scale_law(fit_at, _HEADS_SIZES), _HEADS_SIZES, "Dh", who=who,
                                           equation="eq. (1.10)", products=[_MODEL_WIDTH]))


def _score_sources(q, k, v, x_heads) -> dict[str, torch.Tensor]:
    """Products of other pairs than (q, k) of one head, (B, H, T, T), that a head's scores may have been made of."""
    q, k, v = (t.double() for t in (q, k, v))
    return {"x_h x_hᵀ (x split into heads, not projected by self.qkv)": x_heads @ x_heads.mT,
            "q_h q_hᵀ (queries against queries)": q @ q.mT, "k_h k_hᵀ (keys against keys)": k @ k.mT,
            "k_h q_hᵀ (keys against queries: the scores transposed)": k @ q.mT,
            "q_h v_hᵀ (the values where the keys belong)": q @ v.mT}


def _heads_probes(module, x, case: HeadsCase, got_kwargs: dict):
    """Probes that look inside the learner's module: run it again with W_O = I to read its merged heads, then
    check the projection, the merge, and each head as attention weights recovered from its output."""
    B, T, D, H = case.B, case.T, case.D, case.H
    Dh = D // H
    pad = case.key_padding_mask()
    cache = {}

    def reference():
        """q, k, v (B, H, T, Dh), allowed (B, 1, T, T), weights (B, H, T, T), merged heads (B, T, D)."""
        if "reference" not in cache:
            with torch.no_grad():
                q, k, v = (rearrange(t, "B T (H Dh) -> B H T Dh", H=H) for t in module.qkv(x).chunk(3, dim=-1))
                allowed = allowed_mask(B, T, case.causal, pad)
                weights = reference_attention_weights(q, k, allowed)
                cache["reference"] = q, k, v, allowed, weights, rearrange(weights @ v, "B H T Dh -> B T (H Dh)")
        return cache["reference"]

    def merged_heads():
        """The learner's merged heads: their module with self.out set to the identity."""
        if "heads" not in cache:
            cache["heads"] = None
            try:
                probe = copy.deepcopy(module)
                with torch.no_grad():
                    probe.out.weight.copy_(torch.eye(D, dtype=x.dtype))
                    probe.out.bias.zero_()
                    heads = probe(x.clone(), **got_kwargs)
                if isinstance(heads, torch.Tensor) and heads.shape == (B, T, D) and torch.isfinite(heads).all():
                    cache["heads"] = heads.detach()
            except Exception:  # noqa: BLE001 - a probe that cannot run says nothing
                pass
        return cache["heads"]

    def projection(got):
        heads = merged_heads()
        if heads is None:
            return None
        with torch.no_grad():
            projected = module.out(heads)
        if torch.allclose(got, heads, atol=1e-5) and not torch.allclose(projected, heads, atol=1e-5):
            return ("the output projection self.out is missing after merging the heads: return "
                    "self.out(concat(O_1, …, O_H)) (eq. (1.10), W_O).")
        if not torch.allclose(got, projected, atol=1e-5, rtol=1e-4):
            return ("your output is not self.out applied to your merged heads: apply self.out once, as the last "
                    "step, to the heads merged back to (B, T, D) (eq. (1.10): concat(O_1, …, O_H) W_O).")
        return None

    def merge(got):
        heads, right_heads = merged_heads(), reference()[-1]
        if heads is None or torch.allclose(heads, right_heads, atol=1e-5):
            return None
        if T > 1 and torch.allclose(heads.flatten(1).sort(-1).values, right_heads.flatten(1).sort(-1).values,
                                    atol=1e-5):
            return ("your merged heads hold the right numbers in the wrong places: each head is right, the merge "
                    "is not. Undo the split with rearrange(heads, 'B H T Dh -> B T (H Dh)') — a reshape to "
                    "(B, T, D) without first moving H next to Dh mixes tokens and heads (eq. (1.10): "
                    "concat(O_1, …, O_H) per token).")
        return None

    def each_head(got):
        heads = merged_heads()
        if heads is None:
            return None
        q, k, v, allowed, weights, right_heads = reference()
        wrong = [h for h in range(H) if not torch.allclose(heads[..., h * Dh:(h + 1) * Dh],
                                                           right_heads[..., h * Dh:(h + 1) * Dh], atol=1e-5)]
        if not wrong or T > Dh:  # with T > Dh the weights cannot be recovered from a head's output
            return None
        others = f" (heads {', '.join(map(str, wrong))} of {H} are wrong)" if len(wrong) > 1 else \
            f" (head {wrong[0]} of {H} is wrong)"
        recovered = []
        for h in range(H):
            head_weights = recover_weights(heads[..., h * Dh:(h + 1) * Dh], v[:, h])  # (B, T, T)
            if head_weights is None:
                with torch.no_grad():
                    qkv_out = module.qkv(x)
                cache["not an average"] = (
                    f"head {h}'s output{others} is not a weighted average of head {h}'s values V_{h} (eq. (1.10): "
                    f"O_h = P_h V_h). Split each of q, k, v = self.qkv(x).chunk(3, dim=-1) with "
                    f"rearrange(t, 'B T (H Dh) -> B H T Dh', H=n_heads), keep q, k, v in that order, and attend "
                    f"within each head.")
                return _value_source_message(heads[..., h * Dh:(h + 1) * Dh], h, qkv_out, x, case, others)
            recovered.append(head_weights)
        facts = WeightsFacts(
            raw_scores=(q @ k.transpose(-2, -1)).double(), expected=weights.double(),
            scale=1 / math.sqrt(Dh), scale_text="1/√Dh", exact=False, allowed=allowed,
            constants={"√Dh": math.sqrt(Dh), "Dh": Dh, "√D": math.sqrt(D), "D": D, "√H": math.sqrt(H), "H": H},
            advice={**weights_advice("Dh", "width of each head, Dh = D/H"),
                    "1/√D": "you scaled by √D (the model width); each head's scores are scaled by √Dh = √(D/H), "
                            "its own width.",
                    "1/D": "you divided by D, the model width; divide each head's scores by √Dh = √(D/H)."},
            equation="eq. (1.10)", who=f"the weights of your heads{others}", batch_names=("B", "H"),
            why_forbidden=lambda index: why_forbidden(index, case, pad),
            upstream="If you call your attention here, check that it passes Exercise 1.1.",
            mask_reading=lambda support: support_reading(support, case, pad),
            score_sources=_score_sources(q, k, v, rearrange(x, "B T (H Dh) -> B H T Dh", H=H).double()),
            law=_heads_law(type(module), f"the weights of your heads{others}"))
        return weights_problem(torch.stack(recovered, dim=1), facts)  # (B, H, T, T)

    def strength():
        if "strength" not in cache:  # not in the shifted case: its scores are built for other tests
            cache["strength"] = None if case.score_shift else token_dependence(module, x, got_kwargs)
        return cache["strength"]

    def dependence(got):
        return None if strength() is None else dependence_message(strength(), case, pad)

    def dependence_fallback(got):
        found = None if strength() is None else dependence_message(strength(), case, pad, fallback=True)
        return found or cache.get("not an average")

    return [projection, merge, each_head, dependence, dependence_fallback]


def _no_grad(generator):
    """Run a generator of Mistakes under torch.no_grad (the references use the learner's modules)."""
    while True:
        with torch.no_grad():
            try:
                item = next(generator)
            except StopIteration:
                return
        yield item


def _heads_mistakes(same: dict, case: HeadsCase, module=None):
    """The classic mistakes of eq. (1.10), tried before the probes; a generator, so that they are only computed
    for an answer that is wrong."""
    yield Mistake(reference_multi_head(**same, split="B T (Dh H) -> B H T Dh"),
                  "heads split in the wrong order: D is laid out as (H Dh), head-major, so split with "
                  "rearrange(x, 'B T (H Dh) -> B H T Dh', H=n_heads).")
    yield Mistake(reference_multi_head(**same, merge="B H T Dh -> B T (Dh H)"),
                  "heads merged in the wrong order: undo the split with 'B H T Dh -> B T (H Dh)'.")
    if case.H > 1 and case.T > 1:
        split_by_reshape = ("your heads were split by reshaping (B, T, D) straight to (B, H, T, Dh): a reshape keeps "
                            "the memory order, so each head's 'tokens' are pieces of several tokens' features. Split "
                            "the feature axis first and then move H forward, .view(B, T, H, Dh).transpose(1, 2), or "
                            "rearrange(t, 'B T (H Dh) -> B H T Dh', H=n_heads)")
        yield Mistake(reference_multi_head(**same, split="reshape"), split_by_reshape + ".")
        yield Mistake(reference_multi_head(**same, split="reshape", merge="reshape"),
                      split_by_reshape + "; and merge back with rearrange(heads, 'B H T Dh -> B T (H Dh)'), "
                                         "not a reshape of (B, H, T, Dh) to (B, T, D).")
    yield Mistake(reference_multi_head(**same, order=(1, 0, 2)),
                  "q and k are swapped: qkv(x) splits, in order, into q, k, v (like nn.MultiheadAttention's "
                  "in_proj_weight).")
    yield Mistake(reference_multi_head(**same, order=(0, 2, 1)),
                  "k and v are swapped: qkv(x) splits, in order, into q, k, v.")
    if case.causal:
        yield Mistake(reference_multi_head(**{**same, "causal": False}),
                      "with causal=True a token must not see later tokens: the causal mask is missing.")
        yield Mistake(reference_multi_head(**same, causal_diagonal=-1),
                      "your causal mask hides the diagonal too: a token may attend to itself (torch.tril with "
                      "diagonal=0).")
        yield Mistake(reference_multi_head(**same, causal_upper=True),
                      "your causal mask is flipped: it lets tokens see the future and hides the past.")
    if case.padded:
        yield Mistake(reference_multi_head(**{**same, "key_padding_mask": None}), _padding_ignored(same, case, module))
        yield Mistake(reference_multi_head(**same, invert_padding=True),
                      "key_padding_mask is inverted: here True marks a padded key to ignore (nn.MultiheadAttention's "
                      "convention), the opposite of a 'may attend' mask.")
        zeroed = same["x"].masked_fill(same["key_padding_mask"][:, :, None], 0.0)
        yield Mistake(reference_multi_head(**{**same, "x": zeroed, "key_padding_mask": None}),  # x zeroed, no mask
                      "you zeroed the padded tokens' inputs instead of masking their keys: a zero input "
                      "still has a key, W_K·0 + b_K = b_K (the bias), and that key is still attended to. Hide the "
                      "padded keys in the scores, masked_fill(key_padding_mask[:, None, None, :], float('-inf')), and "
                      "leave x as it is.")
        yield Mistake(reference_multi_head(**same, pad_queries=True),
                      "you masked padded *queries* (rows); key_padding_mask hides padded *keys* (columns): "
                      "~key_padding_mask[:, None, None, :].")


BOTH_MASKS = ("A key must be allowed by both: combine them with & (and), not | (or): causal & "
              "~key_padding_mask[:, None, None, :].")

def _padding_ignored(same: dict, case: HeadsCase, module) -> str:
    """What an output that ignores key_padding_mask (in a case without causal) means: the module run once more with
    causal=True tells a padding mask never applied from one combined with the causal mask by |, which allows
    every key here (a mask of all True | anything)."""
    if module is not None and case.T > 1:
        try:
            got = module(same["x"].clone(), causal=True, key_padding_mask=same["key_padding_mask"].clone())
        except Exception:  # noqa: BLE001 - a module that cannot run causally says nothing here
            got = None
        if isinstance(got, torch.Tensor) and got.shape == same["x"].shape and \
                torch.allclose(got, reference_multi_head(**{**same, "causal": True}, masks_or=True), atol=1e-5,
                               rtol=1e-4):
            return ("padded keys received attention: with causal=False your mask allows every key, and with "
                    "causal=True your output is the causal and padding masks combined with | (or), which lets "
                    "through a key either one allows (a mask of all True | anything is all True). " + BOTH_MASKS)
    return "padded keys received attention: key_padding_mask was not applied."


@one_thread
def check_multi_head_attention(MultiHeadSelfAttention) -> None:
    """Exercise 1.4: ``MultiHeadSelfAttention(d_model, n_heads)(x, causal, key_padding_mask)`` against
    ``nn.MultiheadAttention`` with copied weights, and each head against eq. (1.10)."""
    with torch.random.fork_rng(devices=[]):  # initialising modules draws numbers: keep the learner's RNG as it was
        for case in HEADS_CASES:
            _check_heads_case(MultiHeadSelfAttention, case)
    EX_HEADS.passed(f"{len(HEADS_CASES)} cases (causal, key padding, both, T=1, one head, Dh ≠ √D, scores ≈ −2·10⁴ "
                    f"in float64) match "
                    f"nn.MultiheadAttention with copied weights.")


def _check_heads_case(MultiHeadSelfAttention, case: HeadsCase) -> None:
    """One case of 1.4: the learner's module against nn.MultiheadAttention with the same weights."""
    torch.manual_seed(EX_HEADS.seed(case.label, "init"))
    module = run_learner(EX_HEADS, MultiHeadSelfAttention, case.D, case.H, what="MultiHeadSelfAttention(d_model, "
                           "n_heads)", case=case)
    structure_of_module(module, case)
    if case.dtype != torch.float32:
        module = module.to(case.dtype)
    if case.score_shift:
        shift_every_head(module, case)
    x = EX_HEADS.randn(case.B, case.T, case.D, key=(case.label, "x"), dtype=case.dtype)
    pad = case.key_padding_mask()
    kwargs = dict(causal=case.causal, key_padding_mask=pad)
    with torch.no_grad():
        got = run_learner(EX_HEADS, module, x.clone(), **kwargs, what="MultiHeadSelfAttention.forward", case=case)
        library = copy_to_library(module, case.H)
        attn_mask = ~causal_mask(case.T) if case.causal else None  # nn.MultiheadAttention: True = blocked
        expected, _ = library(x, x, x, attn_mask=attn_mask, key_padding_mask=pad, need_weights=False)
        same = dict(x=x, qkv=module.qkv, out=module.out, n_heads=case.H, **kwargs)
        assert torch.allclose(reference_multi_head(**same), expected, atol=1e-5), \
            "internal: the check's own reference disagrees with nn.MultiheadAttention"
    compare_answer(EX_HEADS, got, expected, case, equation="eq. (1.10)", axes=("B", "T", "D"),
                   nonfinite=heads_nonfinite(case, pad), mistakes=_no_grad(_heads_mistakes(same, case, module)),
                   probes=_heads_probes(module, x, case, kwargs))

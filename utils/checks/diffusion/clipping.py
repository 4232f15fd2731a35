"""Probes for the clipping of x̂_0 in a reverse step (Exercises 5.4 and 5.5)."""
from __future__ import annotations

import math
from typing import Callable

import torch

from utils.checks.diffusion.values import clamped


def clip_probes(got_from_x0: Callable, x0_hat: torch.Tensor, clip: bool, expected: torch.Tensor,
                 other_setting: torch.Tensor, *, output: str, noise_part: torch.Tensor | None = None,
                 rerun: Callable | None = None, inputs: dict[str, torch.Tensor] | None = None,
                 alpha_bar_t: torch.Tensor | None = None, learner_other: Callable | None = None):
    """Probes for the clipping of x̂_0: the learner's x̂_0 is recovered from their output by inverting the (already
    checked) linear part, ``got_from_x0(got) → x̂_0``, and compared with x̂_0 clipped or not.

    ``rerun(inputs, clip)`` is the reference step on other inputs: the step with one input clipped in place of x̂_0
    (or as well) says which tensor the learner clipped. ``alpha_bar_t`` ((B, 1, 1, 1)) names a clip range that
    changes with t (±1/√ᾱ_t: the numerator of eq. (5.12) clipped before the division).

    ``learner_other()`` is the learner's own step on the same inputs with the other clip setting (None when it
    raised): comparing their two runs tells an option that is ignored or inverted, whatever else is wrong."""
    clipped_reference, unclipped_reference = (expected, other_setting) if clip else (other_setting, expected)

    def ignored_option(got):
        other = learner_other() if learner_other is not None else None
        if not isinstance(other, torch.Tensor) or other.shape != got.shape or torch.allclose(
                expected, other_setting, rtol=1e-4, atol=1e-5):
            return None
        if torch.allclose(got, other, rtol=1e-4, atol=1e-5):  # the same output whatever clip is
            if not clip and torch.allclose(got, clipped_reference, rtol=1e-4, atol=1e-5):
                does = "always clips x̂_0, even when clip=False"
            elif clip and torch.allclose(got, unclipped_reference, rtol=1e-4, atol=1e-5):
                does = ("never clips x̂_0, even when clip=True: x̂_0 was not clipped (a clamp whose result is not "
                        "assigned and used, or a clipped copy left aside?)")
            else:
                return None  # wrong in some other way as well: the other probes say how
            return (f"your {output} is the same with clip=True and with clip=False: your code ignores the clip "
                    f"argument — it {does}. Clip x̂_0 only when clip is true, and use the clipped tensor: "
                    f"`if clip: x0_hat = x0_hat.clamp(-1, 1)` (clamp returns a new tensor).")
        if torch.allclose(got, other_setting, rtol=1e-4, atol=1e-5) and \
                torch.allclose(other, expected, rtol=1e-4, atol=1e-5):
            return ("your code clips x̂_0 when clip=False and not when clip=True: the test is the wrong way round "
                    "(`if not clip`?). Clip only when clip is true: `if clip: x0_hat = x0_hat.clamp(-1, 1)`.")
        return None
    def which_tensor(got):
        if not clip or rerun is None:
            return None
        for key, tensor in (inputs or {}).items():
            name = {"eps": "ε_θ", "x_t": "x_t"}.get(key, key)
            for both in (False, True):
                changed = {**inputs, key: tensor.clamp(-1, 1)}
                if torch.allclose(got, rerun(changed, both), rtol=1e-4, atol=1e-5):
                    what = "as well as x̂_0" if both else "instead of x̂_0"
                    return (f"you clipped {name} to [−1, 1] {what}. Only x̂_0 = (x_t − √(1 − ᾱ_t)·ε_θ)/√ᾱ_t (eq. "
                            f"5.12), the estimate of the clean image, is known to lie in [−1, 1]; {name} is noise "
                            f"or a noisy image and leaves that range by design: use it unclipped, and clip x̂_0 itself.")
        return None

    def wrong_setting(got):
        if torch.allclose(got, other_setting, rtol=1e-4, atol=1e-5):
            return ("you clipped x̂_0 although clip=False: clamp only when clip is true." if not clip else
                    "x̂_0 was not clipped: with clip=True, clamp x̂_0 to [−1, 1] (the data's range) before using it.")
        return None

    def output_clipped(got):
        bounds = clamped(got, unclipped_reference)  # the step with x̂_0 left as it is, then the output clamped
        if bounds:
            when = "" if clip else " — and here clip=False, so nothing is clipped at all"
            return (f"your {output} is the step with x̂_0 unclipped, then {bounds}: you clipped the output {output} "
                    f"instead of x̂_0{when}. Return {output} unclipped (it is noisy, and leaves [−1, 1] by design), "
                    f"and clip x̂_0 instead, right after eq. (5.12): `x0_hat = x0_hat.clamp(-1, 1)`"
                    f"{', only when clip is true' if not clip else ''}.")
        if noise_part is not None and clamped(got - noise_part, unclipped_reference - noise_part):
            return (f"your {output} minus σ_t z is {clamped(got - noise_part, unclipped_reference - noise_part)}: you "
                    f"clipped the posterior mean μ̃ instead of x̂_0. Clip x̂_0 (eq. 5.12) before computing μ̃ from it: "
                    f"`x0_hat = x0_hat.clamp(-1, 1)`{', only when clip is true' if not clip else ''}.")
        return None

    def recovered_x0(got):
        if not clip:
            return None
        mine = got_from_x0(got)  # the x̂_0 the learner's output implies
        low, high = mine.min().item(), mine.max().item()
        data_range = math.isclose(low, -1, abs_tol=1e-4) and math.isclose(high, 1, abs_tol=1e-4)
        if torch.allclose(mine, x0_hat.clamp(low, high), rtol=1e-3, atol=1e-4) and not data_range:
            shown = [f"{round(v, 3) + 0.0:g}" for v in (low, high)]  # + 0.0: no "-0"
            binds = {"lower": bool((x0_hat < low - 1e-4).any()), "upper": bool((x0_hat > high + 1e-4).any())}
            one_side = [side for side, bound in (("upper", high), ("lower", low))
                        if binds[{"upper": "lower", "lower": "upper"}[side]] and not binds[side]
                        and not math.isclose(abs(bound), 1, abs_tol=1e-4)]
            missing = (f" — only the {'lower' if one_side[0] == 'upper' else 'upper'} bound is applied, the "
                       f"{one_side[0]} one is missing (torch.clip(x, -1) or clamp(min=-1) alone?)") if one_side else ""
            return (f"you clipped x̂_0 to [{shown[0]}, {shown[1]}]{missing}; x̂_0 is clipped to [−1, 1], the "
                    f"data's range, on both sides: x0_hat.clamp(-1, 1).")
        ranged = _range_per_image(mine, x0_hat, alpha_bar_t)
        if ranged:
            return ranged
        inside = x0_hat.abs() <= 1
        if not torch.allclose(mine[inside], x0_hat[inside], rtol=1e-3, atol=1e-4):
            return (f"your {output} differs even where x̂_0 lies inside [−1, 1], so clipping changes nothing: with "
                    f"clip=True your code computes something else than with clip=False (whose cases passed). "
                    f"Compute x̂_0 once, clamp it when clip is true, and use the same formula afterwards.")
        wrong = ~torch.isclose(mine, x0_hat.clamp(-1, 1), rtol=1e-3, atol=1e-4)
        if not wrong.any():  # right up to rounding: compare says the rest (float32 precision, ...)
            return None
        index = tuple(int(i) for i in wrong.nonzero()[0])
        return (f"the x̂_0 your {output} implies (solving eq. (5.6) for it) is {mine[index].item():.4g} at "
                f"{list(index)}, where x̂_0 = {x0_hat[index].item():.4g} clipped to [−1, 1] is "
                f"{x0_hat.clamp(-1, 1)[index].item():.4g}: clip x̂_0 itself, with .clamp(-1, 1), right after eq. "
                f"(5.12).")
    return [ignored_option, wrong_setting, output_clipped, which_tensor, recovered_x0]


def _range_per_image(mine: torch.Tensor, x0_hat: torch.Tensor, alpha_bar_t: torch.Tensor | None) -> str | None:
    """When the learner's x̂_0 is x̂_0 clipped to a range of its own in each image: the range, named when it is
    ±1/√ᾱ_t (the clamp came before the division by √ᾱ_t) or ±√ᾱ_t."""
    flat_mine, flat_x0 = mine.flatten(1), x0_hat.flatten(1)  # (B, pixels)
    low, high = flat_mine.min(dim=1).values, flat_mine.max(dim=1).values  # (B,)
    if not torch.allclose(flat_mine, flat_x0.clamp(low[:, None], high[:, None]), rtol=1e-3, atol=1e-4):
        return None
    binds = (flat_x0.max(dim=1).values > high + 1e-3) & (flat_x0.min(dim=1).values < low - 1e-3)  # (B,)
    if not binds.any() or not torch.allclose(low[binds], -high[binds], rtol=1e-3, atol=1e-5) or \
            torch.allclose(high[binds], torch.ones_like(high[binds]), atol=1e-3):
        return None  # not a symmetric range, or [−1, 1] up to rounding (compare says float32 precision)
    b = int(binds.nonzero()[0])
    bounds = {}
    if alpha_bar_t is not None:
        root = alpha_bar_t.flatten().double().sqrt()  # (B,)
        bounds = {"1/√ᾱ_t: you clipped x_t − √(1 − ᾱ_t)·ε_θ to [−1, 1] before dividing it by √ᾱ_t": 1 / root,
                  "√ᾱ_t: you clipped after multiplying x̂_0 by √ᾱ_t": root}
    for words, bound in bounds.items():
        if torch.allclose(high[binds].double(), bound[binds].to(high.dtype).double(), rtol=1e-3):
            return (f"your x̂_0 is clipped to ±{high[b].item():.4g} in image {b}, a bound that changes with t: it is "
                    f"{words}. Clip x̂_0 itself, after the division of eq. (5.12): x0_hat.clamp(-1, 1).")
    return (f"your x̂_0 is clipped to ±{high[b].item():.4g} in image {b} and to other bounds in other images; eq. "
            f"(5.15) clips x̂_0 itself to [−1, 1], the same for every image: x0_hat.clamp(-1, 1).")

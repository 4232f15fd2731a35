"""Exercise 5.6 — sinusoidal time embedding, eq. (5.17)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from utils.checks.core import Case, Exercise, fit_linear, one_thread
from utils.checks.diffusion.images import run_learner
from utils.checks.diffusion.references import reference_sinusoidal_embedding

_BROADCAST = re.compile(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)")

EX_EMBEDDING = Exercise("5.6", "sinusoidal_embedding")


@dataclass(frozen=True)
class EmbeddingCase(Case):
    steps: tuple = (1,)
    dim: int = 16

    @property
    def sizes(self) -> dict[str, int]:
        named = {"B": len(self.steps), "dim": self.dim, "dim/2": self.dim // 2}
        return {name: size for name, size in named.items() if size > 1}

    def explain(self, error: BaseException, line: str) -> str | None:
        """t (B,) times the frequencies (d/2,) without making a table: the angles need both axes."""
        found = _BROADCAST.search(str(error))
        B, half = len(self.steps), self.dim // 2
        if found is None or {int(found.group(1)), int(found.group(2))} != {B, half} or B == half:
            return None
        return (f"t has one step per image, shape (B,) = ({B},), and the frequencies one per pair of columns, "
                f"(d/2,) = ({half},): multiplied as they are, they line up on one axis. The angles are a (B, d/2) "
                f"table, every step times every frequency: t[:, None] * frequencies[None, :] (or torch.outer(t, "
                f"frequencies)), then sin and cos of it joined along the last axis.")


EMBEDDING_CASES = [
    EmbeddingCase("t = 1, 2, 3, 5, 8, 13, 100, 250, 999, 1000; dim 16", steps=(1, 2, 3, 5, 8, 13, 100, 250, 999, 1000),
                  dim=16),
    EmbeddingCase("batch size 1, t = 1, dim 8", steps=(1,), dim=8),
    EmbeddingCase("t in 1..200, dim 64", steps=(1, 2, 3, 4, 7, 19, 60, 123, 171, 200), dim=64),
    EmbeddingCase("t = 1000 and 500, dim 4", steps=(1000, 500), dim=4),
]


def identify_sinusoid(values: torch.Tensor, t: torch.Tensor) -> tuple[str, float] | None:
    """("sin" | "cos", ω) with values ≈ sin(ω t) or cos(ω t), 0 ≤ ω ≤ π, or None.

    ω is unwrapped from the smallest t upward: each larger t refines it, choosing the branch of arcsin/arccos
    nearest the angle the current estimate predicts (t sorted, the first one small).
    """
    order = torch.argsort(t)
    t, values = t[order].double(), values[order].double().clamp(-1, 1)
    best = None
    for kind in ("sin", "cos"):
        function = torch.sin if kind == "sin" else torch.cos
        first = values[0].item()
        base = math.asin(first) if kind == "sin" else math.acos(first)
        starts = [base, math.pi - base] if kind == "sin" else [base]
        for start in starts:
            omega = start / t[0].item()
            for step, value in zip(t[1:].tolist(), values[1:].tolist()):
                principal = math.asin(value) if kind == "sin" else math.acos(value)
                branches = [principal, math.pi - principal] if kind == "sin" else [principal, -principal]
                predicted = omega * step
                angle = min((b + 2 * math.pi * round((predicted - b) / (2 * math.pi)) for b in branches),
                            key=lambda a: abs(a - predicted))
                omega = angle / step
            if not -1e-9 <= omega <= math.pi + 1e-6:
                continue
            error = (function(omega * t) - values).abs().max().item()
            if best is None or error < best[2]:
                best = (kind, max(omega, 0.0), error)
    return (best[0], best[1]) if best and best[2] < 2e-3 else None


def _embedding_probes(t: torch.Tensor, dim: int):
    half = dim // 2
    frequencies = 10_000.0 ** (-torch.arange(half, dtype=torch.float64) / half)  # (dim/2,)

    def bounded(got):
        top = got.abs().max().item()
        if top <= 1 + 1e-4:
            return None
        angles = t.double()[:, None] * frequencies[None, :]
        if torch.allclose(got.double(), torch.cat([angles, angles], -1), rtol=1e-4):
            return "you returned the angles t·ω_i themselves: apply sin to the first half and cos to the second."
        return (f"your embedding reaches {top:.4g}; sines and cosines lie in [−1, 1] (eq. 5.17): apply sin and "
                f"cos to the angles t·ω_i.")

    def uses_t(got):
        if len(t) > 1 and torch.allclose(got, got[:1].expand_as(got)):
            return "every t gets the same embedding: the angles are t·ω_i, one row per image's t."
        return None

    def embedded_steps(got):
        """The step t' each row embeds, read from its sin/cos pairs with eq. (5.17)'s frequencies: t + 1, t/1000."""
        mine = recover_embedded_steps(got, frequencies)
        if mine is None or torch.allclose(mine, t.double(), atol=1e-2):
            return None
        shown = ", ".join(f"{a:.4g}" for a in mine[:4].tolist())
        head = (f"your rows are eq. (5.17)'s embedding of other steps: t' = {shown}, … for t = "
                f"{', '.join(map(str, t[:4].tolist()))}, …")
        shift = (mine - t.double()).mean().item()
        if torch.allclose(mine - t.double(), torch.full_like(mine, round(shift)), atol=1e-2):
            return (f"{head}: you embedded t {'+' if shift > 0 else '−'} {abs(round(shift))} instead of t (off by "
                    f"{abs(round(shift))}). The angles are t·ω_i with the step t itself (1..T), as the network sees "
                    f"it in sampling.")
        if len(t) > 2 and (t != t[0]).any():  # t' = a·t + b with b ≠ 0 (a scale alone is read as frequencies)
            fit = fit_linear(mine, {"t": t.double(), "1": torch.ones_like(mine)})
            a, b = fit.coefficients["t"], fit.coefficients["1"]
            if fit.exact and abs(b) > 1e-2:
                return (f"{head}: you embedded {a:.4g}·t {'+' if b > 0 else '−'} {abs(b):.4g}, not t: the angles are "
                        f"t·ω_i with the integer step t itself.")
        return None

    def columns(got):
        if len(t) < 4:
            return None
        found = [identify_sinusoid(got[:, j], t) for j in range(dim)]  # per column: (kind, ω) or None
        flipped = [j for j, f in enumerate(found) if f is None and identify_sinusoid(-got[:, j], t) is not None]
        for j in flipped:  # −sin(ω t): a flipped sign, or a sine whose frequency beyond π folds back as −sin
            found[j] = identify_sinusoid(-got[:, j], t)
        unknown = [j for j, f in enumerate(found) if f is None]
        scaled = _scaled_angle(found, frequencies)
        if scaled:
            return scaled
        if flipped and not unknown:
            shown = ", ".join(map(str, flipped[:6])) + (", …" if len(flipped) > 6 else "")
            several = len(flipped) > 1
            return (f"column{'s' if several else ''} {shown} of your embedding {'are' if several else 'is'} "
                    f"−sin(t·ω) or −cos(t·ω): a sign is flipped; eq. (5.17) has +sin(t ω_i) and +cos(t ω_i).")
        if len(unknown) == dim:
            return ("none of your columns is sin(t·ω) or cos(t·ω) of its row's t: is each row computed from its own "
                    "t? A cat or reshape along the wrong axis mixes the images' rows — the angles are a (B, d/2) "
                    "table, t[:, None]·ω[None, :], and sines and cosines are joined along the last axis, dim=-1.")
        if unknown:
            shown = ", ".join(map(str, unknown[:6])) + (", …" if len(unknown) > 6 else "")
            several = len(unknown) > 1
            return (f"column{'s' if several else ''} {shown} of your embedding {'are' if several else 'is'} "
                    f"not sin(t·ω) or cos(t·ω) for any frequency ω up to π. Eq. (5.17)'s frequencies fall from "
                    f"ω_0 = 1 toward 1/10000: do yours grow (the exponent of ω_i = 10000^(−i/(d/2)) is negative), "
                    f"or is the angle not t·ω_i?")
        kinds = [kind for kind, _ in found]
        expected_kinds = ["sin"] * half + ["cos"] * half
        copied = _copied_half(got, kinds, half)
        if copied:
            return copied
        if kinds != expected_kinds:
            if kinds == ["cos"] * half + ["sin"] * half:
                return ("cosines first: the convention here (DDPM's code) is the sines in the first half, then the "
                        "cosines: torch.cat([sin, cos], dim=-1).")
            if kinds == ["sin", "cos"] * half:
                return ("you interleaved sin and cos (sin, cos, sin, cos, …, as in the Transformer paper's table); "
                        "here they are concatenated: all sines, then all cosines.")
            wrong = [j for j, (k, e) in enumerate(zip(kinds, expected_kinds)) if k != e]
            plural = {"sin": "sines", "cos": "cosines"}
            return (f"columns {', '.join(map(str, wrong[:6]))} hold {plural[kinds[wrong[0]]]} instead of "
                    f"{plural[expected_kinds[wrong[0]]]} (eq. 5.17): the first d/2 columns are sin(t ω_i), the last "
                    f"d/2 cos(t ω_i).")
        omega_sin = torch.tensor([w for _, w in found[:half]], dtype=torch.float64)
        omega_cos = torch.tensor([w for _, w in found[half:]], dtype=torch.float64)
        if not torch.allclose(omega_sin, omega_cos, rtol=1e-2, atol=1e-5):
            return ("the sines and the cosines do not share the same frequencies: column i and column d/2 + i must "
                    "use the same ω_i (eq. 5.17) — d/2 frequencies ω_i = 10000^(−i/(d/2)), each giving one sine and "
                    "one cosine" + (", not d frequencies split between them (the cosines' continue below the "
                                    "sines')" if omega_cos.max() < omega_sin.min() else "") + ".")
        return _frequency_problem(omega_sin, frequencies, half)
    return [bounded, uses_t, embedded_steps, columns]


def _copied_half(got: torch.Tensor, kinds: list[str], half: int) -> str | None:
    """Both halves of the embedding the same function: one half copy-pasted from the other (sin twice, cos twice)."""
    if not torch.allclose(got[:, :half].double(), got[:, half:].double(), rtol=1e-5, atol=1e-6):
        return None
    kind = max(("sin", "cos"), key=kinds.count)
    if kind == "sin":
        return ("both halves of your embedding are the sines sin(t ω_i): a copy-paste — the second half must be "
                "cos(t ω_i). Write torch.cat([angles.sin(), angles.cos()], dim=-1).")
    return ("both halves of your embedding are the cosines cos(t ω_i): a copy-paste — the first half must be "
            "sin(t ω_i). Write torch.cat([angles.sin(), angles.cos()], dim=-1).")


def recover_embedded_steps(got: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor | None:
    """(B,) the step t' with row b = [sin(t' ω_i), cos(t' ω_i)] for eq. (5.17)'s ω, or None when the rows are not
    such embeddings. t' comes from the slowest frequency's angle (unique while t'·ω < 2π), then is refined with
    each faster one, choosing the turn nearest the estimate."""
    half = len(frequencies)
    rows = got.detach().double()
    if rows.dim() != 2 or rows.shape[1] != 2 * half or not torch.isfinite(rows).all():
        return None
    sin, cos = rows[:, :half], rows[:, half:]  # (B, d/2)
    if not torch.allclose(sin ** 2 + cos ** 2, torch.ones_like(sin), atol=1e-3):
        return None
    angles = torch.atan2(sin, cos) % (2 * math.pi)  # (B, d/2): t'·ω_i modulo 2π
    estimate = angles[:, -1] / frequencies[-1]  # the slowest frequency
    for i in range(half - 2, -1, -1):
        turns = torch.round((estimate * frequencies[i] - angles[:, i]) / (2 * math.pi))
        estimate = (angles[:, i] + 2 * math.pi * turns) / frequencies[i]
    rebuilt = estimate[:, None] * frequencies[None, :]
    if not (torch.allclose(rebuilt.sin(), sin, atol=2e-3) and torch.allclose(rebuilt.cos(), cos, atol=2e-3)):
        return None
    return estimate


def _frequency_problem(mine: torch.Tensor, want: torch.Tensor, half: int) -> str | None:
    """Name what is off in recovered frequencies ω_0..ω_{d/2−1} (each ± 1%): order, first value, ratio."""
    if torch.allclose(mine, want, rtol=1e-2, atol=1e-6):
        return None
    shown = ", ".join(f"{w:.3g}" for w in mine[:4].tolist())
    expected = ", ".join(f"{w:.3g}" for w in want[:4].tolist())
    head = f"your frequencies are ω = {shown}, … where eq. (5.17) has {expected}, …"
    if torch.allclose(mine, want.trunc(), rtol=1e-2, atol=1e-6):  # 1, 0, 0, …: the fractions cut off
        return (f"{head}: they are eq. (5.17)'s truncated to whole numbers — an integer dtype somewhere: the "
                f"frequencies (or the angles) were made int64 (.to(t.dtype), .long(), an integer torch.arange in a "
                f"power). Convert t to float first, t.float()[:, None] * frequencies[None, :], and keep ω float"
                + (". Or the frequencies after ω_0 underflow to 0: e^(−10000·i/(d/2)), the log of 10000 left out of "
                   "torch.exp — 1, 0, 0, … either way, so check which your code has." if bool((mine[1:] == 0).all())
                   else "."))
    if torch.allclose(mine, want.flip(0), rtol=1e-2, atol=1e-6):
        return f"{head}: the frequencies are in reverse order; ω_0 = 1 comes first, falling to ≈ 1/10000."
    factor = (mine / want).mean().item()
    if half > 1 and torch.allclose(mine, factor * want, rtol=1e-2, atol=1e-7) and \
            math.isclose(factor, want[1].item(), rel_tol=1e-2):
        return (f"{head}: each of your frequencies is the next one of eq. (5.17), ω_{{i+1}}: does i start at 1? "
                f"ω_0 = 10000^0 = 1 (i runs from 0 to d/2 − 1, torch.arange(d/2)).")
    if torch.allclose(mine, factor * want, rtol=1e-2, atol=1e-7) and math.isclose(factor, math.pi / 180, rel_tol=1e-2):
        return (f"{head}: every frequency is π/180 × eq. (5.17)'s: the angles were taken as degrees; torch.sin and "
                f"torch.cos take radians, so use t·ω_i as it is.")
    if torch.allclose(mine, factor * want, rtol=1e-2, atol=1e-7):
        return (f"{head}: every frequency is {factor:.4g} × eq. (5.17)'s, so the angle is scaled: is t divided by "
                f"something (t/T?) or multiplied by a constant? The angle is t·ω_i with the integer t itself.")
    aliased = _aliased_factor(mine, want)
    if aliased is not None:
        return f"{head}: {_aliased_words(aliased)}"
    positive = mine > 1e-7
    if positive.sum() >= 2:
        logs = mine[positive].log()
        i = torch.arange(half, dtype=torch.float64)[positive]
        slope = ((logs[1:] - logs[:1]) / (i[1:] - i[:1])).mean().item()
        geometric = torch.allclose(logs, logs[0] + slope * (i - i[0]), atol=2e-2)
        if geometric and slope > 0:
            return f"{head}: your frequencies grow; ω_i = 10000^(−i/(d/2)) has a *negative* exponent."
        if geometric and not math.isclose(mine[0].item(), 1.0, rel_tol=1e-2):
            first = mine[0].item()
            named = " = ω_1 of eq. (5.17): does i start at 1" if math.isclose(first, want[1].item(), rel_tol=1e-2) \
                else ""
            return (f"{head}: your first frequency is {first:.4g}{named}; ω_0 = 10000^0 = 1 (i runs from 0 to "
                    f"d/2 − 1).")
        if geometric and abs(slope) < 1e-9:  # every frequency the same, e.g. an integer division i // (d/2) = 0
            return (f"{head}: all your frequencies are {mine[0].item():.4g}: the exponent −i/(d/2) must vary with i "
                    f"(is it an integer division, i // (d/2), which is 0 for every i?).")
        if geometric:
            denominator = math.log(10_000) / -slope
            usual = f"Divide i by d/2 = {half}: half = dim // 2, then ω_i = 10000 ** (−i / half)."
            for shown, value, fix in (
                    (f"(d/2 − 1) = −i/{half - 1} (a variant in DDPM's code)", half - 1, usual),
                    (f"d = −i/{2 * half}", 2 * half, f"Divide i by d/2 = {half}, not by d (half = dim // 2, then "
                                                     f"ω_i = 10000 ** (−i / half))."),
                    ("1", 1, usual), (f"(d/2 + 1) = −i/{half + 1}", half + 1, usual),
                    (f"(d/4) = −i/{half / 2:g}", half / 2,
                     "That is 2i/(d/2), as when i runs over 0, 2, 4, … (torch.arange(0, d, 2)) and is still divided "
                     "by d/2: with i = torch.arange(0, d, 2) divide by d; with i = torch.arange(d // 2), by d/2.")):
                if math.isclose(denominator, value, rel_tol=2e-2) and value != half:
                    speed = "too fast" if denominator < half else "too slowly"
                    return (f"{head}: your exponent is −i/{shown}, where eq. (5.17)'s is −i/(d/2) = −i/{half}. {fix} "
                            f"Yours fall {speed} (ω_{{d/2−1}} is {mine[-1].item():.3g}, should be "
                            f"{want[-1].item():.3g}).")
            rounded = round(denominator)
            if rounded in (8, 16, 32, 64, 128, 256, 512) and math.isclose(denominator, rounded, rel_tol=2e-2):
                return (f"{head}: the exponent is −i/{rounded}, a fixed number, where eq. (5.17) has −i/(d/2) = "
                        f"−i/{half} here: is d/2 hard-coded ({rounded} = d/2 for d = {2 * rounded})? Use the dim "
                        f"argument, half = dim // 2.")
            return f"{head}: {_base_words(math.exp(-slope * half))}"
    steps = mine.diff()
    if half > 2 and torch.allclose(steps, steps.mean().expand_as(steps), rtol=1e-2, atol=1e-6):
        return (f"{head}: your frequencies fall in equal steps of {-steps.mean().item():.3g} (linearly, as "
                f"torch.linspace) from {mine[0].item():.3g} to {mine[-1].item():.3g}; eq. (5.17)'s fall "
                f"geometrically, by equal ratios: ω_i = 10000^(−i/(d/2)), i.e. "
                f"torch.exp(-math.log(10000) * torch.arange(d/2) / (d/2)).")
    return f"{head}: ω_i = 10000^(−i/(d/2)), i = 0 … d/2 − 1, falls geometrically from 1 toward 1/10000."


def _base_words(base: float) -> str:
    """Frequencies falling as base^(−i/(d/2)) with another base than 10000: the base, named when it comes from mixing
    a logarithm of one base with a power of another, and the fix."""
    power = math.log(base) / math.log(10_000)  # base = 10000^power
    mixes = {math.log(10): "10 ** (−math.log(10000)·…): a natural log (math.log) raised as a power of 10",
             1 / math.log(10): "torch.exp(−math.log10(10000)·…): a base-10 log (math.log10) raised as a power of e",
             math.log2(math.e): "2 ** (−math.log(10000)·…): a natural log raised as a power of 2"}
    mixed = next((words for value, words in mixes.items() if math.isclose(power, value, rel_tol=1e-3)), None)
    shown = f"{base:.4g}" + (f" = 10000^{power:.4g}, from {mixed}" if mixed else "")
    return (f"your frequencies fall geometrically as base^(−i/(d/2)) with base {shown}; eq. (5.17)'s base is 10000. "
            f"Use 10000 ** (−i/(d/2)), or torch.exp(−math.log(10000)·i/(d/2)) — the log and the power of one base.")


def _aliased_words(factor: float) -> str:
    """What a scaled angle is, when every frequency is ``factor`` × eq. (5.17)'s (fast ones folded), and the fix."""
    named = next((name for name, value in (("2π", 2 * math.pi), ("π", math.pi), ("10", 10.0), ("100", 100.0),
                                           ("1000", 1000.0), ("180/π", 180 / math.pi))
                  if math.isclose(factor, value, rel_tol=1e-3)), None)
    shown = named or f"{factor:.4g}"
    equals = f" = {named}" if named and named != f"{factor:.4g}" else ""
    if named == "180/π":  # the angle converted to degrees: sin and cos take radians
        equals += " — the angle converted to degrees (math.degrees, · 180/π), where sin and cos take radians"
    return (f"every frequency is {factor:.4g}{equals} × eq. (5.17)'s (the fast ones beyond π "
            f"show up folded back, as sampled sines do), so your angle is scaled: it is {shown}·t·ω_i where eq. (5.17) "
            f"has t·ω_i. Remove the factor {shown} (no 2π·t·ω as in Fourier features, no t·1000 as for a t in "
            f"[0, 1]): the angle is the integer step t times ω_i.")


def _scaled_angle(found: list, frequencies: torch.Tensor) -> str | None:
    """When the cosine columns that could be read (a fast one computed in float32 may not be: t·ω·1000 loses its
    digits) all have c × eq. (5.17)'s frequency, folded back into [0, π] as sampled sines fold: the angle is scaled
    by c. Cosines, because a folded sine reads as −sin."""
    half = len(frequencies)
    read = [i for i in range(half) if found[half + i] is not None and found[half + i][0] == "cos"]
    if len(read) < 4:
        return None
    mine = torch.tensor([found[half + i][1] for i in read], dtype=torch.float64)
    sines = [(found[i][1], found[half + i][1]) for i in read if found[i] is not None]
    if any(not math.isclose(a, b, rel_tol=1e-2, abs_tol=1e-5) for a, b in sines):
        return None  # the sines run at other frequencies than the cosines: not one scaled angle
    factor = _aliased_factor(mine, frequencies[read])
    return _aliased_words(factor) if factor is not None else None


def _stacked_problem(got: torch.Tensor, B: int, dim: int) -> str | None:
    """(B, 2, d/2) or (B, d/2, 2): the sines and cosines stacked on a new axis (torch.stack) where eq. (5.17)
    concatenates them along the last one; flattening (B, d/2, 2) would interleave them as well."""
    half = dim // 2
    if tuple(got.shape) == (B, 2, half):
        how = "torch.stack([sin, cos], dim=1)"
    elif tuple(got.shape) == (B, half, 2):
        how = "torch.stack([sin, cos], dim=-1)"
    else:
        return None
    return (f"shape {tuple(got.shape)}: {how} stacks the sines and cosines on an extra, third axis; eq. (5.17) "
            f"concatenates them along the last one: torch.cat([sin, cos], dim=-1), for (B, d) = ({B}, {dim}).")


def _embedding_shape_problem(sinusoidal_embedding, got, t: torch.Tensor, case: EmbeddingCase) -> str | None:
    """A (B, dim) embedding of another shape, read: one half missing, sines and cosines stacked along the batch axis,
    or a size that does not follow ``dim`` (the function is called again with another dim to tell)."""
    if not isinstance(got, torch.Tensor):
        return None
    if got.dim() == 3:
        return _stacked_problem(got, len(t), case.dim)
    if got.dim() != 2:
        return None
    B, dim = len(t), case.dim
    rows, width = got.shape
    if (rows, width) == (B, dim):
        return None
    if (rows, width) == (2 * B, dim // 2):
        return (f"shape {tuple(got.shape)} = (2B, d/2): the sines and cosines were joined along the batch axis, "
                f"dim=0; join them along the last axis, torch.cat([sin, cos], dim=-1), for (B, d) = ({B}, {dim}).")
    if (rows, width) in ((dim // 2, 2 * B), (dim, B)) and B != dim // 2:
        return (f"shape {tuple(got.shape)}: your angle table has the frequencies on the rows and the steps on the "
                f"columns, (d/2, B) — t[None, :]·ω[:, None]. Make it (B, d/2) with t[:, None] * ω[None, :], then "
                f"join sines and cosines along the last axis for (B, d) = ({B}, {dim}).")
    if rows == B and width == dim // 2:
        return (f"shape {tuple(got.shape)} = (B, d/2): only one half; eq. (5.17) has d/2 sines and then d/2 "
                f"cosines, torch.cat([sin, cos], dim=-1), for (B, d) = ({B}, {dim}).")
    if rows == B and width == 2 * dim:
        return (f"shape {tuple(got.shape)} = (B, 2d): d frequencies, each with a sine and a cosine; eq. (5.17) has "
                f"d/2 frequencies (i = 0 … d/2 − 1), so that sines and cosines together fill d columns.")
    if rows == B:
        other = EX_EMBEDDING.call(sinusoidal_embedding, t, dim + 4, case=case)
        if isinstance(other, torch.Tensor) and other.dim() == 2 and other.shape[1] == width:
            return (f"shape {tuple(got.shape)}: {width} columns for dim = {dim}, and {width} again for dim = "
                    f"{dim + 4}: a size is hard-coded ({width}). Use the dim argument: half = dim // 2 frequencies, "
                    f"(B, dim) in all.")
    return None


@one_thread
def _aliased_factor(mine: torch.Tensor, want: torch.Tensor) -> float | None:
    """The c > 1 with mine ≈ c·want once frequencies above π are folded back into [0, π] (the recovered ω of a sine
    sampled at integer t is only known up to 2π and its sign), read from the slowest frequencies, which are not
    folded; None if there is no such c."""
    if len(want) < 4:
        return None
    slow = len(want) // 2  # the slowest half of the frequencies: folded only if c·ω goes past π
    c = (mine[-slow:] / want[-slow:]).median().item()
    if c <= 1.01:
        return None
    scaled = c * want
    folded = (scaled - 2 * math.pi * torch.round(scaled / (2 * math.pi))).abs()  # into [0, π]
    return c if torch.allclose(mine, folded, rtol=1e-2, atol=1e-4) else None


@one_thread
def check_sinusoidal_embedding(sinusoidal_embedding) -> None:
    """Exercise 5.6: ``sinusoidal_embedding(t, dim)`` returns a (B, dim) float32 tensor, sines then cosines."""
    for case in EMBEDDING_CASES:
        t = torch.tensor(case.steps)
        got = run_learner(EX_EMBEDDING, sinusoidal_embedding, case, {"t": t, "dim": case.dim},
                          random_hint="the embedding is a fixed function of t (no random numbers).")
        problem = _embedding_shape_problem(sinusoidal_embedding, got, t, case)
        if problem:
            raise EX_EMBEDDING.fail(problem, case=case, name="embedding")
        EX_EMBEDDING.compare(got, reference_sinusoidal_embedding(t, case.dim), case=case, name="embedding",
                             equation="eq. (5.17)", probes=_embedding_probes(t, case.dim), atol=3e-4, rtol=1e-4,
                             axes=("B", "column"))
    EX_EMBEDDING.passed(f"{len(EMBEDDING_CASES)} cases (t from 1 to 1000, batch size 1, dim 4 to 64) match "
                        "[sin(t ω_i), cos(t ω_i)] with ω_i = 10000^(−i/(d/2)).")

"""Recovering the one quantity a learner's code read wrongly, image by image (ᾱ_{t−1} at t = 1, ᾱ_{t'} at t' = 0, a
ᾱ_t built as a sum), and naming it among the schedule's entries."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import torch

from utils.checks.diffusion.elsewhere import recovered_from_elsewhere, source_of_values
from utils.checks.diffusion.formulas import FREE, LAST, Factor, Formula, Model, Step, StepContext
from utils.checks.diffusion.naming import name_vector, pair_products
from utils.checks.diffusion.schedule import Schedule, close


# When every coefficient of an image is right but for one quantity (ᾱ_{t−1} at t = 1, ᾱ_{t'} at t' = 0, a ᾱ_t built
# as a sum instead of a product), solving for that quantity per image recovers the value the learner's code used,
# which is then named among the schedule's entries at any step or the usual wrong constructions of ᾱ.
@dataclass
class Recovered:
    """The value a learner's code used for one quantity of the equation, per image."""

    symbol: str
    step: Step
    part: str | None  # the one part it was read in; None: everywhere it appears
    values: torch.Tensor  # (B,) the learner's value
    right: torch.Tensor  # (B,) the equation's value
    wrong: torch.Tensor  # (B,) bool: images whose coefficients differ from the equation's

    @property
    def text(self) -> str:
        return Factor(self.symbol, self.step).base_text()


def _freed(model: Model, variable: tuple[str, Step], part: str | None) -> dict[str, Formula]:
    """The model's parts with ``variable`` made FREE (everywhere, or in ``part`` only)."""
    def free(formula: Formula) -> Formula:
        return replace(formula, factors=tuple(replace(f, symbol=FREE) if (f.symbol, f.step) == variable else f
                                              for f in formula.factors))
    return {name: free(formula) if part in (None, name) else formula for name, formula in model.parts.items()}


def _solve_free(model: Model, parts: dict[str, Formula], context: StepContext, got: dict[str, torch.Tensor],
                grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each image, the value in ``grid`` ((K,) shared, or (K, B) per image) whose coefficients come closest to
    ``got``: (values (B,), relative errors (B,)). One vectorised evaluation over K·B lanes."""
    B = context.batch
    grid = grid[:, None].expand(-1, B) if grid.dim() == 1 else grid  # (K, B)
    K = grid.shape[0]
    wide = StepContext(context.schedule, {name: v.repeat(K) for name, v in context.steps.items()},
                       free=grid.reshape(-1))
    predicted = model.combine({name: formula.value(wide) for name, formula in parts.items()})
    errors = torch.stack([(predicted[k].view(K, B) - got[k][None]).abs() / (got[k].abs()[None] + 1e-3)
                          for k in got]).amax(dim=0)  # (K, B)
    errors = torch.nan_to_num(errors, nan=math.inf)
    best = errors.argmin(dim=0)  # (B,)
    return grid.gather(0, best[None])[0], errors.gather(0, best[None])[0]


def _schedule_values(context: StepContext) -> torch.Tensor:
    """Every entry of the schedule's tables, 0 and 1: the values a learner's index mistake can produce."""
    tables = [context.tables[s] for s in ("ᾱ", "α", "β", "β̃")]
    return torch.cat([torch.tensor([0.0, 1.0], dtype=torch.float64), *tables, *_constructions(context).values()])


def _constructions(context: StepContext) -> dict[str, torch.Tensor]:
    """Ways of building ᾱ_t from the β's that are not ∏(1 − β_s), each a (T,) table indexed like alpha_bars."""
    betas, alphas = context.schedule.betas, context.schedule.alphas
    steps = torch.arange(1, len(betas) + 1, dtype=torch.float64)
    return {"1 − Σ_{s≤t} β_s, a sum (betas.cumsum): the product ∏(1 − β_s) is 1 − Σβ_s only while the β's are tiny":
            1 - betas.cumsum(0),
            "∏_{s≤t} β_s, the product of the betas (cumprod of betas, not of alphas)": betas.cumprod(0),
            "α_t^t, t copies of the same α_t: the α's differ from step to step, so multiply α_1⋯α_t (cumprod)":
            alphas ** steps,
            "exp(−Σ_{s≤t} β_s), the small-β approximation of ∏(1 − β_s)": torch.exp(-betas.cumsum(0)),
            "∏_{s≥t} α_s, the product from the end (a flipped cumprod)": alphas.flip(0).cumprod(0).flip(0),
            "∏_{s≤t} ᾱ_s, a cumprod of alpha_bars, which is a cumulative product already":
            context.schedule.alpha_bars.cumprod(0)}


def rebuilt_alpha_bars(model: Model, context: StepContext, got: dict[str, torch.Tensor]) -> str | None:
    """Every ᾱ of the equation (ᾱ_t and ᾱ_{t−1} alike) read from one wrongly built table — 1 − Σβ, a cumprod of
    alpha_bars, … — while β_t and α_t are right: the table was built wrongly once, before any step read it."""
    steps = {f.step for formula in model.parts.values() for f in getattr(formula, "factors", ()) if f.symbol == "ᾱ"}
    if len(steps) < 2:
        return None  # one ᾱ only: recover_variable reads it, with what its values say (negative from some t on)
    schedule = context.schedule
    for words, table in _constructions(context).items():
        other = StepContext(Schedule(schedule.betas, schedule.alphas, table), context.steps)
        predicted = model.evaluate(other)
        if all(close(got[k], predicted[k]) for k in got):
            return (f"every ᾱ in your code (ᾱ_t and ᾱ_{{t−1}} alike) is {words}; β_t and α_t are right. ᾱ_t = "
                    f"∏_{{s≤t}}(1 − β_s) is schedule.alpha_bars[t - 1]: use that table as it is.")
    return None


def recover_variable(model: Model, context: StepContext, got: dict[str, torch.Tensor]) -> Recovered | None:
    """The one quantity of ``model`` (a symbol at a step, everywhere it appears or in one part) whose value, chosen
    per image, reproduces the learner's coefficients ``got`` at every image; None if there is none.

    The value is searched among the schedule's entries (index mistakes), then on [0, 1] (a wrongly built ᾱ). A value
    that is not a schedule entry is accepted only when each image has more coefficients than the one unknown."""
    expected = model.evaluate(context)
    differs = ~torch.stack([(got[k] - expected[k]).abs() <= 1e-6 + 1e-4 * expected[k].abs() for k in got]).all(0)
    finite = torch.stack([torch.isfinite(v) for v in got.values()]).all(0)
    if not differs.any() or not finite.all():
        return None
    named = _schedule_values(context)
    dense = torch.cat([torch.linspace(0, 1, 2001, dtype=torch.float64),
                       torch.logspace(-30, 0, 1501, dtype=torch.float64)]).unique()  # sorted: tiny ᾱ_T too
    variables = list(dict.fromkeys((f.symbol, f.step) for formula in model.parts.values() for f in formula.factors
                                   if f.symbol != LAST))
    tries = [(v, None) for v in variables] + [(v, part) for v in variables for part, formula in model.parts.items()
                                              if any((f.symbol, f.step) == v for f in formula.factors)
                                              and sum(any((g.symbol, g.step) == v for g in other.factors)
                                                      for other in model.parts.values()) > 1]
    for variable, part in tries:
        parts = _freed(model, variable, part)
        values, errors = _solve_free(model, parts, context, got, named)
        exact = errors < 1e-6
        # over-determined (the unknown moves two coefficients), a value off the schedule's tables is evidence too;
        # for one coefficient any value fits, so such a value counts only if one formula names it at every image
        determined = _sensitive_outputs(model, parts, context) > 1
        if not exact.all():
            values, errors = _solve_free(model, parts, context, got, dense)
            position = torch.searchsorted(dense, values)
            low = dense[(position - 1).clamp(min=0)]
            high = dense[(position + 1).clamp(max=len(dense) - 1)]
            fractions = torch.linspace(0, 1, 41, dtype=torch.float64)[:, None]  # (41, 1)
            for _ in range(7):  # bisect-like: each pass narrows each image's bracket 20-fold around its best value
                values, errors = _solve_free(model, parts, context, got, low + (high - low) * fractions)
                step = (high - low) / 40
                low, high = (values - step).clamp(min=0), values + step
        wide = StepContext(context.schedule, context.steps, free=values)
        predicted = model.combine({name: formula.value(wide) for name, formula in parts.items()})
        if all(close(got[k], predicted[k]) for k in got) and (
                exact.all() or determined or _named(values, differs, context)
                or _from_elsewhere(values, differs, variable, context)):
            right = context.quantity(*variable)
            where = model.labels.get(part, part) if part else None  # said as the part's words: "the coefficient of ε"
            return Recovered(variable[0], variable[1], where, values, right, differs)
    return None


def group_at_other_steps(model: Model, context: StepContext, got: dict[str, torch.Tensor]) -> str | None:
    """One group of a composed step (μ̃ of the DDPM step, the new sample of DDIM) computed at another step than the
    equation's, image by image — posterior_mean_variance called with t − 1 — while the rest is right: the step each
    image's group was read at is recovered by trying every step 0..T at once."""
    T, B = context.schedule.T, context.batch
    candidates = torch.arange(0, T + 1)
    for group, members in model.groups.items():
        bases = {f.step.base for name in members for f in getattr(model.parts[name], "factors", ())}
        if len(bases) != 1:
            continue
        base = bases.pop()
        wide = StepContext(context.schedule, {name: v.repeat(len(candidates)) for name, v in context.steps.items()})
        wide.steps[base] = candidates.repeat_interleave(B)  # (K·B,): candidate k for every image
        right = StepContext(context.schedule, wide.steps | {base: context.steps[base].repeat(len(candidates))})
        values = {name: formula.value(wide if name in members else right) for name, formula in model.parts.items()}
        predicted = model.combine(values)
        errors = torch.stack([(predicted[k].view(-1, B) - got[k][None]).abs() / (got[k].abs()[None] + 1e-3)
                              for k in got]).amax(dim=0)  # (K, B)
        errors = torch.nan_to_num(errors, nan=math.inf)
        best = errors.argmin(dim=0)  # (B,)
        read = candidates[best]
        if not bool((errors.gather(0, best[None])[0] < 1e-5).all()) or torch.equal(read, context.steps[base]):
            continue
        return _describe_group_steps(model, group, base, context.steps[base], read)
    return None


def _describe_group_steps(model: Model, group: str, base: str, steps: torch.Tensor, read: torch.Tensor) -> str:
    offsets = (read - steps).tolist()
    shifts = sorted(set(offsets))
    shown = {0: base, **{d: f"{base} {'+' if d > 0 else '−'} {abs(d)}" for d in shifts if d}}
    if len(shifts) == 1:
        where = f"at {shown[shifts[0]]} for every image"
    else:
        where = "; ".join(f"at {shown[d]} for the images with {base} = "
                          f"{', '.join(str(int(s)) for s, o in zip(steps, offsets) if o == d)}" for d in shifts)
    hint = " (is t − 1 passed where t goes, as the step's own t?)" if -1 in shifts else ""
    return (f"everything in {model.equation} is right except {group}, which your code computes at another step: "
            f"{where}, where {model.equation} reads it at {base}{hint}. Every quantity of {group} belongs to the "
            f"step's own {base}.")


def _named(values: torch.Tensor, images: torch.Tensor, context: StepContext) -> bool:
    """Whether one formula (a schedule quantity, a power or a product of two) gives ``values`` at every image of
    ``images``."""
    sub = StepContext(context.schedule, {name: v[images] for name, v in context.steps.items()})
    return name_vector(values[images], sub, pairs=True) is not None


def _from_elsewhere(values: torch.Tensor, images: torch.Tensor, variable: tuple[str, Step],
                    context: StepContext) -> bool:
    """Whether another schedule the code can reach (a global, another T) gives ``values`` at every image of
    ``images``."""
    symbol, step = variable
    if symbol not in ("ᾱ", "α", "β"):
        return False
    steps = step.indices(context.steps)
    return source_of_values(values[images], symbol, steps[images], context) is not None


def _sensitive_outputs(model: Model, parts: dict[str, Formula], context: StepContext) -> int:
    """How many of the model's outputs change when the FREE quantity in ``parts`` changes (0.3 → 0.6)."""
    outputs = []
    for value in (0.3, 0.6):
        probe = StepContext(context.schedule, context.steps, free=torch.full((context.batch,), value,
                                                                             dtype=torch.float64))
        outputs.append(model.combine({name: formula.value(probe) for name, formula in parts.items()}))
    return sum(not torch.allclose(torch.as_tensor(outputs[0][k]), torch.as_tensor(outputs[1][k]), equal_nan=True)
               for k in outputs[0])


def _name_value_at(value: float, context: StepContext, symbol: str, step_index: int) -> str | None:
    """"ᾱ_1 (alpha_bars[0])", "0", "1 − Σ_{s≤t} β_s …" for a value a learner's code used, or None."""
    def near(a: float, b: float) -> bool:
        return abs(a - b) <= 1e-8 + 2e-4 * abs(b)
    if near(value, 0.0):
        return "0"
    code = {"ᾱ": "alpha_bars", "α": "alphas", "β": "betas", "β̃": "posterior variances"}
    order = [symbol] + [s for s in ("ᾱ", "α", "β", "β̃") if s != symbol]
    for name in order:
        table = context.tables[name]
        hits = [k for k in range(len(table)) if near(value, table[k].item())]
        if hits:
            k = min(hits, key=lambda k: abs(k + 1 - step_index))
            return f"{name}_{k + 1} ({code[name]}[{k}])"
    return "1" if near(value, 1.0) else None  # (a wrong construction of ᾱ is named once, by describe_recovered)


def describe_recovered(found: Recovered, context: StepContext, equation: str) -> str:
    """What the learner's code used for the recovered quantity, at the images where it matters, and what to do."""
    steps = found.step.indices(context.steps)  # (B,) the step each image's quantity belongs to
    wrong = found.wrong.nonzero().flatten().tolist()
    where = "" if found.part is None else f" in {found.part}"
    only = f", and only at {steps_text(context, found.wrong)} (your other images are right)" \
        if at_an_end(context, found.wrong) and not found.wrong.all() else ""
    if found.symbol == "ᾱ":  # one wrong construction of ᾱ at every image: say it once
        for words, table in _constructions(context).items():
            inside = (steps[wrong] >= 1) & (steps[wrong] <= context.schedule.T)
            if inside.all() and close(found.values[wrong], table[steps[wrong] - 1], rtol=2e-4, atol=1e-7):
                b = max(wrong, key=lambda i: abs(found.values[i] - found.right[i]).item())
                k = int(steps[b])
                negative = (table < 0).nonzero().flatten()
                sign = (f" It is negative from t = {int(negative[0]) + 1} on, where its square root is NaN."
                        if len(negative) else "")
                return (f"everything in {equation} is right except {found.text}{where}{only}: your {found.text} is "
                        f"{words} (at {context.describe(b)}: {found.values[b].item():.4g}, where {found.symbol}_{k} = "
                        f"{found.right[b].item():.4g}).{sign} ᾱ_t = ∏_{{s≤t}}(1 − β_s) is schedule.alpha_bars[t - 1].")
    if found.symbol in ("ᾱ", "α", "β"):  # the right equation on a table of another schedule
        b = max(wrong, key=lambda i: abs(found.values[i] - found.right[i]).item())
        position = wrong.index(b)
        sub = context.subset(found.wrong)
        elsewhere = recovered_from_elsewhere(found.text, found.symbol, found.values[wrong], steps[wrong], sub,
                                             position)
        if elsewhere:
            return f"everything in {equation} is right except {found.text}{where}: {elsewhere}"
    product = _as_product(found, context)
    if product:
        return f"everything in {equation} is right except {found.text}{where}{only}: {product}"
    shown, names, seen = [], [], set()
    for b in wrong:
        k = int(steps[b])
        have, want = found.values[b].item(), found.right[b].item()
        name = _name_value_at(have, context, found.symbol, k)
        if (k, name or f"{have:.4g}") in seen or len(shown) == 3:
            continue  # the same step read the same way in several images: say it once
        seen.add((k, name or f"{have:.4g}"))
        names.append(name)
        right_name = f"{found.symbol}_{k}" if 0 <= k <= context.schedule.T else f"step {k}"
        shown.append(f"at {context.describe(b)} your {found.text} is {have:.4g}"
                     + (f" = {name}" if name and name != f"{have:.4g}" else "")
                     + f" where {equation} needs {right_name} = {want:.4g}")
    message = f"everything in {equation} is right except {found.text}{where}{only}: " + "; ".join(shown) + "."
    ks = {int(steps[b]) for b in wrong}
    if ks == {0} and found.symbol == "ᾱ":
        index = "t_prev" if found.step.base == "t'" else "t - 1"
        last = f"ᾱ_{context.schedule.T} (alpha_bars[{context.schedule.T - 1}])"
        if all(n == last for n in names):
            below = "t_prev - 1" if found.step.base == "t'" else "t - 2"
            message += f" That is alpha_bars[-1]: an index one below 0 ({below} = −1) wraps around to the last entry."
        message += (" ᾱ_0 = 1 (nothing removed from the signal yet) is not in schedule.alpha_bars, whose index 0 is "
                    "ᾱ_1: pad a 1 in front, F.pad(schedule.alpha_bars, (1, 0), value=1.0), and index that with "
                    f"{index}.")
    elif ks == {context.schedule.T}:
        message += (f" At t = T = {context.schedule.T}, step T sits at the table's last index, T − 1: an index that "
                    f"runs past the end and was clamped or wrapped reads another step.")
    elif all(n and "[" in n and n.startswith(found.symbol + "_") for n in names):
        message += " Step k sits at index k − 1 of each table (alpha_bars[k - 1] is ᾱ_k)."
    elif found.symbol == "ᾱ":
        message += " ᾱ_t = ∏_{s≤t}(1 − β_s) is schedule.alpha_bars[t - 1] (and ᾱ_0 = 1)."
    return message


def _as_product(found: Recovered, context: StepContext) -> str | None:
    """The learner's value of the recovered quantity as a product of two schedule quantities at every image it is
    wrong (ᾱ_t·α_t where ᾱ_{t−1} = ᾱ_t/α_t), said with the right quantity written the same way; None when it is
    not such a product, or is a single quantity (the per-image reading names that, with its index)."""
    wrong = found.wrong
    sub = StepContext(context.schedule, {name: v[wrong] for name, v in context.steps.items()})
    single = name_vector(found.values[wrong], sub)
    if single is not None and re.fullmatch(r"[αβᾱ̃]+_(t|\{[^}]*\})", single):
        return None  # one table entry at another step: the per-image reading names it with its index
    name = name_vector(found.values[wrong], sub, pairs=True)
    if name is None or name in ("0", "1", "-1"):
        return None  # a constant: the per-image reading says which entry it is (ᾱ_0 = 1 read as 0)
    b = int(wrong.nonzero()[0])
    shown = (f"your {found.text} is {name} at every image (at {context.describe(b)}: {found.values[b].item():.4g}, "
             f"where {found.text} = {found.right[b].item():.4g})")
    if single is not None:  # a power of one quantity (ᾱ_t² for ᾱ_t): that quantity itself is meant
        return f"{shown}: use {found.text} itself there."
    right = next((text for text, formula in pair_products(sub).items()
                  if close(found.right[wrong], formula.value(sub))), None)
    return f"{shown}, but {found.text} = {right}: compute it so." if right else f"{shown}."


def at_an_end(context: StepContext, images: torch.Tensor) -> bool:
    """Whether every image in ``images`` (a (B,) mask, not empty) has t = 1, t = T or t' = 0, and not every image of
    the batch is one of them (otherwise a step look-alike explains it as well)."""
    t, T = context.steps["t"], context.schedule.T
    ends = (t == 1) | (t == T)
    if "t'" in context.steps:
        ends = ends | (context.steps["t'"] == 0)
    return bool(images.any() and ends[images].all())


def steps_text(context: StepContext, mask: torch.Tensor) -> str:
    return " and ".join(f"{name} = {', '.join(map(str, sorted(set(v[mask].tolist()))))}"
                        for name, v in context.steps.items())


"""Why a learner's recovered coefficients differ from an exercise's model: the reading that names the mistake.

:func:`reason` tries the readings from the surest to the broadest — coefficients shared by every image, images
whose output is 0, an output that is an input or a named intermediate, one quantity read wrongly at t = 1 / t = T /
t' = 0, a factor missing from part of a bracket, a term on the wrong input, one small change to the equation (or
several that give the same numbers: then each is named as a candidate), the same equation written another way, two
inputs exchanged, a squared or inverted coefficient, the model's own readings (the x̂_0 a step implies), one
quantity recovered image by image, and a coefficient off by a named factor. :func:`explain_coefficients` puts the
learner's combination and the equation's in front of it, or lists what is off when nothing names it.
"""
from __future__ import annotations

import torch

from utils.checks.diffusion.changes import Change, changes, matching_changes, single_quantities
from utils.checks.diffusion.elsewhere import other_schedule
from utils.checks.diffusion.formulas import Model, StepContext
from utils.checks.diffusion.naming import name_vector
from utils.checks.diffusion.recovery import (
    at_an_end,
    describe_recovered,
    group_at_other_steps,
    rebuilt_alpha_bars,
    recover_variable,
)
from utils.checks.diffusion.schedule import close
from utils.checks.diffusion.terms import (
    Terms,
    bracket,
    exchanged,
    moved,
    named_output,
    ratio,
    recovered_part,
    substituted,
    transformed,
    zero_images,
)


def _one_image_for_all(terms: Terms) -> str | None:
    """The same coefficients at every image although the steps differ — one image's (not merely equal coefficients:
    ᾱ_0 = 0 at t' = 0)."""
    got, expected, context = terms.got, terms.expected, terms.context
    steps = context.steps["t"]
    same = len(steps) > 1 and len(set(steps.tolist())) > 1 and any(got[k].abs().max() > 1e-6 for k in expected) \
        and all(close(got[k], got[k][:1].expand_as(got[k]), 1e-6) for k in expected)
    whose = [b for b in range(len(steps)) if all(close(got[k], expected[k][b:b + 1].expand_as(got[k]))
                                                  for k in expected)] if same else []
    if not whose:
        return None
    owner = "the first image's" if whose[0] == 0 else f"those of image {whose[0]} ({context.describe(whose[0])})"
    return (f"your coefficients are the same for every image, though each image has its own t — they are {owner}. "
            "Use the whole (B,) tensor t: schedule.alpha_bars[t - 1] picks ᾱ_t for every image, shape (B,); view it "
            "as (B, 1, 1, 1).")


def _single_quantity(terms: Terms) -> str | None:
    """Every wrong coefficient is one schedule quantity, at every image."""
    singles = single_quantities(terms.context)
    found = []
    for key in terms.wrong:
        text = next((text for text, f in singles.items() if close(terms.got[key], f.value(terms.context))), None)
        if text is None:
            return None
        found.append(f"{terms.label(key)} is {text} at every image of the batch, instead of "
                     f"{terms.model.expected_text(key)}{_square_of_a_root(terms, key, singles)}")
    return "; ".join(found) + f". Compare it with {terms.model.equation} factor by factor."


def _square_of_a_root(terms: Terms, key: str, singles: dict) -> str:
    """", the square of √β̃_t: a variance where the equation has a standard deviation" when the learner's coefficient
    is the square of a square-rooted quantity and the equation's coefficient is a square root too."""
    got = terms.got[key]
    if "√" not in terms.model.expected_text(key):
        return ""
    root = next((text for text, f in singles.items() if text.startswith("√") and close(got, f.value(
        terms.context) ** 2)), None)
    if root is None:
        return ""
    return (f" — it is the square of {root}: a variance where {terms.model.equation} has a standard deviation, a "
            f"square root is missing")


def _candidates(changes: list[Change]) -> str:
    """The changes to the equation that give the numbers another reading found, as candidates (each reason once)."""
    if not changes:
        return ""
    whats = "; or ".join(change.what for change in changes)
    whys = " ".join(dict.fromkeys(change.why for change in changes))
    if len(changes) == 1:
        return f" The change to the equation that gives it: {whats}. {whys}"
    return (f" Each of these changes to the equation gives exactly that, so check which one your code has: {whats}. "
            f"{whys}")


def _first_change(terms: Terms) -> str | None:
    """The small change to the equation that reproduces the coefficients; several, when changes to different parts
    of the equation give the same numbers (each is then a candidate, not the diagnosis)."""
    model, context = terms.model, terms.context
    found = matching_changes(model, context, terms.got)
    if not found:
        return None
    change = found[0]
    if change.cancels and len(found) == 1:
        plainer = _single_quantity(terms)
        if plainer:  # the plain name first, then the changes that cancel down to it (β_t taken as 1 − ᾱ_t)
            return plainer + _candidates(_cancelling_changes(model, context, terms.got))
    extra = " ".join(dict.fromkeys(model.advice[c.group] for c in found if c.group in model.advice))
    if len(found) > 1:
        message = (f"{len(found)} different mistakes give exactly these numbers, so check which one your code has: "
                   f"{'; or '.join(c.what for c in found)}. {' '.join(dict.fromkeys(c.why for c in found))}"
                   f"{' ' + extra if extra else ''}")
    else:
        message = f"{change.what}. {change.why}{' ' + extra if extra else ''}"
    for other in model.alternatives:  # the same coefficients read as another way of writing the equation
        also = matching_changes(other, context, terms.got, limit=1)
        if also:
            message += f" (Written as {other.equation} {also[0].what}.)"
    return message


def _cancelling_changes(model: Model, context: StepContext, got: dict, limit: int = 3) -> list[Change]:
    """Every change whose factors cancel down to ``got`` (β_t in place of 1 − ᾱ_t and 1 − ᾱ_t in place of β_t both
    leave (1 − ᾱ_{t−1})): the evidence cannot tell them apart, so each is a candidate."""
    found: list[Change] = []
    for change in changes(model):
        if not change.cancels or any(change.what == kept.what for kept in found):
            continue
        predicted = model.evaluate(context, change.parts)
        if all(close(got[key], predicted[key]) for key in predicted):
            found.append(change)
            if len(found) == limit:
                break
    return found


def _alternative_forms(terms: Terms) -> str | None:
    for other in terms.model.alternatives:
        also = matching_changes(other, terms.context, terms.got, limit=1)
        if also:
            return f"in {other.equation} {also[0].what}. {also[0].why}"
    return None


def _named_output(terms: Terms) -> str | None:
    found = named_output(terms)
    if found is None:
        return None
    name, words = found
    if name == "x_t itself":  # the state the step starts from
        words += ": your step changed nothing"
    return f"{words}.{_candidates(matching_changes(terms.model, terms.context, terms.got))}"


def _other_schedule(terms: Terms) -> str | None:
    return other_schedule(terms.model, terms.context, terms.got)


def _rebuilt_alpha_bars(terms: Terms) -> str | None:
    return rebuilt_alpha_bars(terms.model, terms.context, terms.got)


def _group_at_other_steps(terms: Terms) -> str | None:
    return group_at_other_steps(terms.model, terms.context, terms.got)


def _model_readings(terms: Terms) -> str | None:
    return next(filter(None, (reading(terms.context, terms.got) for reading in terms.model.readings)), None)


def _recovered(terms: Terms) -> str | None:
    found = recover_variable(terms.model, terms.context, terms.got)
    return describe_recovered(found, terms.context, terms.model.equation) if found else None


def _only_at_ends(terms: Terms) -> bool:
    """Only images at t = 1, t = T or t' = 0 differ: one quantity read wrongly there, most likely."""
    differs = ~torch.stack([(terms.got[k] - terms.expected[k]).abs() <= 1e-6 + 1e-4 * terms.expected[k].abs()
                            for k in terms.expected]).all(0)
    return at_an_end(terms.context, differs)


def reason(model: Model, context: StepContext, got: dict[str, torch.Tensor], names: dict[str, str]) -> str | None:
    """What is wrong with the coefficients ``got`` (each (B,)), in words; None when they agree with ``model`` or no
    reading names the mistake."""
    terms = Terms(model, context, got, model.evaluate(context), names)
    if not terms.wrong:
        return None
    at_ends = _only_at_ends(terms)
    readings = [_one_image_for_all, zero_images, _recovered if at_ends else None, _named_output, _other_schedule,
                _rebuilt_alpha_bars,
                bracket, substituted,
                moved, _first_change, _alternative_forms, exchanged, transformed, _model_readings, _single_quantity,
                None if at_ends else _recovered, _group_at_other_steps, recovered_part, ratio]
    return next(filter(None, (reading(terms) for reading in readings if reading)), None)


def explain_coefficients(model: Model, context: StepContext, got: dict[str, torch.Tensor], *, output: str,
                         names: dict[str, str]) -> str | None:
    """Why the coefficients ``got`` (each (B,), recovered from the learner's output) differ from ``model``'s.

    Returns None when they agree. Otherwise the message shows the learner's combination and the equation's at the
    image where they differ most, then the first reading of :func:`reason` that names the mistake; failing that,
    which coefficients are off and, where a name fits every image, what they equal.
    """
    expected = model.evaluate(context)
    if all(close(got[key], expected[key]) for key in expected):
        return None
    errors = torch.stack([(got[k] - expected[k]).abs() / (expected[k].abs() + 1e-3) for k in expected])  # (K, B)
    worst = int(errors.max(dim=0).values.argmax())

    def combination(values: dict[str, torch.Tensor]) -> str:
        numbers = [values[k][worst].item() for k in expected]
        terms = [f"{0.0 if abs(v) < 1e-8 else v:.4g}" + (f"·{names[k]}" if names[k] else "")
                 for k, v in zip(expected, numbers)]
        return " + ".join(terms).replace("+ -", "− ")
    head = (f"{output} = {combination(got)} at {context.describe(worst)} (image {worst}), where {model.equation} "
            f"gives {combination(expected)}")
    found = reason(model, context, got, names)
    if found:
        return f"{head}: {found}"
    parts = []
    for key in expected:
        have, want = got[key][worst].item(), expected[key][worst].item()
        label = model.output_label(key, names[key])
        if close(got[key], expected[key]):
            parts.append(f"{label} is right")
            continue
        named = name_vector(got[key], context)  # named only when one formula fits every image
        parts.append(f"{label} is {have:.4g}" + (f" (= {named} at every image)" if named else "")
                     + f" but should be {model.expected_text(key)} = {want:.4g}")
    return f"{head}: " + "; ".join(parts) + f". Compare your code with {model.equation} term by term."

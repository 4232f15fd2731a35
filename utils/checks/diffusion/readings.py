"""Why a learner's recovered coefficients differ from an exercise's model: the reading that names the mistake."""
from __future__ import annotations

import torch

from utils.checks.core import name_value
from utils.checks.diffusion.changes import Change, changes, single_quantities
from utils.checks.diffusion.formulas import Model, StepContext
from utils.checks.diffusion.recovery import at_an_end, describe_recovered, recover_variable
from utils.checks.diffusion.schedule import close


def explain_coefficients(model: Model, context: StepContext, got: dict[str, torch.Tensor], *, output: str,
                         names: dict[str, str]) -> str | None:
    """Why the coefficients ``got`` (each (B,), recovered from the learner's output) differ from ``model``'s.

    Returns None when they agree. Otherwise the message shows the learner's combination and the equation's at the
    image where they differ most, then names the first small change to the model (see :func:`changes`) that
    reproduces the learner's coefficients at every image of the batch; failing that, a coefficient equal to a
    single schedule quantity; failing that, which coefficients are off and the named values they have.
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
    singles = single_quantities(context)
    wrong = [key for key in expected if not close(got[key], expected[key])]
    steps = context.steps["t"]
    same = len(steps) > 1 and len(set(steps.tolist())) > 1 and any(got[k].abs().max() > 1e-6 for k in expected) \
        and all(close(got[k], got[k][:1].expand_as(got[k]), 1e-6) for k in expected)
    whose = [b for b in range(len(steps)) if all(close(got[k], expected[k][b:b + 1].expand_as(got[k]))
                                                  for k in expected)] if same else []
    if whose:  # one image's coefficients used for the whole batch (not merely equal coefficients: ᾱ_0 = 0 at t' = 0)
        owner = "the first image's" if whose[0] == 0 else f"those of image {whose[0]} ({context.describe(whose[0])})"
        return (f"{head}: your coefficients are the same for every image, though each image has its own t — they "
                f"are {owner}. Use the whole (B,) tensor t: schedule.alpha_bars[t - 1] picks ᾱ_t for every image, "
                "shape (B,); view it as (B, 1, 1, 1).")

    def single_quantity() -> str | None:  # every wrong coefficient is one schedule quantity, at every image
        found = []
        for key in wrong:
            text = next((text for text, f in singles.items() if close(got[key], f.value(context))), None)
            if text is None:
                return None
            found.append(f"{model.output_label(key, names[key])} is {text} at every image of the batch, instead of "
                         f"{model.expected_text(key)}")
        return f"{head}: " + "; ".join(found) + f". Compare it with {model.equation} factor by factor."

    def first_change(candidate: Model) -> Change | None:
        for change in changes(candidate):
            predicted = candidate.evaluate(context, change.parts)
            if all(close(got[key], predicted[key]) for key in expected):
                return change
        return None
    differs = ~torch.stack([(got[k] - expected[k]).abs() <= 1e-6 + 1e-4 * expected[k].abs() for k in expected]).all(0)
    only_at_ends = at_an_end(context, differs)
    if only_at_ends:  # only images at t = 1, t = T or t' = 0 differ: one quantity read wrongly there, most likely
        found = recover_variable(model, context, got)
        if found:
            return f"{head}: {describe_recovered(found, context, model.equation)}"
    change = first_change(model)
    if change:
        plainer = single_quantity() if change.cancels else None
        if plainer:
            return plainer
        extra = model.advice.get(change.group, "") if change.group else ""
        message = f"{head}: {change.what}. {change.why}{' ' + extra if extra else ''}"
        for other in model.alternatives:  # the same coefficients read as another way of writing the equation
            also = first_change(other)
            if also:
                message += f" (Written as {other.equation} {also.what}.)"
        return message
    for other in model.alternatives:
        also = first_change(other)
        if also:
            return f"{head}: in {other.equation} {also.what}. {also.why}"
    for reading in model.readings:
        message = reading(context, got)
        if message:
            return f"{head}: {message}"
    found = None if only_at_ends else recover_variable(model, context, got)
    if found:
        return f"{head}: {describe_recovered(found, context, model.equation)}"
    plain = single_quantity()
    if plain:
        return plain
    scalars = {text: formula.value(context)[worst].item() for text, formula in singles.items()}
    parts = []
    for key in expected:
        have, want = got[key][worst].item(), expected[key][worst].item()
        label = model.output_label(key, names[key])
        if key in wrong:
            named = name_value(have, scalars)
            parts.append(f"{label} is {have:.4g}" + (f" (= {named} there)" if named else "")
                         + f" but should be {model.expected_text(key)} = {want:.4g}")
        else:
            parts.append(f"{label} is right")
    return f"{head}: " + "; ".join(parts) + f". Compare your code with {model.equation} term by term."

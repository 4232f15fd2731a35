"""Readings of a learner's coefficients term by term, whatever the equation.

Each exercise's output is linear in its inputs (x_0 and ε; x_t, ε_θ and z), one coefficient per input and image.
Besides the small changes to the equation's formulas (:mod:`changes`), some mistakes show in how the coefficients
relate to *each other*, and say so in the same words for every equation:

- a term on the wrong input: one coefficient short by exactly what another has too much (σ_t·ε_θ for σ_t·z);
- two inputs in each other's places (their coefficients exchanged);
- a factor that covers a whole bracket applied to one of its terms only (operator precedence, see
  :class:`~utils.checks.diffusion.formulas.Bracket`);
- a coefficient that is the square, the square root or the inverse of the right one, or the right one times a
  named schedule quantity;
- images whose whole output is 0 (a mask over the whole result), and an output that *is* one of the inputs or a
  named intermediate (x̂_0 returned for x_{t−1}).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from utils.checks.diffusion.formulas import LAST, Model, StepContext
from utils.checks.diffusion.naming import name_vector
from utils.checks.diffusion.recovery import steps_text
from utils.checks.diffusion.schedule import close


@dataclass
class Terms:
    """The learner's coefficients and the equation's, per input (each (B,)), with what is needed to word them."""

    model: Model
    context: StepContext
    got: dict[str, torch.Tensor]
    expected: dict[str, torch.Tensor]
    names: dict[str, str]  # input → its symbol: "ε_θ"

    def right(self, key: str) -> bool:
        return close(self.got[key], self.expected[key])

    @property
    def wrong(self) -> list[str]:
        return [key for key in self.expected if not self.right(key)]

    def label(self, key: str) -> str:
        return self.model.output_label(key, self.names[key])

    def symbol(self, key: str) -> str:
        return self.names[key] or "it"

    def parts(self) -> dict[str, torch.Tensor]:
        """The model's parts by their formulas ("√β_t·[t > 1]"), to name a vector with."""
        return {str(formula): formula.value(self.context) for formula in self.model.parts.values()
                if not formula.zero}

    def name(self, values: torch.Tensor) -> str | None:
        return name_vector(values, self.context, self.parts())


def _nonzero(values: torch.Tensor) -> bool:
    return bool((values.abs() > 1e-6).any())


def zero_images(terms: Terms) -> str | None:
    """Some images' outputs are 0 (every coefficient), the others right: a mask multiplied the whole result."""
    got, expected = terms.got, terms.expected
    zero = torch.stack([got[k].abs() < 1e-7 for k in got]).all(0)  # (B,)
    needed = torch.stack([expected[k].abs() > 1e-6 for k in expected]).any(0)
    zero = zero & needed
    if not zero.any():
        return None
    others = ~zero
    if not all(close(got[k][others], expected[k][others]) for k in got if others.any()):
        return None
    where = steps_text(terms.context, zero)
    message = (f"your output is 0 at the images with {where} (every coefficient is 0 there)"
               + (", and right at the others" if others.any() else "")
               + ": something multiplies the whole result by 0 at those steps.")
    last = any(f.symbol == LAST for formula in terms.model.parts.values() for f in formula.factors)
    if last and torch.equal(zero, terms.context.steps["t"] == 1):
        message += (" That is where the mask [t > 1] is 0: it belongs on the noise term only, σ_t·[t > 1]·z — at "
                    "t = 1 the step still returns the mean, x_0 = μ̃_1 (Algorithm 2), not 0. Multiply the mask into "
                    "σ_t z, not into the whole sum.")
    return message


def named_output(terms: Terms) -> tuple[str, str] | None:
    """(name, words) when the learner's output *is* one of the inputs (x_t unchanged) or one of the model's named
    intermediates (x̂_0 for x_{t−1}), at every image."""
    candidates = {f"{terms.symbol(key)} itself": {k: torch.full_like(terms.got[k], float(k == key))
                                                  for k in terms.got} for key in terms.got}
    if terms.model.intermediates is not None:
        candidates.update(terms.model.intermediates(terms.context))
    for name, coefficients in candidates.items():
        if all(close(terms.got[k], torch.as_tensor(coefficients.get(k, 0.0), dtype=torch.float64)
                     .expand_as(terms.got[k]), atol=1e-6) for k in terms.got):
            return name, f"at every image, your output is {name}"
    return None


def bracket(terms: Terms) -> str | None:
    """A factor that covers a whole bracket of terms is missing from some of them (the others are right): operator
    precedence, `x_t - c * eps / d` for `(x_t - c * eps) / d`."""
    wrong = terms.wrong
    for item in terms.model.brackets:
        inside = [k for k in item.terms if k in terms.expected]
        if not wrong or not set(wrong) <= set(inside) or len(wrong) == len(inside):
            continue  # only terms of the bracket are wrong, and at least one of them is right
        factor = item.factor.value(terms.context)
        if all(close(terms.got[k] * factor, terms.expected[k]) for k in wrong):
            missing = " and ".join(terms.label(k) for k in wrong)
            present = " and ".join(terms.label(k) for k in inside if k not in wrong)
            return (f"{missing} lacks {item.applies}, which {present} has. In {item.written}, {item.applies} covers "
                    f"the whole bracket, every term of it; your code applies it to part of it only — operator "
                    f"precedence: a − b / c is a − (b / c). Put the parentheses in: {item.code}.")
    return None


def _terms_and_tensors(terms: Terms) -> tuple[list, dict]:
    """The output as terms (coefficient text, (B,) values, tensor name) and the tensors a term can hold, each as the
    inputs' coefficients: the model's own, or for a model whose parts multiply its inputs, one term per input."""
    model, context = terms.model, terms.context
    if model.terms is not None:
        return model.terms(context), model.tensors(context)
    parts = model.evaluate(context)
    ones = {k: torch.ones_like(v) for k, v in parts.items()}
    return ([(model.expected_text(k), parts[k], terms.symbol(k)) for k in parts],
            {terms.symbol(k): {k: ones[k]} for k in parts})


def _predicted(terms: Terms, changes: list[tuple[torch.Tensor, dict, dict]]) -> dict[str, torch.Tensor]:
    """The expected coefficients with each (coefficient, old tensor, new tensor) term rewritten."""
    predicted = dict(terms.expected)
    for coefficient, old, new in changes:
        for key in predicted:
            zero = torch.zeros_like(coefficient)
            predicted[key] = predicted[key] - coefficient * old.get(key, zero) + coefficient * new.get(key, zero)
    return predicted


def substituted(terms: Terms) -> str | None:
    """One term of the output holds another tensor than the equation's (A·z for A·x̂_0, σ_t·ε_θ for σ_t·z, B·x̂_0
    for B·x_t), or two terms hold each other's tensors: a variable passed or written in the wrong place."""
    parts, tensors = _terms_and_tensors(terms)
    equation = terms.model.equation

    def matches(changes) -> bool:
        predicted = _predicted(terms, changes)
        return all(close(terms.got[k], predicted[k]) for k in terms.got)
    for text, coefficient, tensor in parts:
        for other, values in tensors.items():
            if other != tensor and _nonzero(coefficient) and matches([(coefficient, tensors[tensor], values)]):
                return (f"in the term {text}·{tensor} of {equation}, you used {other} in place of {tensor}: your code "
                        f"multiplies {other} by {text}. Write {text}·{tensor} — is the right variable passed there?")
    for i, (text_a, coefficient_a, tensor_a) in enumerate(parts):
        for text_b, coefficient_b, tensor_b in parts[i + 1:]:
            if tensor_a != tensor_b and matches([(coefficient_a, tensors[tensor_a], tensors[tensor_b]),
                                                 (coefficient_b, tensors[tensor_b], tensors[tensor_a])]):
                return (f"the terms {text_a}·{tensor_a} and {text_b}·{tensor_b} of {equation} hold each other's "
                        f"tensors: yours are {text_a}·{tensor_b} and {text_b}·{tensor_a}. Swap {tensor_a} and "
                        f"{tensor_b} back (the order of the arguments where you pass them?).")
    return None


def moved(terms: Terms) -> str | None:
    """One input's coefficient is short by exactly what another's has too much, every other coefficient right, and
    that amount is a named quantity: a term was written with the wrong input (σ_t·ε_θ where σ_t·z goes).

    Either input could be called the one that lost the term; the reading prefers a source whose coefficient is now
    0 (the whole term moved), then an amount that is a positive quantity (√(1 − ᾱ_t), not −√(1 − ᾱ_t))."""
    keys = list(terms.expected)
    found = []
    for source in keys:
        deficit = terms.expected[source] - terms.got[source]
        if not _nonzero(deficit):
            continue
        for target in keys:
            if target == source or not close(terms.got[target] - terms.expected[target], deficit):
                continue
            if not all(terms.right(k) for k in keys if k not in (source, target)):
                continue
            amount = terms.name(deficit)
            if amount is not None:  # an unnamed amount is more likely a coincidence of another mistake
                whole = close(terms.got[source], torch.zeros_like(deficit), atol=1e-6)
                found.append((not whole, amount.startswith(("−", "-")), source, target, amount, whole))
    if not found:
        return None
    _, _, source, target, amount, whole = min(found, key=lambda item: item[:2])
    coefficient = "" if amount == "1" else f"{amount}·"
    source_name, target_name = terms.symbol(source), terms.symbol(target)
    if whole:
        head = (f"the term {coefficient}{source_name} is missing, and {target_name} has {amount} more than the "
                f"equation gives it")
    else:
        head = (f"part of {source_name}'s coefficient, {amount}, is on {target_name} instead: your code has "
                f"{coefficient}{target_name} where the equation has {coefficient}{source_name}")
    return (f"{head}. You used {target_name} in place of {source_name} in that term: write {coefficient}{source_name}, "
            f"not {coefficient}{target_name}.")


def exchanged(terms: Terms) -> str | None:
    """Two inputs' coefficients exchanged, the others right: the inputs are in each other's places."""
    keys = list(terms.expected)
    for i, first in enumerate(keys):
        for second in keys[i + 1:]:
            if close(terms.expected[first], terms.expected[second]):
                continue
            if close(terms.got[first], terms.expected[second]) and close(terms.got[second], terms.expected[first]) \
                    and all(terms.right(k) for k in keys if k not in (first, second)):
                a, b = terms.symbol(first), terms.symbol(second)
                shown = {k: terms.model.expected_text(k) for k in (first, second)}
                return (f"{a} and {b} are in each other's places (swapped): the equation has {shown[first]}·{a} and "
                        f"{shown[second]}·{b}, yours {shown[second]}·{a} and {shown[first]}·{b}. Swap them back — "
                        f"check the order of the arguments where you pass or combine them.")
    return None


_TRANSFORMS = (  # (what the learner's coefficient is, as a function of the right one; its name; what to do)
    (lambda c: c * c, "the square of", "a square root is missing on it"),
    (lambda c: c.abs().sqrt() * c.sign(), "the square root of", "it has a square root too many"),
    (lambda c: 1 / c, "the inverse of", "it is upside down (multiply where you divide, or the reverse)"),
)


def transformed(terms: Terms) -> str | None:
    """Every wrong coefficient is the square, the square root or the inverse of the right one."""
    found = []
    for key in terms.wrong:
        want = terms.expected[key]
        if not (want.abs() > 1e-6).all():
            return None
        match = next(((words, fix) for transform, words, fix in _TRANSFORMS if close(terms.got[key], transform(want))),
                     None)
        if match is None:
            return None
        found.append(f"{terms.label(key)} is {match[0]} eq.'s {terms.model.expected_text(key)}: {match[1]}")
    return "; ".join(found) + "." if found else None


def ratio(terms: Terms) -> str | None:
    """Every wrong coefficient is the right one times a named schedule quantity (the same at every image)."""
    found = []
    for key in terms.wrong:
        want = terms.expected[key]
        if not (want.abs() > 1e-6).all():
            return None
        factor = terms.got[key] / want
        name = name_vector(factor, terms.context)
        if name is None or name == "1":
            return None
        found.append(f"{terms.label(key)} is {name} × the right one, {terms.model.expected_text(key)}: a factor "
                     f"{name} too many in it (or its inverse missing)")
    return "; ".join(found) + "." if found else None


def recovered_part(terms: Terms) -> str | None:
    """For a model that composes its parts (x̂_0 inside μ̃, the direction of DDIM), the one part whose value, solved
    for image by image, reproduces every coefficient: it localises the mistake to that part, and names the value
    when a formula or a known variant fits every image."""
    model, context = terms.model, terms.context
    if model.terms is None:
        return None  # each part is a coefficient of its own: the coefficient readings say it
    values = {name: formula.value(context) for name, formula in model.parts.items()}
    found = []  # (part, its value per image, its name)
    for name in model.parts:
        outputs = [model.combine({**values, name: torch.full_like(values[name], probe)}) for probe in (1.0, 2.0, 4.0)]
        slopes = {k: outputs[1][k] - outputs[0][k] for k in terms.got}
        if any(not close(outputs[2][k] - outputs[1][k], 2 * slopes[k], atol=1e-9) for k in terms.got):
            continue  # not linear in this part (a divisor): not solved for here
        key = max(slopes, key=lambda k: float(slopes[k].abs().min()))
        if not (slopes[key].abs() > 1e-9).all():
            continue
        estimate = values[name] + (terms.got[key] - terms.expected[key]) / slopes[key]
        predicted = model.combine({**values, name: estimate})
        if close(estimate, values[name]) or not all(close(terms.got[k], predicted[k]) for k in terms.got):
            continue
        known = model.known(context) if model.known is not None else {}
        found.append((name, estimate, name_vector(estimate, context, known, pairs=True)))
    if not found:
        return None
    named = [item for item in found if item[2]]
    if not named and len(found) > 1:  # several parts could be off: which one, the numbers cannot tell
        labels = " or ".join(model.labels[name] for name, _, _ in found)
        return (f"everything in {model.equation} is right except one part, which the numbers cannot single out: "
                f"{labels}. Check each against {model.equation}.")
    name, estimate, words = (named or found)[0]
    b = int((estimate - values[name]).abs().argmax())
    right = f"{model.equation} has {model.parts[name]} (= {values[name][b].item():.4g} at {context.describe(b)})"
    if words:
        return f"everything in {model.equation} is right except {model.labels[name]}, where {right}: yours is {words}."
    return (f"everything in {model.equation} is right except {model.labels[name]}: yours is "
            f"{estimate[b].item():.4g} at {context.describe(b)}, where {right}.")

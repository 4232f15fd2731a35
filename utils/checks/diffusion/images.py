"""What the image exercises (5.2 to 5.5) share: their cases, calling the learner's code, per-image coefficients,
and the probes for axes, NaNs and shapes that come before the coefficients."""
from __future__ import annotations

import inspect
import itertools
import re
from dataclasses import dataclass
from typing import Callable

import torch

from utils.checks.core import Case, CheckFailure, Exercise, LearnerError, fit_linear, nonfinite_origin
from utils.checks.diffusion.formulas import Model, StepContext
from utils.checks.diffusion.naming import name_vector
from utils.checks.diffusion.readings import explain_coefficients
from utils.checks.diffusion.references import reference_cosine_schedule, reference_linear_schedule
from utils.checks.diffusion.schedule import IMAGE_AXES, Schedule, close
from utils.checks.diffusion.values import clamped


@dataclass(frozen=True)
class ImageCase(Case):
    """A batch of images (B, C, H, W) with one t per image: ``steps`` first, then seeded random t in 1..T."""

    shape: tuple = (8, 1, 6, 8)
    T: int = 50
    steps: tuple = ()
    clip: bool = True
    jump: int | None = None  # DDIM: t' = t − jump; None: t' = 0
    builder: str = "cosine"  # which of the chapter's schedules the case passes: code that rebuilds one fails here

    @property
    def sizes(self) -> dict[str, int]:
        named = dict(zip(IMAGE_AXES, self.shape), T=self.T)
        return {name: size for name, size in named.items() if size > 1}

    @property
    def quantities(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """A per-image coefficient, (B, 1, 1, 1): an output of that shape returned the coefficient, not the image."""
        return {"alpha_bar_t": ("a per-image coefficient such as √ᾱ_t", (self.shape[0], 1, 1, 1))}

    def explain(self, error: BaseException, line: str) -> str | None:
        return _ambiguous_condition(error, line) or _timesteps_as_one_number(error, line)

    def schedule(self) -> Schedule:
        build = reference_linear_schedule if self.builder == "linear" else reference_cosine_schedule
        return Schedule.from_betas(build(self.T)).to(self.dtype)

    def timesteps(self, exercise: Exercise, lowest: int = 1) -> torch.Tensor:
        """(B,) int64: the given steps, then seeded random steps in lowest..T."""
        B = self.shape[0]
        generator = torch.Generator().manual_seed(exercise.seed(self.label, "t"))
        t = torch.randint(lowest, self.T + 1, (B,), generator=generator)
        given = torch.as_tensor(self.steps, dtype=torch.long)[:B]
        t[: len(given)] = given
        return t


def run_learner(exercise: Exercise, fn: Callable, case: Case, arguments: dict, *, random_hint: str, **options):
    """``fn(*arguments.values(), **options)`` on copies of the inputs, twice.

    An input changed in place is reported (core names a tensor argument; the schedule's tables are checked here),
    and so is a second call on the same inputs that disagrees with the first (``random_hint`` says which
    randomness is not wanted).
    """
    def copy(value):
        if isinstance(value, torch.Tensor):
            return value.clone()
        if isinstance(value, Schedule):
            return Schedule(value.betas.clone(), value.alphas.clone(), value.alpha_bars.clone())
        return value
    given = [copy(value) for value in arguments.values()]
    got = _call_by_name(exercise, fn, given, case, options)
    for (name, original), passed in zip(arguments.items(), given):
        if not isinstance(original, Schedule):
            continue
        for table in ("betas", "alphas", "alpha_bars"):
            after = getattr(passed, table)
            if not isinstance(after, torch.Tensor) or not torch.equal(getattr(original, table), after):
                raise exercise.fail(f"your {exercise.name} changed `{name}.{table}` in place (.clamp_(…), […] = …, "
                                    f"…). The schedule is shared by every step of a sampling loop: compute new "
                                    f"tensors from it instead.", case=case)
    again = _call_by_name(exercise, fn, [copy(value) for value in arguments.values()], case, options)
    if not _same(got, again):
        raise exercise.fail(f"two calls with the same inputs gave different outputs: {random_hint}", case=case)
    return got


def rerun_with(exercise: Exercise, fn: Callable, case: Case, arguments: dict, **options) -> Callable:
    """A zero-argument callable that runs the learner's ``fn`` again on copies of ``arguments`` with other
    ``options`` (clip=False for clip=True), for probes that compare the two runs; None when that run fails."""
    def run():
        try:
            return run_learner(exercise, fn, case, arguments, random_hint="", **options)
        except (CheckFailure, LearnerError):
            return None
    return run


def _call_by_name(exercise: Exercise, fn: Callable, values: list, case: Case, options: dict):
    """Call ``fn`` with ``values`` bound to its own parameter names, so that core names an input it changed in place
    (`noise`); positionally when they do not bind (the learner's error then says why)."""
    try:
        signature = inspect.signature(fn)
        bound = signature.bind(*values, **options)
    except (TypeError, ValueError):
        return exercise.call(fn, *values, case=case, **options)
    unnamed = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    if any(p.kind in unnamed for p in signature.parameters.values()):
        return exercise.call(fn, *values, case=case, **options)
    return exercise.call(fn, case=case, **bound.arguments)


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a.detach(), b.detach()) or (
            a.is_floating_point() and torch.allclose(a.detach(), b.detach(), rtol=0, atol=0, equal_nan=True)))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return True  # not tensors: the comparison will say what is wrong with them


def fit_per_image(got: torch.Tensor, basis: dict[str, torch.Tensor], *, atol: float = 1e-5) -> dict | None:
    """The coefficients (each (B,)) with got[b] = Σ c[name][b] · basis[name][b] for every image b; None when the
    output is not such a combination (a nonlinearity, or coefficients that vary inside an image)."""
    fits = fit_linear(got, basis, per=0)
    if any(fit.residual > atol for fit in fits):
        return None
    return {name: torch.tensor([fit.coefficients[name] for fit in fits], dtype=torch.float64) for name in basis}


def _rows_are_combinations(target: torch.Tensor, rows: list[torch.Tensor]) -> bool:
    """Whether every row of ``target`` (R, n) is a combination of the same rows of ``rows`` (each (R, n)): one
    batched least-squares solve (the same test as :func:`fit_linear` per row, at once)."""
    design = torch.stack([r.double() for r in rows], dim=-1)  # (R, n, K)
    target = target.double()[..., None]  # (R, n, 1)
    solution = torch.linalg.lstsq(design, target, driver="gelsd").solution  # (R, K, 1)
    residual = (design @ solution - target).norm(dim=(1, 2)) / target.norm(dim=(1, 2)).clamp_min(1e-300)
    return bool((residual < 1e-5).all())


def varying_axis_problem(got: torch.Tensor, basis: dict[str, torch.Tensor], *, what: str) -> str | None:
    """When the output is a per-pixel-column combination (coefficients varying along C, H or W of an image) rather
    than one combination per image: the (B,) → (B, 1, 1, 1) reshape is missing or wrong."""
    B = got.shape[0]
    for axis in range(got.dim() - 1, 0, -1):
        size = got.shape[axis]
        if size < 2:
            continue
        moved = got.movedim(axis, 1).reshape(B * size, -1)  # (B·size, rest): one row per image and index
        if moved.shape[1] <= len(basis) + 1:
            continue  # too few entries per row: any row would fit
        rows = [v.expand_as(got).movedim(axis, 1).reshape(B * size, -1) for v in basis.values()]
        if _rows_are_combinations(moved, rows):
            name = IMAGE_AXES[axis] if got.dim() == 4 else f"axis {axis}"
            same = " — B equals " + name + " here, so it broadcast without an error" if size == B else ""
            return (f"{what} change along the {name} axis inside one image; they should be one number per image, "
                    f"from that image's t. A (B,) tensor such as alpha_bars[t - 1] lined up with the {name} axis"
                    f"{same}. Reshape it to (B, 1, 1, 1): .view(-1, 1, 1, 1), so it broadcasts over (B, C, H, W).")
    return None


def linear_probe(model: Model, context: StepContext, basis: dict[str, torch.Tensor], *, output: str,
                 names: dict[str, str]) -> Callable[[torch.Tensor], str | None]:
    """A probe for :meth:`Exercise.compare`: recover the learner's coefficients per image and explain them."""
    def probe(got: torch.Tensor) -> str | None:
        coefficients = fit_per_image(got, basis)
        if coefficients is None:
            return varying_axis_problem(got, basis, what=f"the coefficients of your {output}") or \
                affine_problem(model, context, got, basis, output=output, names=names) or \
                multiplied_not_added(model, context, got, basis, names=names)
        return explain_coefficients(model, context, coefficients, output=f"your {output}", names=names)
    return probe


def affine_problem(model: Model, context: StepContext, got: torch.Tensor, basis: dict[str, torch.Tensor], *,
                   output: str, names: dict[str, str]) -> str | None:
    """The output is a combination of the inputs *plus a constant* per image: an input rescaled inside the code
    (2·x_0 − 1 for images already in [−1, 1]) — read as a·x + b in place of x, with the same a and b at every
    image — or a term with no input in it added to the right combination."""
    with_constant = fit_per_image(got, {**basis, "1": torch.ones_like(next(iter(basis.values())))})
    if with_constant is None:
        return None
    constant = with_constant.pop("1")
    expected = model.evaluate(context)
    added = _added_not_multiplied(model, context, with_constant, constant, expected, names)
    if added:
        return added
    if all(close(with_constant[k], expected[k]) for k in expected):
        named = name_vector(constant, context, pairs=True)
        return (f"your {output} is {model.equation} plus a constant of its own in each image (at "
                f"{context.describe(0)}: {constant[0].item():.4g}{f', = {named} at every image' if named else ''}): "
                f"a term with no {' or '.join(names.values())} in it. Every term of {model.equation} multiplies an "
                f"input; remove the extra one.")
    for key in expected:
        if not (expected[key].abs() > 1e-6).all():
            continue
        scale, offset = with_constant[key] / expected[key], constant / expected[key]
        others_right = all(close(with_constant[k], expected[k]) for k in expected if k != key)
        if others_right and close(scale, scale[:1].expand_as(scale), rtol=1e-3) and \
                close(offset, offset[:1].expand_as(offset), rtol=1e-3, atol=1e-4):
            a, b = scale[0].item(), offset[0].item()
            used = f"{a:.3g}·{names[key]} {'−' if b < 0 else '+'} {abs(b):.3g}"
            return (f"your code uses {used} in place of {names[key]} at every image: {names[key]} was rescaled "
                    f"inside it. The images are already in [−1, 1] (the checks pass them so, and so does the "
                    f"chapter's data): use {names[key]} as it is given.")
    return None


def multiplied_not_added(model: Model, context: StepContext, got: torch.Tensor, basis: dict[str, torch.Tensor], *,
                         names: dict[str, str]) -> str | None:
    """A product of two inputs x·y in the output, read against the equation a·x + b·y (+ the other terms): the two
    terms multiplied, a·x·b·y (a * typed for a +), or y multiplying the whole bracket, (a·x + b)·y (a parenthesis
    closed after b). Read for the equations whose parts are the inputs' coefficients (q_sample, the posterior)."""
    if model.terms is not None or len(basis) < 2:
        return None
    expected = model.evaluate(context)
    for first, second in itertools.permutations(basis, 2):
        others = {k: v for k, v in basis.items() if k not in (first, second)}
        fit = fit_per_image(got, {"product": basis[first] * basis[second], **basis})
        if fit is None or not all(close(fit[k], expected[k]) for k in others):
            continue
        a, b = (model.expected_text(k) for k in (first, second))
        x, y = names[first], names[second]
        zero = torch.zeros_like(fit["product"])
        if first < second and close(fit["product"], expected[first] * expected[second]) and \
                close(fit[first], zero) and close(fit[second], zero):
            return (f"you multiplied two terms that {model.equation} adds: your code computes {a}·{x} · {b}·{y} "
                    f"where it has {a}·{x} + {b}·{y} — a * typed for a +.")
        if close(fit["product"], expected[first]) and close(fit[second], expected[second]) and \
                close(fit[first], zero):
            return (f"a parenthesis is misplaced: your code computes ({a}·{x} + {b})·{y}, where {model.equation} has "
                    f"{a}·{x} + {b}·{y} — {y} multiplies the whole bracket instead of {b} alone.")
    return None


def _product_terms(model: Model, context: StepContext, expected: dict, names: dict[str, str]) -> list[tuple]:
    """The output as a sum of coefficient × tensor: (coefficient's text, its values (B,), the tensor's name, the
    tensor as the inputs' coefficients) — the model's own ``terms`` when it composes them (x̂_0 in a step), else
    each input times its coefficient."""
    if model.terms is not None and model.tensors is not None:
        tensors = model.tensors(context)
        return [(text, values, tensor, tensors[tensor]) for text, values, tensor in model.terms(context)
                if tensor in tensors]
    ones = {k: torch.ones_like(v) for k, v in expected.items()}
    return [(model.expected_text(k), expected[k], names[k], {k: ones[k]}) for k in expected]


def _added_not_multiplied(model: Model, context: StepContext, coefficients: dict, constant: torch.Tensor,
                          expected: dict, names: dict[str, str]) -> str | None:
    """One or two terms coefficient × tensor of the output written coefficient + tensor (``a.sqrt() + noise`` for
    ``a.sqrt() * noise``): the tensor then enters unscaled and the coefficient becomes a constant per image. Read
    when the inputs' coefficients and the constant are exactly those of that edit, so the evidence singles it out."""
    terms = _product_terms(model, context, expected, names)
    for size in (1, 2):
        for chosen in itertools.combinations(terms, size):
            predicted = {k: v.clone() for k, v in expected.items()}
            for _, values, _, tensor in chosen:
                for k, unit in tensor.items():
                    predicted[k] = predicted[k] + (1 - values) * unit
            if all(close(predicted[k], expected[k]) for k in expected):
                continue  # the edit changes nothing visible: no evidence
            if not all(close(coefficients[k], predicted[k]) for k in expected) or \
                    not close(constant, sum(values for _, values, _, _ in chosen)):
                continue
            said = "; ".join(f"{text} + {tensor} in place of {text}·{tensor}" for text, _, tensor, _ in chosen)
            return (f"you added where {model.equation} multiplies: {said} — {'each' if size > 1 else 'the'} "
                    f"coefficient is added to the tensor instead of multiplying it (a + typed for a *), so "
                    f"{' and '.join(tensor for _, _, tensor, _ in chosen)} {'enter' if size > 1 else 'enters'} "
                    f"unscaled and the coefficient becomes a constant of its own.")
    return None


def nonfinite_images_problem(got, expected: torch.Tensor, context: StepContext, *, output: str,
                             rest: Callable[[torch.Tensor], str | None] | None = None,
                             inputs: dict[str, torch.Tensor] | None = None,
                             names: dict[str, str] | None = None, origin: str | None = None) -> str | None:
    """When some images of the learner's output are inf/NaN: which steps they have (t = 1: a division by
    1 − ᾱ_0 = 0), and, through ``rest(mask)``, what the finite images say. ``origin``, the operation of the
    learner's code that made the first inf/NaN (core's reading), is said in place of the chapter's guess at it; the
    chapter then adds what the zero operand is in its symbols."""
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape or not got.is_floating_point():
        return None  # compare reports the type, shape or dtype
    bad = ~torch.isfinite(got.detach()).flatten(1).all(dim=1)  # (B,): images with an inf or NaN
    if not bad.any() or not torch.isfinite(expected).all():
        return None
    if inputs:
        by_sign = nonfinite_pixels_problem(got, inputs, names or {}, output=output)
        if by_sign:
            return by_sign
    steps = {name: sorted(set(v[bad].tolist())) for name, v in context.steps.items()}
    where = " and ".join(f"{name} = {', '.join(map(str, values))}" for name, values in steps.items())
    message = f"your {output} is inf or NaN for the images with {where}" + (
        "; the other images are finite" if not bad.all() else "")
    if origin:
        message += f". {origin.rstrip('.')}"
    if steps["t"] == [1]:
        message += (". At t = 1, ᾱ_{t−1} = ᾱ_0 = 1, so 1 − ᾱ_{t−1} = 0 and β̃_1 = 0" + (
            ": the zero operand is one of them" if origin else
            ": something divides by one of them, or takes the log or 1/√ of it"))
    elif steps.get("t'") == [0]:
        message += (". At t' = 0, ᾱ_{t'} = ᾱ_0 = 1, so 1 − ᾱ_{t'} = 0" + (
            ": the zero operand is that one" if origin else
            ": something divides by it, or takes the log or 1/√ of it"))
    elif steps["t"] == [context.schedule.T]:
        message += (f". Only the last step, t = T = {context.schedule.T}, is hit: is a table read one step past its "
                    "end? One padded at the end (F.pad(alpha_bars, (0, 1), value=1.0)) holds the pad value 1 at "
                    "index T, so 1 − ᾱ = 0 there; the 1 (ᾱ_0) belongs in front, (1, 0)")
    elif not origin:
        message += ": a division by zero, or the square root of a negative number"
    explained = rest(~bad) if rest is not None and not bad.all() else None
    return message + (f". On the finite images, {explained}" if explained else ".")


def _has_nan(got) -> bool:
    return isinstance(got, torch.Tensor) and got.is_floating_point() and bool(torch.isnan(got.detach()).any())


def nonfinite_pixels_problem(got: torch.Tensor, inputs: dict[str, torch.Tensor], names: dict[str, str], *,
                             output: str) -> str | None:
    """When the NaN entries of the learner's output follow the *sign* of the inputs, pixel by pixel: a square root
    (or log, or fractional power) was taken of something that can be negative — an input itself (√(ᾱ_t·x_0)), or
    the whole combination (√(ᾱ_t x_0 + (1 − ᾱ_t) ε)). Recovered from where the NaNs are and what the finite entries
    are."""
    got = got.detach()
    bad = torch.isnan(got)
    if not bad.any() or bad.all():
        return None
    for key, tensor in inputs.items():
        if torch.equal(bad, tensor < 0):
            return (f"your {output} is NaN exactly where {names[key]} < 0 (and finite elsewhere): a square root, log "
                    f"or fractional power is taken of something that contains {names[key]} itself, such as "
                    f"√(ᾱ_t·{names[key]}). Only the coefficient is a square root: √ᾱ_t·{names[key]}, "
                    f"alpha_bar_t.sqrt() * {key}.")
    squares = []  # the finite entries of each image are the square root of a combination of the inputs?
    for b in range(got.shape[0]):
        keep = ~bad[b]
        if keep.sum() <= len(inputs) + 1:
            return None
        fit = fit_linear(got[b][keep] ** 2, {k: v[b][keep] for k, v in inputs.items()})
        combination = sum(fit.coefficients[k] * v[b].double() for k, v in inputs.items())
        if not fit.exact or not torch.equal(bad[b], combination < 0):
            return None
        squares.append(fit)
    shown = squares[0].formula(names)
    return (f"your {output} is NaN exactly where {shown} is negative, and the square root of it elsewhere (here for "
            f"the first image): you took the square root of the whole sum. Only the coefficients are square roots "
            f"— x = √a·x_0 + √b·ε, not √(a·x_0 + b·ε).")


def finite_images_probe(model: Model, context: StepContext, basis: dict[str, torch.Tensor], got, *, output: str,
          names: dict[str, str]) -> Callable[[torch.Tensor], str | None]:
    """``rest`` for :func:`nonfinite_images_problem`: the linear probe on the images that ``mask`` keeps."""
    def rest(mask: torch.Tensor) -> str | None:
        sub = context.subset(mask)
        return linear_probe(model, sub, {k: v[mask] for k, v in basis.items()}, output=output,
                            names=names)(got.detach()[mask])
    return rest


def misplaced_batch_axis(got, expected: torch.Tensor) -> str | None:
    """When the output's shape is the expected one with B entries on an axis of size 1 there: a per-image tensor
    with fewer than four axes, (B, 1, 1), broadcast against (B, C, H, W) and lined up with (C, H, W)."""
    if not isinstance(got, torch.Tensor) or got.dim() != expected.dim() or got.shape == expected.shape:
        return None
    B = expected.shape[0]
    differ = [k for k in range(got.dim()) if got.shape[k] != expected.shape[k]]
    if B > 1 and differ and all(got.shape[k] == B for k in differ) and 0 not in differ:
        axes = ", ".join(IMAGE_AXES[k] if got.dim() == 4 else str(k) for k in differ)
        return (f"shape {tuple(got.shape)} but expected {tuple(expected.shape)}: the batch size B = {B} landed on "
                f"axis {axes}. A per-image tensor with too few axes, such as (B, 1, 1), lines up with the last axes "
                f"(C, H, W) when it meets (B, C, H, W); give it four: .view(-1, 1, 1, 1).")
    return None


def compare_images(exercise: Exercise, got, expected: torch.Tensor, *, case: ImageCase, context: StepContext,
                   name: str, equation: str, probes=(), rest=None, inputs: dict[str, torch.Tensor] | None = None,
                   names: dict[str, str] | None = None, **options) -> None:
    """:meth:`Exercise.compare` for a batch of images, after a per-image axis that landed on C, H or W and the
    steps of any inf/NaN images (``inputs``, the image inputs the output is linear in, with their display
    ``names``, let NaNs that follow an input's sign be read).

    In float32 the absolute tolerance is 1e-4: a right answer written another way (the posterior mean through eq.
    (5.11)) cancels 1 − ᾱ_1 against β_1 at t = 1 and loses about that much; every mistake differs by far more.
    """
    if case.dtype == torch.float32:
        options.setdefault("atol", 1e-4)
    origin = nonfinite_origin(exercise.id, case, "NaN" if _has_nan(got) else "inf", generic=False)
    problem = misplaced_batch_axis(got, expected) or nonfinite_images_problem(got, expected, context, output=name,
                                                                              rest=rest, inputs=inputs, names=names,
                                                                              origin=origin)
    if problem:
        raise exercise.fail(problem, case=case, name=name)
    wrong_values = values_of_another_dtype(got, expected, probes)
    if wrong_values:
        raise exercise.fail(f"{wrong_values} (Your {name} is also {got.dtype}, where the inputs are {expected.dtype}: "
                            f"a {got.dtype} tensor entered the computation.)", case=case, name=name)
    exercise.compare(got, expected, case=case, name=name, equation=equation,
                     probes=[*probes, lambda got: clamped_output(got, expected, name=name, equation=equation)],
                     axes=IMAGE_AXES, **options)


def values_of_another_dtype(got, expected: torch.Tensor, probes) -> str | None:
    """When the output has another float dtype *and* other values: what the probes read from the values. A dtype
    alone is said by compare; a float64 table read from elsewhere (a global schedule) changes both, and the values
    say which table it was."""
    if not (isinstance(got, torch.Tensor) and got.is_floating_point() and got.shape == expected.shape
            and got.dtype != expected.dtype):
        return None
    converted = got.detach().to(expected.dtype)
    if not torch.isfinite(converted).all() or torch.allclose(converted, expected, rtol=1e-4, atol=1e-4):
        return None
    for probe in probes:
        try:
            message = probe(converted)
        except RuntimeError:  # a probe that compares with a second run of the learner's code, in its own dtype
            continue
        if message:
            return message
    return None


def clamped_output(got: torch.Tensor, expected: torch.Tensor, *, name: str, equation: str) -> str | None:
    """The right output clamped to a range (after the exercise's own probes, which read a clamp of their own)."""
    bounds = clamped(got, expected)
    return (f"your {name} is {bounds}, and otherwise right: {equation} has no clamp on {name} — remove it (a noisy "
            f"image leaves [−1, 1] by design).") if bounds else None


def _ambiguous_condition(error: BaseException, line: str) -> str | None:
    """A Python `if`/`and`/`or` on a (B,) tensor: one decision for a batch whose images each have their own t."""
    if "Boolean value of Tensor with more than one value is ambiguous" not in str(error):
        return None
    return ("A Python `if` (or `and`, `or`, a ternary `… if … else …`) needs one True or False, but this condition is "
            "a (B,) tensor — each image has its own t. Decide per image with tensors instead: torch.where(condition, "
            "a, b), a mask such as (t > 1).to(x.dtype).view(-1, 1, 1, 1), or for ᾱ_0 = 1 a padded table, "
            "F.pad(schedule.alpha_bars, (1, 0), value=1.0)[t_prev].")


_ONE_NUMBER = ("only one element tensors can be converted", "cannot be converted to Scalar")
_CONVERTED = re.compile(r"(?:\b(?:int|float|math\.\w+)\(\s*([A-Za-z_]\w*)|([A-Za-z_]\w*)\.(?:item|tolist)\(\))")


def _timesteps_as_one_number(error: BaseException, line: str) -> str | None:
    """`int(t)`, `t.item()`, `math.sqrt(alpha_bar_t)` on a batch: each image has its own t, so a per-image tensor is
    no single Python number."""
    if not any(text in str(error) for text in _ONE_NUMBER):
        return None
    match = _CONVERTED.search(line)
    name = (match.group(1) or match.group(2)) if match else None
    if name in ("t", "t_prev", "timesteps", "steps"):
        return (f" `{name}` holds the B timesteps of the batch, one per image (each image has its own t), not one "
                f"number. Index the schedule with the whole tensor: schedule.alpha_bars[{name} - 1] gives the (B,) "
                f"values, one per image; view them as (B, 1, 1, 1) to broadcast over the images.")
    return (f" `{name or 'a tensor'}` holds one value per image of the batch (each image has its own t), not one "
            f"number: use the tensor operation (.sqrt(), torch.exp, …), which works entry by entry.")


# The first case avoids t = T, so that an off-by-one is named before index T overflows, and has B = W, so that a
# (B,) coefficient broadcasts silently along the width; t = 1 is in it, where ᾱ_{t−1} = ᾱ_0 = 1.
IMAGE_CASES = [
    ImageCase("B=8, 1×6×8, T=50, t from 1 to 49", shape=(8, 1, 6, 8), T=50, steps=(2, 10, 25, 49, 1, 17, 33, 40)),
    ImageCase("B=3, 3×4×6, T=200", shape=(3, 3, 4, 6), T=200, steps=(2, 100, 199)),
    ImageCase("t = 1 and t = T in one batch", shape=(4, 1, 5, 7), T=50, steps=(1, 50, 1, 50)),
    ImageCase("batch size 1, t = T", shape=(1, 2, 4, 4), T=20, steps=(20,)),
    ImageCase("float64, t = 1 and 7", torch.float64, shape=(2, 1, 3, 5), T=30, steps=(1, 7)),
    ImageCase("the linear schedule, T=100", shape=(4, 1, 4, 5), T=100, steps=(1, 30, 70, 100), builder="linear"),
]

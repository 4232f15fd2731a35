"""The three paths of the backward pass (eq. (2.8)): dL/dx fitted as a combination of its terms and the coefficients
named; dL/dγ and dL/dβ (eqs. (2.2), (2.3)) named per channel."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from utils.checks.core import coefficient_moves, fit_linear, name_value
from utils.checks.normalization.cases import STATISTICS, ImageCase, _close, _probe_rtol, _view
from utils.checks.normalization.partitions import Partition
from utils.checks.normalization.source import graph_cut_reading
from utils.checks.normalization.statistics import _FORMS, NormSpec, wrong_count_message


# ============================================================================================== backward paths
@dataclass(frozen=True, eq=False)
class Paths:
    """The pieces of eq. (2.8) for one input, dL/dx = γ·s·(g − mean(g) − x̂·mean(g·x̂)), with the means over each
    group of the spec's partition. For the autograd modules γ varies inside a group, so the means are of γ·g."""

    g: torch.Tensor  # dL/dy, the gradient arriving from above
    gamma: torch.Tensor  # γ at every value
    x_hat: torch.Tensor  # the right x̂
    s: torch.Tensor  # 1/√(σ² + ε) (RMSNorm: 1/√(mean(x²) + ε)), at every value
    spec: NormSpec
    equation: str  # "eq. (2.8)"
    terms: dict  # how the chapter writes each term: {"direct": "γ·s·g", ...}
    factors: dict = field(default_factory=dict)  # named constants for a wrong count: {"m/N": 25.0, ...}
    factor_hints: dict = field(default_factory=dict)  # what to change for each named constant
    per_group: dict = field(default_factory=dict)  # "1/γ" → ((C,) values, message): a coefficient per channel
    alternatives: dict = field(default_factory=dict)  # what x̂ might have been: "x" → (tensor, message)
    detached_hint: str = ""  # where a missing path comes from in autograd code
    gamma_inside: bool = False  # the means are of γ·g (LayerNorm's γ varies within a group), not γ × mean(g)

    def basis(self, partition: Partition | None = None, x_hat: torch.Tensor | None = None) -> dict:
        P, xh = partition or self.spec.partition, self.x_hat if x_hat is None else x_hat
        if self.gamma_inside:
            h = self.gamma * self.g  # dL/dx̂
            return {"direct": self.s * h, "mean": self.s * P.mean(h), "var": self.s * xh * P.mean(h * xh)}
        scale = self.gamma * self.s
        return {"direct": scale * self.g, "mean": scale * P.mean(self.g), "var": scale * xh * P.mean(self.g * xh)}

    @property
    def expected(self) -> dict:
        return {"direct": 1.0, "mean": -1.0 if self.spec.centred else 0.0, "var": -1.0}

    def lookalikes(self) -> dict:
        """Terms a learner writes in place of eq. (2.8)'s: the variance term with the wrong mean in it, or
        without its x̂. name → (term at every value, how the chapter would write it)."""
        P = self.spec.partition
        if self.gamma_inside:
            h, scale, g_text = self.gamma * self.g, self.s, "γg"
        else:
            h, scale, g_text = self.g, self.gamma * self.s, "g"
        prefix = "s·" if self.gamma_inside else "γ·s·"
        x_hat = self.x_hat
        return {"x̂·mean(g)": (scale * x_hat * P.mean(h), f"{prefix}x̂·mean({g_text})"),
                "mean(g·x̂)": (scale * P.mean(h * x_hat), f"{prefix}mean({g_text}·x̂)"),
                # a power too many: x̂ squared outside the mean, or inside it
                "x̂²·mean(g·x̂)": (scale * x_hat ** 2 * P.mean(h * x_hat), f"{prefix}x̂²·mean({g_text}·x̂) (x̂ squared "
                                                                          f"where the term has x̂ once)"),
                "x̂·mean(g·x̂²)": (scale * x_hat * P.mean(h * x_hat ** 2), f"{prefix}x̂·mean({g_text}·x̂²) (x̂ squared "
                                                                          f"inside the mean, where it has g·x̂)")}


_PATH_NAMES = {"direct": "the direct path (through x̂)", "mean": "the path through μ (eq. (2.6))",
               "var": "the path through σ² (eq. (2.5))"}  # RMSNorm's "σ²" is mean(x²): the same path


# a missing variance term is also what mean(g)·mean(x̂) gives: x̂ has mean 0 over each group, so the product is 0
_PRODUCT_OF_MEANS = (", with mean({g}·x̂) the mean of the product — not the product of the means mean({g})·mean(x̂), "
                     "which is 0 because x̂ has mean 0 over each group")


def _coefficient_problems(c: dict, paths: Paths, rtol: float) -> str | None:
    """The recovered coefficients of the three terms, compared with eq. (2.8)'s (1, −1, −1) and named."""
    want = paths.expected
    off = [k for k in want if abs(c[k] - want[k]) > rtol * max(1.0, abs(want[k]))]
    if not off:
        return None
    terms, eq = paths.terms, paths.equation
    if paths.spec.centred and abs(c["mean"]) < rtol and abs(c["var"]) < rtol and abs(c["direct"] - 1) < rtol:
        return (f"only the direct path {terms['direct']} is there: you treated μ and σ² as constants. Add the paths "
                f"through μ, −{terms['mean']} (eq. (2.6)), and through σ², −{terms['var']} (eq. (2.5)) — {eq}."
                + paths.detached_hint)
    ratio = c["direct"]
    if abs(ratio) > rtol and all(abs(c[k] - ratio * want[k]) <= rtol * abs(ratio) for k in want):
        named = name_value(ratio, paths.factors)
        return (f"your dL/dx is {ratio:.4g}" + (f" (= {named})" if named else "") + f" × {eq} in every term"
                + (f": {paths.factor_hints[named]}" if named in paths.factor_hints else
                   ": a constant factor is off (a scale applied twice, missing or inverted)") + ".")
    said = []
    means = [k for k in ("mean", "var") if k in off and want[k] != 0]
    if len(means) == 2 and abs(c["mean"] / want["mean"] - c["var"] / want["var"]) <= rtol and \
            abs(c["mean"]) > rtol and "direct" not in off:  # both means off by one factor: the count
        factor = c["mean"] / want["mean"]
        named = name_value(factor, paths.factors)
        g = terms["mean_of"]
        counted = wrong_count_message(paths.spec.partition.size / factor, paths.spec,
                                      f"each of the two means, mean({g}) and mean({g}·x̂),")
        said.append(f"{counted} (so both mean terms, −{terms['mean']} and −{terms['var']}, are {factor:.4g} × what "
                    f"they should be)" if counted else
                    f"both mean terms, −{terms['mean']} and −{terms['var']}, are {factor:.4g}"
                    + (f" (= {named})" if named else "") + " × what they should be"
                    + (f": {paths.factor_hints[named]}" if named in paths.factor_hints else ""))
        off = []
    for key in off:
        have, should = c[key], want[key]
        if should == 0:
            said.append(f"there is a term {have:.3g}·{terms[key]}, but {paths.spec.method} subtracts no mean, so its "
                        f"gradient has no path through μ")
        elif abs(have) < rtol:
            said.append(f"{_PATH_NAMES[key]} is missing: it adds {'−' if should < 0 else ''}{terms[key]}"
                        + (_PRODUCT_OF_MEANS.format(g=terms["mean_of"]) if key == "var" and paths.spec.centred
                           else ""))
        elif abs(have + should) < rtol * abs(should):
            said.append(f"{_PATH_NAMES[key]} has the wrong sign: it is {'−' if should < 0 else '+'}{terms[key]}")
        else:
            factor = have / should
            named = name_value(factor, paths.factors)
            mean = f"mean({terms['mean_of']})" if key == "mean" else f"mean({terms['mean_of']}·x̂)"
            counted = wrong_count_message(paths.spec.partition.size / factor, paths.spec,
                                          f"its mean, {mean},") if key != "direct" else None
            said.append(f"{_PATH_NAMES[key]} is {factor:.4g}" + (f" (= {named})" if named else "") + f" × {eq}'s "
                        f"{'−' if should < 0 else ''}{terms[key]}"
                        + (f": {counted}" if counted else
                           f": {paths.factor_hints[named]}" if named in paths.factor_hints else ""))
    missing = [k for k in off if abs(c[k]) < rtol and want[k] != 0]
    return "in your dL/dx, " + "; ".join(said) + f" ({eq})." + (paths.detached_hint if missing else "")


def _lookalike_problems(dx: torch.Tensor, paths: Paths, rtol: float, dtype: torch.dtype) -> str | None:
    """dL/dx fitted with one look-alike term added to eq. (2.8)'s three: a term eq. (2.8) does not have, named
    with its recovered coefficient and the term it stands in for."""
    for key, (term, text) in paths.lookalikes().items():
        fit = fit_linear(dx, {**paths.basis(), key: term})
        c = fit.coefficients
        if not _exact(fit, dtype) or abs(c[key]) < rtol:
            continue
        rest = {k: v for k, v in c.items() if k != key}
        replaced = [k for k in ("mean", "var") if abs(rest[k]) < rtol and paths.expected[k] != 0]
        said = f"your dL/dx has a term {c[key]:.4g}·{text} that {paths.equation} does not have"
        if replaced:
            said += " in place of " + " and ".join(f"−{paths.terms[k]}" for k in replaced)
            rest.update({k: paths.expected[k] for k in replaced})
        others = _coefficient_problems(rest, paths, rtol)
        return said + (f"; also {others[len('in your dL/dx, '):]}" if others and others.startswith("in your dL/dx, ")
                       else f" ({paths.equation})." if not others else f"; also: {others}")
    return exchanged_terms(dx, paths, rtol, dtype)


# which term of eq. (2.8) each look-alike takes the place of: x̂·mean(g) sits where x̂·mean(g·x̂) goes, mean(g·x̂)
# where mean(g) goes
_STANDS_FOR = {"x̂·mean(g)": "var", "mean(g·x̂)": "mean"}


def exchanged_terms(dx: torch.Tensor, paths: Paths, rtol: float, dtype: torch.dtype) -> str | None:
    """dL/dx fitted with every look-alike at once: terms of eq. (2.8) written in each other's places (the two
    means exchanged), said as which term stands where another goes."""
    lookalikes = paths.lookalikes()
    fit = fit_linear(dx, {**paths.basis(), **{key: term for key, (term, _) in lookalikes.items()}})
    if not _exact(fit, dtype):
        return None
    want = {**paths.expected, **{key: 0.0 for key in lookalikes}}
    names = {key: paths.terms[key] for key in paths.expected}
    names.update({key: text for key, (_, text) in lookalikes.items()})
    moves = coefficient_moves(fit.coefficients, want, names=names, stands_for=_STANDS_FOR, rtol=rtol)
    if moves is None or set(want) - moves[1] - {k for k in want if abs(fit.coefficients[k] - want[k]) <= rtol}:
        return None  # only a reading that explains every wrong coefficient is worth saying
    return f"in your dL/dx, {moves[0]} ({paths.equation})."


def _exact(fit, dtype: torch.dtype) -> bool:
    """A least-squares fit that explains the answer to its dtype's rounding."""
    return fit.residual < (1e-9 if dtype == torch.float64 else 1e-4)


def paths_problems(got: torch.Tensor, paths: Paths) -> str | None:
    """dL/dx fitted as c₁·(direct) + c₂·(mean term) + c₃·(variance term) of eq. (2.8), and the c's named; then
    one fit per channel (a per-channel factor), means over other values, another x̂, and the two properties
    eq. (2.8) implies."""
    rtol = 50 * _probe_rtol(got.dtype)
    dx = got.detach().double()
    fit = fit_linear(dx, paths.basis())
    if _exact(fit, got.dtype):
        return _coefficient_problems(fit.coefficients, paths, rtol)
    lookalike = _lookalike_problems(dx, paths, rtol, got.dtype)
    if lookalike:
        return lookalike
    C = dx.shape[1] if dx.dim() > 1 else 0
    if paths.per_group and C and dx.numel() // C >= 6:  # one fit per channel: a per-channel factor (γ, s) is off
        fits = fit_linear(dx, paths.basis(), per=1)
        if all(_exact(f, got.dtype) for f in fits):  # always so when a term is off by a per-channel constant
            said = {}  # term → what its per-channel factor means
            for key, want in paths.expected.items():
                ratios = torch.tensor([f.coefficients[key] / want if want else f.coefficients[key] for f in fits],
                                      dtype=torch.float64)
                if not _close(ratios, torch.ones_like(ratios) if want else torch.zeros_like(ratios), rtol, 1.0):
                    said[key] = next((message for values, message in paths.per_group.values()
                                      if want and _close(ratios, values.double(), rtol)), None)
            if said and all(said.values()):  # only a recognised per-channel factor is worth saying; else read on
                if len(said) == 3 and len(set(said.values())) == 1:
                    return next(iter(said.values()))  # one factor on every term
                return _bracket_sentence(said, paths) + "in your dL/dx, " + "; ".join(
                    f"{_PATH_NAMES[key]} has the wrong factor in each channel — {message[0].lower() + message[1:]}"
                    for key, message in said.items())
    for partition in paths.spec.candidates:  # means over the wrong values
        if partition.same_as(paths.spec.partition) or partition.size < 2:
            continue
        other = fit_linear(dx, paths.basis(partition))
        if _exact(other, got.dtype) and _coefficient_problems(other.coefficients, paths, rtol) is None:
            return (f"the means in your dL/dx, mean({paths.terms['mean_of']}) and mean({paths.terms['mean_of']}·x̂), "
                    f"are over {partition.describe()}, but {paths.equation}'s are over "
                    f"{paths.spec.partition.describe()} ({paths.spec.code}).")
    for name, (alternative, message) in paths.alternatives.items():
        other = fit_linear(dx, paths.basis(x_hat=alternative.double()))
        if _exact(other, got.dtype) and _coefficient_problems(other.coefficients, paths, rtol) is None:
            return message
    # the properties eq. (2.8) implies: shifting a group's inputs, or scaling them, leaves the output alone
    P, basis = paths.spec.partition, paths.basis()
    expected = basis["direct"] + paths.expected["mean"] * basis["mean"] + paths.expected["var"] * basis["var"]
    size = expected.abs().max().item()
    if paths.spec.centred and not _close(P.mean(dx), P.mean(expected), rtol, size):
        return (f"your dL/dx does not sum to 0 over each group {P.describe()}: the output does not change when a "
                f"constant is added to those inputs, so neither does the loss — the mean term −{paths.terms['mean']} "
                f"makes the sum 0 ({paths.equation}).")
    along = paths.x_hat * paths.s.reciprocal()  # x − μ: the direction in which scaling a group moves its inputs
    if not _close(P.mean(dx * along), P.mean(expected * along), rtol, (expected * along).abs().max().item()):
        return (f"your dL/dx has the wrong component along x̂ in each group {P.describe()}: the output (nearly) does "
                f"not change when a group's inputs are scaled, so Σ x̂·dL/dx must be (nearly) 0 — exactly the ε share "
                f"γ·s·Σ g·x̂·ε/(σ² + ε). That is the job of the variance term −{paths.terms['var']} "
                f"({paths.equation}): check it.")
    return None


def _bracket_sentence(said: dict, paths: Paths) -> str:
    """"γ·s multiplies only the first term …" when the direct path is right and the other paths lack exactly the
    common factor γ·s (or s): the factor written outside a bracket that does not hold every term; "" otherwise."""
    missing = {values_message[1] for name, values_message in paths.per_group.items() if name in ("1/(γs)", "1/s")}
    if paths.terms.get("direct") != "γ·s·g" or "direct" in said or not said or \
            not all(message in missing for message in said.values()):
        return ""
    if set(said) == {"mean", "var"}:
        return ("A bracket is missing: the common factor multiplies only the first term, as written γ·s·g − mean(g) "
                "− x̂·mean(g·x̂) — operator precedence stops it there; put every term inside the parentheses, "
                f"γ·s·(g − mean(g) − x̂·mean(g·x̂)) ({paths.equation}). ")
    if set(said) == {"var"}:
        return ("The bracket is closed too early: the common factor multiplies (g − mean(g)) but the last term "
                "x̂·mean(g·x̂) stands outside the parentheses; close the bracket after it, "
                f"γ·s·(g − mean(g) − x̂·mean(g·x̂)) ({paths.equation}). ")
    return ("A term stands outside the bracket of the common factor: every term belongs inside the parentheses, "
            f"γ·s·(g − mean(g) − x̂·mean(g·x̂)) ({paths.equation}). ")


def paths_probe(paths: Paths):
    return lambda got: paths_problems(got, paths)


def _count_factors(m: int, N: int, HW: int) -> tuple[dict, dict]:
    """Named wrong counts for the means of eq. (2.8) and what to change for each."""
    factors = {"m/N": m / N, "m/(H·W)": m / HW, "m": float(m), "m/(m − 1)": m / (m - 1) if m > 1 else math.inf,
               "1/m": 1 / m, "2": 2.0, "1/2": 0.5}
    hints = {"m/N": f"the bars of eq. (2.8) are means over the m = N·H·W = {m} values of a channel; you divided the "
                    f"sums by N = {N}",
             "m/(H·W)": f"the means run over the m = N·H·W = {m} values of a channel; you divided by H·W",
             "m": "use means (Σ ÷ m), not sums",
             "m/(m − 1)": "the bars are plain means, Σ ÷ m: not ÷ (m − 1)",
             "2": "a factor 2 too many (from the derivative of σ²?)", "1/2": "a factor 1/2 too few"}
    return factors, hints


def _batch_norm_paths(x_hat, weight, inv_std, grad_out, case: ImageCase, *, spec, detached_hint="",
                      alternatives=None, bias=None) -> Paths:
    N, C, H, W = case.shape
    gamma, s = _view(weight.double(), 4, (1,)).expand(*case.shape), _view(inv_std.double(), 4, (1,))
    factors, hints = _count_factors(N * H * W, N, H * W)
    gamma_c, s_c = weight.double(), inv_std.double()
    per_group = {"1/γ": (1 / gamma_c, "γ is missing from your dL/dx: dL/dx̂ = γ·g (eq. (2.4)), so dL/dx = γ·s·(g − "
                                      "mean(g) − x̂·mean(g·x̂)) (eq. (2.8))."),
                 "γ": (gamma_c, "γ is applied twice in your dL/dx: dL/dx = γ·s·(…) (eq. (2.8))."),
                 "1/s²": (1 / s_c ** 2, "you multiplied by σ = √(σ² + ε) where eq. (2.8) has s = 1/√(σ² + ε): "
                                        "inv_std is already 1/√(σ² + ε), so multiply by it."),
                 "1/s": (1 / s_c, "s = 1/√(σ² + ε) is missing from your dL/dx (eq. (2.8)): dL/dx = γ·s·(…)."),
                 "s": (s_c, "s = 1/√(σ² + ε) is applied twice in your dL/dx (eq. (2.8))."),
                 "1/(γs)": (1 / (gamma_c * s_c), "the factor γ·s is missing from your dL/dx: dL/dx = γ·s·(g − "
                                                 "mean(g) − x̂·mean(g·x̂)) (eq. (2.8)).")}
    if bias is not None and (weight.abs() > 1e-6).all():  # β saved or passed where γ belongs
        per_group["β/γ"] = (bias.double() / gamma_c, "your dL/dx is scaled by β (bias) where γ (weight) belongs: "
                                                      "dL/dx = γ·s·(…) (eq. (2.8)) — save and pass the weight, "
                                                      "ctx.save_for_backward(x_hat, weight, inv_std).")
    per_group.update(_other_forms_of_s(s_c, case.eps))
    return Paths(grad_out.double(), gamma, x_hat.double(), s.expand(*case.shape), spec, "eq. (2.8)",
                 {"direct": "γ·s·g", "mean": "γ·s·mean(g)", "var": "γ·s·x̂·mean(g·x̂)", "mean_of": "g"}, factors,
                 hints, per_group, alternatives or {}, detached_hint)


def _other_forms_of_s(s: torch.Tensor, eps: float) -> dict:
    """The s your backward may have used instead of s = 1/√(σ² + ε), each as its ratio to the right s per channel
    (ε outside the root, left out, no root): the forward's mistakes of eq. (2.1), made only in what was saved."""
    variance = 1 / s ** 2 - eps
    said = {}
    for form, (formula, text) in _FORMS.items():
        if form in ("inside", "inverted", "inverted no sqrt") or not text:
            continue
        ratio = formula(variance, eps) / s
        if not _close(ratio, torch.ones_like(ratio), 1e-3):  # a form that differs from s in this case
            said[f"s ({form})"] = (ratio, f"the s = 1/√(σ² + ε) your dL/dx uses is another formula — {text}, in "
                                          f"the s your backward uses: save for the backward the inv_std your forward "
                                          f"divides by (eq. (2.8) takes the s of eq. (2.1)).")
    return said


# ============================================================================================== per-channel vectors
def _per_channel_factors(case: ImageCase, weight, inv_std, what: str) -> dict:
    """The chapter's per-channel quantities a per-channel gradient might be wrongly multiplied by, and what to
    change for each. ``what`` is the right formula ("Σ g·x̂")."""
    N, _, H, W = case.shape
    m = N * H * W
    gamma, s = weight.double(), inv_std.double()
    no_s = f"x̂ is already normalised, so no s = 1/√(σ² + ε) (nor σ) belongs in {what}"
    found = {"1/m": (1 / m, f"a mean where the equation has a sum over the m = N·H·W = {m} values of each channel: "
                            f".sum(dim=(0, 2, 3))"),
             "m": (float(m), f"a sum where there should be {what} alone: drop the factor m"),
             "γ": (gamma, f"an extra factor γ — {what} takes g = dL/dy itself, not dL/dx̂ = γ·g (eq. (2.4))"),
             "1/γ": (1 / gamma, f"no γ belongs in {what}"),
             "s": (s, no_s), "1/s": (1 / s, no_s), "−1": (-1.0, "a sign is flipped")}
    if N > 1:
        found["1/N"] = (1 / N, f"you divided by the batch size N = {N}: {what} is a plain sum")
    return found


def vector_problems(got: torch.Tensor, expected: torch.Tensor, equals: dict, ratios: dict, name: str,
                    formula: str) -> str | None:
    """A per-channel gradient (dL/dγ, dL/dβ) named: equal to another quantity, or a named factor per channel
    (``ratios``: name → (value(s), what to change)) times the right one."""
    rtol = 50 * _probe_rtol(got.dtype)
    g = got.detach().double()
    for value, message in equals.values():
        if _close(g, value.double(), rtol):
            return message
    big = expected.abs() > 1e-6 * expected.abs().max().clamp_min(1e-30)
    if big.sum() == 0:
        return None
    ratio = g[big] / expected.double()[big]
    for factor, (value, message) in ratios.items():
        if _close(ratio, torch.as_tensor(value, dtype=torch.float64).expand_as(expected)[big], rtol):
            return f"your {name} is {factor} × {formula} in every channel: {message}."
    return None


def _parameter_gradient_probes(x_hat, grad_out, weight, inv_std, case: ImageCase, order_hint: str):
    """Probes for dL/dγ = Σ g·x̂ (eq. (2.3)) and dL/dβ = Σ g (eq. (2.2)), per channel over (0, 2, 3)."""
    g, xh = grad_out.double(), x_hat.double()
    sum_g, sum_gx = g.sum(STATISTICS), (g * xh).sum(STATISTICS)
    weight_probe = lambda got: vector_problems(got, sum_gx, {  # noqa: E731
        "Σg": (sum_g, f"your dL/dγ is Σ g, which is dL/dβ (eq. (2.2)); dL/dγ = Σ g·x̂ (eq. (2.3)): {order_hint}"),
    }, _per_channel_factors(case, weight, inv_std, "dL/dγ = Σ g·x̂"), "dL/dγ", "Σ g·x̂ (eq. (2.3))")
    bias_probe = lambda got: vector_problems(got, sum_g, {  # noqa: E731
        "Σgx̂": (sum_gx, f"your dL/dβ is Σ g·x̂, which is dL/dγ (eq. (2.3)); dL/dβ = Σ g (eq. (2.2)): {order_hint}"),
    }, _per_channel_factors(case, weight, inv_std, "dL/dβ = Σ g"), "dL/dβ", "Σ g (eq. (2.2))")
    return weight_probe, bias_probe


def _compare_input_gradient(EX, got, expected, case, paths: Paths, atol, rtol, learner=None) -> None:
    if got.input_grad is None:
        raise EX.fail(graph_cut_reading(learner) or "your output does not depend on x in the autograd graph (x.grad "
                      "is None): compute it from x.", case=case)
    EX.compare(got.input_grad, expected.input_grad, case=case, name="dL/dx", equation=paths.equation,
               atol=atol, rtol=rtol, probes=[paths_probe(paths)], axes=None)

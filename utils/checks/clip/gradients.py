"""Exercise 4.3: dL/du and dL/dv by hand (eqs. (4.3), (4.4)), read back as a combination of P V, Q V and V."""
from __future__ import annotations

import torch

from utils.checks.clip.cases import EX_GRADIENTS, PairCase, symmetric_loss, unit
from utils.checks.core import fit_linear, misplaced_results, name_value, one_thread

EQ = "eq. (4.4), dL/du = G v and dL/dv = Gᵀ u with G = s/(2B) · (P + Q − 2I)"

CASES = [
    PairCase("B=5, D=8, s = 14.3, float64", torch.float64, 5, 5, 8, 2.659),
    PairCase("B=6, D=9, s = 3, float64", torch.float64, 6, 6, 9, 1.0986),
    PairCase("B=4, D=16, s = 1, float32", torch.float32, 4, 4, 16, 0.0),
    PairCase("B=1, D=4 (one pair: both gradients are 0)", torch.float64, 1, 1, 4, 1.0),
]


def _inputs(case: PairCase):
    u = unit(EX_GRADIENTS.randn(case.B_img, case.D, key=(case.label, "u"), dtype=case.dtype))
    v = unit(EX_GRADIENTS.randn(case.B_txt, case.D, key=(case.label, "v"), dtype=case.dtype))
    return u, v


def _reference(u, v, scale):
    u, v = u.clone().requires_grad_(), v.clone().requires_grad_()
    symmetric_loss(scale * u @ v.T).backward()
    return u.grad, v.grad


def _basis(mine, other, scale, transposed: bool):
    """The terms eq. (4.4) is made of for one gradient, and their transposed counterparts, each with s/(2B)."""
    B = mine.shape[0]
    S = scale * (mine @ other.T)  # rows: this side
    P, Q = S.softmax(dim=1), S.softmax(dim=0)  # for dL/du: P over texts, Q over images
    if transposed:  # dL/dv: S's rows are images; from v's side, P and Q swap roles
        P, Q = Q, P
    c = scale / (2 * B)
    return {"P": c * P @ other, "Q": c * Q @ other, "I": c * other,
            "Pᵀ": c * P.T @ other, "Qᵀ": c * Q.T @ other, "J": c * torch.ones_like(P) @ other}


def _reading(got, basis, which: str, case: PairCase) -> str | None:
    """Read the learner's gradient as a·(P·) + b·(Q·) + c·(·) (+ transposed terms) and say what differs."""
    if case.B_img < 2:
        return None
    fit = fit_linear(got.double(), {k: b.double() for k, b in basis.items()})
    if not fit.exact:
        return None
    a = fit.coefficients
    other = "v" if which == "u" else "u"
    named = {"s": case.scale, "B": float(case.B_img), "2B": 2.0 * case.B_img, "2": 2.0, "2s": 2 * case.scale}

    def near(x, y):
        return abs(x - y) < 1e-3 * max(1.0, abs(y))
    if not near(a["J"], 0) and near(a["P"], 1) and near(a["Q"], 1):
        return (f"your labels term is a matrix of ones (torch.ones), which subtracts the mean of all "
                f"{other}'s from every row: the labels are one-hot on the diagonal, −2I with torch.eye(B) ({EQ}).")
    if near(a["Q"], 0) and near(a["Pᵀ"], 1) and near(a["P"], 1):
        return ("you used Pᵀ where Q goes: the column softmax Q = S.softmax(dim=0) normalises each column of S; "
                "it is not the transpose of the row softmax P (that would need S symmetric).")
    if not (near(a["Pᵀ"], 0) and near(a["Qᵀ"], 0)):
        return (f"your dL/d{which} uses the transpose of the softmax matrices: row i of dL/d{which} mixes the "
                f"{other}'s with the weights of {'row' if which == 'u' else 'column'} i of G — "
                f"{'G @ v' if which == 'u' else 'G.T @ u'} in {EQ}.")
    if near(a["Q"], 0) and not near(a["P"], 0):
        return (f"your dL/d{which} has no Q term: it is the gradient of one direction only (the softmax over "
                f"{'texts, P' if which == 'u' else 'images'}). {EQ}: both directions contribute, P = "
                f"S.softmax(dim=1) and Q = S.softmax(dim=0).")
    if near(a["P"], 0) and not near(a["Q"], 0):
        return (f"your dL/d{which} has no P term: it is the gradient of one direction only. {EQ}: both directions "
                f"contribute, P = S.softmax(dim=1) and Q = S.softmax(dim=0).")
    if near(a["I"], 0):
        return (f"your dL/d{which} has no −2I term (the right pairs' one-hot labels, once per direction): "
                f"G = s/(2B) · (P + Q − 2I).")
    if near(a["P"], 1) and near(a["Q"], 1) and near(a["I"], -1):
        return "your identity term is −I: the labels enter once per direction, −2I in G = s/(2B)(P + Q − 2I)."
    if near(a["P"], -1) and near(a["Q"], -1) and near(a["I"], 2):
        return f"the sign of your dL/d{which} is flipped: it is (P + Q − 2I), probabilities minus labels ({EQ})."
    ratios = [a["P"], a["Q"], -a["I"] / 2]
    if all(near(r, ratios[0]) for r in ratios) and not near(ratios[0], 1):
        name = name_value(ratios[0], named)
        return (f"your dL/d{which} has the right shape but is {ratios[0]:.4g}"
                f"{f' (= {name})' if name else ''} × the right one: check the factor s/(2B) in {EQ} "
                f"(s from the logits, ½ from the mean of the two directions, 1/B from the mean over pairs).")
    return None


@one_thread
def check_clip_loss_gradients(clip_loss_gradients) -> None:
    EX = EX_GRADIENTS
    for case in CASES:
        u, v = _inputs(case)
        expected = _reference(u, v, case.scale)
        got = EX.call(clip_loss_gradients, u.clone(), v.clone(), case.scale, case=case)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            what = f"{len(got)} values" if isinstance(got, (tuple, list)) else \
                "one tensor" if isinstance(got, torch.Tensor) else f"a {type(got).__name__}"
            raise EX.fail(f"return the tuple (grad_u, grad_v); you returned {what}.", case=case)
        names = ("grad_u", "grad_v")
        tolerances = [tuple(10 * t for t in case.tolerance)] * 2
        moved = misplaced_results(got, expected, names, tolerances=tolerances)
        if moved:
            raise EX.fail(moved, case=case)
        for index, (which, mine, other) in enumerate((("u", u, v), ("v", v, u))):
            value = got[index]
            if isinstance(value, torch.Tensor) and value.shape == expected[index].shape and \
                    value.dtype == expected[index].dtype and torch.isfinite(value).all():
                reading = _reading(value.detach(), _basis(mine, other, case.scale, which == "v"), which, case)
                if reading and not torch.allclose(value, expected[index], atol=tolerances[0][0],
                                                  rtol=tolerances[0][1]):
                    raise EX.fail(reading, case=case, name=f"grad_{which}")
            EX.compare(value, expected[index], case=case, equation=EQ, name=f"grad_{which}",
                       atol=tolerances[0][0], rtol=tolerances[0][1], axes=("B", "D"),
                       factors={"s": case.scale, "B": float(case.B_img), "2B": 2.0 * case.B_img, "2": 2.0})
    EX.passed(f"{len(CASES)} cases match autograd's dL/du and dL/dv of the symmetric loss (B = 1 … 6, s = 1 … 14.3)")

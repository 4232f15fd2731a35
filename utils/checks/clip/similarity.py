"""Exercises 4.1 (the similarity logits, eq. (4.1)) and 4.2 (the symmetric loss, eq. (4.2))."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from utils.checks.clip.cases import (
    CLIP_THETA,
    EX_LOGITS,
    EX_LOSS,
    LOG_100,
    PairCase,
    as_tensor_result,
    features,
    symmetric_loss,
    unit,
)
from utils.checks.core import Case, Mistake, one_thread

EQ_LOGITS = "eq. (4.1), S = min(e^θ, 100) · u vᵀ with u, v the L2-normalised rows"
EQ_LOSS = "eq. (4.2), L = ½(CE over the rows + CE over the columns), labels 0..B−1 on the diagonal"

LOGIT_CASES = [
    PairCase("4 images, 6 texts, D=8, θ = log(1/0.07)", torch.float32, 4, 6, 8, CLIP_THETA),
    PairCase("5 images, 5 texts, D=16, θ = 1.3, float64", torch.float64, 5, 5, 16, 1.3),
    PairCase("3 images, 2 texts, D=8, θ = log 300 (s clamped at 100), float64", torch.float64, 3, 2, 8,
             math.log(300)),
    PairCase("1 image, 1 text, D=4", torch.float32, 1, 1, 4, 0.5),
]


def _logit_mistakes(f, g, case: PairCase) -> list[Mistake | None]:
    s, u, v = case.scale, unit(f), unit(g)
    cos = u @ v.T
    colwise = (f / f.norm(dim=0, keepdim=True)) @ (g / g.norm(dim=0, keepdim=True)).T
    eq = "eq. (4.1)"
    mistakes = [
        Mistake(s * f @ g.T, f"you did not L2-normalise the features: {eq} compares directions, u = f/‖f‖ and "
                             f"v = g/‖g‖ (x / x.norm(dim=-1, keepdim=True)), so every logit lies in [−s, s]."),
        Mistake(s * u @ g.T, f"only the image features are normalised; normalise the text features too ({eq})."),
        Mistake(s * f @ v.T, f"only the text features are normalised; normalise the image features too ({eq})."),
        Mistake(s * colwise, "you normalised over the batch axis (dim=0): each feature *vector*, a row, must have "
                             "unit length — norm(dim=-1, keepdim=True)."),
        Mistake(min(case.theta, 100) * cos, "you multiply by θ itself: logit_scale holds the *logarithm* of the "
                                           "scale, s = e^θ (logit_scale.exp()), which keeps s positive."),
        Mistake(min(case.theta, LOG_100) * cos, "you multiply by θ clamped at log 100: the scale is s = e^θ; "
                                               "clamp θ at log 100 and then exponentiate (or exp, then clamp at 100)."),
        Mistake(cos / s, "you divide by s = e^θ: the temperature is applied the wrong way round. s = 1/τ is the "
                         "inverse temperature and *multiplies* the cosines (eq. (4.1)); multiplying by τ = e^−θ is the "
                         "same."),
        Mistake(cos / math.exp(case.theta), "you divide by e^θ: s = e^θ multiplies the cosines (it is 1/τ)."),
        Mistake(cos, "your logits are the bare cosines: multiply by the logit scale s = min(e^θ, 100) (eq. (4.1))."),
        Mistake(math.exp(case.theta) * cos, "the scale is not clamped: CLIP caps s at 100 — "
                                           "logit_scale.exp().clamp(max=100) — and here e^θ = 300.")
        if case.scale < math.exp(case.theta) else None,
        Mistake(min(math.exp(case.theta), LOG_100) * cos, "you clamp s = e^θ at log 100 ≈ 4.6: either clamp θ at log "
                                                         "100 before exp, or clamp s at 100 after it.")
        if math.exp(case.theta) > LOG_100 else None,
        Mistake(max(math.exp(case.theta), 100) * cos, "you clamp with min=100: the scale is capped from above, "
                                                     ".clamp(max=100).") if math.exp(case.theta) < 100 else None,
        Mistake(s * v @ u.T, "your matrix is transposed: rows are images and columns texts, S = s · u vᵀ with "
                             "u the image embeddings — logits[i, j] compares image i with text j.")
        if case.B_img == case.B_txt else None,
        Mistake(s * (1 - cos), "you return a distance (1 − cos) where eq. (4.1) has a similarity: the right pair "
                               "must score *highest*."),
    ]
    return [m if m is None else Mistake(m.output.to(case.dtype), m.hint) for m in mistakes]


def _clamped_logits_probe(case: PairCase):
    def probe(got):
        top = got.detach().abs().max().item()
        if math.exp(case.theta) > 100 and abs(top - 100) < 1e-4 and \
                (got.detach().abs() > 100 - 1e-4).sum().item() > 1:
            return ("several of your logits sit exactly at ±100: you clamp the logits; clamp the *scale*, "
                    "s = min(e^θ, 100), and multiply the cosines by it (eq. (4.1)).")
        return None
    return probe


def _one_norm_probe(f, g, case: PairCase):
    """Logits proportional to the raw dot products f gᵀ: one number divided out for the whole batch."""
    def probe(got):
        raw = (f @ g.T).double()
        ratio = got.detach().double() / raw
        if case.B_img * case.B_txt > 1 and torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-4):
            return ("your logits are proportional to the raw dot products f gᵀ: every pair is divided by the same "
                    "number. Normalise each row by its own length, x.norm(dim=-1, keepdim=True) — x.norm() without "
                    "dim is the norm of the whole batch.")
        return None
    return probe


def _range_probe(case: PairCase):
    def probe(got):
        if got.abs().max().item() > case.scale * (1 + 1e-4):
            return (f"some of your logits exceed s = {case.scale:.4g} in size ({got.abs().max().item():.4g}): "
                    f"cosines of unit vectors lie in [−1, 1], so the features are not normalised as eq. (4.1) "
                    f"requires (x / x.norm(dim=-1, keepdim=True)).")
        return None
    return probe


@one_thread
def check_clip_logits(clip_logits) -> None:
    EX = EX_LOGITS
    for case in LOGIT_CASES:
        f = features(EX, case, "images", case.B_img)
        g = features(EX, case, "texts", case.B_txt)
        theta = torch.tensor(case.theta, dtype=case.dtype)
        mine = [f.clone().requires_grad_(), g.clone().requires_grad_(), theta.clone().requires_grad_()]
        got = as_tensor_result(EX, EX.call(clip_logits, *mine, case=case), case, "clip_logits")
        reference = [f.clone().requires_grad_(), g.clone().requires_grad_(), theta.clone().requires_grad_()]
        expected = reference[2].exp().clamp(max=100) * unit(reference[0]) @ unit(reference[1]).T
        EX.compare(got, expected, case=case, equation=EQ_LOGITS, name="logits", axes=("B_img", "B_txt"),
                   mistakes=_logit_mistakes(f, g, case),
                   probes=[_clamped_logits_probe(case), _one_norm_probe(f, g, case), _range_probe(case)],
                   factors={"s = e^θ": case.scale, "θ": case.theta, "100": 100.0})
        if not got.requires_grad:
            raise EX.fail("your logits are not connected to the autograd graph: compute them from the inputs with "
                          "tensor operations (no .detach(), .item(), .numpy() or torch.no_grad()).", case=case)
        weights = EX.randn(*expected.shape, key=(case.label, "upstream"), dtype=case.dtype)
        (expected * weights).sum().backward()
        EX.call(lambda: (got * weights).sum().backward(), what="clip_logits (its backward pass)", case=case)
        names = ("image_features", "text_features", "logit_scale")
        for name, ours, theirs in zip(names, mine, reference):
            if theirs.grad is not None and ours.grad is None:
                raise EX.fail(f"no gradient reaches {name}: you use it outside the autograd graph (math.exp, "
                              f".item(), float(...), .detach()); use tensor operations on it (logit_scale.exp()).",
                              case=case)
            atol, rtol = (10 * t for t in case.tolerance)
            EX.compare(ours.grad, theirs.grad, case=case, equation=f"the backward of {EQ_LOGITS}",
                       name=f"gradient of {name}", atol=atol, rtol=rtol)
    EX.passed(f"{len(LOGIT_CASES)} cases match min(e^θ, 100) · u vᵀ and its gradients (images ≠ texts, "
              f"a clamped scale, one pair, float64)")


# ================================================================================================ 4.2
LOSS_CASES = [
    Case("B=5, logits of size ~5", torch.float32),
    Case("B=8, float64", torch.float64),
    Case("B=1 (one pair: the loss is 0)", torch.float32),
    Case("B=4, s = 100: logits up to ±100, float32", torch.float32),
    Case("B=3, float64, right pairs scoring low", torch.float64),
]


def _loss_logits(case: Case) -> torch.Tensor:
    B = int(case.label.split("B=")[1].split(",")[0].split(" ")[0])
    logits = EX_LOSS.randn(B, B, key=case.label, dtype=case.dtype) * 5
    if "±100" in case.label:
        logits = (torch.tanh(logits) * 100).to(case.dtype)
    if "low" in case.label:
        logits = logits - 8 * torch.eye(B, dtype=case.dtype)
    return logits


def _loss_mistakes(S: torch.Tensor) -> list[Mistake | None]:
    B = S.shape[0]
    labels = torch.arange(B)
    rows, cols = F.cross_entropy(S, labels), F.cross_entropy(S.T, labels)
    zeros = torch.zeros(B, dtype=torch.long)
    P, Q = S.softmax(dim=1), S.softmax(dim=0)
    flat = -(S.diagonal() - S.flatten().logsumexp(0)).mean()
    mistakes = [
        Mistake(rows, "you compute only the image→text direction (cross-entropy over each row): eq. (4.2) averages "
                      "it with the text→image direction, the same cross-entropy on the columns (logits.T)."),
        Mistake(cols, "you compute only the text→image direction (cross-entropy over the columns): eq. (4.2) "
                      "averages it with the image→text direction, over the rows."),
        Mistake(rows + cols, "you add the two directions: eq. (4.2) takes their mean, ½(L_I→T + L_T→I)."),
        Mistake(B * (rows + cols) / 2, "you sum over the batch: each direction of eq. (4.2) is a *mean* over the B "
                                        "pairs (F.cross_entropy's default reduction='mean')."),
        Mistake(B * (rows + cols), "you sum over the batch and add the two directions: eq. (4.2) is the mean over "
                                   "pairs and over the two directions."),
        Mistake((F.cross_entropy(S, zeros) + F.cross_entropy(S.T, zeros)) / 2,
                "your labels are all 0: pair i is image i with text i, so the labels are the diagonal, "
                "torch.arange(B).") if B > 1 else None,
        Mistake((F.cross_entropy(S, labels.flip(0)) + F.cross_entropy(S.T, labels.flip(0))) / 2,
                "your labels run backwards (the anti-diagonal): the right text of image i is text i, "
                "labels = torch.arange(B).") if B > 1 else None,
        Mistake(-(P.diagonal().mean() + Q.diagonal().mean()) / 2,
                "you average the softmax *probabilities* of the right pairs: the cross-entropy takes their "
                "logarithm, −log p (log_softmax, or F.cross_entropy on the raw logits).") if B > 1 else None,
        Mistake((F.cross_entropy(P, labels) + F.cross_entropy(Q.T, labels)) / 2,
                "you pass probabilities (a softmax) to F.cross_entropy, which applies its own log-softmax: give it "
                "the raw logits.") if B > 1 else None,
        Mistake(flat, "your softmax runs over all B² entries at once: each row (each image) and each column (each "
                      "text) is its own B-way classification.") if B > 1 else None,
    ]
    return mistakes


def _probes(clip_loss, S: torch.Tensor, case: Case):
    EX = EX_LOSS

    def value(logits):
        with torch.no_grad():
            out = EX.call(clip_loss, logits.clone(), case=case)
        return out.detach().double() if isinstance(out, torch.Tensor) and out.numel() == 1 else None

    def close(a, b):
        return a is not None and b is not None and torch.allclose(a.reshape(()), b.reshape(()), rtol=1e-4,
                                                                  atol=1e-5)

    def shift(got):
        if not close(value(S + 7.0), got.detach().double()):
            return ("adding the same number to every logit changed your loss, but a softmax cross-entropy cannot "
                    "change (the constant cancels in the log-softmax): compute −log softmax, e.g. with "
                    "F.cross_entropy on the raw logits (eq. (4.2)).")
        return None

    def transpose(got):
        if not close(value(S.T.contiguous()), got.detach().double()):
            return ("your loss changes when the logits are transposed (images ↔ texts), but eq. (4.2) treats both "
                    "directions alike: average the cross-entropy over the rows with the one over the columns.")
        return None

    def reorder(got):
        order = torch.randperm(S.shape[0], generator=torch.Generator().manual_seed(3))
        if not close(value(S[order][:, order]), got.detach().double()):
            return ("your loss changes when the pairs are reordered (the rows and columns of the logits permuted "
                    "together), so your labels do not follow the pairs: pair i is image i with text i, the labels "
                    "are the diagonal, torch.arange(B).")
        return None
    def rescaled(got):
        named = {"1/0.07": 1 / 0.07, "0.07": 0.07, "100": 100.0, "0.01": 0.01, "2": 2.0, "½": 0.5}
        for name, c in named.items():
            if close(symmetric_loss((c * S).double()), got.detach().double()):
                return (f"your loss equals eq. (4.2) on the logits multiplied by {name}: the logits arrive already "
                        f"scaled by s (eq. (4.1)); the loss takes them as they are, with no temperature of its own.")
        return None
    return [shift, transpose, reorder, rescaled] if S.shape[0] > 1 else []


@one_thread
def check_clip_loss(clip_loss) -> None:
    EX = EX_LOSS
    for case in LOSS_CASES:
        S = _loss_logits(case)
        mine = S.clone().requires_grad_()
        got = as_tensor_result(EX, EX.call(clip_loss, mine, case=case), case, "clip_loss")
        expected = symmetric_loss(S.double()).to(case.dtype)
        if got.shape != () and got.numel() == S.shape[0] and S.shape[0] > 1:
            raise EX.fail(f"your loss has shape {tuple(got.shape)}, one value per pair: eq. (4.2) is one number, "
                          f"the mean over the pairs (F.cross_entropy's default reduction='mean').", case=case)
        if got.shape == (1,):
            got = got.reshape(())
        if not torch.isfinite(got.detach()).all() and "±100" in case.label:
            raise EX.fail("your loss is NaN or inf when the logits reach ±100 (CLIP's s = 100): exp(100) overflows "
                          "float32. Use the stable log-softmax — F.log_softmax, or F.cross_entropy on the raw "
                          "logits — never log(exp(S) / exp(S).sum()).", case=case)
        EX.compare(got, expected, case=case, equation=EQ_LOSS, name="loss", mistakes=_loss_mistakes(S),
                   probes=_probes(clip_loss, S, case), factors={"B": float(S.shape[0]), "2": 2.0},
                   atol=1e-5 if case.dtype == torch.float32 else 1e-10, rtol=1e-4 if case.dtype == torch.float32
                   else 1e-9)
        if not got.requires_grad:
            raise EX.fail("your loss is not connected to the autograd graph: compute it from the logits with "
                          "tensor operations (no .item(), .detach() or numpy).", case=case)
    EX.passed(f"{len(LOSS_CASES)} cases match ½(CE(S, arange) + CE(Sᵀ, arange)) (B = 1 … 8, logits up to ±100, "
              f"float64)")

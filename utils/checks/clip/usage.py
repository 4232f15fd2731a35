"""Exercises 4.6 (class embeddings from an ensemble of prompts, eq. (4.9)) and 4.7 (recall@k, eq. (4.10))."""
from __future__ import annotations

import zlib

import torch

from utils.checks.clip.cases import EX_CLASSES, EX_RECALL, unit
from utils.checks.core import Case, Mistake, one_thread

EQ_CLASSES = "eq. (4.9), w_c = normalise(mean over templates of normalise(g(t_k(c))))"


class FakeTextEncoder:
    """A deterministic stand-in for encode_text: each string gets its own vector, with a norm far from 1."""

    def __init__(self, D: int = 6):
        self.D, self.calls = D, 0

    def vector(self, text: str) -> torch.Tensor:
        seed = zlib.crc32(text.encode())
        v = torch.randn(self.D, generator=torch.Generator().manual_seed(seed))
        return v / v.norm() * (0.5 + seed % 7)

    def __call__(self, texts):
        self.calls += 1
        if isinstance(texts, str):
            raise TypeError(f"encode_text takes a list of strings, not one string ({texts!r}): wrap it, [text].")
        return torch.stack([self.vector(t) for t in texts])


CLASS_CASES = [
    (Case("3 classes, 4 templates, D=6"), ["red circle", "blue square", "green cross"],
     ["a {}", "there is a {}", "a small {} on the left", "{}"]),
    (Case("1 class, 1 template"), ["yellow triangle"], ["a {} at the top"]),
    (Case("5 classes, 2 templates"), ["a", "b", "c", "d", "e"], ["photo of {}", "{} , large"]),
]


def _class_mistakes(encode, names, templates) -> list[Mistake | None]:
    C, K = len(names), len(templates)
    raw = torch.stack([torch.stack([encode.vector(t.format(n)) for t in templates]) for n in names])  # (C, K, D)
    normed = unit(raw)
    template_major = torch.stack([encode.vector(t.format(n)) for t in templates for n in names]).reshape(C, K, -1)
    mistakes = [
        Mistake(unit(raw.mean(1)), "you average the raw prompt embeddings and normalise once: normalise each "
                                   "template's embedding first, so every template gets the same vote (eq. (4.9)).")
        if K > 1 else None,
        Mistake(normed.mean(1), "you do not renormalise the mean: the average of unit vectors is shorter than 1; "
                                "normalise it again to put w_c back on the sphere (eq. (4.9)).") if K > 1 else None,
        Mistake(raw.mean(1), "nothing is normalised: eq. (4.9) normalises each prompt's embedding, then the mean."),
        Mistake(unit(torch.nn.functional.normalize(raw, dim=1).mean(1)),
                "you normalise across the templates (dim=0 of each class's (K, D) matrix): normalise each prompt's "
                "embedding, a row, with dim=-1.") if K > 1 else None,
        Mistake(normed[:, 0], "you use only the first template: eq. (4.9) averages over all K templates.")
        if K > 1 else None,
        Mistake(unit(unit(template_major).mean(1)), "your prompts are grouped by template, not by class: you built "
                "them template by template (for t in templates for c in classes) and then read them as class by "
                "class. Build the K prompts of one class together, or reshape to (K, C, D) and average over K.")
        if K > 1 and C > 1 else None,
    ]
    return mistakes


@one_thread
def check_class_embeddings(class_embeddings) -> None:
    EX = EX_CLASSES
    for case, names, templates in CLASS_CASES:
        encode = FakeTextEncoder()
        got = EX.call(class_embeddings, encode, list(names), list(templates), case=case)
        if isinstance(got, (list, tuple)) and all(isinstance(g, torch.Tensor) for g in got) and len(got) == len(names):
            raise EX.fail(f"you returned a {type(got).__name__} of {len(got)} vectors: stack them into one "
                          f"(C, D) tensor, torch.stack(rows).", case=case)
        if not isinstance(got, torch.Tensor):
            raise EX.fail(f"your class_embeddings returned {type(got).__name__}, not a (C, D) tensor.", case=case)
        expected = unit(torch.stack([unit(torch.stack([encode.vector(t.format(n)) for t in templates])).mean(0)
                                     for n in names]))

        def unit_rows(out):
            norms = out.detach().norm(dim=-1)
            if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
                return (f"your rows have norms {[round(x, 3) for x in norms.tolist()][:5]}: each w_c of eq. (4.9) "
                        f"is a unit vector (normalise the mean over templates).")
            return None
        EX.compare(got, expected, case=case, equation=EQ_CLASSES, name="class embeddings", axes=("C", "D"),
                   mistakes=_class_mistakes(encode, names, templates), probes=[unit_rows])
    EX.passed(f"{len(CLASS_CASES)} cases match the renormalised mean of normalised prompt embeddings, one row per "
              f"class")


# ================================================================================================ 4.7
RECALL_CASES = [  # (label, B, k, seed)
    ("B=8, k=1", 8, 1, 0), ("B=8, k=3", 8, 3, 1), ("B=12, k=5", 12, 5, 2), ("B=6, k=6 (every item: 1.0)", 6, 6, 3),
    ("B=1, k=1", 1, 1, 4), ("B=10, k=2", 10, 2, 5),
]


def _similarity(B: int, seed: int) -> torch.Tensor:
    """Random scores with the right item boosted by various amounts, so ranks spread over 1..B."""
    generator = torch.Generator().manual_seed(seed)
    S = torch.randn(B, B, generator=generator)
    return S + torch.diag(torch.linspace(-1.0, 2.5, B) if B > 1 else torch.ones(1))


def _recall(S: torch.Tensor, k: int) -> float:
    """Eq. (4.10) via ranks: rank_i = 1 + #{j : S_ij > S_ii}."""
    ranks = 1 + (S > S.diagonal()[:, None]).sum(1)
    return (ranks <= k).float().mean().item()


def _recall_readings(S, k) -> dict[str, float]:
    B = S.shape[0]
    return {
        "columns": _recall(S.T, k),
        "k+1": _recall(S, k + 1),
        "k−1": _recall(S, k - 1),
        "smallest": _recall(-S, k),
        "percent": 100 * _recall(S, k),
        "count": B * _recall(S, k),
        "argmax": _recall(S, 1),
        "misses": 1 - _recall(S, k),
    }


RECALL_HINTS = {
    "columns": "you rank along the columns (for each item, the queries): queries are the rows of `similarity` — "
               "topk(k, dim=1) — and the other direction is recall_at_k(similarity.T, k).",
    "k+1": "you count the top k + 1: an off-by-one in k (topk(k) takes exactly k; a rank ≤ k, not < k + 1 twice).",
    "k−1": "you count only the top k − 1: the right item counts when its rank is ≤ k (rank 1 is the best), "
           "e.g. topk(k).",
    "smallest": "you take the k *smallest* scores: the best matches have the largest similarity "
                "(topk's default largest=True, or argsort(descending=True)).",
    "percent": "you return a percentage: recall@k is a fraction in [0, 1].",
    "count": "you return the number of hits: divide by B, the number of queries (eq. (4.10) is a mean).",
    "argmax": "your recall does not change with k: you check only the best match (argmax); count the right item "
              "anywhere among the top k.",
    "misses": "you return the fraction of misses: recall counts the queries whose item *is* in the top k.",
}


@one_thread
def check_recall_at_k(recall_at_k) -> None:
    EX = EX_RECALL
    got_all, expected_all, readings = [], [], []
    for label, B, k, seed in RECALL_CASES:
        S = _similarity(B, seed)
        case = Case(label)
        got = EX.call(recall_at_k, S.clone(), k, case=case)
        if isinstance(got, torch.Tensor):
            if got.numel() != 1:
                raise EX.fail(f"you returned a tensor of shape {tuple(got.shape)}: recall@k is one number, the mean "
                              f"of the B hits (.float().mean().item()).", case=case)
            got = got.item()
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            raise EX.fail(f"you returned a {type(got).__name__}: return a float (….mean().item()).", case=case)
        if got != got or got in (float("inf"), float("-inf")):
            raise EX.fail(f"you returned {got}: recall@k is a fraction of the B queries (hits.float().mean()); "
                          f"a mean over an empty selection gives NaN.", case=case)
        got_all.append(float(got))
        expected_all.append(_recall(S, k))
        readings.append(_recall_readings(S, k))
    if all(abs(g - e) < 1e-6 for g, e in zip(got_all, expected_all)):
        EX.passed(f"{len(RECALL_CASES)} cases match the fraction of rows whose own column ranks in the top k "
                  f"(k = 1 … B, B = 1)")
        return
    for name, hint in RECALL_HINTS.items():
        if all(abs(g - r[name]) < 1e-6 for g, r in zip(got_all, readings)):
            first = next(i for i, (g, e) in enumerate(zip(got_all, expected_all)) if abs(g - e) >= 1e-6)
            raise EX.fail(hint, case=RECALL_CASES[first][0])
    first = next(i for i, (g, e) in enumerate(zip(got_all, expected_all)) if abs(g - e) >= 1e-6)
    label = RECALL_CASES[first][0]
    if got_all[first] > 1 or got_all[first] < 0:
        raise EX.fail(f"you returned {got_all[first]:.4g}, outside [0, 1]: recall@k is a fraction of the queries.",
                      case=label)
    raise EX.fail(f"you returned {got_all[first]:.4g}, expected {expected_all[first]:.4g}. Compare with eq. (4.10): "
                  f"for each row i, is column i among the k largest entries of row i? Then average over the rows.",
                  case=label)

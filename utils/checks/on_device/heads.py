"""Exercise 12.2: repeating key/value heads for grouped-query attention (query head h reads KV head h // n_rep)."""
from __future__ import annotations

import torch

from utils.checks.core import one_thread
from utils.checks.on_device.cases import EX_REPEAT as EX
from utils.checks.on_device.cases import HeadsCase, require_tensor

CASES = [HeadsCase("H_kv=2, n_rep=2"), HeadsCase("H_kv=3, n_rep=4, B=1", B=1, H_kv=3, n_rep=4, T=5, Dh=2),
         HeadsCase("n_rep=1 (multi-head attention)", H_kv=4, n_rep=1), HeadsCase("H_kv=1 (multi-query)", H_kv=1,
                                                                                   n_rep=3, T=1)]


def _source_heads(got: torch.Tensor, x: torch.Tensor) -> list[int | None]:
    """For each output head, the input head it equals (None: none)."""
    found = []
    for h in range(got.shape[1]):
        match = [j for j in range(x.shape[1]) if torch.equal(got[:, h], x[:, j])]
        found.append(match[0] if match else None)
    return found


@one_thread
def check_repeat_kv(repeat_kv) -> None:
    for case in CASES:
        x = EX.randn(case.B, case.H_kv, case.T, case.Dh, key=case.label)  # (B, H_kv, T, Dh)
        got = require_tensor(EX, EX.call(repeat_kv, x, case.n_rep, case=case), case, "output")
        expected = x.repeat_interleave(case.n_rep, dim=1)
        if got.shape == expected.shape and torch.equal(got, expected):
            continue
        if tuple(got.shape) == (case.B, case.H_kv, case.T * case.n_rep, case.Dh) and case.n_rep > 1:
            raise EX.fail(f"your output is {tuple(got.shape)}: you repeated along time (dim 2); the heads are dim 1 "
                          f"of (B, H_kv, T, Dh) → (B, H_kv·n_rep, T, Dh).", case=case)
        if got.shape == expected.shape:
            sources = _source_heads(got, x)
            if None not in sources:
                want = [h // case.n_rep for h in range(got.shape[1])]
                tiled = [h % case.H_kv for h in range(got.shape[1])]
                if sources == tiled:
                    raise EX.fail(f"your heads come from KV heads {sources}, tiled like x.repeat(1, n_rep, 1, 1); "
                                  f"grouped-query attention gives query head h the KV head h // n_rep: {want}. Use "
                                  f"repeat_interleave(n_rep, dim=1) (each head next to its copies).", case=case)
                raise EX.fail(f"your output heads are copies of KV heads {sources}; head h must be KV head "
                              f"h // n_rep: {want}.", case=case)
        EX.compare(got, expected, case=case, equation="output head h = x[:, h // n_rep]",
                   axes=("B", "H", "T", "Dh"))
    EX.passed("4 cases: query head h reads KV head h // n_rep, from n_rep = 1 (MHA) to H_kv = 1 (MQA)")

"""Exercise 10.6: FSDP's all-gather and reduce-scatter by hand (eq. (10.7)), against fully_shard.

On 3 ranks and parameters whose rows do not divide evenly (5 rows: shards of 2, 2, 1), the gathered parameter is
compared with the full one — its rows read back by owner to name a wrong shard order or kept padding — and each
rank's gradient shard with fully_shard's: a sum instead of the mean, another rank's rows, the full gradient or the
padding left in are each named."""
from __future__ import annotations

import itertools
import math

import torch

from utils import distributed
from utils.checks.core import CheckFailure
from utils.checks.distributed.cases import EX_FSDP
from utils.checks.distributed.launching import run_on_ranks
from utils.checks.distributed.workers import fsdp_worker

WORLD_SIZE = 3
HANG = "Every rank must call all_gather_into_tensor / reduce_scatter_tensor the same number of times, in order."


def _close(a, b) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def _gather_reading(got, full, n) -> str:
    rows = len(full)
    per_rank = math.ceil(rows / n)
    if not isinstance(got, torch.Tensor):
        return f"returned {got}, not a tensor: return the full parameter"
    if got.shape[1:] == full.shape[1:] and len(got) == per_rank * n and len(got) != rows:
        return (f"has {len(got)} rows = N·⌈rows/N⌉ = {n}·{per_rank}: the padding is still in; keep each rank's "
                f"real rows only ({rows} in all)")
    if got.shape != full.shape:
        return f"has shape {tuple(got.shape)}; the full parameter is {tuple(full.shape)}"
    blocks = list(full.chunk(n))
    order = next((list(p) for p in itertools.permutations(range(len(blocks)))
                  if torch.allclose(torch.cat([blocks[k] for k in p]), got)), None)
    if order is not None and order != list(range(len(blocks))):
        return (f"holds the ranks' shards in the order {order}: rank r's rows go at rows r·⌈rows/N⌉ onwards — "
                f"concatenate the gathered pieces in rank order")
    if any(torch.equal(got, b.repeat(n, *[1] * (b.dim() - 1))[:rows]) for b in blocks if len(b)):
        return "repeats one shard: all_gather_into_tensor fills the output with every rank's input, in rank order"
    return "differs from the full parameter"


def _scatter_reading(got, want, full_grads, rank, n) -> str:
    if not isinstance(got, torch.Tensor):
        return f"returned {got}, not a tensor: return this rank's rows of the averaged gradient"
    rows = len(full_grads)
    per_rank = math.ceil(rows / n)
    if got.shape[1:] == want.shape[1:] and len(got) == rows:
        return (f"is the whole gradient ({rows} rows): return only this rank's rows, "
                f"torch.chunk(·, N)[rank] ({len(want)} rows here)")
    if got.shape[1:] == want.shape[1:] and len(got) == per_rank and len(want) < per_rank:
        return f"has {per_rank} rows: the padding is still in — keep the first {len(want)} (this rank's real rows)"
    if got.shape != want.shape:
        return f"has shape {tuple(got.shape)}; this rank's shard is {tuple(want.shape)}"
    if _close(got, want * n):
        return f"is the SUM over ranks, N = {n} times the average: divide by the world size"
    if _close(got, want / n):
        return "is divided by N twice"
    own = full_grads.chunk(n)[rank] if rank < len(full_grads.chunk(n)) else full_grads[:0]
    if _close(got, own):
        return "is this rank's own gradient rows, not reduced over ranks"
    return "differs from fully_shard's shard"


def check_fsdp_collectives(all_gather_parameter, reduce_scatter_gradient) -> None:
    """Exercise 10.6: three two-layer models on 3 ranks, uneven shards; against fully_shard."""
    results = run_on_ranks(EX_FSDP, fsdp_worker, WORLD_SIZE, (distributed.reference(all_gather_parameter),
                                                              distributed.reference(reduce_scatter_gradient)),
                           hang_hint=HANG)
    n = WORLD_SIZE
    for index, case in enumerate(results[0]):
        features, hidden, classes = case["case"]
        label = f"Linear({features}, {hidden}) → Tanh → Linear({hidden}, {classes}), {n} ranks"
        for rank in range(n):
            run = results[rank][index]
            for name in run["names"]:
                full, got = run["full"][name], run["gathered"][name]
                if not _close(got, full):
                    raise CheckFailure(f"Exercise 10.6 ({label}), all_gather_parameter on rank {rank}, {name} "
                                       f"({len(full)} rows, shards of {[len(b) for b in full.chunk(n)]}): your "
                                       f"result {_gather_reading(got, full, n)} (eq. (10.7), top).")
        for rank in range(n):
            run = results[rank][index]
            for name in run["names"]:
                got, want = run["got"][name], run["ref"][name]
                if _close(got, want):
                    continue
                other = next((k for k in range(n) if k != rank and _close(got, results[k][index]["ref"][name])
                              and len(want)), None)
                if other is not None:
                    raise CheckFailure(f"Exercise 10.6 ({label}), reduce_scatter_gradient on rank {rank}, {name}: "
                                       f"your shard is rank {other}'s rows: the r-th block of reduce_scatter_tensor's "
                                       f"input goes to rank r — build it from the chunks in rank order.")
                reading = _scatter_reading(got, want, run["full_grads"][name], rank, n)
                raise CheckFailure(f"Exercise 10.6 ({label}), reduce_scatter_gradient on rank {rank}, {name}: your "
                                   f"shard {reading} (eq. (10.7), bottom: rank r's rows of (1/N) Σ_k g_k, what "
                                   f"fully_shard holds).")
    EX_FSDP.passed(f"three models on {n} ranks with uneven shards: every gathered parameter is the full one, and "
                   f"every rank's gradient shard equals fully_shard's")

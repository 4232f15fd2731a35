"""Exercise 10.5: a GPipe step by hand over 2 ranks (eqs. (10.5), (10.6)), against ScheduleGPipe.

Each stage's gradients on each rank are compared with ScheduleGPipe's on identical stages and data, and read: m
times too large (micro-batch losses not scaled by 1/m), 1/m too small (scaled twice), none on rank 0 (nothing
flowed back), the targets paired with the wrong micro-batches (recomputed here in one process)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from utils import distributed
from utils.checks.core import CheckFailure
from utils.checks.distributed.cases import EX_GPIPE, number_value
from utils.checks.distributed.launching import run_on_ranks
from utils.checks.distributed.workers import gpipe_data, gpipe_model, gpipe_worker

HANG = ("In GPipe's schedule rank 0 sends m activations, then receives m gradients; rank 1 receives m activations, "
        "then sends m gradients — the same number of each, in the same order, with buffers of the right shape "
        "(B/m, hidden).")
NONE = ("On rank 1, x.grad is None after the backward unless the received activation requires a gradient: call "
        "x.requires_grad_() after dist.recv(x, src=0), before the stage uses it.")
EQUATION = "eq. (10.6): Σ_j ∇(L_j / m), the full batch's gradient"


def _close(a, b) -> bool:
    return a is not None and b is not None and a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def _shuffled_targets_gradients(case, rank):
    """The stage gradients when micro-batch j's activation meets the targets of micro-batch m − 1 − j."""
    model = gpipe_model(case)
    x, y = gpipe_data(case)
    m = case[1]
    targets = list(y.chunk(m))[::-1]
    loss = sum(F.cross_entropy(model(x_j), y_j) for x_j, y_j in zip(x.chunk(m), targets)) / m
    loss.backward()
    stage = list(model)[:2] if rank == 0 else list(model)[2:]
    return [p.grad for layer in stage for p in layer.parameters()]


def check_gpipe_step(gpipe_step) -> None:
    """Exercise 10.5: three (batch, m) cases on 2 ranks; gradients and loss against ScheduleGPipe's."""
    results = run_on_ranks(EX_GPIPE, gpipe_worker, 2, (distributed.reference(gpipe_step),), hang_hint=HANG,
                           none_hint=NONE, timeout=40, collective_timeout=12)
    for index, case in enumerate(results[0]):
        batch, m = case["case"][:2]
        label = f"batch {batch}, m = {m} micro-batches"
        for rank in (1, 0):
            run = results[rank][index]
            for name, got, want in zip(run["names"], run["got"], run["ref"]):
                if _close(got, want):
                    continue
                where = f"stage {rank} (rank {rank}), gradient of {name}"
                if got is None or (torch.count_nonzero(got) == 0 and torch.count_nonzero(want) > 0):
                    why = ("rank 0 received no gradient to back-propagate: rank 1 must send x.grad for every "
                           "micro-batch, and rank 0 call out.backward(grad) on the output it kept (not a detached "
                           "copy)") if rank == 0 else "the stage's loss was never back-propagated"
                    raise CheckFailure(f"Exercise 10.5 ({label}), {where}: {'None' if got is None else 'zero'}: "
                                       f"{why}.")
                if got.shape != want.shape:
                    raise CheckFailure(f"Exercise 10.5 ({label}), {where}: shape {tuple(got.shape)}, expected "
                                       f"{tuple(want.shape)}.")
                ratio = (got.flatten() @ want.flatten() / (want.flatten() @ want.flatten())).item()
                if _close(got, want * ratio) and m > 1:
                    if abs(ratio - m) < 1e-3 * m:
                        raise CheckFailure(f"Exercise 10.5 ({label}), {where}: m = {m} times too large — the "
                                           f"micro-batch losses are not scaled by 1/m before their backward "
                                           f"({EQUATION}).")
                    if abs(ratio - 1 / m) < 1e-3 / m:
                        raise CheckFailure(f"Exercise 10.5 ({label}), {where}: m = {m} times too small — the 1/m of "
                                           f"eq. (10.6) is applied twice (a loss already divided, or a mean over "
                                           f"micro-batches on top of the scaling).")
                    raise CheckFailure(f"Exercise 10.5 ({label}), {where}: {ratio:.4g} × the right one: scale each "
                                       f"micro-batch loss by exactly 1/m ({EQUATION}).")
                shuffled = _shuffled_targets_gradients(case["case"], rank)
                if any(_close(got, s) for s in shuffled):
                    raise CheckFailure(f"Exercise 10.5 ({label}), {where}: the targets of micro-batch m − 1 − j are "
                                       f"paired with activation j: both ranks must walk the micro-batches in the "
                                       f"same order (and send/receive them in it).")
                raise CheckFailure(f"Exercise 10.5 ({label}), {where}: differs from ScheduleGPipe's (largest "
                                   f"difference {(got - want).abs().max().item():.3g}): each micro-batch's output "
                                   f"must be paired with its own targets and gradient. Compare with {EQUATION}.")
        loss, want = results[1][index]["loss"], results[1][index]["ref_loss"]
        number = number_value(loss) if not isinstance(loss, str) else None
        if number is None:
            raise CheckFailure(f"Exercise 10.5 ({label}): rank 1 returned {loss!r}, not the batch's mean loss (a "
                               f"float): return the mean of the m micro-batch losses.")
        if abs(number - want) > 1e-4 * max(1.0, abs(want)):
            if m > 1 and abs(number - want * m) < 1e-4 * abs(want * m):
                raise CheckFailure(f"Exercise 10.5 ({label}): rank 1's loss {number:.5g} is the SUM of the m = {m} "
                                   f"micro-batch losses; return their mean ({want:.5g}).")
            if m > 1 and abs(number - want / m) < 1e-4 * abs(want):
                raise CheckFailure(f"Exercise 10.5 ({label}): rank 1's loss {number:.5g} is the mean divided by m "
                                   f"once more; return the mean of the m micro-batch losses ({want:.5g}).")
            raise CheckFailure(f"Exercise 10.5 ({label}): rank 1's loss {number:.5g}, expected the mean of the m "
                               f"micro-batch losses, {want:.5g}.")
    EX_GPIPE.passed("three schedules on 2 ranks (m = 4, 3, 1): both stages' gradients and the mean loss equal "
                    "ScheduleGPipe's")

"""Exercises 10.3 and 10.4: gradient averaging with all_reduce, per parameter and bucketed (eq. (10.1)).

The learner's function runs on 3 real ranks (so that a hard-coded 2 shows) next to DistributedDataParallel. Each
parameter's gradient on each rank is then *read*: unchanged (never reduced), DDP's times N (a sum), times N/2 (a
hard-coded 2), divided twice, divided without a reduction, another rank's, or the parameters averaged instead; the
parameters that share a reading are named together. For buckets, the all_reduce calls are counted and sized."""
from __future__ import annotations

import torch

from utils import distributed
from utils.checks.core import CheckFailure
from utils.checks.distributed.cases import EX_AVERAGE, EX_BUCKETS
from utils.checks.distributed.launching import run_on_ranks
from utils.checks.distributed.workers import averaging_worker

WORLD_SIZE = 3
EQUATION = "eq. (10.1): the average over ranks, (1/N) Σ_r g_r"
NONE = ("A parameter with requires_grad=False (or unused in the loss) has .grad None: skip it "
        "(`if p.grad is None: continue`).")
HANG = "Every rank must call all_reduce for the same tensors in the same order (a rank that skips one waits forever)."


def _close(a, b) -> bool:
    return a is not None and b is not None and a.shape == b.shape and torch.allclose(a, b, atol=1e-12, rtol=1e-9)


def _read(got, ddp, local, rank_locals, n) -> str | None:
    """What one rank's gradient of one parameter is, in the chapter's terms; None when it is right."""
    if ddp is None:
        return None if got is None else "has a gradient although the parameter is frozen (requires_grad=False)"
    if got is None:
        return "has no gradient (.grad is None) after your function: write the average back into p.grad"
    if got.shape != ddp.shape:
        return f"has shape {tuple(got.shape)} instead of {tuple(ddp.shape)}: copy each piece back with view_as(p.grad)"
    if _close(got, ddp):
        return None
    total = ddp * n
    readings = [(local, "was not averaged (it is still this rank's own gradient)"),
                (total, f"is the SUM over ranks, N = {n} times too large: divide by the world size after all_reduce"),
                (ddp * n / 2, "is divided by 2 instead of N: the check runs 3 ranks — use dist.get_world_size(), "
                              "not a number"),
                (ddp / n, f"is divided by N twice ({n}² in all): all_reduce sums, then divide once"),
                (local / n, "is this rank's gradient divided by N, without the all_reduce that sums the ranks"),
                (total * n, f"is the sum times N = {n}: multiply? divide by the world size instead"),
                (ddp * (n - 1) / n, f"is divided by N − 1 or counts N − 1 ranks: divide the sum by N = {n}")]
    for value, text in readings:
        if _close(got, value):
            return text
    for other in rank_locals:
        if _close(got, other):
            return "is another rank's own gradient (a broadcast, not an all_reduce sum)"
    if _close(got, torch.zeros_like(got)):
        return "is zero: the gradient was cleared or overwritten"
    scale = (got.flatten() @ ddp.flatten() / (ddp.flatten() @ ddp.flatten()).clamp_min(1e-300)).item()
    if abs(scale) > 1e-12 and _close(got, ddp * scale):
        return (f"is {scale:.4g} × DDP's average, the sum divided by {n / scale:.4g} instead of N = {n}: divide the "
                f"all_reduce sum by dist.get_world_size()")
    return "differs from DDP's average (not a sum, a factor or a rank's own gradient)"


def _diagnose(results: list[list[dict]], exercise, bucket_cap=None) -> None:
    n = len(results)
    for index, case in enumerate(results[0]):
        label = f"{case['case']} model, {n} ranks" + (f", bucket_cap={bucket_cap}" if bucket_cap else "")
        changed = [name for name, moved in zip(case["names"], case["params_changed"]) if moved]
        if changed:
            raise exercise.fail(f"the parameters {', '.join(changed)} changed: you averaged (or updated) the "
                                f"parameters themselves. Average the gradients, p.grad, and leave the update to "
                                f"the optimizer.", case=label)
        by_reading: dict[str, list[str]] = {}
        for rank in range(n):
            run = results[rank][index]
            rank_locals = [results[k][index]["local"] for k in range(n) if k != rank]
            for p, name in enumerate(run["names"]):
                others = [loc[p] for loc in rank_locals if loc[p] is not None]
                reading = _read(run["got"][p], run["ddp"][p], run["local"][p], others, n)
                if reading:
                    by_reading.setdefault(reading, [])
                    if name not in by_reading[reading]:
                        by_reading[reading].append(name)
        if by_reading:
            if case.get("returned") and all("was not averaged" in r for r in by_reading):
                raise exercise.fail(f"your function returned a {case['returned']} and left every .grad unchanged: "
                                    f"it must change the gradients in place (p.grad /= N after "
                                    f"dist.all_reduce(p.grad)), as DDP does; the return value is ignored.",
                                    case=label)
            trainable = {nm for nm, rg in zip(case["names"], case["requires_grad"]) if rg}
            unchanged = all("was not averaged" in r for r in by_reading) and \
                set(sum(by_reading.values(), [])) >= trainable
            if unchanged and case["calls"]:
                raise exercise.fail(f"your {len(case['calls'])} all_reduce call(s) did not change the gradients: "
                                    f"all_reduce works in place on the tensor you give it, so you reduced a copy "
                                    f"(torch.cat(...), .clone(), p.data) and did not write it back into p.grad.",
                                    case=label)
            all_names = [nm for nm, rg in zip(case["names"], case["requires_grad"]) if rg]
            parts = []
            for reading, names in by_reading.items():
                who = "every parameter's gradient" if set(names) >= set(all_names) else \
                    f"the gradient of {', '.join(names)}"
                parts.append(f"{who} {reading}")
            extra = ""
            if bucket_cap and any("not averaged" in r for r in by_reading):
                missing = by_reading.get("was not averaged (it is still this rank's own gradient)", [])
                numels = {nm: k for nm, k, rg in zip(case["names"], case["numels"], case["requires_grad"]) if rg}
                if missing and set(missing) == set(_leftover(all_names, numels, bucket_cap)):
                    extra = (" These are the first parameters of the model, the last ones in reverse order: the "
                             "bucket left over after the loop was never sent — flush it after the loop.")
                elif missing:
                    extra = (" A parameter was dropped at a bucket boundary: each parameter goes into exactly one "
                             "bucket (add it, then flush when the bucket holds ≥ bucket_cap elements).")
            raise exercise.fail("; ".join(parts) + f".{extra} Compare with {EQUATION}, which DDP computes.",
                                case=label)


def _leftover(names: list[str], numels: dict[str, int], cap: int) -> list[str]:
    """The parameters of the last bucket when it never reached the cap (walking in reverse), else []."""
    bucket, size = [], 0
    for name in reversed(names):
        bucket.append(name)
        size += numels[name]
        if size >= cap:
            bucket, size = [], 0
    return bucket


def check_average_gradients(average_gradients) -> None:
    """Exercise 10.3: three models on 3 ranks, against DistributedDataParallel's gradients."""
    results = run_on_ranks(EX_AVERAGE, averaging_worker, WORLD_SIZE, (distributed.reference(average_gradients),),
                           hang_hint=HANG, none_hint=NONE)
    _diagnose(results, EX_AVERAGE)
    EX_AVERAGE.passed(f"on {WORLD_SIZE} ranks, three models (one with a frozen layer), every gradient equals "
                      f"DistributedDataParallel's average to 1e-12 (float64)")


def expected_buckets(numels: list[int], cap: int) -> list[int]:
    """Sizes of the buckets of eq. (10.4)'s exercise: reverse order, flush at ≥ cap, remainder last."""
    buckets, size = [], 0
    for numel in reversed(numels):
        size += numel
        if size >= cap:
            buckets.append(size)
            size = 0
    return buckets + ([size] if size else [])


def check_average_gradients_bucketed(average_gradients_bucketed) -> None:
    """Exercise 10.4: three models on 3 ranks and two bucket caps, against DDP; the all_reduce calls counted."""
    caps = (40, 1_000_000)
    reference = distributed.reference(average_gradients_bucketed)
    for cap in caps:
        results = run_on_ranks(EX_BUCKETS, averaging_worker, WORLD_SIZE, (reference, cap), hang_hint=HANG,
                               none_hint=NONE)
        _diagnose(results, EX_BUCKETS, bucket_cap=cap)
        for case in results[0]:
            numels = [k for k, rg in zip(case["numels"], case["requires_grad"]) if rg]
            want = expected_buckets(numels, cap)
            got = case["calls"]
            label = f"{case['case']} model, bucket_cap={cap}"
            if got == want:
                continue
            if sum(got) != sum(want):
                raise CheckFailure(f"Exercise 10.4 ({label}): your all_reduce calls carry {sum(got)} elements in all; "
                                   f"the gradients have {sum(want)}: each gradient must be sent exactly once.")
            if len(got) == len(numels) and len(want) < len(numels):
                raise CheckFailure(f"Exercise 10.4 ({label}): you made {len(got)} all_reduce calls, one per "
                                   f"parameter; with bucket_cap={cap} the gradients fit in {len(want)} bucket(s) "
                                   f"of sizes {want}: concatenate a bucket's gradients and reduce them at once.")
            if len(got) == 1 and len(want) > 1:
                raise CheckFailure(f"Exercise 10.4 ({label}): you sent all gradients in one all_reduce of "
                                   f"{got[0]} elements; with bucket_cap={cap} there are {len(want)} buckets "
                                   f"({want}): flush a bucket as soon as it holds ≥ bucket_cap elements.")
            raise CheckFailure(f"Exercise 10.4 ({label}): your buckets have sizes {got}; walking the parameters in "
                               f"reverse and flushing when a bucket holds ≥ {cap} elements gives {want}. Check the "
                               f"order (reversed) and the flush condition (≥, then start an empty bucket).")
    EX_BUCKETS.passed(f"on {WORLD_SIZE} ranks, three models and bucket caps {caps}: gradients equal DDP's, one "
                      f"all_reduce per bucket, buckets as DDP forms them (reverse order)")

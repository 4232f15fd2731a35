"""Exercise 10.2: the ring all-reduce, simulated (eq. (10.3)).

Each rank's data are random and independent, so every chunk a rank ends with can be read back as a combination
of the ranks' chunks (a least-squares fit over the N inputs): a coefficient 0 is a contribution that never arrived,
2 one that was counted twice. The bytes are compared with 2(N−1)/N·S and read as a multiple of S."""
from __future__ import annotations

import torch

from utils.checks.core import fit_linear, one_thread
from utils.checks.distributed.cases import EX_RING, number_value

CASES = [(2, 4, torch.float32), (3, 6, torch.float64), (4, 8, torch.float32), (5, 10, torch.float64),
         (3, 3, torch.float32), (4, 16, torch.float64)]  # (N, elements per rank, dtype)


@one_thread
def check_ring_all_reduce(ring_all_reduce) -> None:
    """Exercise 10.2: results equal the sum on every rank; each rank sends 2(N−1)/N·S bytes."""
    counted = []
    for n, size, dtype in CASES:
        label = f"N={n}, {size} {str(dtype).replace('torch.', '')} elements per rank"
        tensors = [EX_RING.randn(size, key=(label, r), dtype=dtype) for r in range(n)]
        copies = [t.clone() for t in tensors]
        out = EX_RING.call(ring_all_reduce, tensors, case=label)
        changed = [r for r, (t, c) in enumerate(zip(tensors, copies)) if not torch.equal(t, c)]
        if changed:
            raise EX_RING.fail(f"the input of rank {changed[0]} was changed in place: a rank's own chunks are views "
                               f"of its input (`tensor.chunk` shares memory), so `+=` on them edits the caller's "
                               f"tensor. Start from `t.clone().chunk(n)`, or add out of place (a = a + b).",
                               case=label)
        if isinstance(out, (tuple, list)) and len(out) == n and all(isinstance(t, torch.Tensor) and t.shape ==
                                                                   tensors[0].shape for t in out):
            raise EX_RING.fail(f"returned {n} tensors, the results alone: return the pair (results, bytes_sent).",
                               case=label)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise EX_RING.fail(f"returned a {type(out).__name__}: return the pair (results, bytes_sent).", case=label)
        results, bytes_sent = out
        if not isinstance(results, (list, tuple)) or len(results) != n:
            raise EX_RING.fail(f"`results` should be a list of {n} tensors, one per rank; got "
                               f"{type(results).__name__}" + (f" of length {len(results)}"
                                                             if isinstance(results, (list, tuple)) else "") + ".",
                               case=label)
        total = torch.stack(copies).sum(0)
        for rank, result in enumerate(results):
            _compare_result(result, total, copies, rank, n, label)
        counted.append((bytes_sent, n, size, tensors[0].element_size(), label))
    for found in sorted(counted, key=lambda c: c[1] == 2):  # N = 2 last: there 2(N−1) = 4(N−1)/N
        _compare_bytes(*found)
    EX_RING.passed(f"{len(CASES)} rings (N = 2 to 5, float32 and float64): every rank ends with the sum, and each "
                   f"sends 2(N−1)/N of its data, in 2(N−1) chunks")


def _compare_result(result, total, inputs, rank, n, label) -> None:
    where = f"rank {rank}'s result"
    if not isinstance(result, torch.Tensor):
        raise EX_RING.fail(f"{where} is a {type(result).__name__}, not a tensor.", case=label)
    if result.shape != total.shape:
        raise EX_RING.fail(f"{where} has shape {tuple(result.shape)}; it should have the input's shape "
                           f"{tuple(total.shape)} (concatenate the {n} chunks back, in chunk order).", case=label)
    if result.dtype != total.dtype:
        raise EX_RING.fail(f"{where} is {result.dtype}, the input {total.dtype}: keep the input's dtype.", case=label)
    atol = 1e-5 if total.dtype == torch.float32 else 1e-12
    if torch.allclose(result, total, atol=atol, rtol=1e-5):
        return
    if not torch.isfinite(result).all():
        raise EX_RING.fail(f"{where} holds NaN or inf: a chunk read before anything was written to it "
                           f"(torch.empty)?", case=label)
    chunk_size = len(total) // n
    for c in range(n):
        piece = slice(c * chunk_size, (c + 1) * chunk_size)
        if torch.allclose(result[piece], total[piece], atol=atol, rtol=1e-5):
            continue
        basis = {f"rank {k}": inputs[k][piece].double() for k in range(n)}
        fit = fit_linear(result[piece].double(), basis)
        coefficients = [round(v, 3) for v in fit.coefficients.values()]
        if fit.exact and all(v in (0.0, 1.0, 2.0, 3.0) for v in coefficients):
            missing = [k for k, v in enumerate(coefficients) if v == 0]
            twice = [k for k, v in enumerate(coefficients) if v >= 2]
            said = f"{where}, chunk {c}, is " + " + ".join(f"{v:g}·x{k}" for k, v in enumerate(coefficients) if v) \
                   + f" (x_k: rank k's chunk {c}); it should be the sum of all {n}. "
            if twice:
                said += (f"Rank{'s' if len(twice) > 1 else ''} {', '.join(map(str, twice))} counted more than once: a "
                         f"chunk received in a step was sent on in the same step, or the all-gather added where it "
                         f"should replace. All ranks send at once: collect every (sender, chunk) of a step first, "
                         f"then apply them; in the all-gather the receiver replaces its copy.")
            elif missing:
                said += (f"The contribution of rank{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} "
                         f"never arrived: the reduce-scatter takes N − 1 = {n - 1} steps, step s sending chunk "
                         f"(r − s) mod N from rank r to r + 1, and the all-gather {n - 1} more, passing on the "
                         f"completed chunk (r + 1 − s) mod N.")
            raise EX_RING.fail(said, case=label)
        raise EX_RING.fail(f"{where}, chunk {c}, is not the sum of the ranks' chunk {c} (largest difference "
                           f"{(result[piece] - total[piece]).abs().max().item():.3g}): check which chunk index each "
                           f"rank sends at each step, and that the chunks go back in order.", case=label)


def _compare_bytes(bytes_sent, n, size, element_size, label) -> None:
    if not isinstance(bytes_sent, (list, tuple)) or len(bytes_sent) != n:
        raise EX_RING.fail(f"`bytes_sent` should be a list of {n} numbers, one per rank; got "
                           f"{type(bytes_sent).__name__}.", case=label)
    total = size * element_size  # S, bytes per rank
    want = 2 * (n - 1) * total / n
    for rank, value in enumerate(bytes_sent):
        number = number_value(value)
        if number is None:
            raise EX_RING.fail(f"bytes_sent[{rank}] is a {type(value).__name__}, not a number.", case=label)
        if abs(number - want) < 1e-9:
            continue
        head = f"rank {rank} sent {number:g} bytes; eq. (10.3) says 2(N−1)/N·S = {want:g} (S = {total} bytes). "
        ratio = number / total
        readings = {2 * (n - 1): "you count the whole tensor S at every step, not one chunk of S/N",
                    (n - 1) / n: "you count one phase only: the reduce-scatter and the all-gather each send N − 1 "
                                 "chunks",
                    2 * (n - 1) / n / element_size: f"you count elements, not bytes: multiply by element_size() "
                                                    f"({element_size} here)",
                    2.0: "you count N steps per phase, or whole tensors; each phase has N − 1 steps of one chunk",
                    2 * n / n: "you count N steps per phase; each phase has N − 1",
                    4 * (n - 1) / n: "you count every chunk twice (when sent and when received?)"}
        for value_ratio, reading in readings.items():
            if abs(ratio - value_ratio) < 1e-9:
                raise EX_RING.fail(head + reading + ".", case=label)
        sends = ratio * n  # in chunks of S/N
        if abs(sends - round(sends)) < 1e-9 and round(sends) > 0:
            raise EX_RING.fail(head + f"That is {round(sends)} chunks of S/N; each phase sends N − 1 = {n - 1}, so "
                                      f"2(N−1) = {2 * (n - 1)} in all: count one chunk per step of each phase "
                                      f"(a phase has N − 1 steps).", case=label)
        if abs(sends * element_size - round(sends * element_size)) < 1e-9:
            raise EX_RING.fail(head + f"That is {round(sends * element_size)} chunks counted in elements: count "
                                      f"bytes (× element_size() = {element_size}), one chunk per step, "
                                      f"2(N−1) = {2 * (n - 1)} chunks in all.", case=label)
        raise EX_RING.fail(head + f"Yours is {ratio:.4g}·S: add chunk.numel() * chunk.element_size() once for each "
                                  f"chunk a rank sends, over both phases.", case=label)

"""Exercise 12.6: symmetric per-output-channel weight quantization, eq. (12.8). The integers and scales are read
back: which axis the scale varies along, which q_max it maps the largest weight to, how values were rounded."""
from __future__ import annotations

import torch

from utils.checks.core import CheckFailure, one_thread
from utils.checks.on_device.cases import EX_QUANT as EX

CASES = [((6, 10), 8), ((4, 7), 4), ((1, 5), 8), ((9, 3), 4), ((5, 12), 8)]  # ((out, in), bits)


def _weight(shape, label):
    w = EX.randn(*shape, key=(label, "w"))
    return w * torch.linspace(0.2, 3.0, shape[0])[:, None]  # rows of very different ranges: per-channel matters


def _reference(weight, bits):
    q_max = 2 ** (bits - 1) - 1
    scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / q_max
    return torch.round(weight / scale).clamp(-q_max, q_max).to(torch.int8), scale


def _unpack(got, label):
    if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(g, torch.Tensor) for g in got)):
        raise EX.fail(f"returned {type(got).__name__}; return the pair (q, scale) of tensors.", case=label)
    return got


@one_thread
def check_quantize_per_channel(quantize_per_channel) -> None:
    for shape, bits in CASES:
        label = f"weight {shape}, {bits} bits"
        weight = _weight(shape, label)
        q, scale = _unpack(EX.call(quantize_per_channel, weight, bits, case=label), label)
        want_q, want_scale = _reference(weight, bits)
        q_max = 2 ** (bits - 1) - 1
        out, n_in = shape
        if q.shape != weight.shape:
            raise EX.fail(f"your q is {tuple(q.shape)}, expected the weight's shape {shape}.", case=label)
        if q.dtype != torch.int8:
            hint = " (you may have returned the dequantized weights q·scale)" if q.is_floating_point() and \
                not torch.equal(q, q.round()) else ""
            raise EX.fail(f"your q is {q.dtype}; store the integers as torch.int8{hint}: .to(torch.int8) after "
                          f"rounding and clamping.", case=label)
        if scale.numel() == 1 and out > 1:
            raise EX.fail("your scale is a single number for the whole matrix (per-tensor); eq. (12.8) has one "
                          "scale per output channel: amax over dim=1, keepdim=True → (out, 1).", case=label)
        if scale.numel() == n_in and n_in != out:
            raise EX.fail(f"your scale has {n_in} entries, one per input column (the max over dim=0); eq. (12.8) "
                          f"takes one per output row: amax(dim=1, keepdim=True) → ({out}, 1).", case=label)
        if scale.numel() != out:
            raise EX.fail(f"your scale is {tuple(scale.shape)}; expected one per output channel, ({out}, 1).",
                          case=label)
        if tuple(scale.shape) != (out, 1):
            raise EX.fail(f"your scale is {tuple(scale.shape)}; return it as ({out}, 1) so that q * scale "
                          f"broadcasts row by row (keepdim=True).", case=label)
        if not scale.is_floating_point():
            raise EX.fail(f"your scale is {scale.dtype}; it must stay a float tensor.", case=label)
        row_max = weight.abs().amax(dim=1)
        used = (row_max / scale.reshape(-1)).tolist()  # what each row's largest weight was mapped to
        if all(abs(u - used[0]) < 1e-3 * max(1.0, abs(used[0])) for u in used) and abs(used[0] - q_max) > 1e-3:
            named = {2 ** (bits - 1): f"2^(bits−1) = {2 ** (bits - 1)}", 127: "127 whatever `bits` is",
                     1: "1 (the scale is the row's max itself)",
                     2 ** bits - 1: f"2^bits − 1 = {2 ** bits - 1} (the unsigned range; a symmetric signed code "
                                    f"reaches only 2^(bits−1) − 1)"}
            name = next((text for value, text in named.items() if abs(used[0] - value) < 1e-3), f"{used[0]:.4g}")
            raise EX.fail(f"your scale maps each row's largest |weight| to {name}; eq. (12.8) maps it to q_max = "
                          f"2^(bits−1) − 1 = {q_max}: scale = max|W_row| / {q_max}.", case=label)
        q_int = q.to(torch.int64)
        if q_int.abs().max() > q_max:
            raise EX.fail(f"your integers reach {int(q_int.abs().max())}, beyond ±q_max = ±{q_max} for {bits} "
                          f"bits (2^(bits−1) − 1).", case=label)
        if not torch.allclose(scale, want_scale, rtol=1e-5, atol=1e-12):
            raise EX.fail("your scale is one per row but not max|W_row| / q_max: eq. (12.8) uses the largest "
                          "magnitude of each row (abs before amax).", case=label)
        if torch.equal(q, want_q):
            continue
        ratio = weight / scale
        if torch.equal(q_int, ratio.trunc().clamp(-q_max, q_max).to(torch.int64)):
            raise EX.fail("your integers are truncated toward zero (.to(torch.int8) or int() on w / scale); eq. "
                          "(12.8) rounds to the nearest: torch.round(w / scale) first.", case=label)
        if torch.equal(q_int, ratio.floor().clamp(-q_max, q_max).to(torch.int64)):
            raise EX.fail("your integers are rounded down (floor); eq. (12.8) rounds to the nearest.", case=label)
        wrong = (q_int != want_q.to(torch.int64)).nonzero()
        o, i = wrong[0].tolist()
        raise CheckFailure(f"{EX.where(label, 'q')}: {len(wrong)} integers differ from round(W / scale) "
                           f"(e.g. [{o}, {i}]: you have {int(q_int[o, i])}, W/scale = {ratio[o, i]:.3f}).")
    EX.passed("5 matrices at 8 and 4 bits: one scale per output row = max|W_row| / (2^(bits−1) − 1), rounded "
              "int8 integers within ±q_max")

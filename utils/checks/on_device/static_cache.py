"""Exercise 12.4: writing one step's key or value into a preallocated cache, functionally."""
from __future__ import annotations

import torch

from utils.checks.core import Case, one_thread
from utils.checks.on_device.cases import EX_WRITE as EX
from utils.checks.on_device.cases import require_tensor

CASES = [(1, 2, 8, 4, 3), (2, 3, 6, 2, 0), (1, 1, 5, 3, 4), (2, 2, 7, 4, 6)]  # (B, H_kv, T_max, Dh, position)
AXES = ("B", "H_kv", "T_max", "Dh")


class WriteCase(Case):
    pass


def _where_written(got: torch.Tensor, cache: torch.Tensor, new: torch.Tensor) -> str:
    """Which entries changed, said by axis and index."""
    changed = (got != cache).nonzero()
    if len(changed) == 0:
        return "nothing changed: your cache equals the one you were given (is the write assigned to the result?)"
    parts = []
    for axis, name in enumerate(AXES):
        values = sorted(set(changed[:, axis].tolist()))
        if len(values) < got.shape[axis]:
            parts.append(f"{name} ∈ {values if len(values) <= 6 else str(values[:6])[:-1] + ', …]'}")
    return "your result differs from the cache you were given at " + (", ".join(parts) or "every entry")


@one_thread
def check_write_cache(write_cache) -> None:
    for B, H_kv, T_max, Dh, position in CASES:
        label = f"B={B}, H_kv={H_kv}, T_max={T_max}, Dh={Dh}, position={position}"
        cache = EX.randn(B, H_kv, T_max, Dh, key=(label, "cache"))
        new = EX.randn(B, H_kv, 1, Dh, key=(label, "new"))
        pos = torch.tensor([position])
        got = require_tensor(EX, EX.call(write_cache, cache, new, pos, case=label), label, "cache")
        expected = cache.index_copy(2, pos, new)
        if got.shape != expected.shape:
            extra = ""
            if got.shape[2:3] == (T_max + 1,) or (got.ndim == 4 and got.shape[2] == T_max + 1):
                extra = " It grew by one step: that is concatenation; a preallocated cache keeps T_max and " \
                        "overwrites one time index."
            raise EX.fail(f"your cache is {tuple(got.shape)}, expected the input's shape {tuple(cache.shape)} "
                          f"(B, H_kv, T_max, Dh).{extra}", case=label)
        if torch.equal(got, expected):
            continue
        rows_written = [t for t in range(T_max) if torch.equal(got[:, :, t:t + 1], new)]
        others_kept = [t for t in range(T_max) if torch.equal(got[:, :, t], cache[:, :, t])]
        if rows_written and set(rows_written) != {position}:
            shift = rows_written[0] - position
            more = len(rows_written) > 1
            raise EX.fail(f"you wrote the new entry at time index {rows_written if more else rows_written[0]}, "
                          f"position is {position}" + (
                              f" (off by {shift:+d})." if not more else
                              ": write one time index only (cache[:, :, p:p+1], not cache[:, :, p:]).") +
                          " Overwrite exactly index `position` of dim 2.", case=label)
        if torch.allclose(got, cache.index_add(2, pos, new)):
            raise EX.fail(f"at time index {position} your cache holds the old value plus the new one (index_add, +=): "
                          f"overwrite it (index_copy, or = on a clone).", case=label)
        rest = torch.ones(T_max, dtype=torch.bool)
        rest[position] = False
        if torch.equal(got[:, :, position:position + 1], new) and not got[:, :, rest].any():
            raise EX.fail("the new entry is right, but every other time index of your cache is zero: start from the "
                          "cache you were given (its past keys), not from torch.zeros.", case=label)
        if len(others_kept) == T_max - 1 and position not in others_kept:
            EX.compare(got, expected, case=WriteCase(label), name="cache", axes=AXES,
                       equation="cache with cache[:, :, position] = new[:, :, 0]")
        raise EX.fail(f"{_where_written(got, cache, new)}; only time index {position} (dim 2, T_max) should hold "
                      f"the new values, every other entry unchanged. Check the axis you write along: dim 2 of "
                      f"(B, H_kv, T_max, Dh).", case=label)
    EX.passed("4 caches: the new key lands at `position` along T_max, every other entry unchanged, input untouched")

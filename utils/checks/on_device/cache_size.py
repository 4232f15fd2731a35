"""Exercise 12.1: the bytes of the KV cache, eq. (12.4), recovered factor by factor."""
from __future__ import annotations

import math
import numbers

from utils import tiny_llama as tl
from utils.checks.core import one_thread
from utils.checks.on_device.cases import EX_CACHE_BYTES as EX

CONFIGS = [  # (config, T, bytes_per_value, batch_size): every factor differs from every other and from 2
    (tl.LlamaConfig(dim=2048, n_layers=22, n_heads=32, n_kv_heads=4), 2048, 2, 1),
    (tl.LlamaConfig(dim=96, n_layers=3, n_heads=6, n_kv_heads=3), 7, 4, 5),
    (tl.LlamaConfig(dim=160, n_layers=5, n_heads=10, n_kv_heads=10), 11, 1, 3),
    (tl.LlamaConfig(dim=64, n_layers=1, n_heads=4, n_kv_heads=1), 1, 2, 1),
]


READINGS = [  # (what the learner did, the factor it multiplies eq. (12.4) by, per configuration)
    ("counted the keys and values twice (a factor 2 too many)", lambda c, T, b, n: 2),
    ("counted only the keys or only the values: eq. (12.4) has the factor 2 for both", lambda c, T, b, n: 0.5),
    ("used the query heads H (n_heads, or the width D = H·Dh) where eq. (12.4) has the key/value heads H_kv "
     "(n_kv_heads): with grouped-query attention only H_kv heads are cached",
     lambda c, T, b, n: c.n_heads / c.n_kv_heads),
    ("left out the layers L (every layer keeps its own cache)", lambda c, T, b, n: 1 / c.n_layers),
    ("left out the head width Dh", lambda c, T, b, n: 1 / c.head_dim),
    ("left out the key/value heads H_kv", lambda c, T, b, n: 1 / c.n_kv_heads),
    ("left out batch_size (each sequence has its own cache)", lambda c, T, b, n: 1 / n),
    ("multiplied by batch_size twice", lambda c, T, b, n: n),
    ("counted values, not bytes: multiply by bytes_per_value", lambda c, T, b, n: 1 / b),
    ("counted bits, not bytes (a factor 8 too many)", lambda c, T, b, n: 8),
    ("counted T + 1 tokens: the cache of T tokens holds exactly T", lambda c, T, b, n: (T + 1) / T),
    ("counted T − 1 tokens: the cache of T tokens holds exactly T", lambda c, T, b, n: (T - 1) / T),
    ("left out T: the cache grows with every token", lambda c, T, b, n: 1 / T),
    ("returned MiB (÷ 2²⁰), not bytes", lambda c, T, b, n: 2.0 ** -20),
    ("returned MB (÷ 10⁶), not bytes", lambda c, T, b, n: 1e-6),
]


def _reading(ratios: list[float]) -> str | None:
    """The one reading whose factor explains the ratio got/expected on every configuration (1 where it was right)."""
    for text, factor in READINGS:
        if all(math.isclose(ratio, factor(*config), rel_tol=1e-9) for ratio, config in zip(ratios, CONFIGS)):
            return text
    return None


@one_thread
def check_kv_cache_bytes(kv_cache_bytes) -> None:
    """Eq. (12.4) on four configurations (TinyLlama's, MHA, MQA, batch > 1); a wrong count is read on all four."""
    ratios, first_wrong = [], None
    for c, T, bytes_per_value, batch_size in CONFIGS:
        label = f"L={c.n_layers}, H={c.n_heads}, H_kv={c.n_kv_heads}, Dh={c.head_dim}, T={T}, " \
                f"{bytes_per_value} byte(s), batch {batch_size}"
        got = EX.call(kv_cache_bytes, c, T, bytes_per_value, batch_size, case=label)
        expected = 2 * c.n_layers * c.n_kv_heads * c.head_dim * T * bytes_per_value * batch_size
        if got is None:
            raise EX.fail("returned None: did you forget `return`?", case=label)
        if isinstance(got, bool) or not isinstance(got, numbers.Real) and not hasattr(got, "item"):
            raise EX.fail(f"returned {type(got).__name__}; return the number of bytes as an int.", case=label)
        value = float(got.item() if hasattr(got, "item") else got)
        if value == expected and not isinstance(got, numbers.Integral):
            raise EX.fail(f"the number is right ({expected:,}) but it is a {type(got).__name__}: return an int "
                          f"(a byte count; int(...) or use // rather than /).", case=label)
        ratios.append(value / expected)
        if value != expected and first_wrong is None:
            first_wrong = (label, value, expected)
    if first_wrong is not None:
        label, value, expected = first_wrong
        reading = _reading(ratios)
        raise EX.fail(f"you return {value:,.6g} bytes, eq. (12.4) gives 2·L·H_kv·Dh·T·bytes·batch = {expected:,} "
                      f"(yours is {value / expected:.4g}× that). " + (f"You {reading}." if reading else
                      "Multiply exactly these factors: 2 (keys and values), n_layers, n_kv_heads, head_dim, T, "
                      "bytes_per_value, batch_size."), case=label)
    EX.passed("eq. (12.4) on 4 configurations: TinyLlama's GQA, multi-head, multi-query, batch > 1")

"""Readings of a whole output against the right one, whatever the exercise: a clamped copy of it (a clamp the
equation does not have, or a bound of its own), or a named transform of it (its log, square root, square, inverse,
1 − it). Each says what the learner's values are in terms of the right ones; the caller adds the equation's fix."""
from __future__ import annotations

import torch


def _close(got: torch.Tensor, want: torch.Tensor) -> bool:
    return bool(torch.allclose(got, want, rtol=1e-4, atol=1e-6))


def clamped(got: torch.Tensor, expected: torch.Tensor) -> str | None:
    """"clamped from below at 0.0001" when ``got`` is ``expected`` clamped to got's own range [min, max] and that
    clamp changes something; None otherwise."""
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape or not got.is_floating_point():
        return None
    got, expected = got.detach().double(), expected.detach().double()
    if not (torch.isfinite(got).all() and torch.isfinite(expected).all()) or got.numel() < 3:
        return None
    low, high = got.min().item(), got.max().item()
    if not _close(got, expected.clamp(low, high)):
        return None
    below = bool((expected < low - 1e-4 * abs(low) - 1e-12).any())  # the clamp changed something at that side
    above = bool((expected > high + 1e-4 * abs(high) + 1e-12).any())
    if below and above:
        return f"clamped to [{low:.4g}, {high:.4g}]"
    return f"clamped from below at {low:.4g}" if below else f"clamped from above at {high:.4g}" if above else None


_TRANSFORMS = (  # (name, function of the right values, where it is defined)
    ("log", torch.log, lambda v: v > 0),
    ("√", torch.sqrt, lambda v: v >= 0),
    ("square", lambda v: v * v, lambda v: torch.ones_like(v, dtype=torch.bool)),
    ("1/", torch.reciprocal, lambda v: v.abs() > 1e-12),
    ("1 −", lambda v: 1 - v, lambda v: torch.ones_like(v, dtype=torch.bool)),
    ("exp", torch.exp, lambda v: v < 50),
)


def transform(got: torch.Tensor, expected: torch.Tensor) -> str | None:
    """The name of f with ``got`` = f(``expected``) wherever f is defined and finite (at least half the entries):
    "log", "√", "square", "1/", "1 −", "exp"; None if none fits."""
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape or not got.is_floating_point():
        return None
    got, expected = got.detach().double().flatten(), expected.detach().double().flatten()
    for name, function, defined in _TRANSFORMS:
        keep = defined(expected)
        if keep.sum() * 2 < len(expected):
            continue
        want = function(expected[keep])
        usable = torch.isfinite(want) & torch.isfinite(got[keep])
        if usable.sum() * 2 >= len(expected) and not _close(expected[keep][usable], want[usable]) \
                and _close(got[keep][usable], want[usable]):
            return name
    return None


def transform_text(name: str, quantity: str) -> str:
    """"log(β̃_t)", "√(β̃_t)", "(β̃_t)²" for a transform named by :func:`transform`."""
    return {"square": f"({quantity})²", "1 −": f"1 − {quantity}", "1/": f"1/({quantity})"}.get(
        name, f"{name}({quantity})")


def shifted(got: torch.Tensor, expected: torch.Tensor) -> int | None:
    """k ≠ 0 with got[t] = expected[t − k] wherever both exist (1: every value one step late, a value put in front;
    −1: one step early), for a 1-D sequence; None otherwise."""
    if not isinstance(got, torch.Tensor) or got.dim() != 1 or got.shape != expected.shape or len(got) < 4:
        return None
    got, expected = got.detach().double(), expected.detach().double()
    for k in (1, -1, 2, -2):
        mine, theirs = (got[k:], expected[:-k]) if k > 0 else (got[:k], expected[-k:])
        if _close(mine, theirs) and not _close(got, expected):
            return k
    return None

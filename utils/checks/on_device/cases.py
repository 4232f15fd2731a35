"""The exercises of Chapter 12 and what their checks share."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from utils.checks.core import Case, CheckFailure, Exercise

EX_CACHE_BYTES = Exercise("12.1", "kv_cache_bytes")
EX_REPEAT = Exercise("12.2", "repeat_kv")
EX_CACHED = Exercise("12.3", "cached_attention")
EX_WRITE = Exercise("12.4", "write_cache")
EX_RMS = Exercise("12.5", "rms_norm")
EX_QUANT = Exercise("12.6", "quantize_per_channel")


@dataclass(frozen=True)
class HeadsCase(Case):
    B: int = 2
    H_kv: int = 2
    n_rep: int = 2
    T: int = 3
    Dh: int = 4

    @property
    def sizes(self) -> dict[str, int]:
        return {"B": self.B, "H_kv": self.H_kv, "n_rep": self.n_rep, "T": self.T, "Dh": self.Dh}


def require_tensor(exercise: Exercise, got, case, name: str) -> torch.Tensor:
    if not isinstance(got, torch.Tensor):
        raise CheckFailure(f"{exercise.where(case, name)}: returned {type(got).__name__}, expected a torch.Tensor.")
    return got


def same(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=atol, rtol=1e-4)

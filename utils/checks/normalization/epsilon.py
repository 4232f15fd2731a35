"""Where ε sits, when a case cannot tell: with σ² far above ε, leaving ε out, clamping σ² at ε and adding ε to the
precision 1/σ² all give 1/√σ². The probe re-runs your normalisation on two inputs whose groups' σ² span from just
below ε (a clamp shows) or far below it (a hard-coded smaller ε shows) to far above 1/ε (ε on the precision shows),
and names the one place of ε your output follows on both; nothing when none or several do."""
from __future__ import annotations

from typing import Callable

import torch

from utils.checks.core import Case, Exercise
from utils.checks.normalization.statistics import (
    NormSpec,
    eps_blind_forms,
    eps_forms_fitting,
    eps_placement_message,
    spread_groups,
)


def eps_placement_probe(exercise: Exercise, run: Callable, x: torch.Tensor, spec: NormSpec, case: Case):
    def probe(got):
        forms = eps_blind_forms(x, got, spec) if isinstance(got, torch.Tensor) else None
        if not forms:
            return None
        common, span = None, []
        for low in (0.1 * spec.eps, min(1e-3 * spec.eps, 1e-9)):
            spread, low, high = spread_groups(x, spec, low)
            fitting = eps_forms_fitting(spread, exercise.call(run, spread, case=case), forms, spec)
            common = fitting if common is None else common & fitting
            span += [low, high]
        if common == {"no eps", "shifted"}:  # (x − μ)/√σ² + ε: ε moved out of the root onto the output
            common = {"shifted"}
        if common is None or len(common) != 1 or "inside" in common:
            return None
        return eps_placement_message(next(iter(common)), spec, min(span), max(span))
    return probe

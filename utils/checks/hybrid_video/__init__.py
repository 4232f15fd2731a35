"""Checks for Chapter 08, Hybrid Video Prediction.

Each check reads what the learner's code computes in the terms of the chapter's equations:

- **The fused LTC solver** (eq. (8.3)): with a constant synapse opening f the solver is an affine map of the state,
  x ↦ a·x + b; a and b are recovered from the learner's output, and the number of steps and the step length the
  learner really took are read from a at two openings — "dt ignored", "one step instead of L", "Δ = δt" are said
  from that, and b says whether the f·A term is there. The classic mistakes (explicit Euler, the leak's sign, A
  missing, f frozen before the loop) are named from exact matches.
- **The CfC cell** (eq. (8.6)): run with the reference's weights; the gate is recovered element by element from the
  output, (x − h)/(g − h), and its logit is fitted as a combination of f·t, b and f, so a flipped sign, swapped
  heads or an ignored gap are said as coefficients.
- **Per-frame networks and the causal mask** (eqs. (8.7), (8.8)): folding order, frame independence, the mask's
  diagonal, its triangle and its convention.
- **The hybrid**: the learner's own submodules composed in the chapter's order are the reference, so only the
  composition is judged; wrong orders, skipped stages, dropped gaps and a future leak are named.
"""
from utils.checks.core import CheckFailure, LearnerError
from utils.checks.hybrid_video.cfc import check_cfc_cell  # noqa: F401
from utils.checks.hybrid_video.frames import check_causal_mask, check_per_frame  # noqa: F401
from utils.checks.hybrid_video.hybrid import check_hybrid  # noqa: F401
from utils.checks.hybrid_video.ltc import check_ltc_update  # noqa: F401

__all__ = ["check_ltc_update", "check_cfc_cell", "check_per_frame", "check_causal_mask", "check_hybrid",
           "CheckFailure", "LearnerError"]

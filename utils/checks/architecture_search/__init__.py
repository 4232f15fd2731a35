"""Checks for Chapter 07, Architecture Search Lite.

Each check drives the learner's object the way the chapter does and tests what the right answer must satisfy:

- **The search space** (7.1): the names the trial is asked for, their distributions (choices, integer ranges, a
  log scale), that node i's parameters exist only when the trial sampled at least i nodes (define-by-run), and that
  the genotype returned is the one the trial's values describe.
- **The cell** (7.2): the parameter count of eq. (7.2), node by node; then, with a reference's weights copied in,
  the output of eq. (7.1), with the classic ways of wiring it wrongly named (the input summed in, only the last node,
  nodes chained or all fed the input).
- **TPE's ratio** (7.3): ℓ/g of eq. (7.5), with the split read back from your output (inverted ratio, the good
  ones taken from the wrong end, ⌊γn⌋ for ⌈γn⌉, a sum for a mean, σ² for σ).
- **Successive halving** (7.4): the rungs of eq. (7.6), compared rung by rung.
- **The objective** (7.5): a stand-in trainer and trial record every call; what is reported, at which step, and
  what happens after ``should_prune()`` says yes.
- **The supercell** (7.6): output and gradients against a reference with the same weights; softmax over the wrong
  axis of the alphas, no softmax, and wrong wirings are named.
"""
from utils.checks.architecture_search.cell import check_cell  # noqa: F401 - re-exported
from utils.checks.architecture_search.darts import check_super_cell  # noqa: F401 - re-exported
from utils.checks.architecture_search.halving import check_successive_halving  # noqa: F401 - re-exported
from utils.checks.architecture_search.objective import check_objective  # noqa: F401 - re-exported
from utils.checks.architecture_search.space import check_sample_genotype  # noqa: F401 - re-exported
from utils.checks.architecture_search.tpe import check_tpe_ratio  # noqa: F401 - re-exported
from utils.checks.core import CheckFailure, LearnerError

__all__ = ["check_sample_genotype", "check_cell", "check_tpe_ratio", "check_successive_halving", "check_objective",
           "check_super_cell", "CheckFailure", "LearnerError"]

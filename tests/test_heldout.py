"""The held-out wrong answers of tests/heldout/ (Chapters 01, 02, 05): every one must be rejected by its check.

Each set was written blind to the checks of its time (see report.SETS), to measure how they generalise beyond the
catalogue their own tests know. Here each answer only has to be *rejected* — a CheckFailure or a LearnerError, never
a pass and never an internal error of the check; how often the message also names the mistake is measured by
``python -m tests.heldout.report``, not asserted.
"""
import re

import pytest

from tests.heldout.report import load, run_answer

pytestmark = pytest.mark.heldout

ANSWERS = load()
# each answer also carries its exercise's marker (ex1_4), from which conftest.py gives it its chapter's
MARKED = [pytest.param(answer, marks=getattr(pytest.mark, f"ex{answer.exercise.replace('.', '_')}"),
                       id=f"{answer.held_out_set}:{answer.key}")
          for answer in ANSWERS]


@pytest.mark.parametrize("answer", MARKED)
def test_wrong_answer_is_rejected(answer):
    outcome = run_answer(answer)
    assert outcome.status != "passed", (
        f"Exercise {answer.exercise}: the check accepted a wrong answer ({answer.description}). "
        f"It printed: {outcome.message!r}")
    assert outcome.status != "crashed", (
        f"Exercise {answer.exercise}: the check itself failed on a wrong answer ({answer.description}): "
        f"{outcome.message}")
    assert outcome.by_check, (
        f"Exercise {answer.exercise}: the check raised {outcome.error}, not CheckFailure or LearnerError: "
        f"{outcome.message}")


# Text that says nothing about any one mistake: a bare difference, a forwarded exception, a menu of possible causes
# attached to every error of a kind, a case's label, the chapter's formulas quoted whole. No pattern may match it.
GENERIC_MESSAGES = [
    "Exercise 1.1: your output differs from the reference at index (0, 1, 2): max abs difference 3.2e-01",
    "your output differs from the expected one (max abs difference 0.5, at index (1, 2)); expected 0.25, got 0.75",
    "Exercise 5.3: wrong values for the case 'B=8, T=50': expected tensor([0.1, 0.2]) but got tensor([0.3, 0.4])",
    "your function raised RuntimeError: The size of tensor a (4) must match the size of tensor b (6) at "
    "non-singleton dimension 3",
    "✓ Exercise 2.4 passed",
    "87% of the entries are wrong, spread over every axis. Compare your code with the chapter's equation term by term.",
    "Two tensors did not broadcast along dimension 2. Is a reduction missing keepdim=True, a tensor of the wrong "
    "size, or a per-channel or per-item tensor lined up with the wrong axis?",
    "The shapes don't fit a matrix product (…, n, k) @ (…, k, m): is a transpose missing, or on the wrong axes?",
    "backward returned a gradient whose shape is not its input's: each gradient has its input's shape, in the order "
    "forward took its inputs — are two gradients swapped, or one transposed?",
    "your values are 2 × the right ones everywhere: a constant factor is off (a scale applied twice, missing, or "
    "inverted).",
    "NaN or inf in your output: exp() of a large score overflows unless the maximum is subtracted first; a row of "
    "-inf gives NaN after softmax; a division by zero, or the square root of a negative number.",
    "Same number of entries, other shape: a reshape or rearrange with the wrong axes? An axis that should have "
    "size 1 is missing, or something was broadcast too early.",
    "gradcheck disagrees with your backward in float64: keep every step in the input's dtype.",
    "Exercise 1.1 (cross-attention, B=2, H=3, Tq=5, Tk=7, d_k=8, causal mask (T, T)), your weights:",
    "Exercise 2.4 ((B, T, D) = (3, 4, 5), normalized_shape=(4, 5), eps=0.1, train mode), your output with "
    "γ = 1, β = 0:",
    "Exercise 2.3 (momentum=None (cumulative average), C=3, eval mode), your running_mean:",
    "Exercise 5.4 (clip=False, B=8, 1×6×8, T=50, t from 1 to 49), your x_{t−1} at t = 1 (image 4):",
    "Exercise 5.1 (cosine_schedule(100, s=0.02, max_beta=0.5)), your betas:",
    "Exercise 1.5 (T=64, block 16), your output:",
    "Two tensors did not broadcast: is a statistic missing keepdim=True, or γ/β lined up with the wrong axis? For "
    "(N, C, H, W) a per-channel γ must be viewed as (1, C, 1, 1).",
    "A per-example coefficient such as alpha_bars[t - 1] has shape (B,): reshape it to (B, 1, 1, 1) with "
    ".view(-1, 1, 1, 1) so it broadcasts over the image axes (B, C, H, W).",
    "Exercise 1.2 (square (4, 4), float64), your dL/ds: eq. (1.5) is p⊙g − p⊙⟨g,p⟩ (⟨g,p⟩ = Σ_j p_j g_j per row)",
    "Exercise 1.3, your dL/dQ: eq. (1.9) with dS of eq. (1.8) is c·(P⊙dP)K − c·(P⊙⟨dP,P⟩)K, c = 1/√d_k",
    "eq. (1.1): S = QKᵀ/√d_k, P = softmax(S) over the keys; eq. (1.12): W[j, k] = e^(−2πi jk/n)",
    "eq. (2.8): dL/dx = γ·s·(g − mean(g) − x̂·mean(g·x̂)), s = 1/√(σ² + ε), means over the m = N·H·W values; "
    "eq. (2.2) dL/dβ = Σ g; divide by √(σ² + ε); eq. (2.12) y = γ·x/√(mean(x²) + ε)",
    "eq. (5.6) gives √ᾱ_{t−1}·β_t/(1 − ᾱ_t)·x_0 + √α_t·(1 − ᾱ_{t−1})/(1 − ᾱ_t)·x_t; eq. (5.15) adds √β_t·[t > 1]·z; "
    "eq. (5.16) √ᾱ_{t'}·x̂_0 + √(1 − ᾱ_{t'})·ε_θ with x̂_0 clipped to [−1, 1]; eq. (5.3) scales both ends by 1000/T; "
    "eq. (5.4) f(t) = cos²((t/T + s)/(1 + s)·π/2); eq. (5.17) ω_i = 10000^(−i/(d/2))",
]


@pytest.mark.parametrize("answer", MARKED)
def test_names_do_not_match_generic_messages(answer):
    """A pattern that matches a message saying nothing about the mistake would count a vague diagnosis as named."""
    for message in GENERIC_MESSAGES:
        matching = [p for p in answer.names if re.search(p, message, re.IGNORECASE)]
        assert not matching, f"{answer.key}: {matching} match the generic message {message!r}"


@pytest.mark.parametrize("held_out_set", ["first", "second", "third", "fourth", "fifth", "sixth"])
def test_every_exercise_has_at_least_two_wrong_answers(held_out_set):
    exercises = {}
    for answer in ANSWERS:
        if answer.held_out_set == held_out_set:
            exercises.setdefault(answer.chapter, {}).setdefault(answer.exercise, []).append(answer.key)
    expected = {"01": 6, "02": 7, "05": 6}
    for chapter, count in expected.items():
        assert len(exercises[chapter]) == count, f"Chapter {chapter}: exercises {sorted(exercises[chapter])}"
        assert sum(map(len, exercises[chapter].values())) >= 20, f"Chapter {chapter}: fewer than 20 wrong answers"
        for exercise, keys in exercises[chapter].items():
            assert len(keys) >= 2, f"Exercise {exercise} has only {keys}"


def test_the_learners_own_code_quoted_back_does_not_name_the_mistake():
    answer = next(a for a in ANSWERS if a.key == "1.1-weights_dot_T")
    echoed = "At line 90 of your code: `scores = q @ k.T / math.sqrt(q.shape[-1])`. The traceback ends there."
    assert not answer.is_named(echoed)
    assert answer.is_named(echoed + " Use `k.transpose(-2, -1)`: k.T reverses every axis of a batched tensor.")

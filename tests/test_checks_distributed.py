"""Every check of Chapter 10 passes on the reference answers and names each wrong answer in words a learner can act on.

Exercises 10.1 and 10.2 run in this process; 10.3–10.6 run the learner's function on 2 or 3 real gloo processes
(their wrong answers live in ``tests/distributed_answers.py``, which the new processes import). Each test carries its
exercise's marker: ``pytest -m ex10_3``.
"""
import torch

from tests import distributed_answers as wrong
from tests.checks_harness import assert_diagnoses, assert_passes, assert_stub_passes_through, exercise
from tests.solution_code import solution_namespace
from utils.checks import CheckFailure, LearnerError
from utils.checks import distributed as checks

CHAPTER = "10_distributed"
SOLVED = solution_namespace(CHAPTER)


# ================================================================================================ Exercise 10.1
def memory_stub(num_params, world_size, stage, activation_bytes, mixed_precision=True):
    raise NotImplementedError("Exercise 10.1: write the body of `memory_per_rank`, then run the check cell below.")


def _memory(shard_params_at, shard_grads_at, shard_optimizer_at, activations=lambda a, n: a, sizes=None):
    def memory(num_params, world_size, stage, activation_bytes, mixed_precision=True):
        p, g, o = sizes or ((2, 2, 12) if mixed_precision else (4, 4, 8))
        return (p * num_params / (world_size if stage >= shard_params_at else 1)
                + g * num_params / (world_size if stage >= shard_grads_at else 1)
                + o * num_params / (world_size if stage >= shard_optimizer_at else 1)
                + activations(activation_bytes, world_size))
    return memory


memory_stages_reversed = _memory(1, 2, 3)  # parameters sharded first
memory_grads_from_stage_one = _memory(3, 1, 1)
memory_no_activations = _memory(3, 2, 1, activations=lambda a, n: 0)
memory_sharded_activations = _memory(3, 2, 1, activations=lambda a, n: a / n)
memory_fp32_always = _memory(3, 2, 1, sizes=(4, 4, 8))
memory_nothing_sharded = _memory(9, 9, 9)


def memory_in_gigabytes(num_params, world_size, stage, activation_bytes, mixed_precision=True):
    return SOLVED["memory_per_rank"](num_params, world_size, stage, activation_bytes, mixed_precision) / 1e9


def memory_returns_dict(num_params, world_size, stage, activation_bytes, mixed_precision=True):
    return {"params": 2 * num_params, "grads": 2 * num_params, "optimizer": 12 * num_params}


def memory_optimizer_eight_mixed(num_params, world_size, stage, activation_bytes, mixed_precision=True):
    p, g, o = (2, 2, 8) if mixed_precision else (4, 4, 8)  # forgot the fp32 master copy
    n = world_size
    return p * num_params / (n if stage >= 3 else 1) + g * num_params / (n if stage >= 2 else 1) + \
        o * num_params / (n if stage >= 1 else 1) + activation_bytes


def memory_stage_equality(num_params, world_size, stage, activation_bytes, mixed_precision=True):
    p, g, o = (2, 2, 12) if mixed_precision else (4, 4, 8)  # `==` where `>=` belongs
    n = world_size
    return p * num_params / (n if stage == 3 else 1) + g * num_params / (n if stage == 2 else 1) + \
        o * num_params / (n if stage == 1 else 1) + activation_bytes


def memory_raises(num_params, world_size, stage, activation_bytes, mixed_precision=True):
    return {1: 4, 2: 2, 3: 1}[stage] * num_params + activation_bytes


@exercise("10.1")
def test_memory_reference_passes():
    assert_passes(checks.check_memory_per_rank, SOLVED["memory_per_rank"])


@exercise("10.1")
def test_memory_stub_passes_through():
    assert_stub_passes_through(checks.check_memory_per_rank, memory_stub)


@exercise("10.1")
def test_memory_mistakes_named():
    cases = [(memory_stages_reversed, ["you shard parameters or gradients", "stage 1 shards optimizer state"]),
             (memory_grads_from_stage_one, ["gradients and optimizer state", "stage 2's rule"]),
             (memory_no_activations, ["activations are missing"]),
             (memory_sharded_activations, ["divide the activations by N"]),
             (memory_fp32_always, ["fp32 bytes", "mixed_precision=True"]),
             (memory_nothing_sharded, ["you shard nothing"]),
             (memory_in_gigabytes, ["GB", "return bytes"]),
             (memory_returns_dict, ["returned a dict", "not a number"]),
             (memory_optimizer_eight_mixed, ["12 bytes per parameter", "16"]),
             (memory_stage_equality, ["stage 2 shards gradients and optimizer state"])]
    for answer, words in cases:
        assert_diagnoses(checks.check_memory_per_rank, answer, *words)


@exercise("10.1")
def test_memory_learner_exception_is_theirs():
    assert_diagnoses(checks.check_memory_per_rank, memory_raises, "KeyError", "your memory_per_rank",
                     error=LearnerError)


# ================================================================================================ Exercise 10.2
def ring_stub(tensors):
    raise NotImplementedError("Exercise 10.2: write the body of `ring_all_reduce`, then run the check cell below.")


def _ring(tensors, steps=None, apply_at_once=True, replace=True, count=lambda c: c.numel() * c.element_size(),
          clone=True):
    n = len(tensors)
    steps = n - 1 if steps is None else steps
    chunks = [list((t.clone() if clone else t).chunk(n)) for t in tensors]
    sent_bytes = [0] * n
    for phase in ("reduce", "gather"):
        for step in range(steps):
            offset = 0 if phase == "reduce" else 1
            sends = [(r, (r + offset - step) % n) for r in range(n)]
            values = [chunks[r][c].clone() if apply_at_once else None for r, c in sends]
            for (r, c), value in zip(sends, values):
                value = chunks[r][c] if value is None else value
                target = chunks[(r + 1) % n]
                if phase == "reduce":
                    if clone:
                        target[c] = target[c] + value
                    else:
                        target[c] += value
                else:
                    target[c] = value if replace else target[c] + value
                sent_bytes[r] += count(value)
    return [torch.cat(row) for row in chunks], sent_bytes


def ring_one_step_short(tensors):
    return _ring(tensors, steps=len(tensors) - 2)


def ring_gather_wrong_chunk(tensors):  # the all-gather starts from chunk r, which rank r has not completed
    n = len(tensors)
    chunks = [list(t.clone().chunk(n)) for t in tensors]
    sent_bytes = [0] * n
    for step in range(n - 1):
        sends = [(r, (r - step) % n, chunks[r][(r - step) % n].clone()) for r in range(n)]
        for r, c, value in sends:
            chunks[(r + 1) % n][c] = chunks[(r + 1) % n][c] + value
            sent_bytes[r] += value.numel() * value.element_size()
    for step in range(n - 1):
        sends = [(r, (r - step) % n, chunks[r][(r - step) % n].clone()) for r in range(n)]
        for r, c, value in sends:
            chunks[(r + 1) % n][c] = value
            sent_bytes[r] += value.numel() * value.element_size()
    return [torch.cat(row) for row in chunks], sent_bytes


def ring_gather_adds(tensors):
    return _ring(tensors, replace=False)


def ring_counts_elements(tensors):
    return _ring(tensors, count=lambda c: c.numel())


def ring_counts_whole_tensor(tensors):
    return _ring(tensors, count=lambda c: c.numel() * c.element_size() * len(tensors))


def ring_in_place(tensors):
    return _ring(tensors, clone=False)


def ring_only_results(tensors):
    return _ring(tensors)[0]


def ring_one_phase_bytes(tensors):
    results, sent = _ring(tensors)
    return results, [b / 2 for b in sent]


def ring_loses_dtype(tensors):
    results, sent = _ring(tensors)
    return [r.float() for r in results], sent


@exercise("10.2")
def test_ring_reference_passes():
    assert_passes(checks.check_ring_all_reduce, SOLVED["ring_all_reduce"])


@exercise("10.2")
def test_ring_stub_passes_through():
    assert_stub_passes_through(checks.check_ring_all_reduce, ring_stub)


@exercise("10.2")
def test_ring_mistakes_named():
    cases = [(ring_one_step_short, ["never arrived", "N − 1"]),
             (ring_gather_wrong_chunk, ["never arrived"]),
             (ring_gather_adds, ["counted more than once", "replace"]),
             (ring_counts_elements, ["elements, not bytes"]),
             (ring_counts_whole_tensor, ["whole tensor"]),
             (ring_in_place, ["changed in place", "clone"]),
             (ring_only_results, ["return the pair"]),
             (ring_one_phase_bytes, ["one phase only"]),
             (ring_loses_dtype, ["keep the input's dtype"])]
    for answer, words in cases:
        assert_diagnoses(checks.check_ring_all_reduce, answer, *words)


# ================================================================================================ Exercise 10.3
@exercise("10.3")
def test_average_reference_passes():
    assert_passes(checks.check_average_gradients, SOLVED["average_gradients"])


@exercise("10.3")
def test_average_stub_passes_through():
    assert_stub_passes_through(checks.check_average_gradients, wrong.average_stub)


@exercise("10.3")
def test_average_mistakes_named():
    cases = [(wrong.average_sum_only, ["SUM over ranks", "N = 3 times too large", "every parameter"]),
             (wrong.average_hard_coded_two, ["divided by 2", "dist.get_world_size()"]),
             (wrong.average_divided_twice, ["divided by N twice"]),
             (wrong.average_no_reduce, ["without the all_reduce"]),
             (wrong.average_parameters, ["did not change the gradients", "in place"]),
             (wrong.average_weights_only, ["0.bias", "2.bias", "was not averaged"]),
             (wrong.average_returns_list, ["returned a list", "in place"]),
             (wrong.average_broadcast, ["another rank's own gradient", "broadcast"])]
    for answer, words in cases:
        assert_diagnoses(checks.check_average_gradients, answer, *words)


@exercise("10.3")
def test_average_rank_exceptions_are_the_learners():
    message = assert_diagnoses(checks.check_average_gradients, wrong.average_crashes_on_frozen, "rank",
                               "your average_gradients", "requires_grad=False", "dist.all_reduce(p.grad)",
                               error=LearnerError)
    assert "traceback on rank" in message


# ================================================================================================ Exercise 10.4
@exercise("10.4")
def test_bucketed_reference_passes():
    assert_passes(checks.check_average_gradients_bucketed, SOLVED["average_gradients_bucketed"])


@exercise("10.4")
def test_bucketed_mistakes_named():
    cases = [(wrong.bucketed_forgets_remainder, ["left over after the loop"]),
             (wrong.bucketed_one_per_parameter, ["one per parameter"]),
             (wrong.bucketed_ignores_cap, ["in one all_reduce"]),
             (wrong.bucketed_drops_boundary, ["dropped at a bucket boundary"]),
             (wrong.bucketed_no_copy_back, ["did not change the gradients", "write it back"]),
             (wrong.bucketed_forward_order, ["reverse"])]
    for answer, words in cases:
        assert_diagnoses(checks.check_average_gradients_bucketed, answer, *words)


# ================================================================================================ Exercise 10.5
@exercise("10.5")
def test_gpipe_reference_passes():
    assert_passes(checks.check_gpipe_step, SOLVED["gpipe_step"])


@exercise("10.5")
def test_gpipe_mistakes_named():
    cases = [(wrong.gpipe_unscaled, ["not scaled by 1/m", "m = 4 times too large"]),
             (wrong.gpipe_sum_loss, ["SUM of the m = 4 micro-batch losses"]),
             (wrong.gpipe_reversed_targets, ["paired with activation j", "same order"]),
             (wrong.gpipe_detached_outputs, ["rank 0 received no gradient", "not a detached"])]
    for answer, words in cases:
        assert_diagnoses(checks.check_gpipe_step, answer, *words)
    assert_diagnoses(checks.check_gpipe_step, wrong.gpipe_no_requires_grad, "rank 1", "x.requires_grad_()",
                     error=LearnerError)


@exercise("10.5")
def test_gpipe_deadlock_is_stopped_and_named():
    message = assert_diagnoses(checks.check_gpipe_step, wrong.gpipe_deadlock, "send", "recv", "same order",
                               error=(CheckFailure, LearnerError))
    assert "GPipe" in message


# ================================================================================================ Exercise 10.6
@exercise("10.6")
def test_fsdp_reference_passes():
    assert_passes(checks.check_fsdp_collectives, (SOLVED["all_gather_parameter"], SOLVED["reduce_scatter_gradient"]))


@exercise("10.6")
def test_fsdp_mistakes_named():
    cases = [((wrong.gather_keeps_padding, wrong.scatter_right), ["padding is still in"]),
             ((wrong.gather_reversed_order, wrong.scatter_right), ["in the order [2, 1, 0]", "rank order"]),
             ((wrong.gather_right, wrong.scatter_sum), ["SUM over ranks", "divide by the world size"]),
             ((wrong.gather_right, wrong.scatter_keeps_padding), ["padding is still in"]),
             ((wrong.gather_right, wrong.scatter_full_average), ["whole gradient", "this rank's rows"]),
             ((wrong.gather_right, wrong.scatter_reversed_order), ["rank 2's rows", "rank order"]),
             ((wrong.gather_right, wrong.scatter_own_rows), ["not reduced over ranks"])]
    for answers, words in cases:
        assert_diagnoses(checks.check_fsdp_collectives, answers, *words)
    assert_diagnoses(checks.check_fsdp_collectives, (wrong.gather_no_padding, wrong.scatter_right), "pad",
                     error=LearnerError)



"""The teaching code of Chapter 10's solutions against oracles, on sizes hypothesis chooses.

The ring all-reduce against a plain sum and eq. (10.3)'s byte count, the memory formula against the ZeRO paper's
accounting written out part by part, the GPipe simulation against eq. (10.5), the by-hand FSDP and averaging
functions against DDP and fully_shard on real ranks (the launcher itself: results per rank, a hang stopped)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import distributed_answers as answers
from tests.solution_code import solution_namespace
from utils import distributed

CHAPTER = "10_distributed"


@pytest.fixture(scope="module")
def solved():
    return solution_namespace(CHAPTER, definitions=("def shard_gradients", "def simulate_gpipe", "def zero_memory"))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6), per_chunk=st.integers(1, 5), double=st.booleans(), seed=st.integers(0, 2**16))
def test_ring_all_reduce_is_a_sum_with_eq_10_3_bytes(solved, n, per_chunk, double, seed):
    dtype = torch.float64 if double else torch.float32
    generator = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(n * per_chunk, generator=generator, dtype=dtype) for _ in range(n)]
    results, sent = solved["ring_all_reduce"](tensors)
    total = torch.stack(tensors).sum(0)
    for result in results:
        torch.testing.assert_close(result, total)
    size = tensors[0].numel() * tensors[0].element_size()
    assert sent == [2 * (n - 1) * size // n] * n


@settings(max_examples=40, deadline=None)
@given(psi=st.integers(1, 10**10), n=st.integers(1, 1024), stage=st.integers(0, 3), act=st.integers(0, 10**9),
       mixed=st.booleans())
def test_memory_per_rank_is_zero_accounting(solved, psi, n, stage, act, mixed):
    parts = solved["zero_memory"](psi, n, stage, mixed)
    got = solved["memory_per_rank"](psi, n, stage, act, mixed_precision=mixed)
    assert math.isclose(got, sum(parts.values()) + act, rel_tol=1e-12)
    assert math.isclose(sum(solved["zero_memory"](psi, 1, stage, mixed).values()), 16 * psi, rel_tol=1e-12)


@settings(max_examples=30, deadline=None)
@given(p=st.integers(1, 8), m=st.integers(1, 32), t_forward=st.floats(0.1, 3.0), t_backward=st.floats(0.1, 3.0))
def test_gpipe_simulation_gives_the_bubble_formula(solved, p, m, t_forward, t_backward):
    total, busy = solved["simulate_gpipe"](p, m, t_forward, t_backward)
    assert math.isclose(1 - busy / total, (p - 1) / (m + p - 1), abs_tol=1e-9)


def test_launch_returns_each_ranks_result():
    shard = torch.arange(6.0).reshape(2, 3)
    gathered = distributed.launch(answers.gather_right, 2, args=(shard, 4), timeout=60)
    assert len(gathered) == 2 and all(torch.equal(g, torch.cat([shard, shard])) for g in gathered)


def test_launch_stops_a_hang_and_reports_a_rank_error():
    with pytest.raises((distributed.LaunchTimeout, distributed.RankError)) as caught:
        distributed.launch(answers.gpipe_deadlock, 2, args=(torch.ones(4, 2), 2, 3, None), timeout=8,
                           collective_timeout=4)
    assert "rank" in str(caught.value)
    with pytest.raises(distributed.RankError, match="AttributeError"):
        distributed.launch(answers.gather_right, 2, args=("not a tensor", 4), timeout=30)


def test_export_writes_a_notebook_function_with_what_it_uses(solved):
    path = distributed.export(solved["average_gradients"])
    text = path.read_text()
    assert "def average_gradients(model)" in text and "import torch.distributed as dist" in text

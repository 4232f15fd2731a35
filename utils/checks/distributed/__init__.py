"""Checks for Chapter 10, Distributed Training Bootcamp.

- **Memory** (eq. (10.2)): the learner's formula is evaluated on many sizes and fitted as a·Ψ + b·Ψ/N + activations;
  the sharded bytes per parameter say which model states they shard, and at which stage.
- **The ring** (eq. (10.3)): every chunk a rank ends with is read back as a combination of the ranks' inputs
  (a contribution missing or counted twice), and the bytes as a multiple of the tensor's size.
- **On real ranks** (eqs. (10.1), (10.6), (10.7)): the learner's function runs in a gloo process group of 2 or 3
  processes next to DistributedDataParallel, ScheduleGPipe or fully_shard; each rank's gradients are read as a
  sum, a hard-coded world size, a missing scale 1/m, another rank's shard, … A rank's exception comes back as the
  learner's, a hang is stopped after a timeout and said as a mismatched collective.
"""
from utils.checks.core import CheckFailure, LearnerError
from utils.checks.distributed.averaging import check_average_gradients, check_average_gradients_bucketed  # noqa: F401
from utils.checks.distributed.memory import check_memory_per_rank  # noqa: F401
from utils.checks.distributed.pipeline import check_gpipe_step  # noqa: F401
from utils.checks.distributed.ring import check_ring_all_reduce  # noqa: F401
from utils.checks.distributed.sharding import check_fsdp_collectives  # noqa: F401

__all__ = ["check_memory_per_rank", "check_ring_all_reduce", "check_average_gradients",
           "check_average_gradients_bucketed", "check_gpipe_step", "check_fsdp_collectives", "CheckFailure",
           "LearnerError"]

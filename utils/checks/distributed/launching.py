"""Running a learner's function on real ranks for a check: their exceptions said as theirs, hangs stopped."""
from __future__ import annotations

from utils import distributed
from utils.checks.core import CheckFailure, Exercise, LearnerError

HINTS = [  # (text in the rank's error, what to say)
    ("PREMUL_SUM", "gloo has no pre-multiplied sum: all_reduce with the default op (SUM), then divide."),
    ("must be a leaf", "Only leaf tensors take requires_grad_(): call it on the tensor you received, before using it."),
    ("does not require grad", "A tensor you call backward() on is not connected to the graph: on rank 1, call "
                              "x.requires_grad_() on the received activation before the stage uses it; on rank 0 "
                              "keep the stage's output (not a detached copy) for out.backward(grad)."),
    ("Tensors must be contiguous", "dist collectives need contiguous tensors: call .contiguous() on a view "
                                   "(a slice or transpose) before sending it."),
    ("Timed out", "A rank waited in a collective or a recv that the other rank never joined: every rank must make "
                  "the same collective calls in the same order, and every send needs a recv on the other side, "
                  "in the same order."),
    ("Connection closed by peer", "One rank waited for another that had already finished or failed: every rank "
                                  "must make the same collective calls in the same order (a send needs its recv)."),
    ("output tensor size must be equal to world_size", "all_gather_into_tensor's output must hold world_size × the "
                                                       "input: pad every shard to ⌈rows/N⌉ rows first."),
    ("input tensor must be the same size as output size times world size",
     "reduce_scatter_tensor's input must be world_size × its output: pad each rank's rows to ⌈rows/N⌉ first."),
]


def run_on_ranks(exercise: Exercise, worker, world_size: int, args: tuple, *, hang_hint: str,
                 none_hint: str = "", timeout: float = 45.0, collective_timeout: float = 15.0) -> list:
    """``distributed.launch`` for a check: a rank's exception becomes :class:`LearnerError` (their traceback and
    line in the message), a hang becomes :class:`CheckFailure` with ``hang_hint``; ``none_hint`` says what a None
    where a tensor belongs means in this exercise; a stub's NotImplementedError passes through."""
    try:
        return distributed.launch(worker, world_size, args=args, timeout=timeout,
                                  collective_timeout=collective_timeout)
    except distributed.LaunchTimeout as error:
        raise CheckFailure(f"Exercise {exercise.id}: your {exercise.name} did not finish: "
                           f"{error} {hang_hint}") from None
    except distributed.RankError as error:
        text = str(error)
        head, _, trace = text.partition("\n\nThe traceback on rank")
        hints = " ".join(hint for needle, hint in HINTS + [("NoneType", none_hint)] if needle in head and hint)
        if "Timed out" in head or "Connection closed" in head:
            hints += " " + hang_hint
        raise LearnerError(f"Exercise {exercise.id}: your {exercise.name} failed on {head}"
                           f"{' ' + hints if hints else ''}\n\nThe traceback on rank{trace}") from None

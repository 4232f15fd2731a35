"""Scale, seeding and device choice: the three things every chapter needs first."""
from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily at run time: `import utils` does no work
    import torch

SCALE_VARIABLE = "COURSE_SCALE"
SCALES = ("book", "test", "full")
THREADS_VARIABLE = "COURSE_THREADS"
DEFAULT_THREADS = 2  # the course's budget: a 2-core laptop


def scale() -> str:
    """The scale every chapter runs at, read from ``$COURSE_SCALE``.

    - ``book`` (default): what a learner runs and the rendered book shows, at most 3 minutes on 2 CPU cores;
    - ``test``: what CI runs, every check at full strength but experiments shrunk, at most 60 s;
    - ``full``: the paper-scale run, meant for a GPU.
    """
    value = os.environ.get(SCALE_VARIABLE, "book").strip().lower() or "book"
    if value not in SCALES:
        raise ValueError(
            f"{SCALE_VARIABLE}={value!r} is not a scale this course knows; "
            f"set it to one of {', '.join(SCALES)} (or unset it for 'book')."
        )
    return value


def by_scale(book, test=None, full=None):
    """Pick a setting by scale: ``by_scale(book=2000, test=200, full=50_000)``.

    ``test`` and ``full`` default to the ``book`` value, so a setting that should not change is written once.
    """
    choice = {"book": book, "test": book if test is None else test, "full": book if full is None else full}
    return choice[scale()]


def set_threads() -> int:
    """Give PyTorch the course's CPU budget, 2 threads, or ``$COURSE_THREADS``; return the number set.

    The test suite sets ``COURSE_THREADS=1``: its workers, their notebook kernels and the book build share two
    cores, and several processes each spinning two OpenMP threads slow one another down many times over.
    """
    import torch

    value = os.environ.get(THREADS_VARIABLE, "").strip() or str(DEFAULT_THREADS)
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{THREADS_VARIABLE}={value!r} is not a number of threads; set it to 1, 2, … "
                         f"(or unset it for {DEFAULT_THREADS}).")
    torch.set_num_threads(int(value))
    return int(value)


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so a cell gives the same numbers every run."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def device() -> "torch.device":
    """The best device here: CUDA if present, else Apple's MPS, else the CPU. Code stays device-agnostic."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")

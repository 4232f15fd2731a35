"""Timing and memory measurement that compares like with like: warm-up, repeats, median; peak tensor memory."""
from __future__ import annotations

import statistics
import time
import weakref
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


def _synchronize(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def benchmark(fn: Callable, *args, warmup: int = 2, repeats: int = 5, device=None, **kwargs) -> float:
    """Median wall time of ``fn(*args, **kwargs)`` in seconds, after ``warmup`` untimed calls.

    The median of a few repeats resists the noise of a shared machine; compare results as ratios measured in
    the same run, never against numbers from another machine or another day.
    """
    for _ in range(warmup):
        fn(*args, **kwargs)
    _synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args, **kwargs)
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class _LiveTensorBytes(TorchDispatchMode):
    """Counts the bytes of tensor storage created inside the mode that are still alive, and their peak.

    Every ATen op's outputs pass through ``__torch_dispatch__``; a storage is counted once (views share it) and
    released when the last tensor we saw on it is garbage-collected. Tensors made before the mode (the inputs)
    and views of them are not counted, so the result is the *extra* memory the computation needed.
    Scratch memory that a fused kernel allocates internally (not as a tensor) is invisible here.
    """

    def __init__(self):
        super().__init__()
        self.live: dict[int, list[int]] = {}  # storage address -> [bytes, number of live tensors on it]
        self.current = 0
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor)}
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor):
                self._track(tensor, inputs)
        return out

    def _track(self, tensor: torch.Tensor, inputs: set[int]) -> None:
        storage = tensor.untyped_storage()
        address = storage.data_ptr()
        if address == 0:
            return  # an empty tensor
        if address in self.live:
            self.live[address][1] += 1
        elif address in inputs:
            return  # a view or in-place result on memory that existed before
        else:
            self.live[address] = [storage.nbytes(), 1]
            self.current += storage.nbytes()
            self.peak = max(self.peak, self.current)
        weakref.finalize(tensor, self._release, address)

    def _release(self, address: int) -> None:
        entry = self.live.get(address)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.live[address]


def peak_memory(fn: Callable, *args, **kwargs) -> int:
    """Peak bytes of memory that ``fn(*args, **kwargs)`` allocates beyond its inputs (its output included).

    On a GPU this is ``torch.cuda.max_memory_allocated``; on the CPU, which keeps no such statistic, it counts
    the tensors created during the call (see ``_LiveTensorBytes``). Runs under ``torch.no_grad()``.
    """
    tensors = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
    if tensors and tensors[0].device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        with torch.no_grad():
            result = fn(*args, **kwargs)
        torch.cuda.synchronize()
        del result
        return torch.cuda.max_memory_allocated() - before
    tracker = _LiveTensorBytes()
    with torch.no_grad(), tracker:
        result = fn(*args, **kwargs)
    del result
    return tracker.peak

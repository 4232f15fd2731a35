"""A small training loop with a progress bar; the chapters call it so their cells stay about the model."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm


def random_batches(*tensors: torch.Tensor, batch_size: int, seed: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
    """Endless shuffled minibatches of rows of ``tensors`` (all with the same first axis); a new order per epoch."""
    n = tensors[0].shape[0]
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):  # drop the last, partial batch
            rows = order[start:start + batch_size]
            yield tuple(t[rows] for t in tensors)


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # one per step
    seconds: float = 0.0  # wall time of the training steps alone


def train(model: torch.nn.Module, batches: Iterator[tuple[torch.Tensor, ...]], loss_fn: Callable, *,
          steps: int, optimizer: torch.optim.Optimizer, desc: str = "training", progress: bool = True) -> TrainResult:
    """Run ``steps`` optimisation steps of ``loss_fn(model, *batch)`` and return the losses and the wall time.

    A NaN or infinite loss stops training with a message, rather than silently producing a broken model.
    """
    model.train()
    result = TrainResult()
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=desc, disable=not progress)  # kept when done: the book shows it
    for step in bar:
        loss = loss_fn(model, *next(batches))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: the loss became {loss.item()} at step {step}; lower the learning "
                                     f"rate or look for a division by zero / log of zero in the model.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        result.losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    result.seconds = time.perf_counter() - start
    model.eval()
    return result


@torch.no_grad()
def accuracy(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 512) -> float:
    """Fraction of ``inputs`` whose arg-max logit is the label."""
    model.eval()
    correct = sum((model(inputs[i:i + batch_size]).argmax(-1) == labels[i:i + batch_size]).sum().item()
                  for i in range(0, len(inputs), batch_size))
    return correct / len(inputs)

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
    diverged_at: int | None = None  # the step whose loss was NaN or inf, when on_divergence="stop"
    evaluations: list[tuple[int, float]] = field(default_factory=list)  # (steps done, evaluate(model)) pairs


def train(model: torch.nn.Module, batches: Iterator[tuple[torch.Tensor, ...]], loss_fn: Callable, *,
          steps: int, optimizer: torch.optim.Optimizer, desc: str = "training", progress: bool = True,
          on_divergence: str = "raise", evaluate: Callable | None = None, evaluate_every: int = 100) -> TrainResult:
    """Run ``steps`` optimisation steps of ``loss_fn(model, *batch)`` and return the losses and the wall time.

    A NaN or infinite loss stops training: with a message (``on_divergence="raise"``, the default), or quietly
    with ``result.diverged_at`` set (``"stop"``), for experiments that count divergences. ``evaluate(model)``,
    if given, is called every ``evaluate_every`` steps and at the end (in eval mode, outside the timed steps).
    """
    if on_divergence not in ("raise", "stop"):
        raise ValueError(f"on_divergence must be 'raise' or 'stop', not {on_divergence!r}.")
    model.train()
    result = TrainResult()
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=desc, disable=not progress)  # kept when done: the book shows it
    for step in bar:
        loss = loss_fn(model, *next(batches))
        if not torch.isfinite(loss) and on_divergence == "stop":
            result.diverged_at = step
            break
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: the loss became {loss.item()} at step {step}; lower the learning "
                                     f"rate or look for a division by zero / log of zero in the model.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        result.losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if evaluate is not None and ((step + 1) % evaluate_every == 0 or step + 1 == steps):
            result.seconds += time.perf_counter() - start
            model.eval()
            result.evaluations.append((step + 1, evaluate(model)))
            model.train()
            start = time.perf_counter()
    result.seconds += time.perf_counter() - start
    model.eval()
    return result


@torch.no_grad()
def accuracy(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 512) -> float:
    """Fraction of ``inputs`` whose arg-max logit is the label."""
    model.eval()
    correct = sum((model(inputs[i:i + batch_size]).argmax(-1) == labels[i:i + batch_size]).sum().item()
                  for i in range(0, len(inputs), batch_size))
    return correct / len(inputs)

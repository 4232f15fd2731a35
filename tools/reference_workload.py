"""A fixed reference workload, so that chapter timings from different machines compare.

    python -m tools.reference_workload          # seconds for the standard size, on this machine

The workload is what the chapters spend their time on: training steps (forward, backward, SGD) of a small
convolutional net on 16×16 images, the convolutions that AVX2-only CPUs are slow at, and of a small transformer
encoder, the matmuls and softmaxes of the attention chapters. Fixed seeds, fixed sizes, the course's 2 threads.
A chapter's time divided by this one's is nearly independent of the machine; a table of such multiples from a
fast laptop and one from a slow one can be read side by side.
"""
from __future__ import annotations

import sys
import time

STEPS = 40  # the standard size: about 6 s on a 2-core machine like the README's


def _conv_net(torch, width: int):
    nn = torch.nn
    return nn.Sequential(  # (N, 3, 16, 16) -> (N, 10)
        nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1), nn.BatchNorm2d(4 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, 10))


def _transformer(torch, d_model: int, vocabulary: int):
    nn = torch.nn
    layer = nn.TransformerEncoderLayer(d_model, nhead=4, dim_feedforward=4 * d_model, dropout=0.0,
                                       batch_first=True, norm_first=True)
    return nn.ModuleDict({"embed": nn.Embedding(vocabulary, d_model),
                          "encoder": nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False),
                          "head": nn.Linear(d_model, vocabulary)})


def reference_workload(steps: int = STEPS, threads: int = 2) -> float:
    """Seconds for ``steps`` training steps of the conv net plus ``steps`` of the transformer, after one untimed
    warm-up step each. Seeded and fixed: the same work on every machine."""
    import torch
    import torch.nn.functional as F

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(128, 3, 16, 16, generator=generator)  # (N, C, H, W): batch 128 of 16×16 images
        labels = torch.randint(0, 10, (128,), generator=generator)
        tokens = torch.randint(0, 64, (16, 65), generator=generator)  # (B, T + 1): batch 16, T = 64
        torch.manual_seed(0)
        conv_net = _conv_net(torch, width=32)
        transformer = _transformer(torch, d_model=128, vocabulary=64)

        def conv_step(optimizer):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(conv_net(images), labels).backward()
            optimizer.step()

        def transformer_step(optimizer):
            optimizer.zero_grad(set_to_none=True)
            hidden = transformer["encoder"](transformer["embed"](tokens[:, :-1]))  # (B, T, D)
            logits = transformer["head"](hidden)  # (B, T, V)
            F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten()).backward()
            optimizer.step()

        seconds = 0.0
        for model, step in ((conv_net, conv_step), (transformer, transformer_step)):
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            step(optimizer)  # warm-up: first-call allocations and kernel choices
            start = time.perf_counter()
            for _ in range(steps):
                step(optimizer)
            seconds += time.perf_counter() - start
        return seconds
    finally:
        torch.set_num_threads(previous_threads)


if __name__ == "__main__":
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else STEPS
    print(f"reference workload ({steps} steps): {reference_workload(steps):.2f} s")

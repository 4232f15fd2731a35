"""Plotting helpers that return a matplotlib Figure, so a cell can show it and a test can inspect it."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch


def line_plot(x, series: dict, *, xlabel: str, ylabel: str, title: str = "", logx: bool = False,
              logy: bool = False, ax=None):
    """One line per entry of ``series`` ({label: y values}) against ``x``; returns the Figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
    else:
        fig = ax.figure
    for label, y in series.items():
        ax.plot(x, y, marker="o", markersize=3, label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def attention_map(weights: torch.Tensor, *, ax=None, title: str = "", query_label: str = "query i",
                  key_label: str = "key j", vmax: float | None = None):
    """Draw one (Tq, Tk) attention matrix as an image; returns the Figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.2, 3.2))
    else:
        fig = ax.figure
    ax.imshow(weights.detach().cpu().float(), cmap="viridis", vmin=0, vmax=vmax)
    ax.set(title=title, xlabel=key_label, ylabel=query_label)
    return fig

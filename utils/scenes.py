"""Captioned scenes: small images of one coloured shape, with captions that truly describe them (Chapter 04).

A scene is four attributes — a colour, a shape, a size and a position on a 3 × 3 grid — drawn on a dark, slightly
noisy background; its caption says all four in one of several sentence templates ("a small red circle at the top
left", "at the top left there is a small red circle", …). Everything is generated deterministically from a seed,
so the stand-in needs no download, and because the captions describe the pixels, a contrastive model trained on
them can be tested on things no caption said: a (colour, shape) combination held out of training, named only by a
text prompt, is a real zero-shot test.

    scenes = sample(1000, seed=0, exclude=[("red", "triangle")])
    scenes.images        # (N, 3, H, W) float32 in [0, 1]
    scenes.captions      # N strings
    scenes.colour, ...   # (N,) int64 indices into COLOURS, SHAPES, SIZES, POSITIONS
    tokenizer = WordTokenizer.for_scenes(); tokenizer.encode(scenes.captions)   # (N, T) int64

Also a small word-level tokenizer (:class:`WordTokenizer`), the text side's counterpart of the images.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import torch

COLOURS = {"red": (0.90, 0.15, 0.12), "green": (0.15, 0.75, 0.20), "blue": (0.15, 0.35, 0.95),
           "yellow": (0.95, 0.85, 0.10), "purple": (0.62, 0.22, 0.82), "cyan": (0.10, 0.80, 0.85)}
SHAPES = ("circle", "square", "triangle", "cross")
SIZES = ("small", "large")
POSITIONS = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom", "bottom right")
# how a caption says each position
WHERE = {"top left": "at the top left", "top": "at the top", "top right": "at the top right", "left": "on the left",
         "centre": "in the centre", "right": "on the right", "bottom left": "at the bottom left",
         "bottom": "at the bottom", "bottom right": "at the bottom right"}
TEMPLATES = ("a {size} {colour} {shape} {where}",
             "{where} there is a {size} {colour} {shape}",
             "a {colour} {shape} {where} , {size}",
             "there is a {size} {colour} {shape} {where}")
RADIUS = {"small": 0.10, "large": 0.17}  # a shape's half-width, as a fraction of the image side


@dataclass
class Scenes:
    """Images of one coloured shape each, their captions and the attributes both were made from."""

    images: torch.Tensor  # (N, 3, H, W) float32 in [0, 1]
    captions: list[str]  # N captions, each describing its image
    colour: torch.Tensor  # (N,) int64 index into COLOURS
    shape: torch.Tensor  # (N,) int64 index into SHAPES
    size: torch.Tensor  # (N,) int64 index into SIZES
    position: torch.Tensor  # (N,) int64 index into POSITIONS

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def label(self) -> torch.Tensor:
        """(N,) int64: the (colour, shape) class, colour · len(SHAPES) + shape (see :func:`class_names`)."""
        return self.colour * len(SHAPES) + self.shape

    def subset(self, rows) -> Scenes:
        rows = torch.as_tensor(rows, dtype=torch.long)
        return Scenes(self.images[rows], [self.captions[i] for i in rows.tolist()], self.colour[rows],
                      self.shape[rows], self.size[rows], self.position[rows])


def class_names() -> list[str]:
    """The (colour, shape) classes as words, in label order: "red circle", "red square", …"""
    return [f"{colour} {shape}" for colour, shape in itertools.product(COLOURS, SHAPES)]


def describe(colour: str, shape: str, size: str, position: str, template: int = 0) -> str:
    """One caption: ``describe("red", "circle", "small", "top left")`` → "a small red circle at the top left"."""
    return TEMPLATES[template].format(size=size, colour=colour, shape=shape, where=WHERE[position])


def _masks(shape: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Inside-the-shape masks from offsets to the centre (N, S, S) and radii (N, 1, 1); all in image fractions."""
    ax, ay, r = dx.abs(), dy.abs(), radius
    circle = dx ** 2 + dy ** 2 <= r ** 2
    square = (ax <= 0.82 * r) & (ay <= 0.82 * r)
    triangle = (dy <= 0.8 * r) & (dy >= -r) & (ax <= 0.55 * (dy + r))  # pointing up
    cross = ((ax <= 0.3 * r) & (ay <= r)) | ((ay <= 0.3 * r) & (ax <= r))
    kinds = torch.stack([circle, square, triangle, cross])  # (4, N, S, S), in SHAPES order
    return kinds[shape, torch.arange(len(shape))]


def render(colour, shape, size, position, image_size: int = 32, seed: int = 0) -> torch.Tensor:
    """Draw scenes from attribute indices, (N,) each → (N, 3, image_size, image_size) in [0, 1].

    Positions are jittered, colours shaded and the background noisy (all seeded), so no two images are equal;
    edges are anti-aliased by drawing at twice the size and averaging 2 × 2 blocks.
    """
    generator = torch.Generator().manual_seed(seed)
    colour, shape, size, position = (torch.as_tensor(a, dtype=torch.long) for a in (colour, shape, size, position))
    N, S = len(colour), 2 * image_size
    row, col = position // 3, position % 3
    centre_y = 0.2 + 0.3 * row.float() + (torch.rand(N, generator=generator) - 0.5) * 0.06
    centre_x = 0.2 + 0.3 * col.float() + (torch.rand(N, generator=generator) - 0.5) * 0.06
    radius = torch.tensor([RADIUS[s] for s in SIZES])[size] * (1 + (torch.rand(N, generator=generator) - 0.5) * 0.2)
    grid = (torch.arange(S, dtype=torch.float32) + 0.5) / S
    dy = grid[None, :, None] - centre_y[:, None, None]  # (N, S, 1)
    dx = grid[None, None, :] - centre_x[:, None, None]  # (N, 1, S)
    dy, dx = dy.expand(N, S, S), dx.expand(N, S, S)
    mask = _masks(shape, dx, dy, radius[:, None, None]).float()  # (N, S, S)
    mask = torch.nn.functional.avg_pool2d(mask[:, None], 2)  # (N, 1, image_size, image_size), anti-aliased
    rgb = torch.tensor(list(COLOURS.values()))[colour]  # (N, 3)
    rgb = (rgb * (1 + (torch.rand(N, 1, generator=generator) - 0.5) * 0.2)).clamp(0, 1)  # shading
    background = 0.12 + 0.03 * torch.randn(N, 3, image_size, image_size, generator=generator)
    images = background * (1 - mask) + rgb[:, :, None, None] * mask
    return images.clamp(0, 1)


def all_combinations() -> torch.Tensor:
    """(len(COLOURS)·len(SHAPES)·len(SIZES)·len(POSITIONS), 4) int64: every scene description, once."""
    ranges = [range(len(COLOURS)), range(len(SHAPES)), range(len(SIZES)), range(len(POSITIONS))]
    return torch.tensor(list(itertools.product(*ranges)), dtype=torch.long)


def sample(n: int, image_size: int = 32, seed: int = 0, exclude=(), only=None, distinct: bool = False,
           templates=None) -> Scenes:
    """``n`` random scenes with captions, deterministic in ``seed``.

    ``exclude``: (colour, shape) pairs never drawn (held out of training); ``only``: draw from these pairs alone.
    ``distinct``: no two scenes share a description (then ``n`` ≤ the number of descriptions left), so that a
    retrieval test has one right answer. ``templates``: the caption templates to use (indices into TEMPLATES;
    default all, one chosen at random per scene).
    """
    colour_names, generator = list(COLOURS), torch.Generator().manual_seed(seed + 1)
    combos = all_combinations()
    pairs = [(colour_names[c], SHAPES[s]) for c, s in combos[:, :2].tolist()]
    keep = torch.tensor([(p not in set(map(tuple, exclude))) and (only is None or p in set(map(tuple, only)))
                         for p in pairs])
    combos = combos[keep]
    if len(combos) == 0:
        raise ValueError("no scene is left to draw: `exclude` or `only` removed every (colour, shape) pair.")
    if distinct:
        if n > len(combos):
            raise ValueError(f"only {len(combos)} distinct scene descriptions are left; asked for {n}.")
        chosen = combos[torch.randperm(len(combos), generator=generator)[:n]]
    else:
        chosen = combos[torch.randint(len(combos), (n,), generator=generator)]
    colour, shape, size, position = chosen.unbind(1)
    templates = list(range(len(TEMPLATES))) if templates is None else list(templates)
    which = torch.tensor(templates)[torch.randint(len(templates), (n,), generator=generator)]
    captions = [describe(colour_names[c], SHAPES[s], SIZES[z], POSITIONS[p], t)
                for c, s, z, p, t in zip(colour.tolist(), shape.tolist(), size.tolist(), position.tolist(),
                                         which.tolist())]
    return Scenes(render(colour, shape, size, position, image_size, seed), captions, colour, shape, size, position)


class WordTokenizer:
    """Words → integer ids, padded to a fixed length, CLIP's way: [BOS] w₁ … wₖ [EOT] [PAD] …

    Id 0 is padding, 1 beginning-of-text, 2 end-of-text (the position whose features a text encoder reads), 3 an
    unknown word; the words follow. Lower-cased; punctuation is a word of its own.
    """

    PAD, BOS, EOT, UNK = 0, 1, 2, 3
    SPECIAL = ("[PAD]", "[BOS]", "[EOT]", "[UNK]")

    def __init__(self, words):
        self.words = list(self.SPECIAL) + sorted(set(words) - set(self.SPECIAL))
        self.index = {word: i for i, word in enumerate(self.words)}

    @staticmethod
    def split(text: str) -> list[str]:
        return re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower())

    @classmethod
    def from_texts(cls, texts, max_words: int | None = None) -> WordTokenizer:
        """The ``max_words`` most frequent words of ``texts`` (all of them when None)."""
        counts: dict[str, int] = {}
        for text in texts:
            for word in cls.split(text):
                counts[word] = counts.get(word, 0) + 1
        ranked = sorted(counts, key=lambda w: (-counts[w], w))
        return cls(ranked[:max_words] if max_words else ranked)

    @classmethod
    def for_scenes(cls) -> WordTokenizer:
        """Every word any scene caption (or a prompt built from the attribute names) can use."""
        texts = [t.format(size=" ".join(SIZES), colour=" ".join(COLOURS), shape=" ".join(SHAPES),
                          where=" ".join(WHERE.values())) for t in TEMPLATES]
        return cls.from_texts(texts + ["a photo of an object shape colour size picture image"])

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, texts, length: int = 16) -> torch.Tensor:
        """(len(texts), length) int64; a text too long for ``length`` is cut, keeping its [EOT]."""
        rows = torch.full((len(texts), length), self.PAD, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = [self.BOS] + [self.index.get(w, self.UNK) for w in self.split(text)][:length - 2] + [self.EOT]
            rows[i, :len(ids)] = torch.tensor(ids)
        return rows

    def decode(self, tokens: torch.Tensor) -> str:
        return " ".join(self.words[i] for i in tokens.tolist() if i not in (self.PAD, self.BOS, self.EOT))

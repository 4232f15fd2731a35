"""The teaching code of Chapter 04's solutions, with PyTorch as the oracle, on shapes hypothesis chooses; and the
captioned scenes behind the experiment (their captions must describe their pixels)."""
import functools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.solution_code import solution_namespace
from tests.strategies import seeds
from utils import scenes

CHAPTER = "04_clip"


@functools.cache
def solved() -> dict:
    return solution_namespace(CHAPTER)


counts = st.integers(1, 7)
widths = st.integers(2, 12)
thetas = st.floats(-2.0, 6.0)


@settings(max_examples=25, deadline=None)
@given(B_img=counts, B_txt=counts, D=widths, theta=thetas, seed=seeds)
def test_clip_logits_match_cosine_similarity(B_img, B_txt, D, theta, seed):
    generator = torch.Generator().manual_seed(seed)
    f = torch.randn(B_img, D, generator=generator, dtype=torch.float64)
    g = torch.randn(B_txt, D, generator=generator, dtype=torch.float64)
    logits = solved()["clip_logits"](f, g, torch.tensor(theta, dtype=torch.float64))
    expected = min(math.exp(theta), 100) * F.cosine_similarity(f[:, None], g[None], dim=-1)
    torch.testing.assert_close(logits, expected)


@settings(max_examples=25, deadline=None)
@given(B=counts, seed=seeds)
def test_clip_loss_matches_cross_entropy_both_ways(B, seed):
    S = torch.randn(B, B, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 4
    labels = torch.arange(B)
    expected = (F.cross_entropy(S, labels) + F.cross_entropy(S.T, labels)) / 2
    torch.testing.assert_close(solved()["clip_loss"](S), expected)


@settings(max_examples=25, deadline=None)
@given(B=counts, D=widths, scale=st.floats(0.5, 100.0), seed=seeds)
def test_hand_gradients_match_autograd(B, D, scale, seed):
    generator = torch.Generator().manual_seed(seed)
    u = F.normalize(torch.randn(B, D, generator=generator, dtype=torch.float64), dim=-1).requires_grad_()
    v = F.normalize(torch.randn(B, D, generator=generator, dtype=torch.float64), dim=-1).requires_grad_()
    labels = torch.arange(B)
    S = scale * u @ v.T
    ((F.cross_entropy(S, labels) + F.cross_entropy(S.T, labels)) / 2).backward()
    grad_u, grad_v = solved()["clip_loss_gradients"](u.detach(), v.detach(), scale)
    torch.testing.assert_close(grad_u, u.grad)
    torch.testing.assert_close(grad_v, v.grad)


@settings(max_examples=10, deadline=None)
@given(lengths=st.lists(st.integers(0, 8), min_size=1, max_size=4), seed=seeds)
def test_text_encoder_reads_eot_and_ignores_what_follows(lengths, seed):
    torch.manual_seed(seed)
    encoder = solved()["TextEncoder"](20, max_length=10, width=16, n_layers=1, n_heads=2, embed_dim=8).eval()
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.zeros(len(lengths), 10, dtype=torch.long)
    for i, n in enumerate(lengths):
        tokens[i, :n + 2] = torch.cat([torch.tensor([1]), torch.randint(4, 20, (n,), generator=generator),
                                       torch.tensor([2])])
    out = encoder(tokens)
    assert out.shape == (len(lengths), 8)
    noisy = tokens.clone()
    after = torch.arange(10)[None] > (tokens == 2).int().argmax(-1)[:, None]
    noisy[after] = torch.randint(4, 20, (int(after.sum()),), generator=generator)
    torch.testing.assert_close(encoder(noisy), out)
    for i, n in enumerate(lengths):  # each caption alone, cut right after its [EOT], gives the same embedding
        torch.testing.assert_close(encoder(tokens[i:i + 1, :n + 2]), out[i:i + 1], atol=1e-5, rtol=1e-4)


@settings(max_examples=15, deadline=None)
@given(C=st.integers(1, 5), K=st.integers(1, 4), seed=seeds)
def test_class_embeddings_are_unit_means(C, K, seed):
    generator = torch.Generator().manual_seed(seed)
    table = {}

    def encode_text(texts):
        return torch.stack([table.setdefault(t, torch.randn(6, generator=generator) * 3) for t in texts])
    names = [f"class{c}" for c in range(C)]
    templates = [f"t{k} {{}}" for k in range(K)]
    weights = solved()["class_embeddings"](encode_text, names, templates)
    assert weights.shape == (C, 6)
    torch.testing.assert_close(weights.norm(dim=-1), torch.ones(C))
    for c, name in enumerate(names):
        votes = F.normalize(torch.stack([table[t.format(name)] for t in templates]), dim=-1)
        assert F.cosine_similarity(weights[c], votes.mean(0), dim=0) > 1 - 1e-5


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 12), k=st.integers(1, 12), seed=seeds)
def test_recall_matches_ranks(B, k, seed):
    S = torch.randn(B, B, generator=torch.Generator().manual_seed(seed))
    ranks = (S > S.diagonal()[:, None]).sum(1) + 1
    assert solved()["recall_at_k"](S, k) == pytest.approx((ranks <= k).float().mean().item())


# ------------------------------------------------------------------------------------------------ the scenes
def test_scenes_are_deterministic_and_in_range():
    a, b = scenes.sample(40, seed=3), scenes.sample(40, seed=3)
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert a.images.shape == (40, 3, 32, 32) and 0 <= a.images.min() and a.images.max() <= 1


def test_captions_describe_the_pixels():
    """The colour, the side of the image and the size a caption names are where the pixels say they are."""
    s = scenes.sample(300, seed=5)
    colours = torch.tensor(list(scenes.COLOURS.values()))
    for i in range(len(s)):
        image = s.images[i]
        ink = (image - 0.12).abs().amax(0) > 0.3  # (H, W) pixels of the shape
        rgb = image[:, ink].mean(1)
        assert (colours - rgb).norm(dim=1).argmin().item() == s.colour[i].item(), s.captions[i]
        rows, cols = torch.nonzero(ink, as_tuple=True)
        centre = torch.stack([rows.float().mean(), cols.float().mean()]) / 32
        position = scenes.POSITIONS[s.position[i]]
        if "top" in position:
            assert centre[0] < 0.4, s.captions[i]
        if "bottom" in position:
            assert centre[0] > 0.6, s.captions[i]
        if "left" in position:
            assert centre[1] < 0.4, s.captions[i]
        if "right" in position:
            assert centre[1] > 0.6, s.captions[i]
        assert position in s.captions[i] or scenes.WHERE[position] in s.captions[i]
        assert scenes.SIZES[s.size[i]] in s.captions[i] and scenes.SHAPES[s.shape[i]] in s.captions[i]
    small, large = s.size == 0, s.size == 1
    area = ((s.images - 0.12).abs().amax(1) > 0.3).float().sum((1, 2))
    for shape in range(len(scenes.SHAPES)):  # per shape: a cross has less ink than a square of the same size
        same = s.shape == shape
        assert area[large & same].min() > area[small & same].max(), scenes.SHAPES[shape]


def test_held_out_pairs_stay_out_and_distinct_scenes_are_distinct():
    held = [("red", "triangle"), ("cyan", "cross")]
    s = scenes.sample(500, seed=1, exclude=held)
    names = list(scenes.COLOURS)
    assert not any((names[c], scenes.SHAPES[h]) in held for c, h in zip(s.colour.tolist(), s.shape.tolist()))
    d = scenes.sample(200, seed=2, distinct=True)
    keys = set(zip(d.colour.tolist(), d.shape.tolist(), d.size.tolist(), d.position.tolist()))
    assert len(keys) == 200
    with pytest.raises(ValueError):
        scenes.sample(10_000, distinct=True)


def test_tokenizer_round_trip_and_eot():
    tokenizer = scenes.WordTokenizer.for_scenes()
    caption = scenes.describe("blue", "cross", "large", "bottom right", 1)
    tokens = tokenizer.encode([caption, "a zebra"], length=16)
    assert tokenizer.decode(tokens[0]) == caption
    assert (tokens == tokenizer.EOT).sum(1).tolist() == [1, 1]
    assert tokenizer.UNK in tokens[1].tolist()
    assert tokenizer.encode(["a " * 30], length=8)[0, -1] == tokenizer.EOT  # cut, [EOT] kept

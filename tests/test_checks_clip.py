"""Every check of Chapter 04 passes on the solution notebook's answers and names each wrong answer.

Wrong answers are written the way a learner writes them — a function or class with the exercise's signature — never
built from the checker's references. Each test carries its exercise's marker (``pytest -m ex4_2``); the words a
diagnosis must contain name the mistake in the chapter's terms.
"""
import functools
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.checks_harness import assert_diagnoses, assert_passes, assert_stub_passes_through, exercise
from tests.solution_code import solution_namespace
from utils.checks import clip as checks

CHAPTER = "04_clip"


@functools.cache
def solved() -> dict:
    return solution_namespace(CHAPTER)


def stub(number):
    def untouched(*args, **kwargs):
        raise NotImplementedError(f"Exercise {number}: write the body of `it`, then run the check cell below.")
    return untouched


# =============================================================================================================
# 4.1 — clip_logits
# =============================================================================================================
def logits_variant(normalise="both", scale="exp_clamp", transpose=False, dim=-1):
    def clip_logits(image_features, text_features, logit_scale):
        u, v = image_features, text_features
        if normalise in ("both", "images"):
            u = u / u.norm(dim=dim, keepdim=True)
        if normalise in ("both", "texts"):
            v = v / v.norm(dim=dim, keepdim=True)
        s = {"exp_clamp": lambda: logit_scale.exp().clamp(max=100), "raw": lambda: logit_scale,
             "inverse": lambda: 1 / logit_scale.exp().clamp(max=100), "exp": lambda: logit_scale.exp(),
             "none": lambda: torch.ones_like(logit_scale),
             "clamp_log_after": lambda: logit_scale.exp().clamp(max=math.log(100)),
             "clamp_min": lambda: logit_scale.exp().clamp(min=100),
             "float": lambda: min(math.exp(logit_scale.item()), 100)}[scale]()
        S = s * u @ v.T
        return S.T if transpose else S
    return clip_logits


@exercise("4.1")
def test_logits_pass_on_the_solution():
    assert_passes(checks.check_clip_logits, solved()["clip_logits"])


@exercise("4.1")
def test_logits_with_f_normalize_and_log_clamp_pass():
    def clip_logits(image_features, text_features, logit_scale):
        scale = logit_scale.clamp(max=math.log(100)).exp()
        return scale * F.normalize(image_features, dim=1) @ F.normalize(text_features, dim=1).t()
    assert_passes(checks.check_clip_logits, clip_logits)


@exercise("4.1")
def test_logits_stub_passes_through():
    assert_stub_passes_through(checks.check_clip_logits, stub("4.1"))


@exercise("4.1")
@pytest.mark.parametrize("variant, words", [
    (dict(normalise="none"), ["did not L2-normalise"]),
    (dict(normalise="images"), ["only the image features"]),
    (dict(normalise="texts"), ["only the text features"]),
    (dict(dim=0), ["batch axis", "dim=-1"]),
    (dict(scale="raw"), ["logarithm", "e^θ"]),
    (dict(scale="inverse"), ["wrong way round"]),
    (dict(scale="exp"), ["not clamped", "100"]),
    (dict(scale="none"), ["bare cosines"]),
    (dict(scale="clamp_log_after"), ["log 100"]),
    (dict(scale="clamp_min"), ["max=100"]),
    (dict(transpose=True), ["re:transpos|rows are images|B_txt"]),
    (dict(scale="float"), ["logit_scale", "gradient"]),
])
def test_logits_mistakes_are_named(variant, words):
    assert_diagnoses(checks.check_clip_logits, logits_variant(**variant), *words)


@exercise("4.1")
def test_logits_distance_instead_of_similarity():
    def clip_logits(image_features, text_features, logit_scale):
        u, v = F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1)
        return logit_scale.exp().clamp(max=100) * (1 - u @ v.T)
    assert_diagnoses(checks.check_clip_logits, clip_logits, "distance")


@exercise("4.1")
def test_logits_hard_coded_temperature():
    def clip_logits(image_features, text_features, logit_scale):
        u, v = F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1)
        return u @ v.T / 0.07
    assert_diagnoses(checks.check_clip_logits, clip_logits, "re:factor|scale|θ")


@exercise("4.1")
def test_logits_square_norm():
    def clip_logits(image_features, text_features, logit_scale):
        u = image_features / (image_features ** 2).sum(-1, keepdim=True)
        v = text_features / (text_features ** 2).sum(-1, keepdim=True)
        return logit_scale.exp().clamp(max=100) * u @ v.T
    assert_diagnoses(checks.check_clip_logits, clip_logits, "normalis")


@exercise("4.1")
def test_logits_detached():
    def clip_logits(image_features, text_features, logit_scale):
        u, v = F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1)
        return (logit_scale.exp().clamp(max=100) * u @ v.T).detach()
    assert_diagnoses(checks.check_clip_logits, clip_logits, "autograd graph")


@exercise("4.1")
def test_logits_in_place_normalisation():
    def clip_logits(image_features, text_features, logit_scale):
        image_features /= image_features.norm(dim=-1, keepdim=True)
        text_features = F.normalize(text_features, dim=-1)
        return logit_scale.exp().clamp(max=100) * image_features @ text_features.T
    assert_diagnoses(checks.check_clip_logits, clip_logits, "re:in place|in-place|leaf")


@exercise("4.1")
def test_logits_elementwise_product():
    def clip_logits(image_features, text_features, logit_scale):
        u, v = F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1)
        return logit_scale.exp().clamp(max=100) * (u * v).sum(-1)
    assert_diagnoses(checks.check_clip_logits, clip_logits, "re:shape|size|broadcast")


@exercise("4.1")
def test_logits_returns_none():
    def clip_logits(image_features, text_features, logit_scale):
        u, v = F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1)
        logits = logit_scale.exp().clamp(max=100) * u @ v.T  # noqa: F841
    assert_diagnoses(checks.check_clip_logits, clip_logits, "None")


# =============================================================================================================
# 4.2 — clip_loss
# =============================================================================================================
def loss_variant(kind):
    def clip_loss(logits):
        B = logits.shape[0]
        labels = torch.arange(B)
        rows, cols = F.cross_entropy(logits, labels), F.cross_entropy(logits.T, labels)
        if kind == "rows":
            return rows
        if kind == "cols":
            return cols
        if kind == "sum":
            return rows + cols
        if kind == "batch_sum":
            return (F.cross_entropy(logits, labels, reduction="sum") + F.cross_entropy(logits.T, labels,
                                                                                       reduction="sum")) / 2
        if kind == "zeros":
            zeros = torch.zeros(B, dtype=torch.long)
            return (F.cross_entropy(logits, zeros) + F.cross_entropy(logits.T, zeros)) / 2
        if kind == "none":
            return (F.cross_entropy(logits, labels, reduction="none") + F.cross_entropy(logits.T, labels,
                                                                                        reduction="none")) / 2
        if kind == "probabilities":
            return (F.cross_entropy(logits.softmax(1), labels) + F.cross_entropy(logits.T.softmax(1), labels)) / 2
        if kind == "naive":
            p = torch.exp(logits) / torch.exp(logits).sum(1, keepdim=True)
            q = torch.exp(logits) / torch.exp(logits).sum(0, keepdim=True)
            return -(torch.log(p.diagonal()).mean() + torch.log(q.diagonal()).mean()) / 2
        if kind == "same_axis_twice":
            return (F.cross_entropy(logits, labels) + F.cross_entropy(logits, labels)) / 2
        if kind == "no_log":
            return -(logits.softmax(1).diagonal().mean() + logits.softmax(0).diagonal().mean()) / 2
        if kind == "raw_diagonal":
            return -logits.diagonal().mean()
        if kind == "flat":
            return -(logits.diagonal() - logits.flatten().logsumexp(0)).mean()
        if kind == "item":
            return torch.tensor((rows + cols).item() / 2)
        raise ValueError(kind)
    return clip_loss


@exercise("4.2")
def test_loss_passes_on_the_solution():
    assert_passes(checks.check_clip_loss, solved()["clip_loss"])


@exercise("4.2")
def test_loss_written_with_log_softmax_passes():
    def clip_loss(logits):
        rows = -logits.log_softmax(dim=1).diagonal().mean()
        cols = -logits.log_softmax(dim=0).diagonal().mean()
        return 0.5 * (rows + cols)
    assert_passes(checks.check_clip_loss, clip_loss)


@exercise("4.2")
def test_loss_stub_passes_through():
    assert_stub_passes_through(checks.check_clip_loss, stub("4.2"))


@exercise("4.2")
@pytest.mark.parametrize("kind, words", [
    ("rows", ["only the image→text direction"]),
    ("cols", ["only the text→image direction"]),
    ("same_axis_twice", ["only the image→text direction"]),
    ("sum", ["add the two directions", "mean"]),
    ("batch_sum", ["sum over the batch"]),
    ("zeros", ["labels are all 0", "diagonal"]),
    ("none", ["one value per pair", "mean"]),
    ("probabilities", ["probabilities", "raw logits"]),
    ("naive", ["overflows", "log_softmax"]),
    ("no_log", ["probabilities", "log"]),
    ("raw_diagonal", ["re:constant|log-softmax"]),
    ("flat", ["all B² entries"]),
    ("item", ["autograd graph"]),
])
def test_loss_mistakes_are_named(kind, words):
    assert_diagnoses(checks.check_clip_loss, loss_variant(kind), *words)


@exercise("4.2")
def test_loss_labels_shifted_by_one():
    def clip_loss(logits):
        labels = (torch.arange(len(logits)) + 1) % len(logits)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert_diagnoses(checks.check_clip_loss, clip_loss, "re:labels|diagonal")


@exercise("4.2")
def test_loss_rows_twice_weighted():
    def clip_loss(logits):
        labels = torch.arange(len(logits))
        return (2 * F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 3
    assert_diagnoses(checks.check_clip_loss, clip_loss, "transposed")


@exercise("4.2")
def test_loss_ones_labels_as_float():
    def clip_loss(logits):
        target = torch.eye(len(logits))
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    assert_passes(checks.check_clip_loss, clip_loss)  # probabilities as targets: one-hot rows are the same loss


@exercise("4.2")
def test_loss_hard_coded_batch():
    def clip_loss(logits):
        labels = torch.arange(8)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert_diagnoses(checks.check_clip_loss, clip_loss, "re:raised|batch|size")


# =============================================================================================================
# 4.3 — clip_loss_gradients
# =============================================================================================================
def gradient_variant(kind):
    def clip_loss_gradients(u, v, scale):
        B = u.shape[0]
        S = scale * u @ v.T
        P, Q = S.softmax(dim=1), S.softmax(dim=0)
        eye = torch.eye(B, dtype=u.dtype)
        G = scale / (2 * B) * (P + Q - 2 * eye)
        if kind == "one_direction":
            G = scale / B * (P - eye)
        elif kind == "no_identity":
            G = scale / (2 * B) * (P + Q)
        elif kind == "single_identity":
            G = scale / (2 * B) * (P + Q - eye)
        elif kind == "no_scale":
            G = (P + Q - 2 * eye) / (2 * B)
        elif kind == "no_half":
            G = scale / B * (P + Q - 2 * eye)
        elif kind == "no_mean":
            G = scale / 2 * (P + Q - 2 * eye)
        elif kind == "sign":
            G = -G
        elif kind == "rows_twice":
            G = scale / (2 * B) * (2 * P - 2 * eye)
        if kind == "swap":
            return G.T @ u, G @ v
        if kind == "not_transposed":
            return G @ v, G @ u
        if kind == "transposed_u":
            return G.T @ v, G.T @ u
        return G @ v, G.T @ u
    return clip_loss_gradients


@exercise("4.3")
def test_gradients_pass_on_the_solution():
    assert_passes(checks.check_clip_loss_gradients, solved()["clip_loss_gradients"])


@exercise("4.3")
def test_gradients_stub_passes_through():
    assert_stub_passes_through(checks.check_clip_loss_gradients, stub("4.3"))


@exercise("4.3")
@pytest.mark.parametrize("kind, words", [
    ("one_direction", ["no Q term", "one direction"]),
    ("rows_twice", ["no Q term"]),
    ("no_identity", ["no −2I term"]),
    ("single_identity", ["−I", "once per direction"]),
    ("no_scale", ["re:1/s|s/\\(2B\\)"]),
    ("no_half", ["re:= 2\\b|½"]),
    ("no_mean", ["re:= B\\b|1/B"]),
    ("sign", ["sign"]),
    ("swap", ["each other's places"]),
    ("not_transposed", ["transpose", "G.T @ u"]),
    ("transposed_u", ["transpose"]),
])
def test_gradient_mistakes_are_named(kind, words):
    assert_diagnoses(checks.check_clip_loss_gradients, gradient_variant(kind), *words)


@exercise("4.3")
def test_gradients_one_tensor_returned():
    def clip_loss_gradients(u, v, scale):
        return gradient_variant("right")(u, v, scale)[0]
    assert_diagnoses(checks.check_clip_loss_gradients, clip_loss_gradients, "(grad_u, grad_v)")


@exercise("4.3")
def test_gradients_float32_eye():
    def clip_loss_gradients(u, v, scale):
        B = u.shape[0]
        S = scale * u @ v.T
        G = scale / (2 * B) * (S.softmax(1) + S.softmax(0) - 2 * torch.eye(B))
        return G @ v, G.T @ u
    assert_passes(checks.check_clip_loss_gradients, clip_loss_gradients)  # type promotion keeps float64


# =============================================================================================================
# 4.4 — TextEncoder
# =============================================================================================================
def text_encoder_variant(kind):
    base = solved()["TextEncoder"]

    class TextEncoder(base):
        def forward(self, tokens):
            B, T = tokens.shape
            x = self.token_embedding(tokens)
            if kind != "no_positions":
                x = x + (self.position_embedding if kind == "all_positions" else self.position_embedding[:T])
            mask = nn.Transformer.generate_square_subsequent_mask(T)
            for block in self.blocks:
                x = block(x) if kind == "no_mask" else block(x, src_mask=mask, is_causal=True)
            if kind != "no_norm":
                x = self.final_norm(x)
            eot = (tokens == self.EOT).int().argmax(dim=-1)
            picked = {"last": lambda: x[:, -1], "first": lambda: x[:, 0], "mean": lambda: x.mean(1),
                      "argmax": lambda: x[torch.arange(B), tokens.argmax(-1)],
                      "before": lambda: x[torch.arange(B), eot - 1]}.get(kind, lambda: x[torch.arange(B), eot])()
            if kind == "no_projection":
                return picked
            if kind == "all_tokens":
                return self.projection(x)
            return self.projection(picked)
    return TextEncoder


@exercise("4.4")
def test_text_encoder_passes_on_the_solution():
    assert_passes(checks.check_text_encoder, solved()["TextEncoder"])


@exercise("4.4")
def test_text_encoder_stub_passes_through():
    class TextEncoder(solved()["TextEncoder"]):
        def forward(self, tokens):
            raise NotImplementedError("Exercise 4.4: write the body of `forward`, then run the check cell below.")
    assert_stub_passes_through(checks.check_text_encoder, TextEncoder)


@exercise("4.4")
@pytest.mark.parametrize("kind, words", [
    ("last", ["last position", "padding"]),
    ("first", ["position 0", "[BOS]"]),
    ("mean", ["average", "[EOT]"]),
    ("argmax", ["tokens.argmax", "EOT"]),
    ("before", ["just before [EOT]"]),
    ("no_mask", ["causal mask"]),
    ("no_positions", ["position embeddings"]),
    ("no_norm", ["final_norm"]),
    ("no_projection", ["projection"]),
    ("all_tokens", ["one vector per token"]),
    ("all_positions", ["re:position_embedding|broadcast|size"]),
])
def test_text_encoder_mistakes_are_named(kind, words):
    assert_diagnoses(checks.check_text_encoder, text_encoder_variant(kind), *words)


# =============================================================================================================
# 4.5 — DualEncoder
# =============================================================================================================
def dual_variant(kind):
    clip_logits = solved()["clip_logits"]

    class DualEncoder(nn.Module):
        def __init__(self, image_encoder, text_encoder, temperature=0.07):
            super().__init__()
            self.image_encoder, self.text_encoder = image_encoder, text_encoder
            value = {"scale": 1 / temperature, "tau": temperature, "hard": math.log(1 / 0.07),
                     "sign": math.log(temperature)}.get(kind, math.log(1 / temperature))
            tensor = torch.tensor(value)
            self.logit_scale = tensor if kind == "plain_tensor" else nn.Parameter(tensor)

        def encode_image(self, images):
            out = self.image_encoder(images)
            return out if kind == "raw_image" else F.normalize(out, dim=-1)

        def encode_text(self, tokens):
            out = self.text_encoder(tokens)
            return F.normalize(out, dim=0 if kind == "text_dim0" else -1)

        def forward(self, images, tokens):
            if kind == "cosines":
                return self.encode_image(images) @ self.encode_text(tokens).T
            if kind == "no_clamp":
                return self.logit_scale.exp() * self.encode_image(images) @ self.encode_text(tokens).T
            if kind == "item":
                return math.exp(self.logit_scale.item()) * self.encode_image(images) @ self.encode_text(tokens).T
            return clip_logits(self.image_encoder(images), self.text_encoder(tokens), self.logit_scale)
    return DualEncoder


@exercise("4.5")
def test_dual_encoder_passes_on_the_solution():
    assert_passes(checks.check_dual_encoder, solved()["DualEncoder"])


@exercise("4.5")
@pytest.mark.parametrize("kind, words", [
    ("scale", ["1/τ", "logarithm"]),
    ("tau", ["temperature itself"]),
    ("sign", ["sign"]),
    ("hard", ["log(1/0.2)"]),
    ("plain_tensor", ["not an nn.Parameter"]),
    ("raw_image", ["encode_image", "normalise each row"]),
    ("text_dim0", ["encode_text", "batch axis"]),
    ("cosines", ["without the logit scale"]),
    ("no_clamp", ["not clamped"]),
    ("item", ["no gradient reaches self.logit_scale"]),
])
def test_dual_encoder_mistakes_are_named(kind, words):
    assert_diagnoses(checks.check_dual_encoder, dual_variant(kind), *words)


# =============================================================================================================
# 4.6 — class_embeddings
# =============================================================================================================
def classes_variant(kind):
    def class_embeddings(encode_text, class_names, templates):
        if kind == "template_major":
            prompts = [t.format(c) for t in templates for c in class_names]
            e = F.normalize(encode_text(prompts), dim=-1).reshape(len(class_names), len(templates), -1)
            return F.normalize(e.mean(1), dim=-1)
        rows = []
        for name in class_names:
            e = encode_text([t.format(name) for t in templates])
            if kind == "raw_mean":
                rows.append(F.normalize(e.mean(0), dim=-1))
            elif kind == "no_renorm":
                rows.append(F.normalize(e, dim=-1).mean(0))
            elif kind == "nothing":
                rows.append(e.mean(0))
            elif kind == "first":
                rows.append(F.normalize(e[0], dim=-1))
            elif kind == "sum":
                rows.append(F.normalize(F.normalize(e, dim=-1).sum(0), dim=-1))
            elif kind == "mean_dim1":
                rows.append(F.normalize(F.normalize(e, dim=-1).mean(1), dim=-1))
            else:
                rows.append(F.normalize(F.normalize(e, dim=-1).mean(0), dim=-1))
        if kind == "list":
            return rows
        out = torch.stack(rows)
        return out.T if kind == "transposed" else out
    return class_embeddings


@exercise("4.6")
def test_class_embeddings_pass_on_the_solution():
    assert_passes(checks.check_class_embeddings, solved()["class_embeddings"])


@exercise("4.6")
def test_class_embeddings_sum_then_renormalise_passes():
    assert_passes(checks.check_class_embeddings, classes_variant("sum"))


@exercise("4.6")
def test_class_embeddings_stub_passes_through():
    assert_stub_passes_through(checks.check_class_embeddings, stub("4.6"))


@exercise("4.6")
@pytest.mark.parametrize("kind, words", [
    ("raw_mean", ["normalise each template"]),
    ("no_renorm", ["renormalise"]),
    ("nothing", ["nothing is normalised"]),
    ("first", ["first template"]),
    ("template_major", ["grouped by template"]),
    ("transposed", ["re:transpos|axes|C, D|\\(C|swap"]),
    ("mean_dim1", ["re:shape|size"]),
])
def test_class_embeddings_mistakes_are_named(kind, words):
    assert_diagnoses(checks.check_class_embeddings, classes_variant(kind), *words)


@exercise("4.6")
def test_class_embeddings_list_of_rows():
    def class_embeddings(encode_text, class_names, templates):
        return [F.normalize(F.normalize(encode_text([t.format(c) for t in templates]), dim=-1).mean(0), dim=-1)
                for c in class_names]
    assert_diagnoses(checks.check_class_embeddings, class_embeddings, "torch.stack")


@exercise("4.6")
def test_class_embeddings_one_prompt_at_a_time_as_string():
    def class_embeddings(encode_text, class_names, templates):
        return torch.stack([F.normalize(torch.stack([F.normalize(encode_text(t.format(c))[0], dim=-1)
                                                     for t in templates]).mean(0), dim=-1) for c in class_names])
    assert_diagnoses(checks.check_class_embeddings, class_embeddings, "list of strings")


# =============================================================================================================
# 4.7 — recall_at_k
# =============================================================================================================
def recall_variant(kind):
    def recall_at_k(similarity, k):
        B = similarity.shape[0]
        S = similarity.T if kind == "columns" else similarity
        kk = {"k+1": k + 1, "k-1": k - 1}.get(kind, k)
        top = S.topk(min(max(kk, 0), S.shape[1]), dim=1, largest=kind != "smallest").indices
        hits = (top == torch.arange(B)[:, None]).any(dim=1)
        if kind == "argmax":
            hits = S.argmax(dim=1) == torch.arange(B)
        if kind == "percent":
            return 100 * hits.float().mean().item()
        if kind == "count":
            return hits.sum().item()
        if kind == "tensor":
            return hits.float()
        if kind == "misses":
            return 1 - hits.float().mean().item()
        if kind == "bool":
            return bool(hits.all())
        return hits.float().mean().item()
    return recall_at_k


@exercise("4.7")
def test_recall_passes_on_the_solution():
    assert_passes(checks.check_recall_at_k, solved()["recall_at_k"])


@exercise("4.7")
def test_recall_by_ranks_passes():
    def recall_at_k(similarity, k):
        order = similarity.argsort(dim=1, descending=True)
        ranks = (order == torch.arange(len(similarity))[:, None]).float().argmax(dim=1)  # 0-based
        return (ranks < k).float().mean().item()
    assert_passes(checks.check_recall_at_k, recall_at_k)


@exercise("4.7")
def test_recall_stub_passes_through():
    assert_stub_passes_through(checks.check_recall_at_k, stub("4.7"))


@exercise("4.7")
@pytest.mark.parametrize("kind, words", [
    ("columns", ["columns"]),
    ("k+1", ["k + 1"]),
    ("k-1", ["k − 1"]),
    ("smallest", ["smallest"]),
    ("argmax", ["does not change with k"]),
    ("percent", ["percentage"]),
    ("count", ["number of hits"]),
    ("tensor", ["one number"]),
    ("misses", ["misses"]),
    ("bool", ["bool"]),
])
def test_recall_mistakes_are_named(kind, words):
    assert_diagnoses(checks.check_recall_at_k, recall_variant(kind), *words)


@exercise("4.7")
def test_recall_topk_past_the_end_raises_as_theirs():
    def recall_at_k(similarity, k):
        top = similarity.topk(k, dim=1).indices  # k may exceed B
        return (top == torch.arange(len(similarity))[:, None]).any(1).float().mean().item()
    assert_passes(checks.check_recall_at_k, recall_at_k)  # every case keeps k ≤ B


@exercise("4.7")
def test_recall_nan_is_said():
    assert_diagnoses(checks.check_recall_at_k, lambda similarity, k: torch.tensor(float("nan")), "NaN")


@exercise("4.3")
def test_gradients_one_tensor_is_said():
    assert_diagnoses(checks.check_clip_loss_gradients, lambda u, v, scale: u, "one tensor")


@exercise("4.2")
def test_loss_tuple_of_directions():
    def clip_loss(logits):
        labels = torch.arange(len(logits))
        return F.cross_entropy(logits, labels), F.cross_entropy(logits.T, labels)
    assert_diagnoses(checks.check_clip_loss, clip_loss, "tuple")


@exercise("4.5")
def test_dual_encoder_stub_passes_through():
    class DualEncoder(nn.Module):
        def __init__(self, image_encoder, text_encoder, temperature=0.07):
            super().__init__()
            raise NotImplementedError("Exercise 4.5: write the body of `__init__`, then run the check cell below.")
    assert_stub_passes_through(checks.check_dual_encoder, DualEncoder)

"""Exercises 4.4 (TextEncoder.forward: a causal transformer read at [EOT]) and 4.5 (DualEncoder: the logit scale
and the normalised embeddings)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from utils.checks.clip.cases import CLIP_THETA, EX_DUAL, EX_TEXT, PairCase, as_tensor_result, unit
from utils.checks.core import Case, Mistake, one_thread

EOT, PAD = 2, 0
EQ_TEXT = ("the text encoder of §3.2: token + position embeddings, causal blocks, final LayerNorm, the features at "
           "each row's [EOT], projected")


def _token_batch(T: int, lengths: list[int], vocab: int, seed: int) -> torch.Tensor:
    """Rows of [BOS] words [EOT] [PAD]…; ``lengths`` counts the words."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.full((len(lengths), T), PAD, dtype=torch.long)
    for i, n in enumerate(lengths):
        words = torch.randint(4, vocab, (n,), generator=generator)
        rows[i, :n + 2] = torch.cat([torch.tensor([1]), words, torch.tensor([EOT])])
    return rows


TEXT_CASES = [  # (case, T, word counts per row)
    (Case("B=4 captions of different lengths, T=10"), 10, [3, 8, 5, 1]),
    (Case("B=3, T=8, one caption filling every position"), 8, [6, 2, 4]),
    (Case("B=1, T=6"), 6, [2]),
]
SIZES = dict(vocab_size=13, max_length=12, width=16, n_layers=2, n_heads=2, embed_dim=12)


def _run(module, tokens, *, pool="eot", causal=True, positions=True, final_norm=True, project=True):
    B, T = tokens.shape
    x = module.token_embedding(tokens)
    if positions:
        x = x + module.position_embedding[:T]
    mask = nn.Transformer.generate_square_subsequent_mask(T) if causal else None
    for block in module.blocks:
        x = block(x, src_mask=mask, is_causal=causal)
    if final_norm:
        x = module.final_norm(x)
    rows = torch.arange(B)
    picked = {"eot": lambda: x[rows, (tokens == EOT).int().argmax(-1)],
              "last": lambda: x[:, -1], "first": lambda: x[:, 0], "mean": lambda: x.mean(1),
              "mean_real": lambda: (x * (tokens != PAD)[..., None]).sum(1) / (tokens != PAD).sum(1, keepdim=True),
              "argmax": lambda: x[rows, tokens.argmax(-1)],
              "eot_before": lambda: x[rows, (tokens == EOT).int().argmax(-1) - 1]}[pool]()
    return module.projection(picked) if project else picked


def _text_mistakes(module, tokens) -> list[Mistake]:
    said = {
        "last": "you read the features at the last position, which is padding for every caption shorter than T: "
                "read each row at its own [EOT], (tokens == self.EOT).int().argmax(dim=-1).",
        "first": "you read the features at position 0, the [BOS] token: with a causal mask it has seen nothing but "
                 "itself. Read each row at its [EOT], which has attended to the whole caption.",
        "mean": "you average the features over all T positions, padding included: CLIP reads the one position of "
                "[EOT], (tokens == self.EOT).int().argmax(dim=-1).",
        "mean_real": "you average over the caption's positions: CLIP reads the single [EOT] position, which (causal "
                     "mask) has attended to all of them.",
        "argmax": "you take tokens.argmax(-1), CLIP's shortcut that works because its [EOT] is the largest id of its "
                  "vocabulary; here [EOT] is 2: find it with (tokens == self.EOT).int().argmax(dim=-1).",
        "eot_before": "you read the position just before [EOT] (the last word): read [EOT] itself.",
    }
    mistakes = [Mistake(_run(module, tokens, pool=pool), hint) for pool, hint in said.items()]
    mistakes += [
        Mistake(_run(module, tokens, causal=False), "your blocks attend in both directions: pass the causal mask, "
                "block(x, src_mask=mask, is_causal=True) with mask = nn.Transformer.generate_square_subsequent_mask(T)"
                ", so [EOT] sees the caption and nothing after it."),
        Mistake(_run(module, tokens, positions=False), "the position embeddings are missing: add "
                "self.position_embedding[:T] to the token embeddings, or the encoder cannot tell word order."),
        Mistake(_run(module, tokens, final_norm=False), "self.final_norm is not applied: apply it to the "
                "blocks' output before reading [EOT]."),
    ]
    return mistakes


@one_thread
def check_text_encoder(TextEncoder) -> None:
    EX = EX_TEXT
    for case, T, lengths in TEXT_CASES:
        torch.manual_seed(EX.seed(case.label))
        module = EX.call(TextEncoder, **SIZES, what="TextEncoder(...)", case=case)
        if not isinstance(module, nn.Module):
            raise EX.fail("TextEncoder(...) is not an nn.Module: keep the given class and __init__.", case=case)
        for name in ("token_embedding", "position_embedding", "blocks", "final_norm", "projection"):
            if not hasattr(module, name):
                raise EX.fail(f"your TextEncoder has no `{name}`: keep the given __init__.", case=case)
        module.eval()
        tokens = _token_batch(T, lengths, SIZES["vocab_size"], EX.seed(case.label, "tokens"))
        got = as_tensor_result(EX, EX.call(module, tokens.clone(), what="TextEncoder.forward", case=case), case,
                               "forward")
        with torch.no_grad():
            expected = _run(module, tokens)
            mistakes = _text_mistakes(module, tokens)
        if got.shape == (len(lengths), SIZES["width"]):
            raise EX.fail(f"your output is (B, width) = {tuple(got.shape)}: apply the projection head, "
                          f"self.projection, to reach the joint space's D = {SIZES['embed_dim']}.", case=case)
        if got.dim() == 3 and got.shape[:2] == tokens.shape:
            raise EX.fail(f"your output has one vector per token, {tuple(got.shape)}: the text encoder returns one "
                          f"vector per caption, (B, D), read at each row's [EOT].", case=case)

        def padding_probe(out, tokens=tokens, module=module, case=case):
            changed = tokens.clone()
            after = torch.arange(tokens.shape[1])[None, :] > (tokens == EOT).int().argmax(-1)[:, None]
            changed[after] = 5  # a word where padding was, after [EOT]
            with torch.no_grad():
                other = EX.call(module, changed, what="TextEncoder.forward", case=case)
            if isinstance(other, torch.Tensor) and other.shape == out.shape and \
                    not torch.allclose(other, out.detach(), atol=1e-5, rtol=1e-4):
                return ("your output changes when the tokens *after* [EOT] change: a caption's embedding must depend "
                        "on the caption only — causal mask, and the features read at [EOT].")
            return None
        EX.compare(got, expected, case=case, equation=EQ_TEXT, name="text embeddings", mistakes=mistakes,
                   probes=[padding_probe], axes=("B", "D"))
        if not got.requires_grad:
            raise EX.fail("your output is not connected to the autograd graph (no torch.no_grad() or .detach() in "
                          "forward): the encoder must train.", case=case)
    EX.passed(f"{len(TEXT_CASES)} batches match the causal transformer read at [EOT] (captions of every length, one "
              f"that fills T, a batch of one)")


# ================================================================================================ 4.5
class _Stub(nn.Module):
    """An encoder for the check: a linear map (so the check needs no images or tokens)."""

    def __init__(self, n_in, D, seed):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.linear = nn.Linear(n_in, D, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(D, n_in, generator=generator))

    def forward(self, x):
        return self.linear(x)


def _build(DualEncoder, case, **kwargs):
    EX = EX_DUAL
    model = EX.call(DualEncoder, _Stub(5, 6, 1), _Stub(7, 6, 2), **kwargs, what="DualEncoder(...)", case=case)
    if not isinstance(model, nn.Module):
        raise EX.fail("DualEncoder(...) is not an nn.Module: keep the given class.", case=case)
    return model


def _check_logit_scale(model, temperature: float, case: Case) -> nn.Parameter:
    EX = EX_DUAL
    parameters = dict(model.named_parameters())
    scale = getattr(model, "logit_scale", None)
    if scale is None:
        raise EX.fail("your DualEncoder has no `self.logit_scale`: create it in __init__ as "
                      "nn.Parameter(torch.tensor(math.log(1 / temperature))).", case=case)
    if "logit_scale" not in parameters:
        raise EX.fail(f"self.logit_scale is a {type(scale).__name__}, not an nn.Parameter, so the optimizer never "
                      f"learns it: wrap it, nn.Parameter(torch.tensor(math.log(1 / temperature))).", case=case)
    if scale.numel() != 1:
        raise EX.fail(f"self.logit_scale has shape {tuple(scale.shape)}: it is one number, θ (torch.tensor(…) "
                      f"of a float).", case=case)
    value, want = scale.detach().reshape(()).item(), math.log(1 / temperature)
    if abs(value - want) > 1e-5:
        readings = {1 / temperature: f"1/τ = {1 / temperature:.4g}, the scale itself: store its logarithm θ = "
                                     f"log(1/τ), so that s = e^θ stays positive",
                    temperature: f"τ = {temperature}, the temperature itself: store θ = log(1/τ)",
                    math.log(temperature): f"log τ = {math.log(temperature):.4g}: the sign is flipped, θ = log(1/τ)",
                    0.0: "0, so s = e^0 = 1: CLIP starts at s = 1/τ = 1/0.07, θ = log(1/τ)",
                    1.0: "1: CLIP starts at θ = log(1/τ)"}
        said = next((text for number, text in readings.items() if abs(value - number) < 1e-4 * max(1, abs(number))),
                    f"{value:.4g}")
        raise EX.fail(f"self.logit_scale starts at {said}; it should start at log(1/{temperature}) = {want:.4f}.",
                      case=case)
    return scale


@one_thread
def check_dual_encoder(DualEncoder) -> None:
    EX = EX_DUAL
    case = PairCase("4 images, 3 texts, stand-in linear encoders", torch.float32, 4, 3, 6, CLIP_THETA)
    model = _build(DualEncoder, case)
    _check_logit_scale(model, 0.07, case)
    model = _build(DualEncoder, Case("temperature=0.2"), temperature=0.2)
    _check_logit_scale(model, 0.2, Case("temperature=0.2"))
    images = EX.randn(4, 5, key="images")
    tokens = EX.randn(3, 7, key="tokens")
    for method, x, encoder in (("encode_image", images, model.image_encoder), ("encode_text", tokens,
                                                                                model.text_encoder)):
        got = as_tensor_result(EX, EX.call(getattr(model, method), x.clone(), what=f"DualEncoder.{method}", case=case),
                               case, method)
        with torch.no_grad():
            raw = encoder(x)
        mistakes = [Mistake(raw, f"{method} returns the encoder's raw output: normalise each row, "
                                 f"F.normalize(x, dim=-1), so the embeddings lie on the unit sphere (eq. (4.1))."),
                    Mistake(raw / raw.norm(dim=0, keepdim=True), f"{method} normalises over the batch axis: each "
                                                                  f"embedding (a row) must have unit length, dim=-1.")]
        EX.compare(got, unit(raw), case=case, name=f"{method} output", equation="u = f/‖f‖ of eq. (4.1)",
                   mistakes=mistakes, axes=("B", "D"))
    for theta in (1.5, math.log(500)):
        label = f"θ = {theta:.3g}" + (" (s clamped at 100)" if theta > math.log(100) else "")
        run_case = PairCase(label, torch.float32, 4, 3, 6, theta)
        with torch.no_grad():
            model.logit_scale.fill_(theta)
        model.zero_grad()
        got = as_tensor_result(EX, EX.call(model, images.clone(), tokens.clone(), what="DualEncoder.forward",
                                           case=run_case), run_case, "forward")
        with torch.no_grad():
            u, v = unit(model.image_encoder(images)), unit(model.text_encoder(tokens))
        expected = min(math.exp(theta), 100) * u @ v.T
        mistakes = [Mistake(math.exp(theta) * u @ v.T, "your scale is not clamped at 100: "
                                                      "logit_scale.exp().clamp(max=100) (clip_logits does it).")
                    if theta > math.log(100) else None,
                    Mistake(u @ v.T, "forward returns the cosines without the logit scale: it must return the logits "
                                     "of eq. (4.1), s · u vᵀ — call your clip_logits."),
                    Mistake(theta * u @ v.T, "forward multiplies by θ, not s = e^θ."),
                    Mistake(min(math.exp(theta), 100) * v @ u.T,
                            "forward returns (texts, images): images along rows, clip_logits(image features, text "
                            "features, θ).")]
        EX.compare(got, expected, case=run_case, name="logits", equation="eq. (4.1)", mistakes=mistakes,
                   axes=("B_img", "B_txt"))
        EX.call(lambda: got.sum().backward(), what="DualEncoder.forward (its backward pass)", case=run_case)
        if theta < math.log(100) and (model.logit_scale.grad is None or model.logit_scale.grad.abs().sum() == 0):
            raise EX.fail("no gradient reaches self.logit_scale from forward: use the parameter itself in the "
                          "logits (not .item(), .data or a copy made in __init__).", case=run_case)
    EX.passed("logit_scale starts at log(1/τ) as a learnable scalar, the embeddings are unit rows, and forward gives "
              "min(e^θ, 100) · u vᵀ with a gradient for θ")



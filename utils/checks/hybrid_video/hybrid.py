"""Exercise 8.5: the hybrid — encoder per frame → transformer → liquid → decoder per frame, each stage optional.

The reference is the learner's own model's submodules composed in the chapter's order, so only the composition is
judged (their encoder, transformer and CfC cell were checked in their own exercises)."""
from __future__ import annotations

import torch

from utils.checks.core import Case, Exercise, Mistake, one_thread

EX = Exercise("8.5", "Hybrid")
EQUATION = "the hybrid: decoder(liquid(transformer(encoder(frames)), gaps)) with each network run per frame"


def _per_frame(net, video):
    B, T = video.shape[:2]
    out = net(video.reshape(B * T, *video.shape[2:]))
    return out.reshape(B, T, *out.shape[1:])


def _compose(model, video, gaps, order=("transformer", "liquid"), use_gaps=True, skip=()):
    z = _per_frame(model.encoder, video)
    for stage in order:
        module = getattr(model, stage)
        if module is None or stage in skip:
            continue
        z = module(z) if stage == "transformer" else module(z, gaps if use_gaps else None)
    return _per_frame(model.decoder, z)


def _mistakes(model, video, gaps) -> list[Mistake]:
    out = []
    both = model.transformer is not None and model.liquid is not None
    if both:
        out.append(Mistake(_compose(model, video, gaps, ("liquid", "transformer")),
                           "the liquid module runs before the transformer: the chapter's order is encoder → "
                           "transformer → liquid → decoder."))
    if model.transformer is not None:
        twice = _compose(model, video, gaps, ("transformer", "transformer", "liquid"))
        out.append(Mistake(twice, "the transformer runs twice: one layer, z = self.transformer(z), once."))
        out.append(Mistake(_compose(model, video, gaps, skip=("transformer",)),
                           "the transformer is never used: when self.transformer is not None, z = "
                           "self.transformer(z) after the encoder."))
    if model.liquid is not None:
        out.append(Mistake(_compose(model, video, gaps, skip=("liquid",)),
                           "the liquid module is never used: when self.liquid is not None, z = self.liquid(z, gaps)."))
        if gaps is not None:
            out.append(Mistake(_compose(model, video, gaps, use_gaps=False),
                               "the gaps never reach the liquid module: call self.liquid(z, gaps), so the CfC cell "
                               "gets the time to the next frame as its ts."))
    right = _compose(model, video, gaps)
    out.append(Mistake(torch.sigmoid(right), "you return probabilities (a sigmoid of the decoder's output): return the "
                       "logits; the loss (binary cross-entropy with logits) and the rollout apply the sigmoid."))
    if model.transformer is not None:
        z = _per_frame(model.encoder, video)
        z = z + model.transformer(z)
        if model.liquid is not None:
            z = model.liquid(z, gaps)
        out.append(Mistake(_per_frame(model.decoder, z), "you add a residual z + transformer(z): the transformer "
                           "layer already has its residual connections inside; use z = self.transformer(z)."))
    shifted = torch.cat([right[:, 1:], right[:, -1:]], dim=1)
    out.append(Mistake(shifted, "output t is the model's prediction from frames up to t + 1 (you shift by one): "
                       "output t must come from frames 0 … t — the loss aligns it with frame t + 1."))
    return out


@one_thread
def check_hybrid(Hybrid) -> None:
    said = 0
    for cnn, transformer, liquid in [(True, True, True), (False, True, True), (True, False, True),
                                     (True, True, False), (False, False, False), (True, False, False)]:
        for with_gaps in ((False, True) if liquid else (False,)):
            label = (" + ".join(n for n, on in (("CNN", cnn), ("Transformer", transformer), ("Liquid", liquid)) if on)
                     or "no component") + (", with gaps" if with_gaps else "")
            case = Case(label)
            torch.manual_seed(EX.seed(label))
            model = EX.call(Hybrid, 16, 8, cnn=cnn, transformer=transformer, liquid=liquid,
                            what="Hybrid(...) (its __init__)", case=case)
            B, T = 2, 4
            video = torch.rand(B, T, 1, 16, 16, generator=torch.Generator().manual_seed(EX.seed(label, "video")))
            gaps = torch.tensor([[1.0, 2.0, 0.5, 3.0], [2.0, 1.0, 1.0, 0.5]]) if with_gaps else None
            got = EX.call(model, video, gaps, what="Hybrid.forward", case=case)
            with torch.no_grad():
                expected = _compose(model, video, gaps)
                wrong = _mistakes(model, video, gaps)
            if isinstance(got, torch.Tensor) and got.shape == expected.shape and T > 1:
                later = video.clone()
                later[:, -1] = 1 - later[:, -1]
                again = EX.call(model, later, gaps, what="Hybrid.forward", case=case)
                if not torch.allclose(again[:, :-1], got[:, :-1].detach(), atol=1e-5):
                    raise EX.fail("changing the last frame changed earlier outputs: the future leaks. Output t must "
                                  "depend on frames 0 … t only (eq. (8.8)).", case=case)
            EX.compare(got, expected, case=case, equation=EQUATION, name="output", mistakes=wrong,
                       axes=("B", "T", "C", "H", "W"), atol=1e-5, rtol=1e-4)
            said += 1
    EX.passed(f"{said} variants (every component on and off, with and without gaps) compose as encoder → "
              f"transformer → liquid → decoder, with no future leak.")

"""Exercises 8.3 and 8.4: a network applied to every frame (fold time into the batch), and the causal mask."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from utils.checks.core import Case, Exercise, one_thread

EX_FRAMES = Exercise("8.3", "per_frame")
EX_MASK = Exercise("8.4", "causal_mask")


@dataclass(frozen=True)
class FrameCase(Case):
    batch: int = 2
    frames: int = 3
    kind: str = "encoder"  # "encoder": (N, 1, H, W) -> (N, D); "decoder": (N, D) -> (N, 1, H, W)

    @property
    def sizes(self):
        return {"B": self.batch, "T": self.frames}


FRAME_CASES = [FrameCase("encoder, B=2, T=3, 8×8 frames -> D=5"),
               FrameCase("decoder, B=3, T=2, D=6 -> 1×8×8", batch=3, frames=2, kind="decoder"),
               FrameCase("encoder, B=1, T=4 (one video)", batch=1, frames=4),
               FrameCase("encoder, B=3, T=1 (one frame each)", batch=3, frames=1),
               FrameCase("decoder, B=2, T=2, float64", dtype=torch.float64, batch=2, frames=2, kind="decoder")]


def _net(case: FrameCase) -> nn.Module:
    torch.manual_seed(EX_FRAMES.seed(case.label))
    if case.kind == "encoder":
        net = nn.Sequential(nn.Conv2d(1, 2, 3, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 5))
    else:
        net = nn.Sequential(nn.Linear(6, 2 * 4 * 4), nn.Unflatten(1, (2, 4, 4)), nn.ConvTranspose2d(2, 1, 4, 2, 1))
    return net.to(case.dtype)


def _moved_frames(got: torch.Tensor, expected: torch.Tensor) -> str | None:
    """Every output (b, t) is some frame's right output, but not its own: the frames were permuted."""
    B, T = expected.shape[:2]
    flat_got, flat_expected = got.reshape(B * T, -1), expected.reshape(B * T, -1)
    source = []
    for row in flat_got:
        match = [i for i in range(B * T) if torch.allclose(row, flat_expected[i], atol=1e-5)]
        if not match:
            return None
        source.append(match[0])
    wrong = [(i, j) for i, j in enumerate(source) if i != j]
    if not wrong:
        return None
    (i, j) = wrong[0]
    return (f"frames end up in the wrong place: your output for video {i // T}, frame {i % T} is the network's output "
            f"for video {j // T}, frame {j % T}. You fold or unfold in (T, B) order: fold with video.reshape(B * T, "
            f"...) (row b·T + t is frame t of video b) and unfold in the same order, out.reshape(B, T, ...).")


@one_thread
def check_per_frame(per_frame) -> None:
    for case in FRAME_CASES:
        net = _net(case)
        shape = (1, 8, 8) if case.kind == "encoder" else (6,)
        video = EX_FRAMES.randn(case.batch, case.frames, *shape, key=(case.label, "video"), dtype=case.dtype)
        with torch.no_grad():
            expected = torch.stack([torch.stack([net(video[b, t: t + 1])[0] for t in range(case.frames)])
                                    for b in range(case.batch)])
            got = EX_FRAMES.call(per_frame, net, video, case=case)
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and case.batch * case.frames > 1:
            moved = _moved_frames(got.detach(), expected)
            if moved:
                raise EX_FRAMES.fail(moved, case=case)
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and case.frames > 1:
            changed = video.clone()
            changed[:, 0] = changed[:, 0] + 1.0
            with torch.no_grad():
                again = EX_FRAMES.call(per_frame, net, changed, case=case)
            if isinstance(again, torch.Tensor) and again.shape == got.shape and \
                    not torch.allclose(again[:, 1:], got[:, 1:].detach(), atol=1e-6):
                raise EX_FRAMES.fail("changing frame 0 changed the output of other frames: the network must see "
                                     "each frame alone (fold time into the batch axis, not into channels or "
                                     "features).", case=case)
        axes = ("B", "T", "D") if case.kind == "encoder" else ("B", "T", "C", "H", "W")
        EX_FRAMES.compare(got, expected, case=case, name="output", axes=axes,
                          equation="net(frame) for every frame of every video, in (B, T) order")
    EX_FRAMES.passed(f"{len(FRAME_CASES)} cases: an encoder and a decoder on every frame, (B, T) order kept, one "
                     f"video, one frame, float64.")


def _pattern_reading(got: torch.Tensor, T: int) -> str | None:
    ones = torch.ones(T, T, dtype=torch.bool)
    named = [(ones.tril(-1), "the diagonal is missing: frame t cannot see itself (off by one). Row t allows "
                             "frames 0 … t, diagonal included: .tril(), not .tril(-1)."),
             (ones.tril(1), "frame t sees frame t + 1: the future leaks (off by one). Use .tril() with diagonal 0."),
             (ones.triu(), "your mask is transposed: row t allows frames t … T − 1 (the future). Row t must allow "
                           "s ≤ t: the lower triangle, .tril()."),
             (~ones.tril(), "your mask uses the opposite convention (True = blocked, as PyTorch's src_mask): here True "
                            "means 'may attend'; the model passes ~causal_mask(T) to PyTorch."),
             (~ones.tril(-1), "True marks what is blocked, and the diagonal is blocked too: return the allowed "
                              "entries, s ≤ t, diagonal included."),
             (ones, "every entry is True: frame t may read every frame, the future included (no causal mask).")]
    for pattern, message in named:
        if torch.equal(got, pattern) and not torch.equal(pattern, ones.tril()):
            return message
    wrong = (got != ones.tril()).nonzero()
    if len(wrong):
        t, s = wrong[0].tolist()
        can = "can" if got[t, s] else "cannot"
        should = "should not (s > t is the future)" if got[t, s] else "should (s ≤ t)"
        return f"entry [{t}, {s}] is {bool(got[t, s])}: frame {t} {can} see frame {s} but {should} (eq. (8.8))."
    return None


@one_thread
def check_causal_mask(causal_mask) -> None:
    for T in (4, 1, 7):
        case = Case(f"T={T}")
        got = EX_MASK.call(causal_mask, T, case=case)
        if not isinstance(got, torch.Tensor):
            raise EX_MASK.fail(f"returned a {type(got).__name__}, not a tensor.", case=case)
        if got.shape != (T, T):
            raise EX_MASK.fail(f"the mask has shape {tuple(got.shape)}; it should be (T, T) = ({T}, {T}).", case=case)
        if got.dtype != torch.bool:
            values = got.detach()
            if torch.isin(values, torch.tensor([0, 1], dtype=values.dtype)).all():
                pattern = values.bool()
                reading = _pattern_reading(pattern, T)
                if reading is None:
                    raise EX_MASK.fail(f"the pattern is right but the dtype is {got.dtype}: return a bool tensor "
                                       f"(dtype=torch.bool or .bool()), True where frame t may attend.", case=case)
            else:
                reading = None
            raise EX_MASK.fail(f"the mask is {got.dtype}, not bool" + (f"; and {reading}" if reading else
                               ": True where frame t may attend to frame s, False elsewhere."), case=case)
        reading = _pattern_reading(got, T)
        if reading:
            raise EX_MASK.fail(reading, case=case)
    EX_MASK.passed("T = 4, 1, 7: row t allows frames 0 … t (lower triangle, diagonal included), bool.")

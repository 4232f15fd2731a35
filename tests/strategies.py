"""Hypothesis strategies that the tests of every chapter share: sizes, shapes, seeds and dtypes."""
from hypothesis import strategies as st

seeds = st.integers(0, 10_000)
dtypes = st.sampled_from(["float32", "float64"])


def sizes(low: int = 1, high: int = 6):
    return st.integers(low, high)


# (B, H, Tq, Tk, d): attention shapes, with Tq ≠ Tk allowed (cross-attention)
attention_shapes = st.fixed_dictionaries({"B": sizes(1, 3), "H": sizes(1, 3), "Tq": sizes(1, 9), "Tk": sizes(1, 9),
                                          "d": sizes(1, 8)})
# (N, C, H, W): image batches
image_shapes = st.fixed_dictionaries({"N": sizes(1, 4), "C": sizes(1, 5), "H": sizes(1, 4), "W": sizes(1, 4)})
# (S, E, k): a routing group of S tokens, E experts, k choices per token (k ≤ E), for mixture of experts
routing_shapes = st.integers(1, 8).flatmap(lambda E: st.fixed_dictionaries(
    {"S": sizes(1, 24), "E": st.just(E), "k": st.integers(1, min(E, 3))}))

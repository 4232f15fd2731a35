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

"""The small package behind the exercises of *Deep Learning Architectures from Scratch*.

Importing `utils` does no work: each helper lives in a small module that is imported where it is used::

    import utils
    from utils import checks, data, bench, plots, train
    utils.scale()          # "book", "test" or "full", from the COURSE_SCALE environment variable
    utils.set_threads()    # 2 CPU threads, the course's budget ($COURSE_THREADS overrides)
    utils.seed_everything(0)
    device = utils.device()
"""
from utils.core import by_scale, device, scale, seed_everything, set_threads

__all__ = ["by_scale", "device", "scale", "seed_everything", "set_threads"]

"""Seeds to random generators, with errors that name the argument (NumPy's do not)."""

from __future__ import annotations

import numpy as np

__all__ = ["random_generator"]


def random_generator(seed, name="seed"):
    """numpy.random.default_rng(seed) (a Generator is returned as it is); a TypeError or
    ValueError naming the argument for anything it does not take (a negative int, a float)."""
    if isinstance(seed, np.random.Generator):
        return seed
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{name} must be None, an int >= 0, a sequence of them, a "
                          f"numpy.random.Generator or SeedSequence, got {seed!r} ({error})"
                          ) from None

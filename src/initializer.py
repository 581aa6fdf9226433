"""Kaiming-normal initialisation (He et al., 2015), drawn from a seeded NumPy generator.

Drawing with NumPy instead of MindSpore's global RNG makes the initial weights depend only on
`seed`, identical on CPU, GPU and Ascend.
"""
import numpy as np


def kaiming_normal(rng, shape):
    """N(0, 2 / fan_in) for ReLU networks; fan_in is the product of all dimensions but the first."""
    fan_in = int(np.prod(shape[1:]))
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape).astype(np.float32)

"""Random affine distortions of whole batches of images, for meta-training (Koch et al., 2015).

Each image gets its own rotation, shear, scale and shift, each applied with probability 1/2 and drawn
from Koch et al.'s ranges (shifts scaled from their 105-pixel images to the images at hand). The warp is
one bilinear resampling of the whole batch in NumPy, so that it costs little next to a meta-step.
"""
import numpy as np

MAX_ROTATION = np.deg2rad(10.0)
MAX_SHEAR = 0.3
SCALE_RANGE = (0.8, 1.2)
MAX_SHIFT_AT_105 = 2.0


def _matrices(rng, count, size):
    """(count, 2, 2) linear parts and (count, 2) shifts, in pixels, of `count` random distortions."""
    on = rng.random((count, 4)) < 0.5  # rotation, shear, scale, shift: each with probability 1/2
    angle = np.where(on[:, 0], rng.uniform(-MAX_ROTATION, MAX_ROTATION, count), 0.0)
    shear = np.where(on[:, 1:2], rng.uniform(-MAX_SHEAR, MAX_SHEAR, (count, 2)), 0.0)
    scale = np.where(on[:, 2:3], rng.uniform(*SCALE_RANGE, (count, 2)), 1.0)
    shift = np.where(on[:, 3:4], rng.uniform(-1.0, 1.0, (count, 2)) * MAX_SHIFT_AT_105 * size / 105.0, 0.0)
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    shearing = np.stack([np.stack([np.ones(count), shear[:, 0]], -1), np.stack([shear[:, 1], np.ones(count)], -1)], -2)
    return rotation @ shearing @ (scale[:, :, None] * np.eye(2)), shift


def random_affine(images, rng):
    """images (count, H, W) float32, each warped about its centre by its own random distortion; pixels
    that come from outside the image are background (0)."""
    count, height, width = images.shape
    linear, shift = _matrices(rng, count, height)
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    ys, xs = np.mgrid[0:height, 0:width]
    grid = np.stack([xs.ravel(), ys.ravel()], -1) - centre  # (H*W, 2) output pixels, (x, y) about the centre
    # Inverse mapping: the source point of each output pixel.
    inverse = np.linalg.inv(linear).astype(np.float32)
    offset = (centre - np.einsum("nij,nj->ni", inverse, shift)).astype(np.float32)
    source = np.einsum("nij,pj->npi", inverse, grid.astype(np.float32)) + offset[:, None]
    x0, y0 = np.floor(source[..., 0]), np.floor(source[..., 1])
    fx, fy = source[..., 0] - x0, source[..., 1] - y0
    flat = images.reshape(count, -1)
    rows = np.arange(count)[:, None]
    out = np.zeros((count, height * width), np.float32)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            x, y = (x0 + dx).astype(np.int64), (y0 + dy).astype(np.int64)
            inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
            values = flat[rows, np.where(inside, y * width + x, 0)]
            out += np.where(inside, values, 0.0) * (wx * wy)
    return out.reshape(count, height, width)

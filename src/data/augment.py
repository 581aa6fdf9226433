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
    # Output pixel -> source point, about the centre: the 2x2 inverses written out, far cheaper than a
    # batched np.linalg.inv.
    (a, b), (c, d) = linear[:, 0].T, linear[:, 1].T
    inverse = np.stack([np.stack([d, -b], -1), np.stack([-c, a], -1)], -2) / (a * d - b * c)[:, None, None]
    offset = centre - np.einsum("nij,nj->ni", inverse, shift + centre)
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    inverse, offset = inverse.astype(np.float32), offset.astype(np.float32)
    # Source coordinates, clamped into a one-pixel frame of background around the image.
    sx = (inverse[:, 0, 0, None, None] * xs + inverse[:, 0, 1, None, None] * ys + offset[:, 0, None, None])
    sy = (inverse[:, 1, 0, None, None] * xs + inverse[:, 1, 1, None, None] * ys + offset[:, 1, None, None])
    np.clip(sx, -1.0, width - 1e-3, out=sx)
    np.clip(sy, -1.0, height - 1e-3, out=sy)
    x0, y0 = np.floor(sx), np.floor(sy)
    fx, fy = sx - x0, sy - y0
    framed = np.zeros((count, height + 2, width + 2), np.float32)
    framed[:, 1:-1, 1:-1] = images
    flat = framed.ravel()
    stride = width + 2
    top_left = (y0.astype(np.int32) + 1) * stride + (x0.astype(np.int32) + 1)
    top_left += (np.arange(count, dtype=np.int32) * (height + 2) * stride)[:, None, None]

    def at(offset_index):
        return np.take(flat, top_left + offset_index)

    top = at(0) * (1 - fx) + at(1) * fx
    bottom = at(stride) * (1 - fx) + at(stride + 1) * fx
    return top * (1 - fy) + bottom * fy

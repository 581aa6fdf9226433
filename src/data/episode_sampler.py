"""N-way K-shot episodes drawn from the in-memory Omniglot array.

Randomness is drawn task by task from one seeded generator, and the images of a whole batch are then
gathered, rotated and converted at once. So the sequence of tasks depends only on the seed (not on
how it is cut into batches, nor on whether rotation is on) while a batch is gathered in one pass.
"""
import copy
import math

import numpy as np

from src.data.augment import random_affine
from src.model_utils.errors import UserError


def _int_arg(name, value, low, high=None, why=""):
    """Reject a bad argument in one line that names it and its valid range."""
    valid = (f">= {low}" if high is None else f"in [{low}, {high}]") + why
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UserError(f"{name} must be an integer {valid}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise UserError(f"{name}={value} is out of range: it must be {valid}")
    return int(value)


class EpisodeSampler:
    """Infinite stream of batches of few-shot tasks.

    Each task picks n_way distinct classes from class_ids in random order (class j gets label j, so
    the class-to-label map is a fresh random permutation per task) and k_spt + k_qry distinct drawers
    per class, split between support and query. With rotate, every class of the task is turned by its
    own random multiple of 90 degrees, the same for its support and query images: a rotated character
    counts as a new class (Finn et al. 2017). With affine, every image then gets its own small random
    distortion (src/data/augment.py), drawn from a generator seeded once per batch by the task generator,
    so that one saved state still resumes the exact stream.
    """

    def __init__(self, images, class_ids, n_way, k_spt, k_qry, task_num, rotate, seed, affine=False):
        if not isinstance(images, np.ndarray) or images.ndim != 4:
            got = getattr(images, "shape", type(images).__name__)
            raise UserError(f"images must be an array (classes, drawers, H, W), got {got}")
        num_classes, num_drawers, height, width = images.shape
        if rotate and height != width:
            raise UserError(f"rotation needs square images, got {height}x{width}")
        class_ids = np.asarray(class_ids)
        if class_ids.ndim != 1 or class_ids.size == 0 or not np.issubdtype(class_ids.dtype, np.integer):
            raise UserError("class_ids must be a non-empty 1-D array of integer class ids")
        if class_ids.min() < 0 or class_ids.max() >= num_classes:
            raise UserError(f"class_ids must lie in [0, {num_classes - 1}], "
                            f"got [{class_ids.min()}, {class_ids.max()}]")
        if np.unique(class_ids).size != class_ids.size:
            raise UserError("class_ids must not repeat a class")
        self.n_way = _int_arg("n_way", n_way, 1, class_ids.size, " (the number of classes to draw from)")
        self.k_spt = _int_arg("k_spt", k_spt, 1)
        self.k_qry = _int_arg("k_qry", k_qry, 1)
        if self.k_spt + self.k_qry > num_drawers:
            raise UserError(f"k_spt + k_qry = {self.k_spt + self.k_qry} exceeds the {num_drawers} drawers "
                            f"of each class: it must be in [2, {num_drawers}]")
        self.task_num = _int_arg("task_num", task_num, 1)
        self.seed = _int_arg("seed", seed, 0)
        self.images = images
        self.class_ids = class_ids.astype(np.int64)
        self.rotate = bool(rotate)
        self.affine = bool(affine)
        self._num_drawers = num_drawers
        self._rng = np.random.default_rng(self.seed)
        # numpy's float16 -> float32 cast is scalar code; for finite, non-negative float16 (all of
        # Omniglot) moving the bits into float32 position and scaling by 2**112 gives the identical
        # values, subnormals included, with vector operations only.
        self._bit_cast = images.dtype == np.float16 and images.view(np.uint16).max() < 0x7C00

    def _to_float32(self, blocks):
        if not self._bit_cast:
            return blocks.astype(np.float32)
        bits = blocks.view(np.uint16).astype(np.uint32)
        bits <<= 13
        out = bits.view(np.float32)
        out *= np.float32(2.0**112)
        return out

    def _draw_task(self):
        rng = self._rng
        classes = self.class_ids[rng.choice(self.class_ids.size, self.n_way, replace=False)]
        u = rng.random((self.n_way, self._num_drawers + 1))
        drawers = u[:, :-1].argsort(axis=1)[:, : self.k_spt + self.k_qry]
        # Drawn even without rotation so that rotate never changes which tasks are drawn.
        turns = (u[:, -1] * 4).astype(np.int64)
        return classes, drawers, turns

    def _batch(self, task_num):
        tasks = [self._draw_task() for _ in range(task_num)]
        classes, drawers, turns = (np.stack(parts) for parts in zip(*tasks))
        blocks = self.images[classes[:, :, None], drawers]  # (T, n_way, k_spt + k_qry, H, W)
        if self.rotate:
            for k in (1, 2, 3):
                sel = turns == k
                if sel.any():
                    blocks[sel] = np.rot90(blocks[sel], k, axes=(-2, -1))
        n, ks, kq = self.n_way, self.k_spt, self.k_qry
        shape = self.images.shape[2:]
        blocks = self._to_float32(blocks)
        if self.affine:
            distortions = np.random.default_rng(self._rng.integers(2**63))
            blocks = random_affine(blocks.reshape(-1, *shape), distortions).reshape(blocks.shape)
        x_spt = np.ascontiguousarray(blocks[:, :, :ks]).reshape(task_num, n * ks, 1, *shape)
        x_qry = np.ascontiguousarray(blocks[:, :, ks:]).reshape(task_num, n * kq, 1, *shape)
        y_spt = np.tile(np.repeat(np.arange(n, dtype=np.int32), ks), (task_num, 1))
        y_qry = np.tile(np.repeat(np.arange(n, dtype=np.int32), kq), (task_num, 1))
        return x_spt, y_spt, x_qry, y_qry

    def next_batch(self):
        """(x_spt, y_spt, x_qry, y_qry): float32 (T, n_way*k, 1, H, W) images, int32 (T, n_way*k) labels."""
        return self._batch(self.task_num)

    def get_state(self):
        """The generator state as a JSON-serialisable dict: saved with a checkpoint, it resumes the
        exact batch sequence."""
        return copy.deepcopy(self._rng.bit_generator.state)

    def set_state(self, state):
        try:
            self._rng.bit_generator.state = copy.deepcopy(state)
        except (TypeError, ValueError, KeyError) as err:
            raise UserError(f"invalid episode sampler state ({err}): it must come from get_state()") from None


def fixed_task_batches(images, class_ids, n_way, k_spt, k_qry, num_tasks, batch_size, rotate, seed):
    """The same num_tasks tasks on every call, in batches of batch_size (the last one may be smaller).

    Every evaluation of every checkpoint sees identical validation/test tasks; task i is the same
    whatever the batch size. Arguments are checked here, not on the first iteration.
    """
    num_tasks = _int_arg("num_tasks", num_tasks, 1)
    batch_size = _int_arg("batch_size", batch_size, 1)
    sampler = EpisodeSampler(images, class_ids, n_way, k_spt, k_qry, batch_size, rotate, seed)

    def batches():
        for i in range(math.ceil(num_tasks / batch_size)):
            yield sampler._batch(min(batch_size, num_tasks - i * batch_size))

    return batches()

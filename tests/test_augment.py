"""Meta-training augmentation: affine distortions (src/data/augment.py, EpisodeSampler(affine=True)) and rotations as
new classes on the background split; validation and test tasks are never augmented."""
import numpy as np
import pytest

from src.data.augment import random_affine
from src.data.episode_sampler import EpisodeSampler


def _stroke(size=28):
    """A thick cross off the centre: moves under any shift, rotation, shear or scale."""
    image = np.zeros((size, size), np.float32)
    image[6:22, 9:12] = 1.0
    image[12:15, 4:20] = 1.0
    return image


def test_distortions_are_small_and_vary_per_image():
    rng = np.random.default_rng(0)
    images = np.repeat(_stroke()[None], 200, axis=0)
    warped = random_affine(images, rng)
    assert warped.shape == images.shape and warped.dtype == np.float32
    changed = np.abs(warped - images).reshape(200, -1).max(axis=1) > 0.1
    assert 0.8 < changed.mean() < 1.0  # each of 4 parts applies with probability 1/2: about 1/16 untouched
    assert len({warped[i].tobytes() for i in range(200)}) > 180  # each image its own distortion
    # Small: the ink keeps most of its mass and stays where it was (Koch et al.'s ranges).
    mass = warped.reshape(200, -1).sum(axis=1) / images[0].sum()
    assert 0.6 < mass.min() and mass.max() < 1.5
    overlap = (warped * images).reshape(200, -1).sum(axis=1) / images[0].sum()
    assert np.median(overlap) > 0.5
    assert warped.min() >= 0.0 and warped.max() <= 1.0 + 1e-6


def _sampler(images, affine, rotate=False, seed=3):
    return EpisodeSampler(images, np.arange(images.shape[0]), 5, 1, 3, 4, rotate, seed, affine=affine)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return (rng.random((30, 20, 28, 28)) < 0.2).astype(np.float16)


def test_affine_sampler_is_seeded_and_resumes_exactly(images):
    a, b = _sampler(images, True), _sampler(images, True)
    for _ in range(2):
        for x, y in zip(a.next_batch(), b.next_batch()):
            np.testing.assert_array_equal(x, y)
    state = a.get_state()
    expected = a.next_batch()
    b.set_state(state)
    for x, y in zip(b.next_batch(), expected):
        np.testing.assert_array_equal(x, y)


def test_affine_sampler_distorts_images_and_keeps_labels(images):
    plain, distorted = _sampler(images, False).next_batch(), _sampler(images, True).next_batch()
    for part in (1, 3):  # the labels
        np.testing.assert_array_equal(plain[part], distorted[part])
    for part in (0, 2):
        assert plain[part].shape == distorted[part].shape
        assert np.abs(plain[part] - distorted[part]).max() > 0.5


def test_rotations_turn_each_class_as_a_whole(images):
    """rotate: a class's support and query images share one random quarter turn; the turns vary."""
    x_spt, y_spt, x_qry, y_qry = _sampler(images, False, rotate=True, seed=4).next_batch()
    plain = _sampler(images, False, rotate=False, seed=4).next_batch()
    turns = []
    for t in range(x_spt.shape[0]):
        for label in range(5):
            spt = x_spt[t, y_spt[t] == label, 0]
            upright = plain[0][t, plain[1][t] == label, 0]
            k = next(k for k in range(4) if np.array_equal(np.rot90(upright, k, axes=(-2, -1)), spt))
            np.testing.assert_array_equal(x_qry[t, y_qry[t] == label, 0],
                                          np.rot90(plain[2][t, plain[3][t] == label, 0], k, axes=(-2, -1)))
            turns.append(k)
    assert len(set(turns)) > 1


@pytest.mark.slow
def test_validation_is_never_augmented(omniglot_npy_dir, tmp_path):
    """A run with every augmentation on validates exactly as one without (same weights, same tasks), while
    its training batches differ."""
    from src.model_utils.config import load_config
    from src.engine.training import TrainingRun

    def training_run(name, augmented):
        flags = ["--augment_rotations", "--augment_affine"] if augmented else []
        cfg = load_config(["--data_path", str(omniglot_npy_dir), "--npy_dir", str(omniglot_npy_dir), "--split",
                           "background", "--output_dir", str(tmp_path / name), "--num_filters", "8",
                           "--val_tasks", "8", "--eval_batch", "8", "--update_step_test", "1", *flags])
        return TrainingRun(cfg)

    plain, augmented = training_run("plain", False), training_run("augmented", True)
    assert plain.validate() == augmented.validate()
    assert np.abs(plain.sampler.next_batch()[0] - augmented.sampler.next_batch()[0]).max() > 0.5

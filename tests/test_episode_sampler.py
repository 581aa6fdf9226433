"""EpisodeSampler and fixed_task_batches: task structure, rotation, determinism, argument checks.

Most tests use a synthetic array whose every image encodes its class id, its drawer id and, through
two corner markers, its orientation, so each sampled image can be traced back to its source.
"""
import json

import numpy as np
import pytest

from src.model_utils.errors import UserError
from src.data.episode_sampler import EpisodeSampler, fixed_task_batches

SIZE = 4
MARKER = 1000.0  # float16 holds the integers up to 2048 exactly


def make_images(num_classes=60, num_drawers=20):
    """images[c, d]: distinct markers, c at [1, 1] and d at [1, 2]; no rotation maps it onto itself."""
    images = np.empty((num_classes, num_drawers, SIZE, SIZE), np.float16)
    images[:] = MARKER + np.arange(SIZE * SIZE).reshape(SIZE, SIZE)
    images[:, :, 1, 1] = np.arange(num_classes)[:, None]
    images[:, :, 1, 2] = np.arange(num_drawers)[None, :]
    return images


def decode(image, images):
    """(class, drawer, quarter turns) of a sampled image, checking it is exactly a turned source image."""
    for k in range(4):
        upright = np.rot90(image, -k)
        if upright[0, 0] == MARKER and upright[0, 1] == MARKER + 1:
            c, d = int(upright[1, 1]), int(upright[1, 2])
            np.testing.assert_array_equal(upright, images[c, d].astype(np.float32))
            return c, d, k
    raise AssertionError("image is not a rotated source image")


def decode_batch(x, y, images):
    """Per task and label: [(class, drawer, turns)] for every image of that label."""
    tasks = []
    for t in range(x.shape[0]):
        by_label = {}
        for image, label in zip(x[t, :, 0], y[t]):
            by_label.setdefault(int(label), []).append(decode(image, images))
        tasks.append(by_label)
    return tasks


def sampler(images=None, class_ids=None, n_way=5, k_spt=1, k_qry=15, task_num=8, rotate=True, seed=0):
    images = make_images() if images is None else images
    class_ids = np.arange(images.shape[0]) if class_ids is None else class_ids
    return EpisodeSampler(images, class_ids, n_way, k_spt, k_qry, task_num, rotate, seed)


@pytest.mark.parametrize("n_way,k_spt,k_qry,task_num", [(5, 1, 15, 32), (20, 5, 5, 4), (3, 10, 10, 1)])
def test_shapes_and_dtypes(n_way, k_spt, k_qry, task_num):
    x_spt, y_spt, x_qry, y_qry = sampler(n_way=n_way, k_spt=k_spt, k_qry=k_qry,
                                         task_num=task_num).next_batch()
    assert x_spt.shape == (task_num, n_way * k_spt, 1, SIZE, SIZE) and x_spt.dtype == np.float32
    assert x_qry.shape == (task_num, n_way * k_qry, 1, SIZE, SIZE) and x_qry.dtype == np.float32
    assert y_spt.shape == (task_num, n_way * k_spt) and y_spt.dtype == np.int32
    assert y_qry.shape == (task_num, n_way * k_qry) and y_qry.dtype == np.int32
    assert all(a.flags.c_contiguous for a in (x_spt, y_spt, x_qry, y_qry))


@pytest.mark.parametrize("rotate", [True, False])
def test_tasks_are_well_formed(rotate):
    images = make_images()
    class_ids = np.arange(3, 60, 2)
    n_way, k_spt, k_qry = 5, 3, 4
    x_spt, y_spt, x_qry, y_qry = sampler(images, class_ids, n_way, k_spt, k_qry, task_num=64,
                                         rotate=rotate, seed=3).next_batch()
    turns_seen, label0_classes = set(), set()
    for spt, qry, ys, yq in zip(decode_batch(x_spt, y_spt, images), decode_batch(x_qry, y_qry, images),
                                y_spt, y_qry):
        assert sorted(ys.tolist()) == sorted(list(range(n_way)) * k_spt)
        assert sorted(yq.tolist()) == sorted(list(range(n_way)) * k_qry)
        task_classes = []
        for label in range(n_way):
            classes = {c for c, _, _ in spt[label] + qry[label]}
            assert len(classes) == 1, "support and query of one label must share one class"
            task_classes.append(classes.pop())
            drawers_spt = [d for _, d, _ in spt[label]]
            drawers_qry = [d for _, d, _ in qry[label]]
            assert len(set(drawers_spt + drawers_qry)) == k_spt + k_qry, "drawers must be distinct"
            turns = {k for _, _, k in spt[label] + qry[label]}
            assert len(turns) == 1, "one rotation per class of a task"
            turns_seen |= turns
        assert len(set(task_classes)) == n_way
        assert set(task_classes) <= set(class_ids.tolist())
        label0_classes.add(task_classes[0])
    assert turns_seen == ({0, 1, 2, 3} if rotate else {0})
    assert len(label0_classes) > 10, "labels must be assigned to classes at random"


def test_rotation_does_not_change_the_tasks():
    x_rot, y_rot, q_rot, _ = sampler(rotate=True, seed=5).next_batch()
    x_up, y_up, q_up, _ = sampler(rotate=False, seed=5).next_batch()
    images = make_images()
    for a, b in ((x_rot, x_up), (q_rot, q_up)):
        for image_rot, image_up in zip(a.reshape(-1, SIZE, SIZE), b.reshape(-1, SIZE, SIZE)):
            assert decode(image_rot, images)[:2] == decode(image_up, images)[:2]
    np.testing.assert_array_equal(y_rot, y_up)


def test_classes_and_rotations_cover_their_range():
    x, _, _, _ = sampler(class_ids=np.arange(20), k_spt=1, k_qry=1, task_num=400, seed=1).next_batch()
    decoded = [decode(image, make_images()) for image in x.reshape(-1, SIZE, SIZE)]
    classes = np.bincount([c for c, _, _ in decoded], minlength=20)
    turns = np.bincount([k for _, _, k in decoded], minlength=4)
    assert classes.min() > 0.5 * classes.mean()
    assert turns.min() > 0.2 * turns.sum()


def test_float16_values_are_converted_exactly():
    rng = np.random.default_rng(0)
    images = rng.random((10, 20, 6, 6)).astype(np.float16)
    images[0, :, 0] = np.array([0.0, 1.0, 6e-8, 3e-5, 6.1e-5, 0.5], np.float16)  # incl. float16 subnormals
    for imgs in (images, -images, images.astype(np.float32)):
        s = EpisodeSampler(imgs, np.arange(10), n_way=10, k_spt=10, k_qry=10, task_num=1, rotate=False,
                           seed=0)
        x_spt, _, x_qry, _ = s.next_batch()
        got = np.sort(np.concatenate([x_spt.ravel(), x_qry.ravel()]))
        np.testing.assert_array_equal(got, np.sort(imgs.astype(np.float32).ravel()))


def test_same_seed_same_batches_other_seed_other_batches():
    a, b, c = sampler(seed=7), sampler(seed=7), sampler(seed=8)
    for _ in range(3):
        batch_a, batch_b, batch_c = a.next_batch(), b.next_batch(), c.next_batch()
        for u, v in zip(batch_a, batch_b):
            np.testing.assert_array_equal(u, v)
        assert not np.array_equal(batch_a[0], batch_c[0])


def test_state_round_trip_resumes_the_same_batches():
    a = sampler(seed=11)
    a.next_batch()
    state = json.loads(json.dumps(a.get_state()))
    expected = [a.next_batch() for _ in range(2)]
    b = sampler(seed=99)
    b.set_state(state)
    for batch_a, batch_b in zip(expected, (b.next_batch(), b.next_batch())):
        for u, v in zip(batch_a, batch_b):
            np.testing.assert_array_equal(u, v)


def test_set_state_rejects_garbage():
    with pytest.raises(UserError, match="get_state"):
        sampler().set_state({"bit_generator": "MT19937"})


def test_fixed_task_batches_are_fixed_and_independent_of_batch_size():
    images = make_images()
    args = dict(images=images, class_ids=np.arange(40), n_way=5, k_spt=1, k_qry=5, num_tasks=23, rotate=True,
                seed=4)
    first = list(fixed_task_batches(batch_size=10, **args))
    again = list(fixed_task_batches(batch_size=10, **args))
    assert [b[0].shape[0] for b in first] == [10, 10, 3]
    for batch_1, batch_2 in zip(first, again, strict=True):
        for u, v in zip(batch_1, batch_2):
            np.testing.assert_array_equal(u, v)
    whole = list(fixed_task_batches(batch_size=64, **args))
    assert len(whole) == 1
    for i in range(4):
        np.testing.assert_array_equal(np.concatenate([b[i] for b in first]), whole[0][i])


@pytest.mark.parametrize("changes,match", [
    (dict(n_way=61), r"n_way=61 .*\[1, 60\]"),
    (dict(n_way=0), r"n_way=0 .*\[1, 60\]"),
    (dict(k_spt=0), r"k_spt=0 .*>= 1"),
    (dict(k_qry=0), r"k_qry=0 .*>= 1"),
    (dict(k_spt=5, k_qry=16), r"k_spt \+ k_qry = 21 exceeds the 20 drawers"),
    (dict(task_num=0), r"task_num=0 .*>= 1"),
    (dict(task_num=2.5), r"task_num must be an integer"),
    (dict(seed=-1), r"seed=-1 .*>= 0"),
    (dict(class_ids=np.array([0, 60])), r"class_ids must lie in \[0, 59\]"),
    (dict(class_ids=np.array([1, 1, 2])), r"class_ids must not repeat"),
    (dict(class_ids=np.array([], int)), r"class_ids must be a non-empty"),
    (dict(images=np.zeros((3, 20, 4, 5), np.float16), class_ids=np.arange(3), n_way=2), r"square images"),
])
def test_bad_arguments(changes, match):
    with pytest.raises(UserError, match=match):
        sampler(**changes)


@pytest.mark.parametrize("changes,match", [
    (dict(num_tasks=0), "num_tasks=0"), (dict(batch_size=0), "batch_size=0"), (dict(n_way=100), "n_way=100")])
def test_fixed_task_batches_checks_arguments_at_once(changes, match):
    args = dict(images=make_images(), class_ids=np.arange(60), n_way=5, k_spt=1, k_qry=1, num_tasks=10,
                batch_size=5, rotate=False, seed=0)
    with pytest.raises(UserError, match=match):
        fixed_task_batches(**{**args, **changes})


def test_real_omniglot_images_and_rotations(omniglot_npy_dir):
    from src.data.npy_cache import load_omniglot
    from src.data.splits import split_class_ids

    data = load_omniglot(omniglot_npy_dir)
    train = split_class_ids(data.classes, "finn")["train"]
    sources = {data.images[c, d].tobytes(): c for c in train for d in range(data.images.shape[1])}
    x_up, y_up, q_up, _ = EpisodeSampler(data.images, train, 5, 1, 15, 32, rotate=False, seed=2).next_batch()
    x_rot, _, q_rot, _ = EpisodeSampler(data.images, train, 5, 1, 15, 32, rotate=True, seed=2).next_batch()
    for t in range(32):
        upright = np.concatenate([x_up[t].reshape(5, 1, 28, 28), q_up[t].reshape(5, 15, 28, 28)], axis=1)
        turned = np.concatenate([x_rot[t].reshape(5, 1, 28, 28), q_rot[t].reshape(5, 15, 28, 28)], axis=1)
        for label in range(5):
            classes = {sources.get(image.astype(np.float16).tobytes()) for image in upright[label]}
            assert len(classes) == 1 and None not in classes
            assert any(np.array_equal(np.rot90(upright[label], k, axes=(-2, -1)), turned[label])
                       for k in range(4))
    assert not np.array_equal(x_up, x_rot)

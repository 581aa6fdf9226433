"""Loading omniglot.npy and the meta-train/val/test class splits."""
import json
import shutil

import numpy as np
import pytest

from src.data.dataset import prepare_omniglot
from src.data.npy_cache import load_omniglot
from src.data.splits import BACKGROUND_VAL_ALPHABETS, SPLITS, split_class_ids, split_rotates, split_sizes
from src.model_utils.errors import UserError


@pytest.fixture(scope="module")
def omniglot(omniglot_npy_dir):
    return load_omniglot(omniglot_npy_dir)


def write_fake(folder, images=None, index_changes=None, num_classes=3, imgsz=4):
    """A small omniglot.npy + index in the real format, optionally with some index fields changed."""
    folder.mkdir(parents=True, exist_ok=True)
    if images is None:
        images = np.zeros((num_classes, 20, imgsz, imgsz), np.float16)
    np.save(folder / "omniglot.npy", images)
    index = {"format_version": 1, "imgsz": imgsz, "num_classes": num_classes, "num_drawers": 20, "source": {},
             "classes": [{"set": "background", "alphabet": "A", "character": f"character{i:02d}"}
                         for i in range(num_classes)]}
    index.update(index_changes or {})
    (folder / "omniglot_index.json").write_text(json.dumps(index))
    return folder


def test_real_data_layout(omniglot):
    assert omniglot.images.shape == (1623, 20, 28, 28) and omniglot.images.dtype == np.float16
    assert omniglot.imgsz == 28
    sets = [c["set"] for c in omniglot.classes]
    assert sets.count("background") == 964 and sets.count("evaluation") == 659
    assert 0.0 <= float(omniglot.images.min()) and float(omniglot.images.max()) <= 1.0


def test_split_sizes():
    assert split_sizes("finn") == {"train": 1100, "val": 100, "test": 423}
    background = split_sizes("background")
    assert background["train"] + background["val"] == 964 and background["test"] == 659
    assert 100 <= background["val"] <= 150
    assert split_rotates("finn") and not split_rotates("background")


@pytest.mark.parametrize("split", SPLITS)
def test_splits_are_disjoint_sorted_and_cover_everything(omniglot, split):
    parts = split_class_ids(omniglot.classes, split)
    assert {name: len(ids) for name, ids in parts.items()} == split_sizes(split)
    every = np.concatenate(list(parts.values()))
    assert np.array_equal(np.sort(every), np.arange(1623))
    for ids in parts.values():
        assert np.all(np.diff(ids) > 0)


def test_finn_split_is_fixed(omniglot):
    first = split_class_ids(omniglot.classes, "finn")
    second = split_class_ids(list(omniglot.classes), "finn")
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    # Pinned so that a numpy change to the seeded permutation cannot silently move classes between splits.
    assert first["val"][:10].tolist() == [6, 18, 29, 45, 52, 81, 92, 98, 116, 121]
    assert first["test"][:5].tolist() == [2, 8, 11, 12, 13]


def test_background_split_holds_out_whole_alphabets(omniglot):
    parts = split_class_ids(omniglot.classes, "background")
    classes = omniglot.classes
    assert all(classes[i]["set"] == "evaluation" for i in parts["test"])
    assert all(classes[i]["set"] == "background" for i in np.concatenate([parts["train"], parts["val"]]))
    val_alphabets = {classes[i]["alphabet"] for i in parts["val"]}
    train_alphabets = {classes[i]["alphabet"] for i in parts["train"]}
    assert val_alphabets == set(BACKGROUND_VAL_ALPHABETS)
    assert not val_alphabets & train_alphabets
    assert len(train_alphabets) == 30 - len(BACKGROUND_VAL_ALPHABETS)


def test_background_val_alphabets_follow_the_documented_rule(omniglot):
    counts = {}
    for c in omniglot.classes:
        if c["set"] == "background":
            counts[c["alphabet"]] = counts.get(c["alphabet"], 0) + 1
    names = sorted(counts)
    chosen = {}
    for i in np.random.default_rng(1).permutation(len(names)):
        chosen[names[i]] = counts[names[i]]
        if sum(chosen.values()) >= 100:
            break
    assert chosen == BACKGROUND_VAL_ALPHABETS


def test_split_argument_errors(omniglot):
    with pytest.raises(UserError, match="unknown split 'lake'.*finn, background"):
        split_sizes("lake")
    with pytest.raises(UserError, match="lists 1000 classes"):
        split_class_ids(omniglot.classes[:1000], "finn")


def test_missing_files(tmp_path):
    with pytest.raises(UserError, match=r"omniglot.npy not found in .*src/data_preprocess.py --data_path"):
        load_omniglot(tmp_path / "nowhere")
    write_fake(tmp_path).joinpath("omniglot_index.json").unlink()
    with pytest.raises(UserError, match="omniglot_index.json not found"):
        load_omniglot(tmp_path)


def test_corrupt_npy(tmp_path):
    write_fake(tmp_path)
    (tmp_path / "omniglot.npy").write_bytes(b"\x93NUMPY garbage" * 10)
    with pytest.raises(UserError, match="cannot read .*omniglot.npy.*data_preprocess.py"):
        load_omniglot(tmp_path)
    (tmp_path / "omniglot.npy").write_bytes(b"<html>not found</html>")
    with pytest.raises(UserError, match="not a .npy file"):
        load_omniglot(tmp_path)
    write_fake(tmp_path)
    npy = tmp_path / "omniglot.npy"
    npy.write_bytes(npy.read_bytes()[:-100])
    with pytest.raises(UserError, match="cannot read"):
        load_omniglot(tmp_path)


def test_pickled_npy_is_refused(tmp_path):
    write_fake(tmp_path)
    np.save(tmp_path / "omniglot.npy", np.array([{"not": "images"}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="cannot read"):
        load_omniglot(tmp_path)


@pytest.mark.parametrize("images,changes,match", [
    (np.zeros((4, 20, 4, 4), np.float16), {}, r"expects float16 \(3, 20, 4, 4\)"),
    (np.zeros((3, 20, 4, 4), np.float32), {}, "holds float32"),
    (None, {"imgsz": 5}, r"\(3, 20, 5, 5\)"),
    (None, {"num_classes": 7}, "num_classes differs"),
    (None, {"format_version": 2}, "format_version 2"),
    (None, {"classes": None}, "malformed"),
    (None, {"classes": [{"set": "background", "alphabet": "A", "character": "c"}] * 2 + [["background"]]},
     r"malformed \(class 2 is not an object with string fields set, alphabet, character\)"),
    (None, {"classes": [{"set": "background", "alphabet": "A"}] * 3}, "malformed .*class 0 is not an object"),
])
def test_index_and_npy_must_agree(tmp_path, images, changes, match):
    write_fake(tmp_path, images, changes)
    with pytest.raises(UserError, match=match):
        load_omniglot(tmp_path)


def test_unreadable_index(tmp_path):
    write_fake(tmp_path).joinpath("omniglot_index.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read .*omniglot_index.json"):
        load_omniglot(tmp_path)


def test_real_index_with_wrong_npy(tmp_path, omniglot_npy_dir):
    shutil.copy(omniglot_npy_dir / "omniglot_index.json", tmp_path)
    np.save(tmp_path / "omniglot.npy", np.zeros((1623, 20, 32, 32), np.float16))
    with pytest.raises(UserError, match=r"expects float16 \(1623, 20, 28, 28\).*delete both files"):
        load_omniglot(tmp_path)


def test_prepare_uses_a_folder_holding_only_the_npy(tmp_path, omniglot_npy_dir, omniglot):
    for name in ("omniglot.npy", "omniglot_index.json"):
        shutil.copy(omniglot_npy_dir / name, tmp_path)
    data = prepare_omniglot(tmp_path, log=pytest.fail)
    np.testing.assert_array_equal(data.images, omniglot.images)
    assert data.classes == omniglot.classes
    data = prepare_omniglot(tmp_path / "no_raw_here", npy_dir=tmp_path, log=pytest.fail)
    assert data.images.shape == omniglot.images.shape
    with pytest.raises(UserError, match="holds 28x28 images but imgsz 84 was requested.*--imgsz 84"):
        prepare_omniglot(tmp_path, imgsz=84)


def test_prepare_reuses_an_up_to_date_build(omniglot_root, omniglot_npy_dir, omniglot):
    messages = []
    data = prepare_omniglot(omniglot_root, npy_dir=omniglot_npy_dir, log=messages.append)
    assert any("up to date" in m for m in messages)
    np.testing.assert_array_equal(data.images, omniglot.images)


def test_prepare_without_any_data(tmp_path):
    with pytest.raises(UserError, match=r"no Omniglot data: .*has no raw/ folder"):
        prepare_omniglot(tmp_path / "empty", npy_dir=tmp_path / "also_empty")

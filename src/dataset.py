"""Omniglot as one array, and the fixed meta-train/val/test class splits.

Two split protocols are supported:

- ``finn`` (Finn et al. 2017, after Santoro et al. 2016): all 1623 characters shuffled once with a
  fixed seed, 1100 for meta-training, 100 for validation, 423 for testing; every class of a task is
  rotated by a random multiple of 90 degrees.
- ``background`` (Lake et al. 2015): the 964 background characters are for training (minus a few
  whole alphabets held out for validation), the 659 evaluation characters for testing; no rotation.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.data_preprocess import CLASS_KEYS, EXPECTED_CLASSES, FORMAT_VERSION, INDEX_NAME, NPY_NAME, build_omniglot
from src.errors import UserError

SPLITS = ("finn", "background")

NUM_BACKGROUND = EXPECTED_CLASSES["background"]
NUM_EVALUATION = EXPECTED_CLASSES["evaluation"]
NUM_CLASSES = NUM_BACKGROUND + NUM_EVALUATION

FINN_SEED = 1
FINN_SIZES = {"train": 1100, "val": 100, "test": 423}

# Background alphabets held out for validation, with their character counts. Chosen once by
# np.random.default_rng(1).permutation over the 30 sorted background alphabet names, taking
# alphabets in that order until they held at least 100 characters; written out so they never change.
# Whole alphabets (not single characters) so validation measures transfer to unseen alphabets,
# as the test set does.
BACKGROUND_VAL_ALPHABETS = {
    "Latin": 26,
    "Hebrew": 22,
    "Blackfoot_(Canadian_Aboriginal_Syllabics)": 14,
    "Anglo-Saxon_Futhorc": 29,
    "Armenian": 41,
}
_BACKGROUND_VAL = sum(BACKGROUND_VAL_ALPHABETS.values())


def _check_split(split):
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")


def split_sizes(split):
    """Class counts per part, known without the data so a config can be checked before loading it."""
    _check_split(split)
    if split == "finn":
        return dict(FINN_SIZES)
    return {"train": NUM_BACKGROUND - _BACKGROUND_VAL, "val": _BACKGROUND_VAL, "test": NUM_EVALUATION}


def split_rotates(split):
    """Finn's protocol augments tasks with 90-degree rotations; Lake's uses the images as drawn."""
    _check_split(split)
    return split == "finn"


def split_class_ids(classes, split):
    """Class ids (rows of omniglot.npy) of each part, sorted; the same on every call and machine."""
    _check_split(split)
    sets = np.array([c["set"] for c in classes])
    n_bg = int(np.sum(sets == "background"))
    n_ev = int(np.sum(sets == "evaluation"))
    if (len(classes), n_bg, n_ev) != (NUM_CLASSES, NUM_BACKGROUND, NUM_EVALUATION):
        raise UserError(
            f"the Omniglot index lists {len(classes)} classes ({n_bg} background, {n_ev} evaluation), "
            f"expected {NUM_CLASSES} ({NUM_BACKGROUND} + {NUM_EVALUATION}): rebuild omniglot.npy from "
            "the full Omniglot release")
    if split == "finn":
        perm = np.random.default_rng(FINN_SEED).permutation(NUM_CLASSES)
        cut1 = FINN_SIZES["train"]
        cut2 = cut1 + FINN_SIZES["val"]
        parts = {"train": perm[:cut1], "val": perm[cut1:cut2], "test": perm[cut2:]}
    else:
        alphabets = np.array([c["alphabet"] for c in classes])
        held_out = (sets == "background") & np.isin(alphabets, list(BACKGROUND_VAL_ALPHABETS))
        for name, count in BACKGROUND_VAL_ALPHABETS.items():
            found = int(np.sum(held_out & (alphabets == name)))
            if found != count:
                raise UserError(
                    f"validation alphabet {name!r} has {found} characters in the Omniglot index, "
                    f"expected {count}: rebuild omniglot.npy from the official Omniglot release")
        parts = {
            "train": np.flatnonzero((sets == "background") & ~held_out),
            "val": np.flatnonzero(held_out),
            "test": np.flatnonzero(sets == "evaluation"),
        }
    return {name: np.sort(ids).astype(np.int64) for name, ids in parts.items()}


@dataclass
class OmniglotData:
    """The whole dataset in memory: images[class_id, drawer] is one (imgsz, imgsz) image, ink = 1."""

    images: np.ndarray
    classes: list
    imgsz: int


def _rebuild_hint(npy_dir):
    return f"run python src/data_preprocess.py --data_path OMNIGLOT_ROOT --output_path {npy_dir}"


def load_omniglot(npy_dir):
    """Load omniglot.npy and its index, refusing anything the rest of the code could misread."""
    npy_dir = Path(npy_dir)
    npy_path = npy_dir / NPY_NAME
    index_path = npy_dir / INDEX_NAME
    hint = _rebuild_hint(npy_dir)
    for path in (npy_path, index_path):
        if not path.is_file():
            raise UserError(f"{path.name} not found in {npy_dir}: {hint}")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {index_path} ({err}): delete it and {hint}") from None
    if not isinstance(index, dict) or index.get("format_version") != FORMAT_VERSION:
        version = index.get("format_version") if isinstance(index, dict) else None
        raise UserError(
            f"{index_path} has format_version {version!r}, this code reads {FORMAT_VERSION}: "
            f"delete it and {hint}")
    try:
        imgsz = int(index["imgsz"])
        classes = list(index["classes"])
        num_drawers = int(index["num_drawers"])
        if int(index["num_classes"]) != len(classes):
            raise ValueError("num_classes differs from the number of classes listed")
        for number, entry in enumerate(classes):
            if not (isinstance(entry, dict) and all(isinstance(entry.get(key), str) for key in CLASS_KEYS)):
                raise ValueError(f"class {number} is not an object with string fields {', '.join(CLASS_KEYS)}")
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{index_path} is malformed ({err}): delete it and {hint}") from None
    try:
        with open(npy_path, "rb") as f:
            is_npy = f.read(6) == b"\x93NUMPY"
        images = np.load(npy_path, allow_pickle=False) if is_npy else None
    except (OSError, ValueError, EOFError) as err:
        raise UserError(f"cannot read {npy_path} ({err}): delete it and {hint}") from None
    if images is None:
        raise UserError(f"cannot read {npy_path}: it is not a .npy file; delete it and {hint}")
    expected = (len(classes), num_drawers, imgsz, imgsz)
    if images.dtype != np.float16 or images.shape != expected:
        raise UserError(
            f"{npy_path} holds {images.dtype} {images.shape}, but its index expects float16 {expected}: "
            f"delete both files and {hint}")
    return OmniglotData(images=images, classes=classes, imgsz=imgsz)


def _has_omniglot_source(data_path):
    return any((data_path / name).is_dir() for name in ("raw", "processed"))


def check_omniglot_data(data_path, npy_dir=""):
    """(has the raw Omniglot, the folder of omniglot.npy): the data a run reads, refused at once when there is
    neither the raw Omniglot in data_path nor an omniglot.npy in npy_dir (default: data_path)."""
    data_path = Path(data_path)
    out_dir = Path(npy_dir) if npy_dir else data_path
    has_source = _has_omniglot_source(data_path)
    if not has_source and not ((out_dir / NPY_NAME).is_file() and (out_dir / INDEX_NAME).is_file()):
        raise UserError(
            f"no Omniglot data: {data_path} has no raw/ folder with images_background.zip and "
            f"images_evaluation.zip, and {out_dir} has no {NPY_NAME}: set data_path to the "
            "Omniglot root")
    return has_source, out_dir


def prepare_omniglot(data_path, npy_dir="", imgsz=28, log=print):
    """Return the dataset, building omniglot.npy first when it is missing or stale.

    npy_dir defaults to data_path. A folder that holds only omniglot.npy and its index (e.g. copied to
    a machine without the raw zips) is used as is.
    """
    has_source, out_dir = check_omniglot_data(data_path, npy_dir)
    if has_source:
        build_omniglot(data_path, out_dir, imgsz=imgsz, log=log, output_option="--npy_dir")
    data = load_omniglot(out_dir)
    if data.imgsz != imgsz:
        raise UserError(
            f"{out_dir / NPY_NAME} holds {data.imgsz}x{data.imgsz} images but imgsz {imgsz} was "
            f"requested: set imgsz to {data.imgsz}, or rebuild it: {_rebuild_hint(out_dir)} --imgsz {imgsz}")
    return data

"""The fixed meta-train/val/test class splits of Omniglot.

Two split protocols are supported:

- ``finn`` (Finn et al. 2017, after Santoro et al. 2016): all 1623 characters shuffled once with a
  fixed seed, 1100 for meta-training, 100 for validation, 423 for testing; every class of a task is
  rotated by a random multiple of 90 degrees.
- ``background`` (Lake et al. 2015): the 964 background characters are for training (minus a few
  whole alphabets held out for validation), the 659 evaluation characters for testing; no rotation.
"""
import numpy as np

from src.data.release import EXPECTED_CLASSES
from src.model_utils.errors import UserError

SPLITS = ("finn", "background")
# The class sets eval.py may score: meta-test, or the validation classes training selects best.ckpt on.
EVAL_SPLITS = ("test", "val")

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

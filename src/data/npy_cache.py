"""omniglot.npy and its index omniglot_index.json: the one cache of the decoded release, written and read here.

The array is (classes, drawers, imgsz, imgsz) float16 ink maps, one row per class in the release's canonical
order; the index, written last, names every class and fingerprints the inputs, so that a rebuild is needed only
when the data or the image size changes, and an interrupted write is never taken for a complete cache.
"""
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.data.release import NUM_DRAWERS
from src.model_utils.atomic_file import write_atomic
from src.model_utils.errors import UserError

FORMAT_VERSION = 1
NPY_NAME = "omniglot.npy"
INDEX_NAME = "omniglot_index.json"
REDRAWN_NAMES = ("omniglot_redrawn.npy", "omniglot_redrawn_index.json")  # the `redraw` setting's cache, beside the other
CLASS_KEYS = ("set", "alphabet", "character")  # the fields of each class in the index


@dataclass
class OmniglotData:
    """The whole dataset in memory: images[class_id, drawer] is one (imgsz, imgsz) image, ink = 1."""

    images: np.ndarray
    classes: list
    imgsz: int


def cache_files(out_dir, redraw=False):
    """(npy path, index path) of the cache in out_dir: the originals' or, with `redraw`, the redrawn images'."""
    npy_name, index_name = REDRAWN_NAMES if redraw else (NPY_NAME, INDEX_NAME)
    return Path(out_dir) / npy_name, Path(out_dir) / index_name


def make_index(sources, imgsz, fingerprint, redraw=False):
    classes = [{"set": set_name, "alphabet": alphabet, "character": character}
               for set_name, _, entries in sources for alphabet, character, _ in entries]
    return {"format_version": FORMAT_VERSION, "imgsz": imgsz, "resample": "lanczos",
            "num_classes": len(classes), "num_drawers": NUM_DRAWERS, "source": fingerprint, "redrawn": redraw,
            "classes": classes}


def is_up_to_date(out_dir, imgsz, fingerprint, redraw=False):
    """Trust the cache only if the index (written last) matches, the npy header agrees with it and the file holds
    all the data the header announces (memory-mapping a truncated file fails)."""
    npy_path, index_path = cache_files(out_dir, redraw)
    try:
        index = json.loads(index_path.read_text())
        header = np.load(npy_path, mmap_mode="r")
        shape, dtype = header.shape, header.dtype
        del header
    except (OSError, ValueError, EOFError):
        return False
    return (isinstance(index, dict) and index.get("format_version") == FORMAT_VERSION
            and index.get("imgsz") == imgsz and index.get("resample") == "lanczos"
            and index.get("source") == fingerprint and index.get("redrawn", False) == redraw
            and shape == (index.get("num_classes"), NUM_DRAWERS, imgsz, imgsz) and dtype == np.float16)


def _npy_header(path):
    """(shape, dtype) from a .npy file's header, None if it has none; the data itself is not read."""
    try:
        with open(path, "rb") as f:
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(np.lib.format.read_magic(f))
            if read_header is None:
                return None
            shape, _, dtype = read_header(f)
    except (OSError, ValueError, EOFError):
        return None
    return shape, dtype


def check_replaceable(npy_path, output_option):
    """A rebuild replaces only an omniglot.npy of this package (float16, one row of 20 square images per
    class): MAML-Pytorch, for one, keeps its own omniglot.npy in the same Omniglot root."""
    if not (npy_path.exists() or npy_path.is_symlink()):
        return
    header = _npy_header(npy_path)
    if header is None:
        found = "it is not a .npy file"
    elif not (header[1] == np.float16 and len(header[0]) == 4 and header[0][1] == NUM_DRAWERS
              and header[0][2] == header[0][3]):
        found = (f"it holds {header[1]} {tuple(header[0])}, this package writes float16 "
                 f"(classes, {NUM_DRAWERS}, size, size)")
    else:
        return
    raise UserError(f"{npy_path} was not written by this package ({found}): it is left untouched; move it, "
                    f"or pass {output_option} another folder")


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(out_dir, array, index, fix):
    """npy first, index last: the index marks a complete cache, so drop the old one before touching the npy."""
    npy_path, index_path = cache_files(out_dir, index["redrawn"])
    index_path.unlink(missing_ok=True)
    write_atomic(npy_path, lambda f: np.save(f, array, allow_pickle=False), fix)
    write_atomic(index_path, lambda f: f.write(json.dumps(index, indent=1).encode() + b"\n"), fix)
    _fsync_dir(out_dir)


def rebuild_hint(npy_dir, redraw=False):
    return (f"run python src/data_preprocess.py --data_path OMNIGLOT_ROOT --output_path {npy_dir}"
            + (" --redraw" if redraw else ""))


def _read_index(index_path, hint):
    """(imgsz, classes, drawers) of an index, every field checked."""
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
    return imgsz, classes, num_drawers


def load_omniglot(npy_dir, redraw=False):
    """Load omniglot.npy (with `redraw`, omniglot_redrawn.npy) and its index, refusing anything the rest of the
    code could misread."""
    npy_dir = Path(npy_dir)
    npy_path, index_path = cache_files(npy_dir, redraw)
    hint = rebuild_hint(npy_dir, redraw)
    for path in (npy_path, index_path):
        if not path.is_file():
            raise UserError(f"{path.name} not found in {npy_dir}: {hint}")
    imgsz, classes, num_drawers = _read_index(index_path, hint)
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

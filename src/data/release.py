"""The Omniglot release as published: its two zips (raw/) or their extracted folders (processed/), listed in
one canonical order, checked for completeness and read image by image."""
import os
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path

from src.model_utils.errors import UserError

SETS = ("background", "evaluation")
EXPECTED_CLASSES = {"background": 964, "evaluation": 659}
NUM_DRAWERS = 20
SOURCE_SIZE = 105


def zip_path(root, set_name):
    return root / "raw" / f"images_{set_name}.zip"


def folder_path(root, set_name):
    return root / "processed" / f"images_{set_name}"


def detect_layout(root):
    """Prefer the zips: they are the official, checksummable release."""
    if all(zip_path(root, s).is_file() for s in SETS):
        return "raw"
    if all(folder_path(root, s).is_dir() for s in SETS):
        return "processed"
    raise UserError(
        f"no Omniglot data in {root}: expected raw/images_background.zip and raw/images_evaluation.zip,"
        " or the folders processed/images_background/ and processed/images_evaluation/"
        " (pass --download to fetch the zips)")


def _folder_stats(folder):
    """(file count, latest mtime_ns of any file or folder): cheap to compute, changes on any edit."""
    count, latest = 0, folder.stat().st_mtime_ns
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            try:
                latest = max(latest, os.stat(path).st_mtime_ns)
            except OSError as err:  # e.g. a broken link
                raise UserError(f"cannot read {path} ({err.strerror or err}): repair or remove it") from None
        count += len(filenames)
    return count, latest


def fingerprint(root, layout):
    """What a cache built from the release depends on; stat-only so that the up-to-date check stays fast."""
    source = {"layout": layout}
    for set_name in SETS:
        if layout == "raw":
            st = zip_path(root, set_name).stat()
            source[f"images_{set_name}.zip"] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        else:
            count, latest = _folder_stats(folder_path(root, set_name))
            source[f"images_{set_name}"] = {"files": count, "latest_mtime_ns": latest}
    return source


def _group_classes(paths):
    """Group 'alphabet/character/file.png' paths into sorted classes; hidden entries are ignored."""
    classes = {}
    for path in paths:
        parts = path.split("/")
        if len(parts) != 3 or not parts[2].lower().endswith(".png"):
            continue
        if any(p.startswith(".") for p in parts):
            continue
        classes.setdefault((parts[0], parts[1]), []).append(path)
    # paths of one class share their 'alphabet/character/' prefix, so this sorts drawers by file name
    return [(alphabet, character, sorted(classes[alphabet, character])) for alphabet, character in sorted(classes)]


def _list_zip(path, set_name):
    prefix = f"images_{set_name}/"
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise UserError(f"{path} is not a readable zip ({err}): delete it and download it again"
                        " (e.g. with --download)") from None
    relative = [n[len(prefix):] for n in names if n.startswith(prefix)]
    return [(a, c, [prefix + p for p in files]) for a, c, files in _group_classes(relative)]


def _list_folder(folder):
    relative = [Path(dirpath, name).relative_to(folder).as_posix()
                for dirpath, _, filenames in os.walk(folder) for name in filenames]
    return [(a, c, [str(folder / p) for p in files]) for a, c, files in _group_classes(relative)]


def list_sources(root, layout):
    """[(set, container zip or None, [(alphabet, character, [image refs])])] in the canonical order."""
    sources = []
    for set_name in SETS:
        if layout == "raw":
            container = zip_path(root, set_name)
            classes = _list_zip(container, set_name)
        else:
            container = None
            classes = _list_folder(folder_path(root, set_name))
        _check_counts(set_name, container or folder_path(root, set_name), classes)
        sources.append((set_name, container, classes))
    return sources


def list_omniglot(data_path):
    """Every class as (its index entry, [(container zip or None, image ref, display name)] per drawer),
    in the order of omniglot.npy's rows, straight from the raw data."""
    root = Path(data_path)
    listed = []
    for set_name, container, entries in list_sources(root, detect_layout(root)):
        for alphabet, character, refs in entries:
            where = [f"{container}:{ref}" if container else ref for ref in refs]
            listed.append(({"set": set_name, "alphabet": alphabet, "character": character},
                           [(container, ref, w) for ref, w in zip(refs, where)]))
    return listed


def _check_counts(set_name, where, classes):
    """Catch incomplete downloads or extractions before spending time on decoding."""
    expected = EXPECTED_CLASSES[set_name]
    if len(classes) != expected:
        raise UserError(f"{where} holds {len(classes)} characters under images_{set_name}/,"
                        f" expected {expected}: the data set is incomplete; download or extract it again")
    for alphabet, character, files in classes:
        if len(files) != NUM_DRAWERS:
            raise UserError(f"{where}: character images_{set_name}/{alphabet}/{character} has {len(files)}"
                            f" drawings, expected {NUM_DRAWERS}: the data set is damaged;"
                            " download or extract it again")


@lru_cache(maxsize=None)
def _open_zip(path):
    """One handle per zip and process, reused across that process's reads (the decoder workers')."""
    return zipfile.ZipFile(path)


def read_source(container, ref, where):
    """The bytes of one original image (a zip member or a file)."""
    try:
        return _open_zip(container).read(ref) if container else Path(ref).read_bytes()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise UserError(f"cannot read {where} ({err}): the file is corrupt;"
                        " download or extract the data again") from None

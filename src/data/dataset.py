"""The data a run reads: omniglot.npy (omniglot_redrawn.npy with `redraw`), built from the raw release first when it
is missing or stale."""
from pathlib import Path

from src.data.npy_cache import cache_files, load_omniglot, rebuild_hint
from src.data_preprocess import build_omniglot
from src.model_utils.errors import UserError


def _has_omniglot_source(data_path):
    return any((data_path / name).is_dir() for name in ("raw", "processed"))


def check_omniglot_data(data_path, npy_dir="", redraw=False):
    """(has the raw Omniglot, the folder of omniglot.npy): the data a run reads, refused at once when there is
    neither the raw Omniglot in data_path nor an omniglot.npy (with `redraw`, omniglot_redrawn.npy) in npy_dir
    (default: data_path)."""
    data_path = Path(data_path)
    out_dir = Path(npy_dir) if npy_dir else data_path
    has_source = _has_omniglot_source(data_path)
    npy_path, index_path = cache_files(out_dir, redraw)
    if not has_source and not (npy_path.is_file() and index_path.is_file()):
        why = (" (redraw is true, from the checkpoint or the settings: build it with python src/data_preprocess.py "
               "--redraw, or pass --redraw false)") if redraw else ""
        raise UserError(
            f"no Omniglot data: {data_path} has no raw/ folder with images_background.zip and "
            f"images_evaluation.zip, and {out_dir} has no {npy_path.name}{why}: set data_path to the "
            "Omniglot root")
    return has_source, out_dir


def prepare_omniglot(data_path, npy_dir="", imgsz=28, log=print, redraw=False):
    """Return the dataset, building omniglot.npy first when it is missing or stale.

    npy_dir defaults to data_path. A folder that holds only omniglot.npy and its index (e.g. copied to
    a machine without the raw zips) is used as is.
    """
    has_source, out_dir = check_omniglot_data(data_path, npy_dir, redraw)
    if has_source:
        build_omniglot(data_path, out_dir, imgsz=imgsz, log=log, output_option="--npy_dir", redraw=redraw)
    data = load_omniglot(out_dir, redraw)
    if data.imgsz != imgsz:
        raise UserError(
            f"{cache_files(out_dir, redraw)[0]} holds {data.imgsz}x{data.imgsz} images but imgsz {imgsz} was "
            f"requested: set imgsz to {data.imgsz}, or rebuild it: {rebuild_hint(out_dir, redraw)} --imgsz {imgsz}")
    return data


def prepare_omniglot_for(cfg, log=print):
    """The dataset a run with the settings cfg reads (its data_path, npy_dir, imgsz and redraw)."""
    return prepare_omniglot(cfg.data_path, cfg.npy_dir, cfg.imgsz, log, cfg.redraw)

"""Turn the Omniglot image zips into one float16 array that MAML training loads in one read.

Decoding 32,460 PNGs at every training start would cost more than a few meta-iterations, so this
step runs once and caches `omniglot.npy` (classes x drawers x imgsz x imgsz, ink = 1) plus a
sidecar `omniglot_index.json` that names every class and fingerprints the inputs, so re-runs are
free until the data or the image size changes. --redraw builds `omniglot_redrawn.npy` beside it, every
image redrawn first as predict.py redraws a user's picture (src/data/omniglot_like.py): the `redraw` setting.

    python src/data_preprocess.py --data_path DIR [--output_path OUT] [--imgsz 28] [--force]
                                  [--redraw] [--download] [--download_url BASE] [--checksums FILE] [--workers N]

DIR holds either raw/images_{background,evaluation}.zip (read in place) or
processed/images_{background,evaluation}/ folders with the same inner tree.
--download first fetches the zips missing from DIR/raw/ and verifies them (src/data/download.py).

The steps: src/data/release.py lists the release, src/data/decode.py decodes it, src/data/npy_cache.py
writes and checks the cache.
"""
import numbers
import os
import sys
import time
from pathlib import Path

if not __package__:  # run as a script: make `import src...` resolve from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.data import npy_cache
from src.data.decode import decode_all
from src.data.download import DEFAULT_DOWNLOAD_URL, download_omniglot
from src.data.release import NUM_DRAWERS, SOURCE_SIZE, detect_layout, fingerprint, list_sources
from src.model_utils.atomic_file import remove_stale_temporaries
from src.model_utils.errors import ArgumentParser, UserError, run_cli
from src.model_utils.outputs import check_writable
from src.model_utils.paths import path_type


def _ensure_writable(out_dir, fix):
    """Fail before the expensive decoding, not after it."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot write to output folder {out_dir} ({err.strerror or err}): {fix}") from None
    check_writable(out_dir, fix)


def build_omniglot(data_path, output_path=None, imgsz=28, force=False, workers=None, log=print,
                   output_option="--output_path", redraw=False):
    """Build (or confirm up to date) OUT/omniglot.npy + omniglot_index.json (with `redraw`, the redrawn images'
    omniglot_redrawn.npy + omniglot_redrawn_index.json); return the npy path.
    `output_option` is the caller's name for output_path, which the errors tell the user to change."""
    if not isinstance(imgsz, numbers.Integral) or not 1 <= imgsz <= SOURCE_SIZE:
        raise UserError(f"--imgsz must be an integer between 1 and {SOURCE_SIZE} (the size of the Omniglot originals), "
                        f"got {imgsz}")
    imgsz = int(imgsz)
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    root = Path(data_path)
    if not root.is_dir():
        raise UserError(f"data folder {root} does not exist or is not a folder: pass --data_path the"
                        " Omniglot root (holding raw/*.zip), or add --download to fetch the data into it")
    out_dir = Path(output_path) if output_path is not None else root
    layout = detect_layout(root)
    source = fingerprint(root, layout)
    npy_path = npy_cache.cache_files(out_dir, redraw)[0]
    remove_stale_temporaries(out_dir)
    if not force and npy_cache.is_up_to_date(out_dir, imgsz, source, redraw):
        log(f"{npy_path} is up to date (imgsz {imgsz}, {layout} layout); pass --force to rebuild")
        return npy_path
    npy_cache.check_replaceable(npy_path, output_option)
    _ensure_writable(out_dir, f"pass {output_option} somewhere writable")
    started = time.monotonic()
    sources = list_sources(root, layout)
    log(f"building {npy_path} from {root} ({layout} layout, imgsz {imgsz},{' redrawn,' if redraw else ''} "
        f"{workers} workers)")
    array = decode_all(sources, imgsz, workers, log, redraw)
    npy_cache.save(out_dir, array, npy_cache.make_index(sources, imgsz, source, redraw),
                   f"free some space or pass {output_option} somewhere writable")
    log(f"done: {array.shape[0]} classes, {array.shape[0] * NUM_DRAWERS} images, imgsz {imgsz},"
        f" {time.monotonic() - started:.1f} s -> {npy_path} ({npy_path.stat().st_size / 2**20:.1f} MiB)")
    return npy_path


def _parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--data_path", required=True, type=path_type("--data_path"), help="Omniglot root (raw/*.zip or processed/ folders)")
    parser.add_argument("--output_path", default=None, type=path_type("--output_path"), help="where omniglot.npy (omniglot_redrawn.npy) goes (default: --data_path)")
    parser.add_argument("--imgsz", type=int, default=28, help="output side length in pixels (default 28)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the output is up to date")
    parser.add_argument("--redraw", action="store_true",
                        help="build omniglot_redrawn.npy, every image redrawn first (the redraw setting)")
    parser.add_argument("--download", action="store_true",
                        help="fetch the missing zips into DATA/raw/ first (one already there is verified,"
                        " never replaced)")
    parser.add_argument("--download_url", default=DEFAULT_DOWNLOAD_URL, help="base URL holding the two zips")
    parser.add_argument("--checksums", default=None, type=path_type("--checksums"),
                        help="SHA256SUMS file to verify the download (default: the official MD5s)")
    parser.add_argument("--workers", type=int, default=None, help="decoder processes (default: CPU count)")
    return parser.parse_args(argv)


def main(argv=None):
    args = _parse_args(argv)
    if args.download:
        download_omniglot(args.data_path, args.download_url, args.checksums)
    build_omniglot(args.data_path, args.output_path, imgsz=args.imgsz, force=args.force, workers=args.workers,
                   redraw=args.redraw)
    return 0


if __name__ == "__main__":
    run_cli(main)

"""Turn the Omniglot image zips into one float16 array that MAML training loads in one read.

Decoding 32,460 PNGs at every training start would cost more than a few meta-iterations, so this
step runs once and caches `omniglot.npy` (classes x drawers x imgsz x imgsz, ink = 1) plus a
sidecar `omniglot_index.json` that names every class and fingerprints the inputs, so re-runs are
free until the data or the image size changes.

    python src/data_preprocess.py --data_path DIR [--output_path OUT] [--imgsz 28] [--force]
                                  [--download] [--download_url BASE] [--checksums FILE] [--workers N]

DIR holds either raw/images_{background,evaluation}.zip (read in place) or
processed/images_{background,evaluation}/ folders with the same inner tree.

--download fetches the zips missing from DIR/raw/ and verifies them (the official MD5s, or
--checksums). A zip already there must pass the same check and is never replaced: anything else at
that name is refused before any download. A failed download leaves no partial file behind, and
removes the folders the command created for it if they are still empty.
"""
import ctypes
import hashlib
import io
import json
import multiprocessing
import numbers
import os
import signal
import sys
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache
from http.client import HTTPException
from pathlib import Path

if not __package__:  # run as a script: make `import src...` resolve from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from PIL import Image, UnidentifiedImageError

from src.atomic_file import remove_stale_temporaries, replacing, write_atomic
from src.errors import ArgumentParser, UserError, run_cli
from src.outputs import check_writable, remove_if_empty
from src.paths import path_type

FORMAT_VERSION = 1
SETS = ("background", "evaluation")
EXPECTED_CLASSES = {"background": 964, "evaluation": 659}
NUM_DRAWERS = 20
SOURCE_SIZE = 105
NPY_NAME = "omniglot.npy"
INDEX_NAME = "omniglot_index.json"
CLASS_KEYS = ("set", "alphabet", "character")  # the fields of each class in the index
DEFAULT_DOWNLOAD_URL = "https://github.com/brendenlake/omniglot/raw/master/python/"
OFFICIAL_MD5 = {
    "images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811",
}
DOWNLOAD_TIMEOUT_S = 60
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h): the signal a process gets when its parent dies
CHUNKS_PER_WORKER = 8  # small tasks keep both the progress output and the load balance smooth


# ----------------------------------------------------------------------------- inputs


def _zip_path(root, set_name):
    return root / "raw" / f"images_{set_name}.zip"


def _folder_path(root, set_name):
    return root / "processed" / f"images_{set_name}"


def _detect_layout(root):
    """Prefer the zips: they are the official, checksummable release."""
    if all(_zip_path(root, s).is_file() for s in SETS):
        return "raw"
    if all(_folder_path(root, s).is_dir() for s in SETS):
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


def _fingerprint(root, layout):
    """What the cache depends on; stat-only so that the up-to-date check stays fast."""
    source = {"layout": layout}
    for set_name in SETS:
        if layout == "raw":
            st = _zip_path(root, set_name).stat()
            source[f"images_{set_name}.zip"] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        else:
            count, latest = _folder_stats(_folder_path(root, set_name))
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


def _list_zip(zip_path, set_name):
    prefix = f"images_{set_name}/"
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise UserError(f"{zip_path} is not a readable zip ({err}): delete it and download it again"
                        " (e.g. with --download)") from None
    relative = [n[len(prefix):] for n in names if n.startswith(prefix)]
    return [(a, c, [prefix + p for p in files]) for a, c, files in _group_classes(relative)]


def _list_folder(folder):
    relative = [Path(dirpath, name).relative_to(folder).as_posix()
                for dirpath, _, filenames in os.walk(folder) for name in filenames]
    return [(a, c, [str(folder / p) for p in files]) for a, c, files in _group_classes(relative)]


def _list_sources(root, layout):
    """[(set, container zip or None, [(alphabet, character, [image refs])])] in the canonical order."""
    sources = []
    for set_name in SETS:
        if layout == "raw":
            container = _zip_path(root, set_name)
            classes = _list_zip(container, set_name)
        else:
            container = None
            classes = _list_folder(_folder_path(root, set_name))
        _check_counts(set_name, container or _folder_path(root, set_name), classes)
        sources.append((set_name, container, classes))
    return sources


def list_omniglot(data_path):
    """Every class as (its index entry, [(container zip or None, image ref, display name)] per drawer),
    in the order of omniglot.npy's rows, straight from the raw data."""
    root = Path(data_path)
    listed = []
    for set_name, container, entries in _list_sources(root, _detect_layout(root)):
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


# ----------------------------------------------------------------------------- decoding (worker side)


@lru_cache(maxsize=None)
def _open_zip(path):
    """One handle per zip and worker process, reused across that worker's chunks (never used in the parent)."""
    return zipfile.ZipFile(path)


def read_source(container, ref, where):
    """The bytes of one original image (a zip member or a file)."""
    try:
        return _open_zip(container).read(ref) if container else Path(ref).read_bytes()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise UserError(f"cannot read {where} ({err}): the file is corrupt;"
                        " download or extract the data again") from None


def ink_map(img, imgsz):
    """A PIL image -> imgsz x imgsz float32 ink map in [0, 1] (dark strokes on light paper -> ink 1).

    Resizing in float ('F') keeps LANCZOS antialiasing honest (a 1-bit resize would just subsample,
    an 8-bit one quantises). The filter is linear, so inverting the small image equals resizing the
    inverted one, far more cheaply; its overshoot is clipped back into [0, 1].
    """
    small = np.asarray(img.convert("F").resize((imgsz, imgsz), Image.Resampling.LANCZOS), dtype=np.float32)
    return np.clip(1.0 - small / 255.0, 0.0, 1.0)


def _load_image(data, where, imgsz):
    """105x105 1-bit Omniglot scan -> its ink map; anything else is refused as damaged data."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.size != (SOURCE_SIZE, SOURCE_SIZE):
                width, height = img.size
                raise UserError(f"{where} is {width}x{height}, expected {SOURCE_SIZE}x{SOURCE_SIZE}:"
                                " this is not an original Omniglot image; restore the original data")
            return ink_map(img, imgsz)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as err:
        reason = "not an image" if isinstance(err, UnidentifiedImageError) else err
        raise UserError(f"cannot decode {where} as PNG ({reason}): the file is corrupt;"
                        " download or extract the data again") from None


def die_with_parent(parent):
    """Worker initializer: end this worker when its parent `parent` dies, also by kill -9, which leaves it no
    time to stop its pool (Linux: the kernel sends SIGKILL; elsewhere the pool's own checks remain)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _decode_chunk(task):
    """Worker entry point: (first class index, container, [class image refs], imgsz) -> (index, array)."""
    start, container, classes, imgsz = task
    out = np.empty((len(classes), NUM_DRAWERS, imgsz, imgsz), dtype=np.float16)
    for i, refs in enumerate(classes):
        for j, ref in enumerate(refs):
            where = f"{ref} in {container}" if container else ref
            out[i, j] = _load_image(read_source(container, ref, where), where, imgsz)
    return start, out


def _make_tasks(sources, imgsz, workers):
    total = sum(len(classes) for _, _, classes in sources)
    chunk = max(1, -(-total // (workers * CHUNKS_PER_WORKER)))
    tasks, start = [], 0
    for _, container, classes in sources:
        container = str(container) if container else None
        for k in range(0, len(classes), chunk):
            refs = [files for _, _, files in classes[k:k + chunk]]
            tasks.append((start, container, refs, imgsz))
            start += len(refs)
    return tasks


def _run_tasks(tasks, workers):
    """Yield chunk results as they finish. Spawned workers keep a parent that already runs MindSpore
    threads safe from fork; a dead worker surfaces as an error instead of a hang."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=context, initializer=die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(_decode_chunk, task) for task in tasks]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BrokenProcessPool:
            raise UserError("a decoder worker process died (killed, out of memory, or started from a"
                            " script without an `if __name__ == '__main__':` guard): fix that or lower"
                            " --workers") from None
        finally:
            pool.shutdown(cancel_futures=True)


def _decode_all(sources, imgsz, workers, log):
    total = sum(len(classes) for _, _, classes in sources)
    array = np.empty((total, NUM_DRAWERS, imgsz, imgsz), dtype=np.float16)
    started, done, reported = time.monotonic(), 0, 0
    for start, block in _run_tasks(_make_tasks(sources, imgsz, workers), workers):
        array[start:start + len(block)] = block
        done += len(block)
        if done * 10 // total > reported:
            reported = done * 10 // total
            log(f"  decoded {done}/{total} classes ({time.monotonic() - started:.1f} s)")
    return array


# ----------------------------------------------------------------------------- outputs


def _ensure_writable(out_dir, fix):
    """Fail before the expensive decoding, not after it."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot write to output folder {out_dir} ({err.strerror or err}): {fix}") from None
    check_writable(out_dir, fix)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_index(sources, imgsz, fingerprint):
    classes = [{"set": set_name, "alphabet": alphabet, "character": character}
               for set_name, _, entries in sources for alphabet, character, _ in entries]
    return {"format_version": FORMAT_VERSION, "imgsz": imgsz, "resample": "lanczos",
            "num_classes": len(classes), "num_drawers": NUM_DRAWERS, "source": fingerprint,
            "classes": classes}


def _is_up_to_date(out_dir, imgsz, fingerprint):
    """Trust the cache only if the index (written last) matches and the npy header agrees with it."""
    try:
        index = json.loads((out_dir / INDEX_NAME).read_text())
        header = np.load(out_dir / NPY_NAME, mmap_mode="r")
        shape, dtype = header.shape, header.dtype
        del header
    except (OSError, ValueError, EOFError):
        return False
    return (isinstance(index, dict) and index.get("format_version") == FORMAT_VERSION
            and index.get("imgsz") == imgsz and index.get("resample") == "lanczos"
            and index.get("source") == fingerprint
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


def _check_replaceable(npy_path, output_option):
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


def _save(out_dir, array, index, fix):
    """npy first, index last: the index marks a complete cache, so drop the old one before touching the npy."""
    (out_dir / INDEX_NAME).unlink(missing_ok=True)
    write_atomic(out_dir / NPY_NAME, lambda f: np.save(f, array, allow_pickle=False), fix)
    write_atomic(out_dir / INDEX_NAME, lambda f: f.write(json.dumps(index, indent=1).encode() + b"\n"), fix)
    _fsync_dir(out_dir)


def build_omniglot(data_path, output_path=None, imgsz=28, force=False, workers=None, log=print,
                   output_option="--output_path"):
    """Build (or confirm up to date) OUT/omniglot.npy + omniglot_index.json; return the npy path.
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
    layout = _detect_layout(root)
    fingerprint = _fingerprint(root, layout)
    npy_path = out_dir / NPY_NAME
    remove_stale_temporaries(out_dir)
    if not force and _is_up_to_date(out_dir, imgsz, fingerprint):
        log(f"{npy_path} is up to date (imgsz {imgsz}, {layout} layout); pass --force to rebuild")
        return npy_path
    _check_replaceable(npy_path, output_option)
    _ensure_writable(out_dir, f"pass {output_option} somewhere writable")
    started = time.monotonic()
    sources = _list_sources(root, layout)
    log(f"building {npy_path} from {root} ({layout} layout, imgsz {imgsz}, {workers} workers)")
    array = _decode_all(sources, imgsz, workers, log)
    _save(out_dir, array, _make_index(sources, imgsz, fingerprint),
          f"free some space or pass {output_option} somewhere writable")
    log(f"done: {array.shape[0]} classes, {array.shape[0] * NUM_DRAWERS} images, imgsz {imgsz},"
        f" {time.monotonic() - started:.1f} s -> {npy_path} ({npy_path.stat().st_size / 2**20:.1f} MiB)")
    return npy_path


# ----------------------------------------------------------------------------- download


def _read_checksums(path):
    """SHA256SUMS format ('<hex>  <name>' or '<hex> *<name>') -> {name: ('sha256', hex)}."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read checksum file {path} ({err}):"
                        " pass --checksums a SHA256SUMS file") from None
    sums = {}
    for line in lines:
        parts = line.strip().split(maxsplit=1)
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = ("sha256", parts[0].lower())
    missing = [name for name in OFFICIAL_MD5 if name not in sums]
    if missing:
        raise UserError(f"checksum file {path} has no entry for {', '.join(missing)}:"
                        " pass --checksums a SHA256SUMS file that lists both zips")
    return sums


def _file_digest(path, algo):
    digest = hashlib.new(algo)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url, dest, algo, expected):
    """Stream url to a temp file next to dest while hashing; only a verified file gets dest's name."""
    digest = hashlib.new(algo)
    with replacing(dest, "pass --data_path a writable folder") as tmp:
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as f:
                while block := response.read(1 << 20):
                    digest.update(block)
                    f.write(block)
        except (urllib.error.URLError, HTTPException, TimeoutError, ConnectionError, ValueError) as err:
            reason = getattr(err, "reason", err)
            if isinstance(err, urllib.error.HTTPError):
                reason = f"HTTP {err.code} {err.reason}"
            raise UserError(f"download failed: {url} ({reason}); check the connection, or download"
                            f" the zips by hand into {dest.parent}/") from None
        actual = digest.hexdigest()
        if actual != expected:
            raise UserError(f"checksum mismatch for {dest.name} from {url}: expected {algo} {expected},"
                            f" got {actual}; the download is corrupt, or the server holds another build"
                            " of the zips (then pass --checksums with its SHA256SUMS)")


def _already_verified(dest, algo, expected):
    """Whether dest already is the verified zip (False: nothing there). Anything else at that name is
    the user's, and is refused rather than replaced."""
    if not (dest.exists() or dest.is_symlink()):
        return False
    try:
        if dest.is_file() and _file_digest(dest, algo) == expected:
            return True
        problem = f"does not match the expected {algo} {expected}" if dest.is_file() else "is not a file"
    except OSError as err:
        problem = f"cannot be read ({err.strerror or err})"
    raise UserError(f"{dest} already exists and {problem}: --download never replaces a file; move it away"
                    " to download a fresh copy, or drop --download to use it as is")


def _missing_folders(folder):
    """`folder` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not (folder.exists() or folder.is_symlink()):
        missing.append(folder)
        folder = folder.parent
    return missing


def download_omniglot(data_path, base_url=DEFAULT_DOWNLOAD_URL, checksums=None, log=print):
    """Fetch the zips missing from DATA/raw/; one already there must be the verified zip, and stays."""
    sums = _read_checksums(checksums) if checksums else {n: ("md5", h) for n, h in OFFICIAL_MD5.items()}
    raw = Path(data_path) / "raw"
    remove_stale_temporaries(raw)
    missing = []
    for name in OFFICIAL_MD5:
        algo, expected = sums[name]
        if _already_verified(raw / name, algo, expected):
            log(f"{raw / name} already present and verified ({algo})")
        else:
            missing.append(name)
    if not missing:
        return
    created = _missing_folders(raw)
    try:
        try:
            raw.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create {raw} ({err.strerror or err}):"
                            " pass --data_path a writable folder") from None
        for name in missing:
            algo, expected = sums[name]
            url = base_url.rstrip("/") + "/" + name
            log(f"downloading {url} -> {raw / name}")
            _fetch(url, raw / name, algo, expected)  # a failed fetch removes its partial file
            log(f"  verified {algo} {expected}")
    except BaseException:
        for folder in created:
            remove_if_empty(folder)
        raise


# ----------------------------------------------------------------------------- CLI


def _parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--data_path", required=True, type=path_type("--data_path"), help="Omniglot root (raw/*.zip or processed/ folders)")
    parser.add_argument("--output_path", default=None, type=path_type("--output_path"), help="where omniglot.npy goes (default: --data_path)")
    parser.add_argument("--imgsz", type=int, default=28, help="output side length in pixels (default 28)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the output is up to date")
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
    build_omniglot(args.data_path, args.output_path, imgsz=args.imgsz, force=args.force, workers=args.workers)
    return 0


if __name__ == "__main__":
    run_cli(main)

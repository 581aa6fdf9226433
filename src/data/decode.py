"""The release's PNGs decoded into ink maps, in a pool of worker processes.

An ink map is an imgsz x imgsz float32 array in [0, 1], dark strokes on light paper turned into ink 1:
what the network sees, for the Omniglot originals here and for a user's images (image_folder.py).
"""
import ctypes
import io
import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

import numpy as np
from PIL import Image, UnidentifiedImageError

from src.data.omniglot_like import omniglot_like
from src.data.release import NUM_DRAWERS, SOURCE_SIZE, read_source
from src.model_utils.errors import UserError

PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h): the signal a process gets when its parent dies
CHUNKS_PER_WORKER = 8  # small tasks keep both the progress output and the load balance smooth


def ink_map(img, imgsz):
    """A PIL image -> imgsz x imgsz float32 ink map in [0, 1] (dark strokes on light paper -> ink 1).

    Resizing in float ('F') keeps LANCZOS antialiasing honest (a 1-bit resize would just subsample,
    an 8-bit one quantises). The filter is linear, so inverting the small image equals resizing the
    inverted one, far more cheaply; its overshoot is clipped back into [0, 1].
    """
    small = np.asarray(img.convert("F").resize((imgsz, imgsz), Image.Resampling.LANCZOS), dtype=np.float32)
    return np.clip(1.0 - small / 255.0, 0.0, 1.0)


def _load_image(data, where, imgsz, redraw=False):
    """105x105 1-bit Omniglot scan -> its ink map (redrawn first with `redraw`, see omniglot_like); anything
    else is refused as damaged data."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.size != (SOURCE_SIZE, SOURCE_SIZE):
                width, height = img.size
                raise UserError(f"{where} is {width}x{height}, expected {SOURCE_SIZE}x{SOURCE_SIZE}:"
                                " this is not an original Omniglot image; restore the original data")
            return ink_map(omniglot_like(img, redraw_originals=True) if redraw else img, imgsz)
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
    """Worker entry point: (first class index, container, [class image refs], imgsz, redraw) -> (index, array)."""
    start, container, classes, imgsz, redraw = task
    out = np.empty((len(classes), NUM_DRAWERS, imgsz, imgsz), dtype=np.float16)
    for i, refs in enumerate(classes):
        for j, ref in enumerate(refs):
            where = f"{ref} in {container}" if container else ref
            out[i, j] = _load_image(read_source(container, ref, where), where, imgsz, redraw)
    return start, out


def _make_tasks(sources, imgsz, workers, redraw):
    total = sum(len(classes) for _, _, classes in sources)
    chunk = max(1, -(-total // (workers * CHUNKS_PER_WORKER)))
    tasks, start = [], 0
    for _, container, classes in sources:
        container = str(container) if container else None
        for k in range(0, len(classes), chunk):
            refs = [files for _, _, files in classes[k:k + chunk]]
            tasks.append((start, container, refs, imgsz, redraw))
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


def decode_all(sources, imgsz, workers, log, redraw=False):
    """float16 (classes, NUM_DRAWERS, imgsz, imgsz) ink maps of the listed sources (src/data/release.py),
    redrawn first with `redraw`, decoded by `workers` processes; progress every tenth of the classes through `log`."""
    total = sum(len(classes) for _, _, classes in sources)
    array = np.empty((total, NUM_DRAWERS, imgsz, imgsz), dtype=np.float16)
    started, done, reported = time.monotonic(), 0, 0
    for start, block in _run_tasks(_make_tasks(sources, imgsz, workers, redraw), workers):
        array[start:start + len(block)] = block
        done += len(block)
        if done * 10 // total > reported:
            reported = done * 10 // total
            log(f"  decoded {done}/{total} classes ({time.monotonic() - started:.1f} s)")
    return array

"""A training run's output folder: what its files are named, and when a run may write there.

A folder that holds checkpoints (best.ckpt included) or earlier metrics belongs to another run: a fresh
run (no --resume) refuses it, and so does --resume when there is no step checkpoint to continue from,
since starting from step 0 would replace best.ckpt and the metrics. One run at a time holds the folder
(src/model_utils/run_lock.py).
"""
import re
from pathlib import Path

from src.model_utils import run_lock
from src.model_utils.errors import UserError
from src.model_utils.outputs import CHECKPOINT_SUFFIX, check_writable, remove_if_empty

METRICS_NAME = "metrics.jsonl"
PREFIX = "maml_step"  # step checkpoints: maml_step0001000.ckpt
BEST = "best.ckpt"


def step_checkpoint_path(output_dir, step):
    return Path(output_dir) / f"{PREFIX}{step:07d}{CHECKPOINT_SUFFIX}"


def step_checkpoints(output_dir, upto=None):
    """Step checkpoints in output_dir, oldest first; only those of steps <= `upto` if given."""
    pattern = re.compile(rf"^{PREFIX}(\d+){re.escape(CHECKPOINT_SUFFIX)}$")
    found = [(int(m.group(1)), p) for p in Path(output_dir).glob(f"{PREFIX}*{CHECKPOINT_SUFFIX}")
             if (m := pattern.match(p.name))]
    return [p for step, p in sorted(found) if upto is None or step <= upto]


def _check_unclaimed(out, resume):
    """Refuse a folder holding another run's checkpoints or metrics, unless the run resumes one of its steps."""
    held = sorted(p.name for p in out.glob(f"*{CHECKPOINT_SUFFIX}"))
    metrics = out / METRICS_NAME
    if metrics.is_file() and metrics.stat().st_size:
        held.append(METRICS_NAME)
    if not held:
        return
    listed = f"{', '.join(held[:3])}{', ...' if len(held) > 3 else ''}"
    resumable = bool(step_checkpoints(out))
    if not resume:
        fix = ("pass --resume to continue it or another --output_dir to start afresh" if resumable else
               f"it has no step checkpoint ({PREFIX}*{CHECKPOINT_SUFFIX}) to resume from: pass another --output_dir")
        raise UserError(f"output_dir {out} already holds checkpoints or metrics of a run ({listed}): {fix}")
    if not resumable:
        raise UserError(f"--resume: output_dir {out} holds {listed} but no step checkpoint "
                        f"({PREFIX}*{CHECKPOINT_SUFFIX}) to continue from, and starting from step 0 would "
                        "replace them: pass another --output_dir to start afresh")


def prepare_run_folder(cfg, hold=False):
    """output_dir, checked and created (removed again if it then proves unwritable), and locked for this
    process with `hold` (else only checked that no run holds it)."""
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"output_dir {out} is a file: pass --output_dir a folder (it is created if missing)")
    created = not out.exists()
    lock = run_lock.hold if hold else run_lock.check_free
    if not created:  # first: a run still writing there is named as such
        lock(out)
        _check_unclaimed(out, cfg.resume)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create output_dir {out} ({err.strerror or err}): pass another --output_dir") from None
    try:
        check_writable(out, "make it writable or pass another --output_dir")
    except UserError:
        if created:
            remove_if_empty(out)
        raise
    if created:
        lock(out)
    return out
